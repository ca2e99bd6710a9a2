"""The dashboard's poller against a real beanstalkd, without a browser.

A kick polls at once from a request thread while the background thread polls
on its interval; both share the poller's beanstalkd connections.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from jobrunner.config import Config
from jobrunner.dashboard import Poller
from tests.support import Beanstalkd, put_raw

pytestmark = [pytest.mark.integration]


def test_polls_from_several_threads_at_once_never_report_a_live_server_down(
    tmp_path: Path, beanstalkd: Beanstalkd
) -> None:
    """Polls running at the same moment (the background thread and a kick's request
    thread) each see the server up with its tubes: one poll's replies never reach the
    other, and no poll leaves the connection backing off with the server shown down."""
    put_raw(beanstalkd.port, b'{"v": 1}', tube="reports", delay=600)
    config = Config(beanstalk=(beanstalkd.address,), results_dir=tmp_path, dashboard_interval=60.0)
    poller = Poller(config)
    errors: list[BaseException] = []
    views: list[list[dict[str, object]]] = []

    def poll_many() -> None:
        try:
            for _ in range(40):
                poller.poll()
                views.append(poller.tube_rows())
        except BaseException as exc:  # recorded for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=poll_many) for _ in range(4)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        poller.stop()
    assert not errors
    assert len(views) == 4 * 40
    down = [v for v in views if not any(r["tube"] == "reports" and r["delayed"] == 1 for r in v)]
    assert not down, f"{len(down)} of {len(views)} polls lost the server: {down[:1]}"
