"""The example portal end to end in a real browser (headless Chromium, Selenium).

Everything is real and on 127.0.0.1: beanstalkd, a worker with the plugins,
``jobrunner serve`` for the results (the worker's origin) and for the sensor
inputs, the portal (``examples/portal/portal.py``) on a third origin, and
Debian's ``chromium`` driven through ``chromedriver``. The browser submits a
forecast through the portal's form and the portal's page draws it from the
result document it loads, cross-origin, from the results server.

Skipped locally when Chromium, chromedriver, Selenium, the prediction plugin
or its real data (pmdarima) is missing; under ``CI=true`` that is a failure.
Screenshots go to ``test-artifacts/`` at the top of the repository.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.support import (
    Beanstalkd,
    LoggedProcess,
    ResultsServer,
    Worker,
    free_port,
    headless_chromium,
    require_binary,
    require_module,
    wait_for_port,
    wait_for_status,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(150)]

ROOT = Path(__file__).resolve().parents[2]
PORTAL_DIR = ROOT / "examples" / "portal"
ARTIFACTS = ROOT / "test-artifacts"
JOB_WAIT = 45.0  # seconds for a job to end, as the page sees it


@dataclass
class Stack:
    """The running services and where they are."""

    portal_url: str
    results: ResultsServer
    inputs: ResultsServer
    worker: Worker
    portal: LoggedProcess
    beanstalkd: Beanstalkd

    def logs(self) -> str:
        """The tails of the worker's and portal's logs, for failure messages."""
        return (
            "worker log:\n"
            + "\n".join(self.worker.lines[-15:])
            + "\nportal log:\n"
            + "\n".join(self.portal.lines[-15:])
        )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """beanstalkd, inputs and results servers, a worker and the portal, as run.sh starts them."""
    require_module("jobrunner_prediction", "pip install -e plugins/jobrunner-prediction")
    require_module("pmdarima", "pip install -e 'plugins/jobrunner-prediction[realdata]'")
    require_module("jobrunner_simulation", "pip install -e plugins/jobrunner-simulation")
    work = tmp_path_factory.mktemp("portal")
    started: list[Any] = []
    try:
        beanstalkd = Beanstalkd().start()
        started.append(beanstalkd)
        portal_port = free_port()
        portal_url = f"http://127.0.0.1:{portal_port}"
        for inputs in ("sensors.py", "households.py"):
            subprocess.run(
                [sys.executable, str(PORTAL_DIR / inputs), "--inputs-dir", str(work / "inputs")],
                check=True,
                timeout=60,
            )
        # Both servers allow the portal's origin, and only it.
        inputs = ResultsServer(work / "inputs", "--cors-origin", portal_url)
        started.append(inputs)
        results = ResultsServer(work / "results", "--cors-origin", portal_url)
        started.append(results)
        worker = Worker(beanstalkd.address, work / "results", results.base_url, concurrency=2)
        started.append(worker)
        portal = LoggedProcess(
            [
                sys.executable,
                str(PORTAL_DIR / "portal.py"),
                "--port",
                str(portal_port),
                "--beanstalk",
                beanstalkd.address,
                "--inputs-url",
                inputs.base_url,
                "--results-url",
                results.base_url,
            ]
        )
        started.append(portal)
        wait_for_port(portal_port, timeout=20)
        yield Stack(portal_url, results, inputs, worker, portal, beanstalkd)
    finally:
        for service in reversed(started):
            service.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Debian Chromium through chromedriver (never a downloaded browser)."""
    with headless_chromium("portal-chromium-") as driver:
        yield driver


