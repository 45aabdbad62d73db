"""Batch inference speed, memory and scale-out, measured in one run.

Builds a UserPersonalization artifact with random factors (100,000 items, 1,000,000 users, 64 factors), as
training writes it (no stored softmax denominators: jobs compute them); a 200,000-line input, a temporary
DATA_DIR (SQLite) and a private redis-server on a unix socket; then prints, measured in this one run:

(a) the reference kernel alone, the hot path before the fused kernel: float32 matrix product + implicit's
    C++ top-k on the same factors, users/s; and the bare float32 matrix product at 2,048 users x the
    catalogue, users/s (the arithmetic limit of any exact scorer);
(b) our job end to end through a real `manage.py rqworker batch`, users/s, over each of (a);
(c) the worker's peak RSS and the model's size;
(d) two workers against one, each limited to one BLAS/OpenMP thread (the job is sharded);
(e) submit-to-ACTIVE latency of a 1,000-line job on a warm worker, median of 10;
(f) the job's output against the path it replaced (a product per block, implicit's top-k, the softmax) on
    the same input: identical lines, and lines that differ only between scores equal to float32 rounding.

The last line is a JSON object (``two_worker_speedup`` is null with --skip-scale). Usage:
.venv/bin/python benchmarks/batch.py [--lines N] [--users N] [--items N] [--skip-scale] [--compare-lines N]
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def build_model(n_users: int, n_items: int, factors: int, path: Path) -> None:
    import numpy as np

    from engine.artifacts import save_model
    from engine.datasets import IdMap
    from engine.recipes import UserPersonalization

    rng = np.random.default_rng(0)
    model = UserPersonalization(hidden_dimension=factors, sequence_weight=0.0)
    model.user_map_ = IdMap(np.array([f"u{i:07d}" for i in range(n_users)]))
    model.item_map_ = IdMap(np.array([f"i{i:06d}" for i in range(n_items)]))
    model.item_popularity_ = rng.integers(1, 1000, n_items).astype(np.int64)
    model.item_counts_ = model.item_popularity_.copy()
    model.item_age_basis_ = np.zeros(n_items, np.int64)
    model.latest_timestamp_ = 86400 * 365
    model._finish_common()
    model.user_factors_ = rng.standard_normal((n_users, factors), dtype=np.float32)
    model.item_factors_ = (rng.standard_normal((n_items, factors), dtype=np.float32) * 0.1).astype(np.float32)
    model.temperature_ = 1.0
    model.exclude_seen_ = False
    model.repeat_fraction_ = 0.5
    model.seen_indptr_ = np.zeros(n_users + 1, np.int64)
    model.seen_indices_ = np.zeros(0, np.int64)
    model.trained_items_ = np.ones(n_items, bool)
    model.neighbour_indptr_ = np.zeros(n_items + 1, np.int64)
    model.neighbour_indices_ = np.zeros(0, np.int32)
    model.neighbour_weights_ = np.zeros(0, np.float32)
    model.query_indptr_ = np.zeros(n_users + 1, np.int64)
    model.query_indices_ = np.zeros(0, np.int32)
    model.query_weights_ = np.zeros(0, np.float64)
    save_model(model, path)


def kernel_users_per_s(artifact: Path, users: "list[str]", k: int) -> tuple[float, float]:
    """The reference kernel (product + implicit's top-k) and the bare product at 2,048 users per call."""
    import numpy as np
    from implicit.cpu.topk import topk

    from engine.artifacts import load_model

    model = load_model(artifact)
    rows = model.user_map_.index(users)
    q = np.ascontiguousarray(model.user_factors_[rows])
    items = np.ascontiguousarray(model.item_factors_)
    started = time.perf_counter()
    topk(items, q, k)
    kernel = len(q) / (time.perf_counter() - started)
    block = 2048
    out = np.empty((block, len(items)), np.float32)
    np.matmul(q[:block], items.T, out=out[: len(q[:block])])  # The output's pages, mapped once.
    started = time.perf_counter()
    for start in range(0, len(q) - block + 1, block):
        np.matmul(q[start : start + block], items.T, out=out)
    gemm = (len(q) // block * block) / (time.perf_counter() - started)
    return kernel, gemm


def compare_with_reference(artifact: Path, input_bytes: bytes, output: bytes, num_results: int) -> dict:
    """The job's output against the path it replaced, run here on the same model and input.

    A line may differ only where two of its items' scores are equal within float32 rounding (their order,
    or which of them takes the last place) or where a written score's last digit moves by that rounding.
    """
    import io

    import numpy as np
    from scipy.special import logsumexp

    from engine.artifacts import load_model
    from engine.batch import run_batch

    model = load_model(artifact)

    def product_logits(urows):  # The model has no sequence part.
        return np.matmul(model._scaled_users(urows), model._scoring_state()["items"].T)

    model._block_logits = product_logits
    model._log_normalizers = lambda urows: logsumexp(product_logits(urows).astype(np.float64), axis=1)
    model._top_relevant = model._top_by_product
    reference = io.BytesIO()
    run_batch(model, io.BytesIO(input_bytes), reference, num_results=num_results, input_kind="userId")
    rounding = 1e-5  # relative: a float32 logit of magnitude up to ~50 carries about 3e-6 of rounding
    counts = {"lines": 0, "identical": 0, "within_float32_rounding": 0, "different": 0}
    for ours, theirs in zip(output.splitlines(), reference.getvalue().splitlines(), strict=True):
        counts["lines"] += 1
        if ours == theirs:
            counts["identical"] += 1
            continue
        a, b = json.loads(ours)["output"], json.loads(theirs)["output"]
        close = len(a["recommendedItems"]) == len(b["recommendedItems"]) and all(
            (ia == ib or abs(sa - sb) <= rounding * max(sa, sb)) and abs(sa - sb) <= rounding * max(sa, sb) + 1e-7
            for ia, ib, sa, sb in zip(a["recommendedItems"], b["recommendedItems"], a["scores"], b["scores"],
                                      strict=True)
        )
        counts["within_float32_rounding" if close else "different"] += 1
    return counts


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--factors", type=int, default=64)
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--scale-lines", type=int, default=0, help="input lines of (d); default --lines")
    parser.add_argument("--num-results", type=int, default=25)
    parser.add_argument("--skip-scale", action="store_true", help="leave out (d), the slowest part")
    parser.add_argument("--compare-lines", type=int, default=None, help="lines of (f); default all of --lines")
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    env = {
        **os.environ,
        "DEBUG": "1",
        "DATA_DIR": str(data_dir),
        "REDIS_URL": f"unix://{data_dir / 'redis.sock'}?db=0",
        "BATCH_SHARD_LINES": str(10**9),
    }
    os.environ.update({k: env[k] for k in ("DEBUG", "DATA_DIR", "REDIS_URL", "BATCH_SHARD_LINES")})
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")
    import django

    django.setup()
    from console.management.commands.runconsole import redis_program

    redis = redis_program(data_dir)
    redis_process = subprocess.Popen(redis.argv)
    redis.on_start(redis_process)
    workers: list[subprocess.Popen] = []
    try:
        subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
        from django.conf import settings

        from batchjobs.models import (
            BatchInferenceJob,
            DatasetGroup,
            Role,
            Solution,
            SolutionVersion,
            Status,
        )
        from batchjobs.storage import object_storage
        from engine.artifacts import file_checksum

        artifact = Path(settings.ARTIFACT_ROOT) / "bench.npz"
        artifact.parent.mkdir(parents=True, exist_ok=True)
        build_model(args.users, args.items, args.factors, artifact)
        model_mb = artifact.stat().st_size / 2**20
        role = Role.create_with_prefixes("bench", read=["s3://bench/"], write=["s3://bench/out/"])
        group = DatasetGroup.create_validated("bench", role_arn=role.arn)
        recipe = "arn:aws:personalize:::recipe/aws-user-personalization"
        solution = Solution.create_validated("bench", group.arn, recipe)
        version = SolutionVersion.objects.create(solution=solution)
        version.start()
        version.succeed(artifact=str(artifact), artifact_checksum=file_checksum(artifact))

        import numpy as np

        rng = np.random.default_rng(1)
        users = [f"u{i:07d}" for i in rng.integers(0, args.users, args.lines)]
        storage = object_storage()
        big = "".join(f'{{"userId": "{u}"}}\n' for u in users).encode()
        storage.write_bytes("s3://bench/in/big.json", big)
        small = "".join(f'{{"userId": "{u}"}}\n' for u in users[:1000]).encode()
        storage.write_bytes("s3://bench/in/small.json", small)
        scale_lines = args.scale_lines or args.lines
        storage.write_bytes(
            "s3://bench/in/scale.json", "".join(f'{{"userId": "{u}"}}\n' for u in users[:scale_lines]).encode()
        )
        settings.MAX_ACTIVE_BATCH_JOBS = 1000
        counter = iter(range(10**6))

        def run_jobs(input_uris: "list[str]", wait_s: float = 3600) -> "list[BatchInferenceJob]":
            """Submit the jobs at once and wait for all of them."""
            jobs = [
                BatchInferenceJob.create_validated(
                    job_name=f"bench-{next(counter)}", solution_version_arn=version.arn, input_path=uri,
                    output_path=f"s3://bench/out/{time.monotonic_ns()}/", role_arn=role.arn,
                    num_results=args.num_results,
                )
                for uri in input_uris
            ]
            started = time.perf_counter()
            for job in jobs:
                while True:
                    job.refresh_from_db(fields=["status", "failure_reason"])
                    if job.status in (Status.ACTIVE, Status.CREATE_FAILED):
                        break
                    if time.perf_counter() - started > wait_s:
                        raise SystemExit(f"job {job.job_name} did not finish")
                    time.sleep(0.01)
                if job.status != Status.ACTIVE:
                    raise SystemExit(f"job failed: {job.failure_reason}")
            return jobs

        last_output = {}

        def run_job(input_uri: str) -> float:
            started = time.perf_counter()
            (job,) = run_jobs([input_uri])
            seconds = time.perf_counter() - started
            last_output[input_uri] = job.output_path.rstrip("/") + "/" + input_uri.rsplit("/", 1)[1] + ".out"
            return seconds

        def start_workers(n: int, extra: dict) -> None:
            for _ in range(n):
                workers.append(subprocess.Popen(
                    [sys.executable, "manage.py", "rqworker", "batch"], cwd=ROOT, env={**env, **extra},
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                ))
            time.sleep(2)

        def stop_workers() -> None:
            for w in workers:
                w.terminate()
            for w in workers:
                w.wait(timeout=60)
            workers.clear()

        kernel, gemm = kernel_users_per_s(artifact, users, args.num_results)
        print(f"(a) reference kernel (float32 product + implicit top-k): {kernel:,.0f} users/s; "
              f"bare float32 product, 2,048 users per call: {gemm:,.0f} users/s", flush=True)

        start_workers(1, {})
        run_job("s3://bench/in/small.json")  # Warms the worker's model cache.
        seconds = run_job("s3://bench/in/big.json")
        e2e = args.lines / seconds
        print(f"(b) end to end through one worker: {e2e:,.0f} users/s; over the reference kernel "
              f"{e2e / kernel:.2f}, over the bare product {e2e / gemm:.2f}", flush=True)
        latencies = [run_job("s3://bench/in/small.json") for _ in range(10)]
        p50 = statistics.median(latencies)
        print(f"(e) submit-to-ACTIVE of a 1,000-line job, warm worker: median {p50:.3f} s of 10", flush=True)
        rss = peak_rss_mb(workers[0].pid)
        print(f"(c) worker peak RSS {rss:,.0f} MB; model {model_mb:,.0f} MB; over the model {rss - model_mb:,.0f} MB")
        stop_workers()

        compare_lines = args.lines if args.compare_lines is None else min(args.lines, args.compare_lines)
        ours = storage.read_bytes(last_output["s3://bench/in/big.json"])
        cut = len(b"".join(big.splitlines(keepends=True)[:compare_lines]))
        output_cut = len(b"".join(ours.splitlines(keepends=True)[:compare_lines]))
        comparison = compare_with_reference(artifact, big[:cut], ours[:output_cut], args.num_results)
        print(f"(f) against the replaced path on {comparison['lines']:,} lines: {comparison['identical']:,} identical, "
              f"{comparison['within_float32_rounding']:,} differing only within float32 rounding, "
              f"{comparison['different']:,} otherwise", flush=True)

        speedup = None
        if not args.skip_scale:
            one_thread = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                          "BATCH_SHARD_LINES": str(max(1000, scale_lines // 8))}
            times = {}
            for n in (1, 2):
                start_workers(n, one_thread)
                # One small job per worker, submitted together: each cold worker takes one while the
                # other loads the model, so every worker's cache is warm before the timed job.
                run_jobs(["s3://bench/in/small.json"] * n)
                times[n] = run_job("s3://bench/in/scale.json")
                stop_workers()
            speedup = times[1] / times[2]
            print(f"(d) sharded {scale_lines:,}-line job, 1 BLAS thread per worker: one worker {times[1]:.1f} s, "
                  f"two workers {times[2]:.1f} s, speed-up {speedup:.2f}x", flush=True)
        print(json.dumps({
            "kernel_users_per_s": round(kernel), "gemm_users_per_s": round(gemm), "end_to_end_users_per_s": round(e2e),
            "end_to_end_over_kernel": round(e2e / kernel, 3), "end_to_end_over_gemm": round(e2e / gemm, 3),
            "compared_with_replaced_path": comparison,
            "two_worker_speedup": speedup and round(speedup, 3),
            "small_job_latency_p50_s": round(p50, 3), "peak_rss_mb": round(rss), "model_mb": round(model_mb),
            "lines": args.lines, "users": args.users, "items": args.items, "factors": args.factors,
            "cpus": os.cpu_count(),
        }))
    finally:
        stop_workers() if workers else None
        redis_process.terminate()
        redis_process.wait(timeout=10)
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
