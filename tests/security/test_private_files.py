"""The files in DATA_DIR (database, sessions, access keys, data, models) are the console user's alone."""

import os
import stat
import subprocess
import sys

from tests.helpers import PROJECT_ROOT


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_data_dir_and_the_sqlite_database_are_private(tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o755)
    os.chmod(data_dir, 0o755)
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(DATA_DIR=str(data_dir), DEBUG="1")
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v0"], cwd=PROJECT_ROOT, env=env, check=True, timeout=300
    )
    assert _mode(data_dir) == 0o700
    assert _mode(data_dir / "db.sqlite3") == 0o600
    for extra in ("db.sqlite3-wal", "db.sqlite3-shm"):
        if (data_dir / extra).exists():
            assert _mode(data_dir / extra) == 0o600


def test_a_missing_data_dir_is_created_private(tmp_path):
    data_dir = tmp_path / "new" / "data"
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(DATA_DIR=str(data_dir), DEBUG="1")
    subprocess.run([sys.executable, "manage.py", "check"], cwd=PROJECT_ROOT, env=env, check=True, timeout=300,
                   capture_output=True)
    assert _mode(data_dir) == 0o700
