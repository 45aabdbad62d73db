from django.core.management.base import BaseCommand

from batchjobs.demo import seed_demo


class Command(BaseCommand):
    help = (
        "Create the demo user, role, dataset group, trained solution versions and sample inputs (idempotent)."
    )

    def handle(self, *args, **options):
        login = seed_demo(log=self.stdout.write if options["verbosity"] > 0 else lambda _: None)
        self.stdout.write(f"Log in as: {login.username} / {login.password}")
