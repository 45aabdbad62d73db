import os
import stat
from pathlib import Path

from django.apps import AppConfig
from django.db.backends.signals import connection_created


class ConsoleConfig(AppConfig):
    name = "console"
    verbose_name = "Console"

    def ready(self):
        from django.conf import settings

        keep_private(Path(settings.DATA_DIR))
        connection_created.connect(_sqlite_files_private, dispatch_uid="console.sqlite_files_private")


def keep_private(data_dir: Path) -> None:
    """DATA_DIR holds the database (sessions, encrypted access keys), the secret key, imported data and models:
    only the user running the console may enter it. Created private when missing; tightened when it is ours."""
    if not data_dir.exists():
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = data_dir.stat()
    if info.st_uid == os.getuid() and stat.S_IMODE(info.st_mode) & 0o077:
        data_dir.chmod(0o700)


def _sqlite_files_private(sender, connection, **kwargs) -> None:
    # SQLite creates the database with the process's umask (0644 as a rule) and its -wal and -shm files with
    # the database file's mode, so making the database 0600 makes all three private.
    if connection.vendor != "sqlite":
        return
    path = Path(str(connection.settings_dict["NAME"]))
    if path.is_file() and stat.S_IMODE(path.stat().st_mode) & 0o077:
        path.chmod(0o600)
        for suffix in ("-wal", "-shm"):
            extra = path.with_name(path.name + suffix)
            if extra.exists():
                extra.chmod(0o600)
