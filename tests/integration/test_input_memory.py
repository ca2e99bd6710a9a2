"""Memory of a refused compression bomb, measured in a real worker's child process.

A small compressed body can inflate a thousandfold. The size limit
(``--max-input-bytes``) refuses the input either way; these tests pin that
refusing it costs the child no more memory than a small multiple of the
limit: its peak resident size (``VmHWM``, reset through
``/proc/PID/clear_refs`` before the job) grows by less than four times the
limit while a bomb of a thousand times the limit is refused.
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from jobrunner.testing import free_port
from tests.support import (
    Beanstalkd,
    Lab,
    answer_lifespan,
    job_body,
    put_raw,
    wait_for,
    wait_for_status,
)

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
LIMIT = 1_000_000  # --max-input-bytes
INFLATED = 256 * MIB  # what each bomb inflates to


def _compress(wbits: int) -> bytes:
    """``INFLATED`` zero bytes compressed, built in 1 MiB steps (the test stays small too)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, wbits)
    zeros = b"\0" * MIB
    parts = [packer.compress(zeros) for _ in range(INFLATED // MIB)]
    return b"".join(parts) + packer.flush()


BOMBS = {
    "gzip": ("gzip", _compress(zlib.MAX_WBITS | 16)),
    "deflate-zlib": ("deflate", _compress(zlib.MAX_WBITS)),
    "deflate-raw": ("deflate", _compress(-zlib.MAX_WBITS)),
}


class BombApp:
    """Serves each bomb at ``/<name>`` with its Content-Encoding, as JSON."""

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await answer_lifespan(receive, send)
            return
        name = scope["path"].strip("/")
        if name not in BOMBS:
            await send({"type": "http.response.start", "status": 404, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        encoding, body = BOMBS[name]
        headers = [
            (b"content-type", b"application/json"),
            (b"content-encoding", encoding.encode()),
            (b"content-length", str(len(body)).encode()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


@pytest.fixture
def bomb_server() -> Iterator[str]:
    """uvicorn serving the bombs on 127.0.0.1; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(BombApp(), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, 15, what="uvicorn")
    yield f"http://127.0.0.1:{port}/"
    server.should_exit = True
    thread.join(timeout=10)


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def _child_pid(lab: Lab, bsd: Beanstalkd, name: str) -> int:
    put_raw(bsd.port, lab.body("pid", name))
    doc = wait_for_status(lab.result(name), timeout=30)
    assert doc["status"] == "done", doc
    return int(doc["data"]["pid"])


@pytest.mark.parametrize("bomb", sorted(BOMBS))
def test_refused_bomb_costs_the_child_little_memory(
    lab: Lab, beanstalkd: Beanstalkd, bomb_server: str, bomb: str
) -> None:
    """A compression bomb inflating to 256 MiB against a 1 MB limit is input_too_large, and
    the child's peak resident memory grows by less than 4 MB (four times the limit)."""
    assert len(BOMBS[bomb][1]) < LIMIT  # the compressed body alone is under the limit
    worker = lab.worker(beanstalkd.address, "--max-input-bytes", str(LIMIT))
    try:
        pid = _child_pid(lab, beanstalkd, "before")
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # peak RSS := current RSS
        baseline = _status_kib(pid, "VmHWM")
        put_raw(
            beanstalkd.port,
            job_body("echo", lab.base_url + "bomb.json", bomb_server + bomb, job_id="bomb"),
        )
        doc = wait_for_status(lab.result("bomb"), timeout=60)
        assert doc["status"] == "failed"
        assert doc["error"]["code"] == "input_too_large"
        assert "after decoding" in doc["error"]["message"]
        grown_kib = _status_kib(pid, "VmHWM") - baseline
        assert _child_pid(lab, beanstalkd, "after") == pid  # the same child measured throughout
        assert grown_kib * 1024 < 4 * LIMIT, f"peak RSS grew by {grown_kib} KiB"
        wait_for(lambda: beanstalkd.tube_stats().get("current-jobs-buried") == 1, 10)
    finally:
        worker.stop()
