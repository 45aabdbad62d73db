from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from batchjobs.models import AccessKey


class Command(BaseCommand):
    help = "Create an API access key pair for USERNAME and print 'ACCESS_KEY_ID SECRET_ACCESS_KEY'."

    def add_arguments(self, parser):
        parser.add_argument("username")

    def handle(self, *args, username, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"There is no user {username!r}; create one with 'manage.py createsuperuser'.")
        key = AccessKey.issue(user)
        # The secret is printed this once; the console never shows it again.
        self.stdout.write(f"{key.access_key_id} {key.secret_access_key}")