def submit_forecast(browser: Any, stack: Stack, sensor: str, horizon: str, method: str) -> None:
    """Fill in and send the portal's form, as a user would."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    browser.get(stack.portal_url + "/")
    Select(browser.find_element(By.ID, "sensor")).select_by_value(sensor)
    field = browser.find_element(By.ID, "horizon")
    field.clear()
    field.send_keys(horizon)
    Select(browser.find_element(By.ID, "method")).select_by_value(method)
    browser.find_element(By.ID, "submit").click()


def wait_for_page_status(browser: Any, stack: Stack, statuses: tuple[str, ...]) -> str:
    """Wait until the job page's ``data-status`` is one of ``statuses``; return it."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def status(driver: Any) -> str | None:
        value = driver.find_element(By.ID, "job").get_attribute("data-status")
        return value if value in statuses else None

    try:
        result: str = WebDriverWait(browser, JOB_WAIT, poll_frequency=0.1).until(status)
    except TimeoutException:
        text = browser.find_element(By.ID, "status-text").text
        raise AssertionError(f"page still says {text!r}\n{stack.logs()}") from None
    return result


def screenshot(browser: Any, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    assert browser.save_screenshot(str(path)), f"no screenshot at {path}"
    return path


def points_attribute(element: Any) -> list[tuple[float, float]]:
    return [
        (float(x), float(y))
        for x, y in (pair.split(",") for pair in element.get_attribute("points").split())
    ]


def test_forecast_chart_is_drawn_from_the_worker_result(browser: Any, stack: Stack) -> None:
    """A submitted forecast is drawn — history, every forecast point, the interval — from the
    result document the page loaded cross-origin from the worker's results server."""
    from selenium.webdriver.common.by import By

    submit_forecast(browser, stack, "substation-b", "24h", "auto")
    assert wait_for_page_status(browser, stack, ("done", "failed")) == "done"
    job = browser.find_element(By.ID, "job")
    result_url = job.get_attribute("data-result-url")
    job_id = job.get_attribute("data-job-id")
    assert result_url == f"{stack.results.base_url}portal/{job_id}.json"

    # The result document the worker published, read here independently.
    doc = stack.results.get_json(f"portal/{job_id}.json")
    assert doc["status"] == "done" and doc["type"] == "prediction"
    assert doc["meta"] == {"sensor": "substation-b", "portal": "example"}
    forecast = doc["data"]["forecast"]
    assert len(forecast) == 48  # 24 h of half-hours

    # The page read it from the worker's origin, not the portal's.
    page_origin = browser.execute_script("return window.location.origin")
    assert page_origin == stack.portal_url
    assert job.get_attribute("data-fetched-from") == result_url
    results_origin = "{0.scheme}://{0.netloc}".format(urlsplit(stack.results.base_url))
    assert results_origin != page_origin
    resources = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => [e.name, e.initiatorType])"
    )
    assert [result_url, "fetch"] in resources
    assert [stack.inputs.base_url + "sensors/substation-b.json", "fetch"] in resources

    # The chart: every forecast point at its value, the band, the history.
    chart = browser.find_element(By.CSS_SELECTOR, "#chart svg.forecast-chart")
    assert chart.is_displayed()
    line = chart.find_element(By.CSS_SELECTOR, "polyline.forecast")
    assert int(line.get_attribute("data-points")) == len(forecast)
    xs = [x for x, _ in points_attribute(line)]
    assert len(xs) == len(forecast) and xs == sorted(xs)
    dots = chart.find_elements(By.CSS_SELECTOR, "circle.forecast-point")
    drawn = [
        [float(dot.get_attribute("data-ts")), float(dot.get_attribute("data-value"))]
        for dot in dots
    ]
    assert len(drawn) == len(forecast)
    for (ts, value), (want_ts, want_value) in zip(drawn, forecast, strict=True):
        assert ts == want_ts and math.isclose(value, want_value, rel_tol=1e-9)
    band = chart.find_element(By.CSS_SELECTOR, "polygon.interval")
    assert len(points_attribute(band)) == 2 * len(forecast)
    history = chart.find_element(By.CSS_SELECTOR, "polyline.history")
    assert int(history.get_attribute("data-points")) == 3 * 48  # the last three days
    assert max(x for x, _ in points_attribute(history)) < min(xs)
    summary = browser.find_element(By.ID, "summary").text
    assert f"48 forecast steps with {doc['data']['method'].replace('_', ' ')}" in summary
    assert not browser.find_element(By.ID, "error").is_displayed()

    path = screenshot(browser, "portal.png")
    assert path.stat().st_size > 10_000


