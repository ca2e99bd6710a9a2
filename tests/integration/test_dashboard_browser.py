"""``jobrunner dashboard`` end to end: real beanstalkd, worker, results and headless Chromium.

Everything runs on 127.0.0.1: beanstalkd, a worker with ``--metrics-port``
running the test job types, ``jobrunner serve`` for the results, and the
dashboard as its own process. The browser (Debian's ``chromium`` through
``chromedriver``) opens the page and finds the queue depth (table and
chart), the worker with the job it is running, a buried job with its reason
(and kicks it with one click), and the recent results.

Skipped locally when Chromium, chromedriver or Selenium is missing; under
``CI=true`` that is a failure. Screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from jobrunner.queue import Connection
from tests.integration.test_portal_browser import screenshot
from tests.support import (
    Beanstalkd,
    Lab,
    LoggedProcess,
    ResultsServer,
    free_port,
    headless_chromium,
    jobrunner_cmd,
    put_raw,
    wait_for,
    wait_for_port,
    wait_for_status,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(150)]

TOKEN = "s3cret-token"
PAGE_WAIT = 30.0


@dataclass
class Stack:
    """The running services and what was put."""

    url: str
    beanstalkd: Beanstalkd
    ids: dict[str, int]
    dashboard: LoggedProcess
    worker: Any
    metrics_url: str


def dashboard_process(beanstalkd: Beanstalkd, lab: Lab, port: int, *extra: str) -> LoggedProcess:
    process = LoggedProcess(
        jobrunner_cmd(
            "dashboard",
            "--beanstalk",
            beanstalkd.address,
            "--dashboard-port",
            str(port),
            "--dashboard-interval",
            "0.5",
            "--results-dir",
            str(lab.results_dir),
            "--base-url",
            lab.base_url,
            *extra,
        )
    )
    wait_for_port(port, timeout=20)
    return process


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """beanstalkd, a worker (one slot) busy with a long job, one done and one buried job, a
    delayed job in a second tube, and the dashboard (with a token) showing them."""
    root = tmp_path_factory.mktemp("dashboard")
    beanstalkd = Beanstalkd().start()
    results = ResultsServer(root / "results")
    lab = Lab(root, results.base_url)
    metrics_port = free_port()
    worker = lab.worker(beanstalkd.address, "--metrics-port", str(metrics_port), "--grace", "1")
    port = free_port()
    dashboard = None
    try:
        ids = {
            "done-job": put_raw(beanstalkd.port, lab.body("pid", "done-job")),
            "broken-job": put_raw(beanstalkd.port, lab.body("fail", "broken-job")),
        }
        wait_for_status(lab.result("done-job"), timeout=30)
        wait_for(lambda: beanstalkd.tube_stats().get("current-jobs-buried") == 1, 30)
        ids["slow-job"] = put_raw(
            beanstalkd.port, lab.body("sleep", "slow-job", {"seconds": 60}, timeout=120)
        )
        ids["later"] = put_raw(beanstalkd.port, lab.body("pid", "later"), tube="reports", delay=600)
        wait_for(lambda: beanstalkd.tube_stats().get("current-jobs-reserved") == 1, 30)
        dashboard = dashboard_process(
            beanstalkd,
            lab,
            port,
            "--dashboard-worker",
            f"http://127.0.0.1:{metrics_port}",
            "--dashboard-token",
            TOKEN,
        )
        yield Stack(
            url=f"http://127.0.0.1:{port}",
            beanstalkd=beanstalkd,
            ids=ids,
            dashboard=dashboard,
            worker=worker,
            metrics_url=f"http://127.0.0.1:{metrics_port}",
        )
    finally:
        if dashboard is not None:
            dashboard.stop()
        worker.stop()
        results.stop()
        beanstalkd.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Debian Chromium through chromedriver (never a downloaded browser)."""
    with headless_chromium("dashboard-chromium-") as driver:
        yield driver


def wait_page(browser: Any, stack: Stack, check: Any, what: str) -> Any:
    """Wait until ``check(driver)`` returns something truthy; fail with the page text."""
    from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    # The page redraws its tables on every poll: an element found may be gone a moment later.
    wait = WebDriverWait(
        browser, PAGE_WAIT, poll_frequency=0.2, ignored_exceptions=[StaleElementReferenceException]
    )
    try:
        return wait.until(check)
    except TimeoutException:
        screenshot(browser, "dashboard-failed.png")
        body = browser.find_element("tag name", "body").text
        logs = "\n".join(stack.dashboard.lines[-30:])
        raise AssertionError(f"the page never showed {what}:\n{body}\n{logs}") from None


