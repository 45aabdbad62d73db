"""Real-time recommendation speed and memory: GetRecommendations over HTTP with SigV4, as a client sees it.

Builds a UserPersonalization artifact with random factors (100,000 items, 100,000 users, 64 factors, as
benchmarks/batch.py does), a temporary DATA_DIR (SQLite) holding an ACTIVE solution version and a campaign on
it, then starts the stack's serving side as `make run` does: the campaign server (`python -m engine.serving`
on a unix socket) and gunicorn with its two web workers, which forward to it. It prints, measured in this one
run:

(a) latency of GetRecommendations (numResults 25, exploration 0.3, a random known user per call) through
    boto3's personalize-runtime client, one client after another: p50, p90, p99, max;
(b) requests per second with 8 concurrent clients (threads, each its own boto3 client);
(c) the engine's own share: one request through engine.realtime.answer in-process (the batch runner on a
    one-line input), p50; and the batch kernel's time per user in a 2,000-line batch run, for comparison;
(d) the campaign server's RSS before and after the campaign's model was loaded (memory per campaign),
    the model file's size, and a web worker's RSS (which holds no model).

The last line is a JSON object. Usage:
.venv/bin/python benchmarks/runtime.py [--items N] [--users N] [--factors N] [--calls N] [--seconds S]
"""

import argparse
import json
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.batch import build_model  # noqa: E402

SETUP = r"""
import json, sys
import django
django.setup()
from django.contrib.auth.models import User
from batchjobs.models import AccessKey, Campaign, DatasetGroup, Solution, SolutionVersion, Status
from engine.artifacts import file_checksum

artifact = sys.argv[1]
admin = User.objects.create_superuser("bench", password="bench-password-not-used")
key = AccessKey.issue(admin)
group = DatasetGroup.create_validated("bench-group")
solution = Solution.objects.create(
    name="bench", dataset_group=group, recipe_arn="arn:aws:personalize:::recipe/aws-user-personalization",
    perform_auto_training=False, status=Status.ACTIVE,
)
version = SolutionVersion.objects.create(
    solution=solution, status=Status.ACTIVE, artifact=artifact, artifact_checksum=file_checksum(artifact),
)
campaign = Campaign.create_validated("bench", version.arn)
print(json.dumps({"key": key.access_key_id, "secret": key.secret_access_key, "campaign": campaign.arn}))
"""


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def children(pid: int) -> list[int]:
    try:
        out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    except FileNotFoundError:
        return []
    return [int(p) for p in out.split()]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.1)


