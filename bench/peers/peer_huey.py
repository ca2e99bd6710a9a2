"""Huey (Redis storage): the echo work (same_work.py), for the producer and huey_consumer."""

import os

import same_work
from huey import RedisHuey

huey = RedisHuey("bench", url=os.environ["BENCH_REDIS_URL"])


@huey.task()
def echo(job_id, params):
    """Fetch the input, publish the result (fsync, rename): jobrunner's echo job."""
    same_work.echo(job_id, params)


def enqueue(n):
    for job_id, params in same_work.jobs(n):
        echo(job_id, params)
