"""Dramatiq (Redis broker): one no-op actor. Imported by the producer and by ``dramatiq``."""

import os

import dramatiq
from dramatiq.brokers.redis import RedisBroker

dramatiq.set_broker(RedisBroker(url=os.environ["BENCH_REDIS_URL"]))


@dramatiq.actor
def noop():
    """Do nothing: the job's cost is the framework's own."""


def enqueue(n):
    for _ in range(n):
        noop.send()
