"""RQ: one no-op function on queue ``bench``. Imported by the producer and by ``rq worker``."""

import os

from redis import Redis
from rq import Queue


def noop():
    """Do nothing: the job's cost is the framework's own."""


def enqueue(n):
    queue = Queue("bench", connection=Redis.from_url(os.environ["BENCH_REDIS_URL"]))
    batch = 500
    for start in range(0, n, batch):
        queue.enqueue_many([Queue.prepare_data(noop) for _ in range(min(batch, n - start))])
