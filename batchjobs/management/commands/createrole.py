from django.core.management.base import BaseCommand, CommandError

from batchjobs.errors import ServiceError
from batchjobs.models import Role
from engine.storage import InvalidS3Path


class Command(BaseCommand):
    help = "Create a service role that may read and write the given s3:// prefixes, and print its ARN."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument(
            "--read", nargs="*", default=[], metavar="S3PREFIX", help="prefixes jobs may read"
        )
        parser.add_argument(
            "--write", nargs="*", default=[], metavar="S3PREFIX", help="prefixes jobs may write"
        )

    def handle(self, *args, name, read, write, **options):
        try:
            role = Role.create_with_prefixes(name, read, write)
        except (InvalidS3Path, ServiceError) as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(role.arn)
