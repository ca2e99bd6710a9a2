"""RQ: the echo work (same_work.py) on queue ``bench``. Imported by the producer and ``rq worker``.

RQ marks a job finished after the function returned: after the result is published.
"""

import os

import same_work
from redis import Redis
from rq import Queue


def echo(job_id, params):
    """Fetch the input, publish the result (fsync, rename): jobrunner's echo job."""
    same_work.echo(job_id, params)


def enqueue(n):
    queue = Queue("bench", connection=Redis.from_url(os.environ["BENCH_REDIS_URL"]))
    batch = 500
    jobs = same_work.jobs(n)
    for start in range(0, n, batch):
        queue.enqueue_many([Queue.prepare_data(echo, args) for args in jobs[start : start + batch]])
