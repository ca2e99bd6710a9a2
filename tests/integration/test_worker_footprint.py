"""What a running worker process holds: no TLS library unless something needs it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import Beanstalkd, Lab

pytestmark = pytest.mark.integration


def test_worker_process_maps_no_openssl(beanstalkd: Beanstalkd, lab: Lab) -> None:
    """A worker logging JSON without --metrics-port loads neither libssl nor libcrypto
    (3-4 MB of each process's memory) nor asyncio's C module; its children do what jobs need."""
    worker = lab.worker(beanstalkd.address, "--log-format", "json")
    try:
        worker.wait_event("child_started")
        maps = Path(f"/proc/{worker.pid}/maps").read_text()
    finally:
        worker.stop()
    loaded = {line.split()[-1].rsplit("/", 1)[-1] for line in maps.splitlines() if "/" in line}
    assert not [name for name in loaded if name.startswith(("libssl", "libcrypto", "_ssl"))]
    assert not [name for name in loaded if name.startswith(("_asyncio", "_hashlib"))]