def engine_times(artifact: Path, users: list[str]) -> tuple[float, float]:
    """(p50 of one request through engine.realtime.answer, batch kernel seconds per user in a 2,000-line run)."""
    import io

    from engine.artifacts import load_model
    from engine.batch import run_batch
    from engine.realtime import answer

    model = load_model(artifact)
    exploration = {"exploration_weight": 0.3, "exploration_item_age_cut_off": 30.0}
    for user in users[:20]:
        answer(model, {"userId": user}, input_kind="userId", num_results=25, exploration=exploration, seed=1)
    times = []
    for user in users[:500]:
        started = time.perf_counter()
        answer(model, {"userId": user}, input_kind="userId", num_results=25, exploration=exploration, seed=1)
        times.append(time.perf_counter() - started)
    lines = [json.dumps({"userId": u}).encode() for u in users[:2000]]
    run_batch(model, lines[:200], io.BytesIO(), num_results=25, input_kind="userId", exploration=exploration)
    started = time.perf_counter()
    run_batch(model, lines, io.BytesIO(), num_results=25, input_kind="userId", exploration=exploration)
    per_user = (time.perf_counter() - started) / len(lines)
    return statistics.median(times), per_user


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--factors", type=int, default=64)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()

    import boto3
    import numpy as np
    from botocore.config import Config

    work = Path(tempfile.mkdtemp(prefix="runtime-bench-"))
    procs: list[subprocess.Popen] = []
    try:
        artifact = work / "model.npz"
        build_model(args.users, args.items, args.factors, artifact)
        sock = work / "campaigns.sock"
        port = free_port()
        env = {
            **os.environ, "DEBUG": "0", "HTTPS": "0", "DATA_DIR": str(work), "CAMPAIGN_SOCKET": str(sock),
            "ALLOWED_HOSTS": "127.0.0.1,localhost", "SECRET_KEY": secrets.token_urlsafe(50),
        }
        env.pop("DATABASE_URL", None)
        manage = [sys.executable, str(ROOT / "manage.py")]
        subprocess.run([*manage, "migrate", "-v", "0"], env=env, cwd=ROOT, check=True)
        setup = subprocess.run(
            [sys.executable, "-c", SETUP, str(artifact)], env={**env, "DJANGO_SETTINGS_MODULE": "console.settings"},
            cwd=ROOT, check=True, capture_output=True, text=True,
        )
        ids = json.loads(setup.stdout.strip().splitlines()[-1])

        server = subprocess.Popen([sys.executable, "-m", "engine.serving", "--socket", str(sock)], env=env, cwd=ROOT)
        procs.append(server)
        web = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "python:console.gunicorn_conf", "-b", f"127.0.0.1:{port}",
             "--access-logfile", "/dev/null"],
            env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        procs.append(web)
        wait_for(sock.exists, 30, "the campaign server")

        def up() -> bool:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return True
            except OSError:
                return False

        wait_for(up, 60, "gunicorn")
        time.sleep(1.0)
        server_before = rss_mb(server.pid)

        def client():
            return boto3.client(
                "personalize-runtime", endpoint_url=f"http://127.0.0.1:{port}/api/personalize-runtime",
                region_name="us-east-1", aws_access_key_id=ids["key"], aws_secret_access_key=ids["secret"],
                config=Config(retries={"max_attempts": 1}, max_pool_connections=4),
            )

        rng = np.random.default_rng(1)
        users = [f"u{i:07d}" for i in rng.integers(0, args.users, max(args.calls, 4000))]
        c = client()
        started = time.perf_counter()
        first = c.get_recommendations(campaignArn=ids["campaign"], userId=users[0])
        first_call_s = time.perf_counter() - started
        assert len(first["itemList"]) == 25
        server_after = rss_mb(server.pid)
        for user in users[:100]:  # every web worker and thread warm
            c.get_recommendations(campaignArn=ids["campaign"], userId=user)

        latencies = []
        for user in users[: args.calls]:
            started = time.perf_counter()
            c.get_recommendations(campaignArn=ids["campaign"], userId=user)
            latencies.append((time.perf_counter() - started) * 1000)

        done = [0] * 8
        stop = threading.Event()

        def load(slot: int) -> None:
            mine = client()
            i = slot
            while not stop.is_set():
                mine.get_recommendations(campaignArn=ids["campaign"], userId=users[i % len(users)])
                done[slot] += 1
                i += 8

        threads = [threading.Thread(target=load, args=(s,)) for s in range(8)]
        started = time.perf_counter()
        for t in threads:
            t.start()
        time.sleep(args.seconds)
        stop.set()
        for t in threads:
            t.join()
        rps = sum(done) / (time.perf_counter() - started)
        web_workers = children(web.pid)
        web_rss = max((rss_mb(p) for p in web_workers), default=0.0)
        server_loaded = rss_mb(server.pid)

        engine_p50, kernel_per_user = engine_times(artifact, users)
        result = {
            "items": args.items, "users": args.users, "factors": args.factors,
            "p50_ms": round(statistics.median(latencies), 2),
            "p90_ms": round(percentile(latencies, 0.90), 2),
            "p99_ms": round(percentile(latencies, 0.99), 2),
            "max_ms": round(max(latencies), 2),
            "first_call_s": round(first_call_s, 2),
            "requests_per_s_8_clients": round(rps, 1),
            "engine_answer_p50_ms": round(engine_p50 * 1000, 3),
            "batch_kernel_ms_per_user": round(kernel_per_user * 1000, 3),
            "server_rss_mb_before": round(server_before, 1),
            "server_rss_mb_with_campaign": round(server_loaded, 1),
            "memory_per_campaign_mb": round(server_after - server_before, 1),
            "model_file_mb": round(artifact.stat().st_size / 2**20, 1),
            "web_worker_rss_mb": round(web_rss, 1),
            "load_avg": os.getloadavg()[0],
        }
        rows = [
            ("GetRecommendations p50 / p90 / p99 / max (ms), 1 client",
             f"{result['p50_ms']} / {result['p90_ms']} / {result['p99_ms']} / {result['max_ms']}"),
            ("first call (loads the model), s", result["first_call_s"]),
            ("requests/s, 8 concurrent clients", result["requests_per_s_8_clients"]),
            ("engine alone: one request through the batch runner, p50 (ms)", result["engine_answer_p50_ms"]),
            ("batch kernel per user in a 2,000-line run (ms)", result["batch_kernel_ms_per_user"]),
            ("campaign server RSS before / after loading the campaign (MB)",
             f"{result['server_rss_mb_before']} / {round(server_after, 1)}"),
            ("memory per campaign (MB) / model file (MB)",
             f"{result['memory_per_campaign_mb']} / {result['model_file_mb']}"),
            ("a web worker's RSS (MB)", result["web_worker_rss_mb"]),
            ("load average (1 min) at the end", result["load_avg"]),
        ]
        width = max(len(r[0]) for r in rows)
        print(f"runtime benchmark: {args.items:,} items, {args.users:,} users, {args.factors} factors")
        for name, value in rows:
            print(f"  {name:<{width}}  {value}")
        print(json.dumps(result))
    finally:
        for proc in reversed(procs):
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
