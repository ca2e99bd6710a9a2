"""Huey (Redis storage): one no-op task. Imported by the producer and by ``huey_consumer``."""

import os

from huey import RedisHuey

huey = RedisHuey("bench", url=os.environ["BENCH_REDIS_URL"])


@huey.task()
def noop():
    """Do nothing: the job's cost is the framework's own."""


def enqueue(n):
    for _ in range(n):
        noop()