def test_failed_job_shows_its_error_code(browser: Any, stack: Stack) -> None:
    """A forecast for the offline sensor (its input URL is a 404) shows ``input_unavailable``."""
    from selenium.webdriver.common.by import By

    submit_forecast(browser, stack, "substation-d", "24h", "auto")
    assert wait_for_page_status(browser, stack, ("done", "failed")) == "failed"
    assert browser.find_element(By.ID, "error").is_displayed()
    assert browser.find_element(By.ID, "error-code").text == "input_unavailable"
    assert "404" in browser.find_element(By.ID, "error-message").text
    assert not browser.find_element(By.ID, "chart-box").is_displayed()
    assert browser.find_elements(By.CSS_SELECTOR, "#chart svg") == []
    screenshot(browser, "portal-failed.png")


def test_invalid_horizon_shows_invalid_params(browser: Any, stack: Stack) -> None:
    """A horizon the job type refuses comes back to the page as ``invalid_params``."""
    from selenium.webdriver.common.by import By

    submit_forecast(browser, stack, "substation-a", "soon", "holt_winters")
    assert wait_for_page_status(browser, stack, ("done", "failed")) == "failed"
    assert browser.find_element(By.ID, "error-code").text == "invalid_params"
    assert "horizon" in browser.find_element(By.ID, "error-message").text


