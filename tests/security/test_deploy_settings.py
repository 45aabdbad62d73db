import os
import secrets
import subprocess
import sys

from tests.helpers import PROJECT_ROOT


def manage(*args, **env):
    ours = {"DEBUG", "SECRET_KEY", "SECRET_KEY_FILE", "HTTPS", "DJANGO_ALLOW_ASYNC_UNSAFE"}
    clean = {k: v for k, v in os.environ.items() if k not in ours}
    return subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "manage.py"), *args],
        env={**clean, **env},
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_settings_pass_the_deploy_check_without_warnings(tmp_path):
    result = manage(
        "check", "--deploy", "--fail-level", "WARNING",
        DEBUG="0", SECRET_KEY=secrets.token_urlsafe(60), ALLOWED_HOSTS="console.example.com", DATA_DIR=str(tmp_path),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_a_secret_key_is_required_when_debug_is_off(tmp_path):
    result = manage("check", DEBUG="0", DATA_DIR=str(tmp_path))
    assert result.returncode != 0
    assert "SECRET_KEY (or SECRET_KEY_FILE) must be set when DEBUG is off" in result.stderr


def test_junk_settings_fail_at_start_up_with_the_variable_named(tmp_path):
    result = manage("check", DEBUG="maybe", DATA_DIR=str(tmp_path))
    assert result.returncode != 0 and "DEBUG='maybe' is not a boolean" in result.stderr
    result = manage("check", DEBUG="1", PERSONALIZE_ACCOUNT_ID="123", DATA_DIR=str(tmp_path))
    assert result.returncode != 0 and "must be 12 digits" in result.stderr
