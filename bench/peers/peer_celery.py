"""Celery (Redis broker, no result backend): one no-op task.

Imported by the producer and by ``celery -A peer_celery worker``.
"""

import os

from celery import Celery

app = Celery("bench", broker=os.environ["BENCH_REDIS_URL"])
app.conf.broker_connection_retry_on_startup = True


@app.task
def noop():
    """Do nothing: the job's cost is the framework's own."""


def enqueue(n):
    for _ in range(n):
        noop.delay()