def row_text(browser: Any, table: str, attribute: str, value: str) -> str | None:
    from selenium.webdriver.common.by import By

    rows = browser.find_elements(By.CSS_SELECTOR, f"#{table} tbody tr[data-{attribute}='{value}']")
    return rows[0].text if rows else None


def test_dashboard_shows_queue_workers_buried_and_results_and_kicks(
    browser: Any, stack: Stack
) -> None:
    """Opened with its token, the page shows each tube's depth (table and a chart line per
    tube), the worker with the job it runs, the buried job with its reason, the recent
    results; one click on "kick" re-queues the buried job."""
    from selenium.webdriver.common.by import By

    browser.get(stack.url + f"/?token={TOKEN}")
    assert "token" not in browser.current_url  # it moved into a cookie

    def both_tubes(driver: Any) -> tuple[str, str] | None:
        reports = row_text(driver, "tubes", "tube", "reports")
        default = row_text(driver, "tubes", "tube", "default")
        return (reports, default) if reports and default else None

    tubes = wait_page(browser, stack, both_tubes, "both tubes")
    assert tubes[0].split()[2:6] == ["0", "0", "1", "0"]  # reports: 1 delayed
    assert tubes[1].split()[2:6] == ["0", "1", "0", "1"]  # default: 1 running, 1 buried

    def drawn(driver: Any) -> dict[str, int] | None:
        lines = driver.find_elements(By.CSS_SELECTOR, "#chart svg polyline")
        points = {
            line.get_attribute("data-series"): len(line.get_attribute("points").split())
            for line in lines
        }
        return points if points and min(points.values()) >= 3 else None

    series = wait_page(browser, stack, drawn, "a chart line of 3 polls per tube")
    assert f"{stack.beanstalkd.address} default" in series
    assert f"{stack.beanstalkd.address} reports" in series

    worker = wait_page(
        browser,
        stack,
        lambda d: (
            (text := row_text(d, "workers", "worker", stack.metrics_url))
            and "slow-job" in text
            and text
        ),
        "the worker running slow-job",
    )
    assert "ok" in worker and "1 / 1" in worker and "test_sleep" in worker

    buried = wait_page(
        browser,
        stack,
        lambda d: (
            (text := row_text(d, "buried", "job", "broken-job")) and "plugin_error" in text and text
        ),
        "the buried job with its reason",
    )
    assert "test_fail" in buried and f"/{stack.ids['broken-job']}" in buried

    recent = wait_page(
        browser, stack, lambda d: row_text(d, "recent", "job", "done-job"), "the done result"
    )
    assert "done" in recent and "test_pid" in recent
    assert row_text(browser, "recent", "job", "broken-job") is not None  # its failed document
    screenshot(browser, "dashboard.png")

    def click_kick(driver: Any) -> bool:
        selector = "#buried tbody tr[data-job='broken-job'] button.kick"
        driver.find_element(By.CSS_SELECTOR, selector).click()
        return True

    wait_page(browser, stack, click_kick, "a kick button to click")
    notice = wait_page(
        browser,
        stack,
        lambda d: "kicked" in (text := d.find_element(By.ID, "notice").text) and text,
        "the kick notice",
    )
    assert "broken-job" in notice
    conn = Connection(stack.beanstalkd.address)
    try:
        stats = conn.stats_job(stack.ids["broken-job"])
    finally:
        conn.close()
    assert stats["kicks"] == 1 and stats["state"] == "ready"  # the one slot is busy
    wait_page(
        browser,
        stack,
        lambda d: row_text(d, "buried", "job", "broken-job") is None,
        "the kicked job gone from the buried table",
    )
    assert "dashboard_kicked" in "\n".join(stack.dashboard.lines[-30:])