def test_progress_bar_follows_running_document(browser: Any, stack: Stack) -> None:
    """While the document says ``running`` the page shows its progress; a change is picked up."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    job_id = "5d0c6a57-2f6b-4c4e-9a55-0d2d1f7a9b10"
    path = stack.results.results_dir / "portal" / f"{job_id}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    running = {
        "v": 1,
        "id": job_id,
        "type": "prediction",
        "status": "running",
        "progress": 0.4,
        "message": "fitting",
        "timestamp": "2026-01-31T12:00:00Z",
        "worker": "node-7",
    }
    path.write_text(json.dumps(running))
    browser.get(f"{stack.portal_url}/jobs/{job_id}?sensor=substation-a")
    assert wait_for_page_status(browser, stack, ("running",)) == "running"
    progress = browser.find_element(By.ID, "progress")
    assert progress.is_displayed()
    assert float(progress.get_attribute("value")) == pytest.approx(0.4)
    assert browser.find_element(By.ID, "status-text").text == "Running on node-7: 40 % — fitting"

    path.write_text(json.dumps({**running, "progress": 0.75, "message": "back-testing"}))
    WebDriverWait(browser, 10, poll_frequency=0.1).until(
        lambda driver: "75 %" in driver.find_element(By.ID, "status-text").text
    )
    failed = {
        **running,
        "status": "failed",
        "error": {"code": "timeout", "message": "ran past 300 s", "retryable": False},
    }
    path.write_text(json.dumps(failed))
    assert wait_for_page_status(browser, stack, ("failed",)) == "failed"
    assert browser.find_element(By.ID, "error-code").text == "timeout"


def test_queued_forecast_is_shown_and_cancelled_from_the_page(browser: Any, stack: Stack) -> None:
    """While the tube is paused a submitted forecast shows "queued" with a Cancel button;
    clicking it shows "cancelled", the portal's state says so, the worker never computes
    it and publishes the cancelled document once the tube runs again."""
    from selenium.webdriver.common.by import By

    assert stack.beanstalkd.command("pause-tube default 120").startswith(b"PAUSED")
    try:
        submit_forecast(browser, stack, "substation-c", "12h", "auto")
        assert wait_for_page_status(browser, stack, ("queued",)) == "queued"
        job_id = browser.find_element(By.ID, "job").get_attribute("data-job-id")
        state_url = f"{stack.portal_url}/jobs/{job_id}/state"
        assert httpx.get(state_url, timeout=5).json()["state"] == "queued"
        assert browser.find_element(By.ID, "status-text").text == "Queued; waiting for a worker…"
        button = browser.find_element(By.ID, "cancel")
        assert button.is_displayed()
        screenshot(browser, "portal-queued.png")
        button.click()
        assert wait_for_page_status(browser, stack, ("cancelled",)) == "cancelled"
        assert not browser.find_element(By.ID, "cancel").is_displayed()
        assert "Cancelled" in browser.find_element(By.ID, "status-text").text
        assert httpx.get(state_url, timeout=5).json()["state"] == "cancelled"
        other = httpx.get(f"{stack.portal_url}/jobs/{uuid.uuid4()}/state", timeout=5)
        assert other.status_code == 404
    finally:
        stack.beanstalkd.command("pause-tube default 0")
    doc = wait_for_status(stack.results.results_dir / "portal" / f"{job_id}.json", ("failed",))
    assert doc["error"]["code"] == "cancelled"
    assert not stack.worker.find("job_started", job_id=job_id)


def test_run_script_brings_everything_up_and_ctrl_c_stops_it(tmp_path: Path) -> None:
    """``examples/portal/run.sh`` starts all services with one command; Ctrl-C stops them all."""
    require_binary("beanstalkd")
    require_module("jobrunner_prediction", "pip install -e plugins/jobrunner-prediction")
    require_module("pmdarima", "pip install -e 'plugins/jobrunner-prediction[realdata]'")
    ports = {name: free_port() for name in ("PORTAL", "INPUTS", "RESULTS", "BEANSTALK")}
    env = {
        **os.environ,
        **{f"{name}_PORT": str(port) for name, port in ports.items()},
        "JOBRUNNER_SKIP_SETUP": "1",
        "PYTHON": sys.executable,
        "PORTAL_WORKDIR": str(tmp_path),
    }
    # A session of its own: the signal goes to its process group, as Ctrl-C in a terminal.
    proc = subprocess.Popen(
        [str(PORTAL_DIR / "run.sh")],
        env=env,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(ports["PORTAL"], timeout=60)
        portal = f"http://127.0.0.1:{ports['PORTAL']}"
        assert "Substation A" in httpx.get(portal + "/", timeout=5).text
        answer = httpx.post(
            portal + "/forecast",
            data={"sensor": "substation-c", "horizon": "12h", "method": "seasonal_naive_week"},
            timeout=5,
        )
        assert answer.status_code == 303
        job_id = answer.headers["location"].split("/")[2].split("?")[0]
        doc = wait_for_status(tmp_path / "results" / "portal" / f"{job_id}.json", timeout=30)
        assert doc["status"] == "done", doc
        assert len(doc["data"]["forecast"]) == 24
        # The results server answers the portal's origin with CORS.
        response = httpx.get(
            f"http://127.0.0.1:{ports['RESULTS']}/portal/{job_id}.json",
            headers={"Origin": portal},
            timeout=5,
        )
        assert response.headers["access-control-allow-origin"] == portal
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            output, _ = proc.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            left = subprocess.run(
                ["ps", "-o", "pid=,stat=,args=", "-g", str(proc.pid)],
                capture_output=True,
                text=True,
            ).stdout
            logs = "\n".join(
                f"--- {log.name}\n{log.read_text(errors='replace')[-2000:]}"
                for log in sorted(tmp_path.glob("**/*.log"))
            )
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate(timeout=10)
            raise AssertionError(f"run.sh did not stop on Ctrl-C:\n{left}\n{logs}") from None
    assert b"portal: stopped" in output, output.decode(errors="replace")
    left = subprocess.run(
        ["ps", "-o", "pid=,args=", "-g", str(proc.pid)], capture_output=True, text=True
    ).stdout
    assert left.strip() == "", f"still running after Ctrl-C:\n{left}"


def submit_simulation(browser: Any, stack: Stack, **fields: str) -> None:
    """Fill in and send the simulation form, as a user would (unnamed fields keep defaults)."""
    from selenium.webdriver.common.by import By

    browser.get(stack.portal_url + "/")
    browser.find_element(By.ID, "simulate-link").click()
    for name, value in fields.items():
        field = browser.find_element(By.ID, name)
        field.clear()
        field.send_keys(value)
    browser.find_element(By.ID, "simulate").click()


def test_simulation_draws_the_chosen_week_from_the_worker_result(
    browser: Any, stack: Stack
) -> None:
    """A simulation submitted through the form is drawn week by week — PV, load, grid exchange and
    the battery's state of charge — from the result document the worker published."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    submit_simulation(browser, stack, pv_kwp="4", battery_kwh="6", import_price="0.32")
    assert wait_for_page_status(browser, stack, ("done", "failed")) == "done"
    job = browser.find_element(By.ID, "job")
    job_id = job.get_attribute("data-job-id")
    doc = stack.results.get_json(f"portal/{job_id}.json")
    assert doc["status"] == "done" and doc["type"] == "simulation"
    data = doc["data"]
    assert data["pv"]["source"] == "weather" and data["pv"]["kwp"] == 4.0
    assert data["battery"]["capacity_kwh"] == 6.0
    assert data["totals"]["cost_without_pv"] == pytest.approx(0.32 * data["totals"]["load"])
    assert job.get_attribute("data-fetched-from") == job.get_attribute("data-result-url")

    def drawn(week: int) -> dict[str, dict[str, float]]:
        WebDriverWait(browser, 10, poll_frequency=0.1).until(
            lambda driver: driver.find_element(By.ID, "job").get_attribute("data-week") == str(week)
        )
        chart = browser.find_element(By.CSS_SELECTOR, "#chart svg.energy-chart")
        assert chart.is_displayed()
        lines = {}
        for name in ("pv", "load", "grid", "soc"):
            line = chart.find_element(By.CSS_SELECTOR, f"polyline.{name}")
            xs = [x for x, _ in points_attribute(line)]
            assert xs == sorted(xs)
            lines[name] = {
                key: float(line.get_attribute(f"data-{key}"))
                for key in ("points", "first-ts", "last-ts", "sum")
            }
            assert len(xs) == lines[name]["points"]
        return lines

    def expected(week: int) -> dict[str, dict[str, float]]:
        start = data["series"]["load"][0][0] + week * 7 * 86400
        in_week = {
            name: [(t, v) for t, v in pairs if start <= t < start + 7 * 86400]
            for name, pairs in data["series"].items()
        }
        grid = [
            (t, v - e)
            for (t, v), (_, e) in zip(in_week["grid_import"], in_week["grid_export"], strict=True)
        ]
        out = {}
        for name, pairs in (*((n, in_week[n]) for n in ("pv", "load")), ("grid", grid)):
            out[name] = {
                "points": len(pairs),
                "first-ts": pairs[0][0],
                "last-ts": pairs[-1][0],
                "sum": sum(v for _, v in pairs),
            }
        soc = in_week["soc"]
        out["soc"] = {
            "points": len(soc),
            "first-ts": soc[0][0],
            "last-ts": soc[-1][0],
            "sum": soc[-1][1],
        }
        return out

    for week in (0, 6):
        if week:
            Select(browser.find_element(By.ID, "week")).select_by_value(str(week))
        lines, want = drawn(week), expected(week)
        for name in want:
            assert lines[name]["points"] == want[name]["points"] == 7 * 48
            assert lines[name]["first-ts"] == want[name]["first-ts"]
            assert lines[name]["last-ts"] == want[name]["last-ts"]
            assert lines[name]["sum"] == pytest.approx(want[name]["sum"], abs=1e-6)
        assert lines["pv"]["sum"] > 0 and lines["load"]["sum"] > 0
    totals = browser.find_element(By.ID, "totals").text
    assert "Battery saves per year" in totals and "Cost with PV and battery" in totals
    path = screenshot(browser, "portal-simulation.png")
    assert path.stat().st_size > 10_000


def test_simulation_with_a_bad_tilt_shows_invalid_params(browser: Any, stack: Stack) -> None:
    """A tilt the job type refuses comes back to the simulation page as ``invalid_params``."""
    from selenium.webdriver.common.by import By

    submit_simulation(browser, stack, tilt="120")
    assert wait_for_page_status(browser, stack, ("done", "failed")) == "failed"
    assert browser.find_element(By.ID, "error-code").text == "invalid_params"
    assert "params.tilt" in browser.find_element(By.ID, "error-message").text
    assert browser.find_elements(By.CSS_SELECTOR, "#chart svg") == []
