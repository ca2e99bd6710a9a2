"""The work of jobrunner's ``echo`` job, for the peers' tasks: the same in every peer.

GET the input over a kept-alive connection (httpx), write a timestamped JSON
result document to a temp file, fsync it, rename it into place and fsync
the directory — what jobrunner's file publisher does. The task returns only
then, so a peer that acknowledges after the task (Celery ``acks_late``,
Dramatiq, RQ, Huey) acknowledges a published result.
"""

import datetime
import json
import os
import tempfile

import httpx

_HTTP = None


def echo(job_id, params):
    """Fetch ``BENCH_INPUT_URL``, publish the result as ``BENCH_RESULTS/<job_id>.json``."""
    global _HTTP
    if _HTTP is None:
        _HTTP = httpx.Client()
    data = _HTTP.get(os.environ["BENCH_INPUT_URL"]).json()
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    body = json.dumps(
        {
            "id": job_id,
            "type": "echo",
            "status": "done",
            "timestamp": now,
            "data": {"input": data, "params": params},
        }
    ).encode()
    folder = os.path.join(os.environ["BENCH_RESULTS"], str(params["n"] % 100))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=folder)
    try:
        os.write(fd, body)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, os.path.join(folder, f"{job_id}.json"))
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def jobs(n):
    """The arguments of ``n`` jobs: an id and params, as jobrunner's bench jobs have."""
    return [(f"job-{i:08d}", {"n": i}) for i in range(n)]
