"""Settings, read from the environment as the design's interface contract says.

With nothing set, the console runs on one machine with embedded defaults: SQLite, a private Redis on a
unix socket and local object storage, all under DATA_DIR.
"""

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from console.envparse import env_account_id, env_bool, env_float, env_int, env_list, env_secret


def _read_if_present(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("DATA_DIR") or BASE_DIR / "var").resolve()

DEBUG = env_bool("DEBUG", False)
# `make run` keeps its key in DATA_DIR/secret_key; commands typed beside it (manage.py createaccesskey, ...)
# find it there, so they work as the README shows them without exporting anything.
SECRET_KEY = env_secret("SECRET_KEY") or _read_if_present(DATA_DIR / "secret_key")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            f"SECRET_KEY (or SECRET_KEY_FILE) must be set when DEBUG is off; `make run` keeps one in "
            f"{DATA_DIR / 'secret_key'}, which commands run beside it find."
        )
    SECRET_KEY = "insecure-development-key-only-used-with-DEBUG-on"
# Earlier keys, comma-separated, while rotating SECRET_KEY: signed sessions and tokens and the encrypted
# access keys made under them still verify and decrypt.
SECRET_KEY_FALLBACKS = env_list("SECRET_KEY_FALLBACKS", [])

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_rq",
    "console",
    "batchjobs",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Every console page needs a login; the few public paths are listed in the middleware.
    "console.middleware.LoginRequiredMiddleware",
]

ROOT_URLCONF = "console.urls"
WSGI_APPLICATION = "console.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "console.context_processors.navigation",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{DATA_DIR / 'db.sqlite3'}", conn_max_age=600, conn_health_checks=True
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Workers and the web server write to the same file: WAL lets readers go on during a write, and
    # IMMEDIATE transactions take the write lock up front instead of failing half-way with "locked".
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    # A file, not memory, so that worker processes started by the end-to-end tests see the test data.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test-db.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = os.environ.get("REDIS_URL") or f"unix://{DATA_DIR / 'redis.sock'}?db=0"
EMBEDDED_REDIS = not os.environ.get("REDIS_URL")
# The campaign server's unix socket (engine.serving); `make run` starts one and sets it. Unset, runtime calls
# are answered in the web process itself.
CAMPAIGN_SOCKET = os.environ.get("CAMPAIGN_SOCKET", "")
_QUEUE = {"URL": REDIS_URL, "DEFAULT_TIMEOUT": 6 * 3600, "DEFAULT_RESULT_TTL": 24 * 3600}
RQ_QUEUES = {"batch": dict(_QUEUE), "training": dict(_QUEUE)}

# Object storage: local files under DATA_DIR/s3 unless an S3 endpoint (or real S3) is configured.
AWS_ENDPOINT_URL_S3 = os.environ.get("AWS_ENDPOINT_URL_S3") or None
S3_BACKEND = os.environ.get("S3_BACKEND", "").lower() or ("aws" if AWS_ENDPOINT_URL_S3 else "local")
if S3_BACKEND not in {"local", "aws"}:
    raise ImproperlyConfigured(f"S3_BACKEND={S3_BACKEND!r} must be 'local' or 'aws'.")
S3_LOCAL_ROOT = DATA_DIR / "s3"
# Trained models and imported datasets. Shared by every worker, so a shared filesystem or an s3://
# prefix when workers run on several machines.
ARTIFACT_ROOT = os.environ.get("ARTIFACT_ROOT") or str(DATA_DIR / "artifacts")

PERSONALIZE_ACCOUNT_ID = env_account_id("PERSONALIZE_ACCOUNT_ID", "000000000000")
AWS_REGION = os.environ.get("AWS_REGION", "us-east-1")
# The service's default quota: pending or in-progress batch inference jobs per region.
MAX_ACTIVE_BATCH_JOBS = env_int("MAX_ACTIVE_BATCH_JOBS", 5)
# The service's quota of pending or in-progress batch segment jobs (5, not adjustable there).
MAX_ACTIVE_BATCH_SEGMENT_JOBS = env_int("MAX_ACTIVE_BATCH_SEGMENT_JOBS", 5)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
WHITENOISE_USE_FINDERS = True
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# HTTPS hardening is on by default whenever DEBUG is off; a local console served over plain HTTP (make run)
# turns it off with HTTPS=0, since secure cookies would never be sent back over http://.
HTTPS = env_bool("HTTPS", not DEBUG)
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_SSL_REDIRECT = HTTPS and env_bool("SECURE_SSL_REDIRECT", True)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000) if HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SECURE_HSTS_PRELOAD = HTTPS
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("BEHIND_PROXY", False) else None
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django": {"level": "WARNING"}},
}

# We enqueue in transaction.on_commit ourselves (batchjobs/queues.py), so django-rq must not defer again.
RQ = {"COMMIT_MODE": "auto", "WORKER_CLASS": "batchjobs.worker.Worker"}
# django-rq's dashboard (queues, workers, failed RQ jobs) in the admin, for staff; the job admin pages link to it.
RQ_SHOW_ADMIN_LINK = True

# Worker liveness (see README "Faults"). A running attempt records its process and writes a heartbeat every
# WORKER_HEARTBEAT_S. The reconciler, in every worker every RECONCILE_EVERY_S, retries an attempt whose
# process is gone from this machine at once, and one whose heartbeat is older than WORKER_LOST_AFTER_S (a
# worker on another machine) then; at most MAX_ATTEMPTS times in all. A CREATE PENDING row that no queue
# holds on two rounds in a row, and that has been pending PENDING_REQUEUE_AFTER_S, is enqueued again.
WORKER_HEARTBEAT_S = env_float("WORKER_HEARTBEAT_S", 5.0)
WORKER_LOST_AFTER_S = env_float("WORKER_LOST_AFTER_S", 30.0)
RECONCILE_EVERY_S = env_float("RECONCILE_EVERY_S", 10.0)
PENDING_REQUEUE_AFTER_S = env_float("PENDING_REQUEUE_AFTER_S", 10.0)
MAX_ATTEMPTS = env_int("MAX_ATTEMPTS", 3)

# Batch sharding: a batch inference job whose input holds more than BATCH_SHARD_LINES lines (estimated
# from its bytes) is split into shards of about that many lines, run in parallel by the batch workers.
BATCH_SHARD_LINES = env_int("BATCH_SHARD_LINES", 250_000)
