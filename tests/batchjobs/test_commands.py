import re

import pytest
from django.core.management import CommandError, call_command

from batchjobs.models import AccessKey, Role


@pytest.mark.django_db
def test_createaccesskey_prints_the_pair_on_one_line(user, capsys):
    call_command("createaccesskey", "alice")
    key_id, secret = capsys.readouterr().out.split()
    assert re.fullmatch(r"AKIA[A-Z2-7]{16}", key_id)
    key = AccessKey.objects.get(access_key_id=key_id)
    assert key.user == user and key.secret_access_key == secret and key.is_active


@pytest.mark.django_db
def test_createaccesskey_refuses_an_unknown_user():
    with pytest.raises(CommandError, match="no user"):
        call_command("createaccesskey", "nobody")


@pytest.mark.django_db
def test_createrole_prints_the_arn_and_stores_the_policy(capsys):
    call_command("createrole", "batch-role", "--read", "s3://bkt/in/", "--write", "s3://bkt/out/")
    arn = capsys.readouterr().out.strip()
    assert arn == "arn:aws:iam::000000000000:role/batch-role"
    role = Role.objects.get(arn=arn)
    assert role.allows("s3:GetObject", "s3://bkt/in/x.json")
    assert role.allows("s3:PutObject", "s3://bkt/out/x.json.out")
    assert not role.allows("s3:PutObject", "s3://bkt/in/x.json.out")


@pytest.mark.django_db
def test_createrole_refuses_bad_paths_and_duplicates():
    with pytest.raises(CommandError):
        call_command("createrole", "r1", "--read", "not-a-path")
    call_command("createrole", "r2")
    with pytest.raises(CommandError, match="already exists"):
        call_command("createrole", "r2")


@pytest.mark.django_db(transaction=True)
def test_readme_commands_work_as_typed_beside_make_run(tmp_path, user):
    """`python manage.py createaccesskey demo` in a second terminal: whatever `python` is on PATH (the system's,
    without Django), with nothing exported but what the shell has; the key `make run` keeps in DATA_DIR and the
    project's virtualenv are found."""
    import os
    import shutil
    import subprocess

    from tests.helpers import PROJECT_ROOT, database_url_for_subprocesses

    (tmp_path / "secret_key").write_text("a-key-make-run-generated-" + "x" * 30)
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root"), "DATA_DIR": str(tmp_path),
           "DATABASE_URL": database_url_for_subprocesses()}
    python = shutil.which("python3") or shutil.which("python")
    done = subprocess.run([python, "manage.py", "createaccesskey", "alice"], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    key_id, secret = done.stdout.split()
    assert AccessKey.objects.get(access_key_id=key_id).user == user
