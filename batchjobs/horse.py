"""A work horse: one RQ job of a worker, in a fresh interpreter the worker spawned (see batchjobs.worker).

    python -m batchjobs.horse WORKER_KEY JOB_ID QUEUE EXECUTION_ID WORKER_PID

It rebuilds the worker, the job and its execution from Redis and runs the job as a forked horse would,
then exits; the worker watches it as RQ watches any horse.
"""

import os
import sys

from batchjobs.processes import die_with_parent

#: Set in a work horse's environment: work running here may end the process to stop at once.
HORSE_ENV = "PERSONALIZE_WORK_HORSE"


def main(argv: list[str]) -> None:
    worker_key, job_id, queue_name, execution_id, worker_pid = argv
    # First of all: a horse whose worker is gone has nobody to report to, and must not run on unseen.
    die_with_parent(int(worker_pid))
    os.environ[HORSE_ENV] = "1"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")
    import django

    django.setup()

    import django_rq
    from rq.executions import Execution
    from rq.job import Job

    from batchjobs.worker import Worker

    connection = django_rq.get_connection(queue_name)
    worker = Worker.find_by_key(worker_key, connection=connection)
    if worker is None:
        sys.exit(f"Worker {worker_key} is not registered any more; not running {job_id}.")
    job = Job.fetch(job_id, connection=connection, serializer=worker.serializer)
    queue = worker.queue_class(queue_name, connection=connection, serializer=worker.serializer)
    execution = Execution.fetch(execution_id, job.id, connection=connection)
    execution._job = job
    worker.execution = execution
    worker.main_work_horse(job, queue)


if __name__ == "__main__":
    main(sys.argv[1:])
