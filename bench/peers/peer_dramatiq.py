"""Dramatiq (Redis broker): the echo work (same_work.py). Imported by the producer and ``dramatiq``.

Dramatiq acknowledges a message after the actor returned: after the result is published.
"""

import os

import dramatiq
import same_work
from dramatiq.brokers.redis import RedisBroker

dramatiq.set_broker(RedisBroker(url=os.environ["BENCH_REDIS_URL"]))


@dramatiq.actor(max_retries=0)
def echo(job_id, params):
    """Fetch the input, publish the result (fsync, rename): jobrunner's echo job."""
    same_work.echo(job_id, params)


def enqueue(n):
    for job_id, params in same_work.jobs(n):
        echo.send(job_id, params)