def test_token_guards_every_endpoint_and_queue_depth_is_exported(stack: Stack) -> None:
    """Without the token the page, the state and kicks are refused (401); with it, /metrics
    exports each tube's depth once (jobrunner_queue_jobs), for Prometheus to scrape here,
    and a kick that is not JSON naming a buried job of a configured server is refused."""
    for path in ("/", "/api/state", "/metrics"):
        assert httpx.get(stack.url + path, timeout=5).status_code == 401
    wrong = httpx.get(stack.url + "/?token=wrong", timeout=5, follow_redirects=False)
    assert wrong.status_code == 401
    kick = httpx.post(
        stack.url + "/api/kick", json={"server": stack.beanstalkd.address, "id": 1}, timeout=5
    )
    assert kick.status_code == 401
    auth = {"Authorization": f"Bearer {TOKEN}"}
    text = httpx.get(stack.url + "/metrics", headers=auth, timeout=5).text
    line = (
        f'jobrunner_queue_jobs{{server="{stack.beanstalkd.address}",'
        'state="delayed",tube="reports"} 1.0'
    )
    assert line in text
    not_json = httpx.post(stack.url + "/api/kick", content=b"id=1", headers=auth, timeout=5)
    assert not_json.status_code == 415  # a form from another site's page cannot kick
    address = stack.beanstalkd.address
    for payload, status in (
        ({"server": "10.0.0.1:11300", "id": 1}, 400),  # only the configured servers
        ({"server": address, "id": "1"}, 400),
        ([address, 1], 400),
        ({"server": address, "id": stack.ids["slow-job"]}, 409),  # running, not buried
        ({"server": address, "id": 10**6}, 404),
    ):
        answer = httpx.post(stack.url + "/api/kick", json=payload, headers=auth, timeout=5)
        assert answer.status_code == status, (payload, answer.text)
    huge = httpx.post(
        stack.url + "/api/kick",
        content=b'{"pad": "' + b"x" * 100_000 + b'"}',
        headers={**auth, "Content-Type": "application/json"},
        timeout=5,
    )
    assert huge.status_code == 413
    broken = httpx.post(
        stack.url + "/api/kick",
        content=b"{not json",
        headers={**auth, "Content-Type": "application/json"},
        timeout=5,
    )
    assert broken.status_code == 400


def test_read_only_dashboard_has_no_kick(tmp_path: Path, beanstalkd: Beanstalkd) -> None:
    """Without a token the dashboard serves the page and the state to loopback but refuses
    to kick (403) and shows no kick button data (can_kick false)."""
    lab = Lab(tmp_path)
    buried_id = put_raw(beanstalkd.port, lab.body("fail", "x"))
    conn = Connection(beanstalkd.address, watch=["default"])
    try:
        job = conn.reserve(5)
        assert job is not None and job.id == buried_id
        conn.bury(job.id, 100)
    finally:
        conn.close()
    port = free_port()
    process = dashboard_process(beanstalkd, lab, port)
    try:
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(base + "/", timeout=5).status_code == 200
        state = wait_for(
            lambda: (s := httpx.get(base + "/api/state", timeout=5).json())["buried"] and s,
            20,
            what="the buried job in the state",
        )
        assert state["can_kick"] is False
        assert state["buried"][0]["job_id"] == "x"
        refused = httpx.post(
            base + "/api/kick", json={"server": beanstalkd.address, "id": buried_id}, timeout=5
        )
        assert refused.status_code == 403
        assert beanstalkd.tube_stats()["current-jobs-buried"] == 1
    finally:
        process.stop()


def test_result_urls_elsewhere_are_never_fetched(tmp_path: Path, beanstalkd: Beanstalkd) -> None:
    """A buried job's result URL comes from an untrusted document: the dashboard reads the
    reason from its results directory and never requests a URL outside its base URL."""
    import http.server
    import threading

    seen: list[str] = []

    class Recorder(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            body = b'{"error": {"code": "leaked", "message": "internal data"}}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    internal = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=internal.serve_forever, daemon=True).start()
    lab = Lab(tmp_path)
    body = json.dumps(
        {
            "v": 1,
            "id": "nosy",
            "type": "echo",
            "input": "http://in.test/x",
            "result": f"http://127.0.0.1:{internal.server_port}/latest/meta-data.json",
            "created": "2026-01-01T00:00:00Z",
        }
    ).encode()
    put_raw(beanstalkd.port, body)
    conn = Connection(beanstalkd.address, watch=["default"])
    try:
        job = conn.reserve(5)
        assert job is not None
        conn.bury(job.id, 100)
    finally:
        conn.close()
    port = free_port()
    process = dashboard_process(beanstalkd, lab, port)
    try:
        state = wait_for(
            lambda: (
                (s := httpx.get(f"http://127.0.0.1:{port}/api/state", timeout=5).json())["buried"]
                and s
            ),
            20,
            what="the buried job in the state",
        )
        assert state["buried"][0]["job_id"] == "nosy"
        assert state["buried"][0]["reason"] is None
        assert seen == []
    finally:
        process.stop()
        internal.shutdown()
