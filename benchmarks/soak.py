"""The stack as `make run` starts it, under a realistic mixed workload, while a chaos loop kills its processes.

Starts `manage.py runconsole` (embedded Redis, SQLite, local storage in a temporary DATA_DIR) and drives it
for --minutes as users do, through boto3 and the console: imports, a solution version of every recipe, small
batch inference jobs of every input kind (with bad lines), sharded jobs, jobs with a filter, nested input
folders, batch segment jobs, "Re-run failed lines" and "Clone" in the console. Every --kill-every seconds
the chaos loop SIGKILLs a random process of the stack (the workers, their work horses, the web server and
its workers, the embedded Redis; anything but the launcher itself). Then it waits for the work to settle,
stops the stack as Ctrl-C does, and checks:

- stuck: resources not in a terminal state once the work settled;
- lost_lines, doubled_lines: for every ACTIVE job, each input line must have exactly one output line, in
  input order (lines missing or out of place are lost; extra ones doubled);
- published_twice: output objects that two inputs (of one job or of two) were written to;
- max_recovery_s: the longest time from a kill to the lost work being back on a queue (a retry or a
  re-enqueue in the resource's history), against the README's bound (recovery_bound_s);
- orphans: processes of the stack still alive after it stopped.

The last line is a JSON object. Usage (from the project's root, in its virtualenv):

    .venv/bin/python benchmarks/soak.py [--minutes 10] [--kill-every 2:6] [--seed 1]
    .venv/bin/python benchmarks/soak.py --stops 20     # only start and Ctrl-C the stack 20 times
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

REGION = "us-east-1"
BUCKET = "soak"
# Small enough that a 10,000-line job is split into shards, as a 250,000-line one is by default.
SHARD_LINES = 2500
RECIPES = {
    "user-personalization": "aws-user-personalization",
    "popularity": "aws-popularity-count",
    "ranking": "aws-personalized-ranking",
    "sims": "aws-sims",
    "affinity": "aws-item-affinity",
    "hrnn": "aws-hrnn",
    "hrnn-metadata": "aws-hrnn-metadata",
    "hrnn-coldstart": "aws-hrnn-coldstart",
}
USER_KINDS = ("user-personalization", "popularity", "hrnn", "hrnn-metadata", "hrnn-coldstart")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------------------------------------ stack


class Stack:
    """One `make run` (the launcher it calls), in a DATA_DIR of its own."""

    def __init__(self, data_dir: Path, port: int, extra_env: dict[str, str] | None = None):
        self.data_dir, self.port = data_dir, port
        self.stack_id = uuid.uuid4().hex
        self.env = {
            **{k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL", "DEBUG")},
            "DATA_DIR": str(data_dir),
            "PORT": str(port),
            "HTTPS": "0",
            "SECRET_KEY": secrets.token_urlsafe(40),
            "DEMO": "0",
            "PYTHONUNBUFFERED": "1",
            "PERSONALIZE_STACK_ID": self.stack_id,
            # A home of its own: a control file or socket a program drops there would be one another stack on
            # the machine shares (gunicorn's default control socket is $HOME/.gunicorn/gunicorn.ctl).
            "HOME": str(data_dir / "home"),
            **(extra_env or {}),
        }
        (data_dir / "home").mkdir(exist_ok=True)
        self.env.pop("XDG_RUNTIME_DIR", None)
        self.process: subprocess.Popen | None = None
        self.log = data_dir / "stack.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def manage(self, *args: str) -> str:
        """A `manage.py` command beside the running stack, as a user types it in a second terminal."""
        env = {k: v for k, v in self.env.items() if k != "PERSONALIZE_STACK_ID"}
        done = subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), *args], env=env, cwd=ROOT, capture_output=True, text=True
        )
        if done.returncode:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
        return done.stdout.strip()

    def start(self, timeout: float = 240) -> float:
        started = time.monotonic()
        with open(self.log, "ab") as log:
            # A session of its own, as a terminal's foreground job: Ctrl-C is a SIGINT to its group.
            self.process = subprocess.Popen(
                [sys.executable, str(ROOT / "manage.py"), "runconsole"],
                env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        import requests

        while time.monotonic() - started < timeout:
            if self.process.poll() is not None:
                raise RuntimeError(f"the stack exited with {self.process.returncode}; see {self.log}")
            try:
                if requests.get(self.url + "/accounts/login/", timeout=2).status_code == 200:
                    return time.monotonic() - started
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the stack did not answer within {timeout}s; see {self.log}")

    def pids(self) -> list[int]:
        """The stack's processes but the launcher: its descendants, and whatever carries the stack's id (a
        process re-parented away from it). redis-server rewrites its environment for its process title, so
        the id alone would miss it."""
        from batchjobs.processes import descendants, stack_processes

        found = set(stack_processes(self.stack_id))
        if self.process is not None:
            found.discard(self.process.pid)
            if self.process.poll() is None:
                found.update(descendants(self.process.pid))
        return sorted(found)

    def ctrl_c(self, timeout: float = 60) -> float:
        """Stop it as Ctrl-C in its terminal does (SIGINT to its process group); returns the seconds taken."""
        return self.stop(lambda: os.killpg(self.process.pid, signal.SIGINT), timeout)

    def terminate(self, timeout: float = 60) -> float:
        """Stop it as a service manager or `kill` does (SIGTERM to the launcher alone)."""
        return self.stop(lambda: os.kill(self.process.pid, signal.SIGTERM), timeout)

    def stop(self, send, timeout: float) -> float:
        started = time.monotonic()
        send()
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            raise RuntimeError(f"the stack did not stop within {timeout}s") from None
        return time.monotonic() - started

    def leftovers(self) -> list[str]:
        """Processes of the stack still alive, the port still taken, the Redis socket still there."""
        found = [f"pid {pid}: {_cmdline(pid)}" for pid in self.pids()]
        try:
            with socket.create_server(("127.0.0.1", self.port)):
                pass
        except OSError:
            found.append(f"port {self.port} still in use")
        if (self.data_dir / "redis.sock").exists():
            found.append("redis.sock left in DATA_DIR")
        found += [f"{path} left in HOME" for path in (self.data_dir / "home").rglob("*")]
        return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


def kind_of(pid: int) -> str:
    cmd = _cmdline(pid)
    for needle, kind in (
        ("batchjobs.horse", "work horse"), ("rqworker batch --", "batch worker"), ("rqworker training", "worker"),
        ("redis-server", "redis"), ("gunicorn", "web"), ("seeddemo", "seed"),
    ):
        if needle in cmd:
            return kind
    return "other"


# ------------------------------------------------------------------------------------------------ chaos


@dataclass
class Kill:
    at: float  # time.time()
    pid: int
    kind: str


class Chaos(threading.Thread):
    def __init__(self, stack: Stack, rng: random.Random, every: tuple[float, float]):
        super().__init__(name="chaos", daemon=True)
        self.stack, self.rng, self.every = stack, rng, every
        self.kills: list[Kill] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.rng.uniform(*self.every)):
            candidates = self.stack.pids()
            if not candidates:
                continue
            pid = self.rng.choice(candidates)
            kind = kind_of(pid)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
            self.kills.append(Kill(time.time(), pid, kind))


class QueueWatch(threading.Thread):
    """Remembers when each RQ job was last seen waiting in a queue list, so that a job the reconciler had to
    enqueue again can be put down to the kill that lost it (the first one after it left the list)."""

    def __init__(self, socket_path: Path, queues=("batch", "training")):
        super().__init__(name="queue-watch", daemon=True)
        self.socket_path, self.queues = socket_path, queues
        self.last_seen: dict[str, float] = {}
        self.stopped = threading.Event()

    def run(self) -> None:
        import redis

        client = redis.Redis(unix_socket_path=str(self.socket_path), socket_timeout=2)
        while not self.stopped.wait(0.25):
            try:
                for queue in self.queues:
                    now = time.time()
                    for job_id in client.lrange(f"rq:queue:{queue}", 0, -1):
                        self.last_seen[job_id.decode()] = now
            except (redis.RedisError, OSError):
                continue  # Redis was killed; the launcher brings it back


# --------------------------------------------------------------------------------------------- workload


def retrying(call, *args, attempts: int = 60, expect: str = "", **kwargs):
    """An API call through a stack whose web server or Redis may be down for a moment. A web worker killed
    while it answered leaves a cut-off body, which botocore parses as no members: `expect` names the member
    that must be there."""
    import botocore.exceptions
    import requests

    started, last = time.monotonic(), None
    for attempt in range(attempts):
        try:
            answer = call(*args, **kwargs)
            if expect and expect not in answer:
                last = f"an answer without {expect}: {str(answer)[:300]}"
                time.sleep(0.2)
                continue
            return answer
        except (botocore.exceptions.EndpointConnectionError, botocore.exceptions.ConnectionClosedError,
                botocore.exceptions.ReadTimeoutError, requests.ConnectionError, requests.Timeout) as exc:
            last = repr(exc)[:300]
            time.sleep(min(2.0, 0.2 * (attempt + 1)))
        except botocore.exceptions.ClientError as exc:
            if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) >= 500 and attempt < attempts - 1:
                last = repr(exc)[:300]
                time.sleep(0.5)
                continue
            raise
    raise RuntimeError(f"{getattr(call, '__name__', call)} kept failing for {time.monotonic() - started:.0f}s; "
                       f"last: {last}")


class _Form(HTMLParser):
    """The fields of the first form with a csrf token, with their current values."""

    def __init__(self):
        super().__init__()
        self.fields: dict[str, str] = {}
        self._select: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "input" and a.get("name") and a.get("type") not in ("submit", "button", "checkbox"):
            self.fields[a["name"]] = a.get("value") or ""
        elif tag == "input" and a.get("type") == "checkbox" and "checked" in a and a.get("name"):
            self.fields[a["name"]] = a.get("value") or "on"
        elif tag == "select":
            self._select = a.get("name")
            self.fields.setdefault(self._select, "")
        elif tag == "option" and self._select and "selected" in a:
            self.fields[self._select] = a.get("value") or ""
        elif tag == "textarea" and a.get("name"):
            self.fields[a["name"]] = ""

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None


class Workload:
    def __init__(self, stack: Stack, rng: random.Random):
        import boto3
        import requests
        from botocore.config import Config

        self.stack, self.rng = stack, rng
        key = stack.manage("createaccesskey", "soak").split()
        self.api = boto3.client(
            "personalize", endpoint_url=stack.url + "/api/personalize", region_name=REGION,
            aws_access_key_id=key[0], aws_secret_access_key=key[1],
            config=Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=60),
        )
        self.console = requests.Session()
        self.password = None
        self.counter = 0
        self.versions: dict[str, list[str]] = {kind: [] for kind in RECIPES}
        self.solutions: dict[str, str] = {}
        self.submitted: dict[str, int] = {}
        self.errors: list[str] = []

    # set-up ------------------------------------------------------------------------------------------

    def name(self, base: str) -> str:
        self.counter += 1
        return f"{base}-{self.counter}"

    def put(self, key: str, data: bytes) -> str:
        path = self.stack.data_dir / "s3" / BUCKET / key
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(".tmp-soak-" + path.name)
        tmp.write_bytes(data)
        os.replace(tmp, path)
        return f"s3://{BUCKET}/{key}"

    def set_up(self) -> None:
        from batchjobs.demo import INTERACTIONS_SCHEMA, ITEMS_SCHEMA
        from engine import synthetic

        self.data = synthetic.generate(n_users=500, n_items=250, n_interactions=15_000, seed=self.rng.randrange(99))
        self.role = self.stack.manage("createrole", "soak-role", "--read", f"s3://{BUCKET}/",
                                      "--write", f"s3://{BUCKET}/out/")
        users_schema = {
            "type": "record", "name": "Users", "namespace": "com.amazonaws.personalize.schema",
            "fields": [{"name": "USER_ID", "type": "string"}, {"name": "AGE_GROUP", "type": "string",
                                                                "categorical": True}],
            "version": "1.0",
        }
        group = retrying(self.api.create_dataset_group, name="soak", roleArn=self.role)["datasetGroupArn"]
        self.group = group
        for kind, schema, body in (
            ("Interactions", INTERACTIONS_SCHEMA, self.data.interactions_csv),
            ("Items", ITEMS_SCHEMA, self.data.items_csv),
            ("Users", users_schema, self.data.users_csv),
        ):
            schema_arn = retrying(self.api.create_schema, name=f"soak-{kind.lower()}",
                                  schema=json.dumps(schema))["schemaArn"]
            dataset = retrying(self.api.create_dataset, name=f"soak-{kind.lower()}", datasetGroupArn=group,
                               datasetType=kind, schemaArn=schema_arn)["datasetArn"]
            setattr(self, f"{kind.lower()}_dataset", dataset)
            location = self.put(f"data/{kind.lower()}.csv", body)
            self.import_(dataset, location)
        self.wait_all(timeout=300)
        for kind, recipe in RECIPES.items():
            config = {"algorithmHyperParameters": {"hidden_dimension": "32"}} if kind == "user-personalization" else {}
            self.solutions[kind] = retrying(
                self.api.create_solution, name=f"soak-{kind}", datasetGroupArn=group,
                recipeArn=f"arn:aws:personalize:::recipe/{recipe}", solutionConfig=config,
            )["solutionArn"]
            self.train(kind)
        self.filter = retrying(
            self.api.create_filter, name="soak-genre", datasetGroupArn=group,
            filterExpression='INCLUDE ItemID WHERE Items.GENRES IN ($GENRE)',
        )["filterArn"]
        self.wait_all(timeout=600)

    def import_(self, dataset: str, location: str) -> None:
        arn = retrying(self.api.create_dataset_import_job, jobName=self.name("import"), datasetArn=dataset,
                       dataSource={"dataLocation": location}, roleArn=self.role,
                       expect="datasetImportJobArn")["datasetImportJobArn"]
        self.submitted[arn] = 1

    def train(self, kind: str) -> None:
        arn = retrying(self.api.create_solution_version, solutionArn=self.solutions[kind],
                       expect="solutionVersionArn")["solutionVersionArn"]
        self.submitted[arn] = 1

    def active_versions(self, kind: str) -> list[str]:
        found = retrying(
            self.api.list_solution_versions, solutionArn=self.solutions[kind], expect="solutionVersions"
        )["solutionVersions"]
        return [v["solutionVersionArn"] for v in found if v["status"] == "ACTIVE"]

    def unfinished(self) -> int:
        from batchjobs.models import UNFINISHED_STATUSES

        return sum(model.objects.filter(status__in=UNFINISHED_STATUSES).count() for model in resource_models())

    def wait_all(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            left = self.unfinished()
            if not left:
                return 0
            time.sleep(1)
        return self.unfinished()

    # one step ----------------------------------------------------------------------------------------

    def lines_for(self, kind: str, count: int) -> list[str]:
        users, items = self.data.user_ids, self.data.item_ids
        lines = []
        for _ in range(count):
            if kind == "ranking":
                lines.append(json.dumps({"userId": self.rng.choice(users), "itemList": self.rng.sample(items, 10)}))
            elif kind in ("sims", "affinity"):
                lines.append(json.dumps({"itemId": self.rng.choice(items)}))
            else:
                lines.append(json.dumps({"userId": self.rng.choice(users + ["someone-new"])}))
        for _ in range(self.rng.randrange(3)):
            lines.insert(self.rng.randrange(len(lines) + 1), self.rng.choice(['{"userId": ', "not json", "[1, 2]"]))
        return lines

    def batch_job(self, kind: str, count: int, *, nested: bool = False, with_filter: bool = False) -> None:
        versions = self.active_versions(kind)
        if not versions:
            return
        name = self.name(f"job-{kind}")
        if nested:
            for folder in ("a", "b"):
                self.put(f"in/{name}/{folder}/users.json", ("\n".join(self.lines_for(kind, count)) + "\n").encode())
            input_path = f"s3://{BUCKET}/in/{name}/"
        else:
            lines = self.lines_for(kind, count)
            if with_filter:
                genres = ("Action", "Comedy", "Drama", "Horror")
                lines = [
                    json.dumps({**json.loads(line), "filterValues": {"GENRE": f'"{self.rng.choice(genres)}"'}})
                    if line.startswith('{"userId": "') else line
                    for line in lines
                ]
            input_path = self.put(f"in/{name}.json", ("\n".join(lines) + "\n").encode())
        args = dict(
            jobName=name, solutionVersionArn=self.rng.choice(versions), roleArn=self.role,
            jobInput={"s3DataSource": {"path": input_path}},
            jobOutput={"s3DataDestination": {"path": f"s3://{BUCKET}/out/{name}/"}}, numResults=5,
        )
        if with_filter:
            args["filterArn"] = self.filter
        create = self.api.create_batch_segment_job if kind == "affinity" else self.api.create_batch_inference_job
        key = "batchSegmentJobArn" if kind == "affinity" else "batchInferenceJobArn"
        self.submitted[retrying(create, **args, expect=key)[key]] = 1

    def sign_in(self) -> None:
        if self.password is None:
            self.password = secrets.token_urlsafe(12)
            self.stack.manage("shell", "-c", (
                "from django.contrib.auth import get_user_model; u = get_user_model().objects.get(username='soak'); "
                f"u.set_password({self.password!r}); u.save()"
            ))
        url = self.stack.url + "/accounts/login/"
        page = retrying(self.console.get, url, timeout=30)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        retrying(self.console.post, url, data={"username": "soak", "password": self.password,
                                               "csrfmiddlewaretoken": token}, headers={"Referer": url}, timeout=30)

    def console_job(self, rerun: bool) -> None:
        """"Re-run failed lines" (or "Clone") on a finished job, then create the prefilled job in the form."""
        from batchjobs.models import BatchInferenceJob, Status

        done = BatchInferenceJob.objects.filter(status=Status.ACTIVE, shard_count=0)
        if rerun:
            done = done.filter(lines_failed__gt=0).exclude(job_name__contains="-rerun-")
        job = done.order_by("?").first()
        if job is None:
            return
        self.sign_in()
        group_pk = job.solution_version.solution.dataset_group_id
        base = f"{self.stack.url}/dataset-groups/{group_pk}/batch-inference-jobs/"
        if rerun:
            detail = retrying(self.console.get, f"{base}{job.pk}/", timeout=30)
            token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', detail.text).group(1)
            page = retrying(self.console.post, f"{base}{job.pk}/rerun-failed/",
                            data={"csrfmiddlewaretoken": token}, headers={"Referer": detail.url}, timeout=30)
        else:
            page = retrying(self.console.get, f"{base}create/?from={job.pk}", timeout=30)
        if "/create/" not in page.url:
            if not (rerun and "can be re-run as it is" in page.text):  # only lines that were not JSON objects
                self.errors.append(f"{'rerun' if rerun else 'clone'} of {job.job_name} went to {page.url}")
            return
        form = _Form()
        form.feed(page.text)
        fields = form.fields
        fields["job_name"] = self.name("console")
        fields["output_path"] = f"s3://{BUCKET}/out/{fields['job_name']}/"
        created = retrying(self.console.post, f"{base}create/", data=fields, headers={"Referer": page.url}, timeout=60)
        if re.search(r"/batch-inference-jobs/(\d+)/$", created.url):
            self.submitted[created.url] = 1
        elif "already" not in created.text and "at most" not in created.text:
            self.errors.append(f"console create from {job.job_name} did not create a job")

    def step(self) -> None:
        import botocore.exceptions

        from batchjobs.models import UNFINISHED_STATUSES, BatchInferenceJob, BatchSegmentJob

        jobs = (BatchInferenceJob, BatchSegmentJob)
        busy = sum(model.objects.filter(status__in=UNFINISHED_STATUSES).count() for model in jobs)
        choice = self.rng.random()

        try:
            if choice < 0.15:
                self.train(self.rng.choice(list(RECIPES)))
            elif choice < 0.2:
                self.import_(self.interactions_dataset, f"s3://{BUCKET}/data/interactions.csv")
            elif busy >= 5:
                return  # the service's quota of five batch jobs at a time: wait for some to finish
            elif choice < 0.45:
                self.batch_job(self.rng.choice(USER_KINDS + ("ranking", "sims")), self.rng.randrange(20, 600))
            elif choice < 0.55:
                self.batch_job("user-personalization", self.rng.randrange(3 * SHARD_LINES, 5 * SHARD_LINES))
            elif choice < 0.65:
                self.batch_job("affinity", self.rng.randrange(5, 40))
            elif choice < 0.72:
                self.batch_job("user-personalization", self.rng.randrange(20, 300), with_filter=True)
            elif choice < 0.8:
                self.batch_job("popularity", self.rng.randrange(20, 200), nested=True)
            elif choice < 0.9:
                self.console_job(rerun=True)
            else:
                self.console_job(rerun=False)
        except botocore.exceptions.ClientError as exc:
            code = exc.response["Error"]["Code"]
            # Over the quota, a version still training, or a create whose answer a kill cut off: expected.
            if code not in ("LimitExceededException", "ResourceInUseException", "ResourceAlreadyExistsException"):
                self.errors.append(f"{code}: {exc.response['Error'].get('Message', '')[:200]}")


# ------------------------------------------------------------------------------------------------ checks


def resource_models():
    from batchjobs.models import (
        BatchInferenceJob,
        BatchSegmentJob,
        BatchShard,
        DatasetImportJob,
        Filter,
        SolutionVersion,
    )

    return (DatasetImportJob, SolutionVersion, Filter, BatchInferenceJob, BatchSegmentJob, BatchShard)


def expected_inputs(storage, uri: str) -> list:
    from engine.batch import iter_lines, parse_line

    found = []
    with storage.open_read(uri) as src:
        for raw in iter_lines(src):
            query, error = parse_line(raw, "userId")
            if query is None and error is None:
                continue
            found.append(query)
    return found


def check_outputs(storage) -> dict[str, int]:
    from collections import Counter

    from batchjobs.models import BatchInferenceJob, BatchSegmentJob, Status

    lost = doubled = 0
    writers: Counter = Counter()
    for model in (BatchInferenceJob, BatchSegmentJob):
        for job in model.objects.filter(status=Status.ACTIVE):
            for result in job.file_results:
                writers[result["output"]] += 1
                want = [json.dumps(q, sort_keys=True) for q in expected_inputs(storage, result["input"])]
                got = [
                    json.dumps(json.loads(line)["input"], sort_keys=True)
                    for line in storage.read_bytes(result["output"]).decode().splitlines()
                ]
                if want == got:
                    continue
                missing, extra = Counter(want) - Counter(got), Counter(got) - Counter(want)
                lost += sum(missing.values())
                doubled += sum(extra.values())
                if not missing and not extra:  # the same lines, out of order
                    lost += sum(a != b for a, b in zip(want, got, strict=True))
    return {"lost_lines": lost, "doubled_lines": doubled,
            "published_twice": sum(count - 1 for count in writers.values() if count > 1)}


def recoveries(kills: list[Kill], last_waiting: dict[str, float]) -> list[tuple[float, str]]:
    """For each time lost work went back on a queue, seconds since the kill that lost it. A retry names the
    dead process. A re-enqueued job was lost by the first kill (of a worker, a horse or Redis) after a queue
    last held it, or after the resource last changed when no queue was seen holding it. Each comes with what
    recovered and which kill it is put down to."""
    from django.contrib.contenttypes.models import ContentType

    from batchjobs.models import StatusTransition

    by_pid = {k.pid: k for k in kills}
    queue_kills = sorted((k for k in kills if k.kind in ("batch worker", "worker", "redis", "work horse")),
                         key=lambda k: k.at)
    names = {ct.pk: ct.model for ct in ContentType.objects.all()}
    history: dict[tuple, list] = {}
    for t in StatusTransition.objects.order_by("at", "pk"):
        history.setdefault((t.content_type_id, t.object_id), []).append(t)
    found = []
    for (type_id, pk), rows in history.items():
        for n, row in enumerate(rows[1:], start=1):
            dead = re.search(r"The process running this \((\d+)\) died", row.message)
            what = f"{names[type_id]} {pk}: {row.message[:60]!r}"
            if dead and int(dead.group(1)) in by_pid:
                kill = by_pid[int(dead.group(1))]
                found.append((row.at.timestamp() - kill.at, f"{what} after killing the {kill.kind}"))
                continue
            if not (dead or "stopped answering" in row.message or "enqueued again" in row.message):
                continue
            since = rows[n - 1].at.timestamp()
            if "enqueued again" in row.message:
                starts = sum(r.message == "Started." for r in rows[:n])
                job_id = f"{names[type_id]}-{pk}" + (f"-retry-{starts}" if starts else "")
                since = max(since, last_waiting.get(job_id, since))
            after = [k for k in queue_kills if since <= k.at <= row.at.timestamp()]
            if after:
                kinds = ", ".join(k.kind for k in after)
                found.append((row.at.timestamp() - after[0].at, f"{what} after killing the {kinds}"))
    return found


# ------------------------------------------------------------------------------------------------- main


def settle_django(data_dir: Path, env: dict[str, str]) -> None:
    for key in ("DATA_DIR", "SECRET_KEY"):
        os.environ[key] = env[key]
    os.environ.pop("DATABASE_URL", None)
    os.environ.pop("REDIS_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")
    import django

    django.setup()


def run_stops(count: int, keep: bool) -> dict:
    """Start the stack and stop it `count` times, by Ctrl-C and by SIGTERM in turn, each time checking that
    nothing is left behind (no process, no port, no socket)."""
    data_dir = Path(tempfile.mkdtemp(prefix="soak-stops-"))
    stack = Stack(data_dir, free_port())
    starts, stops, left = [], [], []
    try:
        for n in range(count):
            starts.append(stack.start())
            time.sleep(1)
            stops.append(stack.ctrl_c() if n % 2 == 0 else stack.terminate())
            left += stack.leftovers()
    finally:
        if stack.process and stack.process.poll() is None:
            stack.ctrl_c()
        if not keep:
            shutil.rmtree(data_dir, ignore_errors=True)
    print(f"{count} starts and stops (Ctrl-C and SIGTERM in turn): start {max(starts):.1f}s at most, "
          f"stop {max(stops):.1f}s at most (median {sorted(stops)[len(stops) // 2]:.1f}s)")
    for line in left:
        print("left behind:", line)
    return {"stops": count, "max_stop_s": round(max(stops), 2), "max_start_s": round(max(starts), 2),
            "leftovers": len(left)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--kill-every", default="2:6", help="seconds between kills, as MIN:MAX")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--settle-timeout", type=float, default=300)
    parser.add_argument("--stops", type=int, default=0, help="only start and Ctrl-C the stack this many times")
    parser.add_argument("--keep", action="store_true", help="keep the DATA_DIR for a look afterwards")
    args = parser.parse_args(argv)
    if args.stops:
        result = run_stops(args.stops, args.keep)
        print(json.dumps(result))
        return 0 if result["leftovers"] == 0 else 1

    rng = random.Random(args.seed)
    data_dir = Path(tempfile.mkdtemp(prefix="soak-"))
    stack = Stack(data_dir, free_port(), {"BATCH_SHARD_LINES": str(SHARD_LINES)})
    settle_django(data_dir, stack.env)
    from django.conf import settings

    from batchjobs.storage import object_storage

    # The README's bound: the longest of a dead process noticed (one round), a lost queue entry confirmed (its
    # wait and up to two rounds) and a stale heartbeat (a worker on another machine).
    every = settings.RECONCILE_EVERY_S
    bound = max(every, settings.PENDING_REQUEUE_AFTER_S + 2 * every, settings.WORKER_LOST_AFTER_S + every)
    result: dict = {}
    try:
        print(f"DATA_DIR {data_dir}; starting the stack on {stack.url}", flush=True)
        stack.start()
        stack.manage("createsuperuser", "--noinput", "--username", "soak", "--email", "soak@example.com")
        work = Workload(stack, rng)
        print("setting up: imports and a solution version of every recipe", flush=True)
        work.set_up()
        low, high = (float(x) for x in args.kill_every.split(":"))
        chaos = Chaos(stack, rng, (low, high))
        watch = QueueWatch(data_dir / "redis.sock")
        watch.start()
        chaos.start()
        deadline = time.monotonic() + args.minutes * 60
        print(f"mixed workload and chaos for {args.minutes} minutes", flush=True)
        while time.monotonic() < deadline:
            work.step()
            time.sleep(rng.uniform(0.1, 0.8))
        chaos.stopped.set()
        chaos.join()
        print(f"{len(chaos.kills)} kills; waiting for the work to settle", flush=True)
        stuck = work.wait_all(args.settle_timeout)
        outputs = check_outputs(object_storage())
        watch.stopped.set()
        found = recoveries(chaos.kills, watch.last_seen)
        from collections import Counter

        from batchjobs.models import Status

        statuses = Counter()
        for model in resource_models():
            for status in model.objects.values_list("status", flat=True):
                statuses[f"{model.__name__} {status}"] += 1
        failures = Counter()
        for model in resource_models():
            for reason in model.objects.filter(status=Status.CREATE_FAILED).values_list("failure_reason", flat=True):
                failures[re.sub(r"\d+", "N", reason)[:100]] += 1
        stop_s = stack.ctrl_c()
        orphans = stack.leftovers()
        result = {
            "minutes": args.minutes,
            "jobs": sum(statuses.values()),
            "kills": len(chaos.kills),
            "kills_by_kind": dict(Counter(k.kind for k in chaos.kills)),
            "stuck": stuck,
            **outputs,
            "max_recovery_s": round(max(found)[0], 1) if found else 0.0,
            "slowest_recoveries": [f"{seconds:.1f}s {what}" for seconds, what in sorted(found, reverse=True)[:3]],
            "recoveries": len(found),
            "recovery_bound_s": bound,
            "orphans": len(orphans),
            "stop_s": round(stop_s, 2),
            "statuses": dict(sorted(statuses.items())),
            "failure_reasons": dict(failures.most_common(8)),
            "driver_errors": work.errors[:10],
        }
        print()
        for key in ("jobs", "kills", "stuck", "lost_lines", "doubled_lines", "published_twice", "max_recovery_s",
                    "recovery_bound_s", "orphans", "stop_s"):
            print(f"{key:>18}: {result[key]}")
        print(f"{'kills by kind':>18}: {result['kills_by_kind']}")
        for line in result["slowest_recoveries"]:
            print(f"{'slow recovery':>18}: {line}")
        print(f"{'statuses':>18}: {result['statuses']}")
        for reason, count in failures.most_common(8):
            print(f"{'failed':>18}: {count} x {reason}")
        for line in orphans:
            print(f"{'left behind':>18}: {line}")
        for error in work.errors[:10]:
            print(f"{'driver error':>18}: {error}")
    finally:
        if stack.process is not None and stack.process.poll() is None:
            stack.ctrl_c()
        if not args.keep:
            shutil.rmtree(data_dir, ignore_errors=True)
    print(json.dumps(result))
    ok = result and not (result["stuck"] or result["lost_lines"] or result["doubled_lines"] or result["orphans"]
                         or result["published_twice"] or result["max_recovery_s"] > bound)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
