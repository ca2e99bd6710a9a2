"""Celery (Redis broker, no result backend): the echo work (same_work.py), acks late.

Imported by the producer and by ``celery -A peer_celery worker``. ``acks_late``: the
message is acknowledged after the task returned, that is after the result is published.
"""

import os

import same_work
from celery import Celery

app = Celery("bench", broker=os.environ["BENCH_REDIS_URL"])
app.conf.broker_connection_retry_on_startup = True


@app.task(acks_late=True)
def echo(job_id, params):
    """Fetch the input, publish the result (fsync, rename): jobrunner's echo job."""
    same_work.echo(job_id, params)


def enqueue(n):
    for job_id, params in same_work.jobs(n):
        echo.delay(job_id, params)
