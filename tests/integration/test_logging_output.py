"""Log output through the real pieces: a silent client library, one JSON stream from a worker."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support import (
    Beanstalkd,
    Lab,
    ResultsServer,
    Worker,
    install_fake_plugin,
    job_body,
    put_raw,
    wait_for,
    wait_for_status,
)

pytestmark = pytest.mark.integration

PLUGIN = textwrap.dedent(
    """
    import logging
    import threading

    import structlog

    def run(ctx):
        logging.getLogger("noisylib").warning("cache %s is cold", "tiles")
        worker = threading.Thread(target=lambda: logging.warning("from_plugin_thread"))
        worker.start()
        worker.join()
        structlog.get_logger("noisy").info("noisy_structlog", n=1)
        ctx.log.info("rows_read", rows=2)
        print("a plugin may print to stdout")
        return {"ok": True}
    """
)


def test_client_submit_prints_nothing(beanstalkd: Beanstalkd, tmp_path: Path) -> None:
    """A web app's Client.submit writes nothing to stdout or stderr, configured or not."""
    script = textwrap.dedent(
        f"""
        import logging, sys
        from jobrunner import Client
        if sys.argv[1] == "basic":
            logging.basicConfig(level=logging.WARNING)
        client = Client({beanstalkd.address!r})
        for n in range(3):
            client.submit("echo", "https://data.test/in.json", f"https://results.test/{{n}}.json")
        """
    )
    for mode in ("unconfigured", "basic"):
        done = subprocess.run(
            [sys.executable, "-c", script, mode], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        assert (done.stdout, done.stderr) == ("", ""), mode
    assert beanstalkd.tube_stats()["current-jobs-ready"] == 6


def test_worker_stream_is_json_with_the_plugin_records_bound_to_the_job(
    beanstalkd: Beanstalkd, lab: Lab, tmp_path: Path
) -> None:
    """Off a terminal every worker stderr line is JSON; plugin stdlib records carry the job id."""
    plugin_dir = install_fake_plugin(
        tmp_path / "plugin",
        "noisyplugin",
        PLUGIN,
        {"jobrunner.job_types": {"noisy": "noisyplugin:run"}},
    )
    worker = lab.worker(beanstalkd.address, env={"PYTHONPATH": f"{plugin_dir}:{lab.jobs_dir}"})
    try:
        body = json.loads(lab.body("echo", "noisy-1"))
        body["type"] = "noisy"
        put_raw(beanstalkd.port, json.dumps(body).encode())
        doc = wait_for_status(lab.result("noisy-1"))
        assert doc["status"] == "done", doc
        worker.wait_event("job_deleted", job_id="noisy-1")
    finally:
        worker.stop()
    lines = [line for line in worker.lines if line.strip()]
    not_json = [line for line in lines if not line.lstrip().startswith("{")]
    assert not not_json, not_json
    events = [json.loads(line) for line in lines]
    by_event = {e["event"]: e for e in events}
    cold = by_event["cache tiles is cold"]
    assert (cold["level"], cold["logger"], cold["job_id"], cold["job_type"]) == (
        "warning",
        "noisylib",
        "noisy-1",
        "noisy",
    )
    assert by_event["from_plugin_thread"]["job_id"] == "noisy-1"
    assert by_event["noisy_structlog"]["job_id"] == "noisy-1"
    assert by_event["rows_read"]["job_id"] == "noisy-1"


def test_log_format_console_flag(beanstalkd: Beanstalkd, lab: Lab) -> None:
    """``jobrunner work --log-format console`` writes readable lines even into a pipe."""
    worker = Worker(
        beanstalkd.address,
        lab.results_dir,
        lab.base_url,
        "--log-format",
        "console",
        wait_ready=False,
    )
    try:
        wait_for(lambda: any("worker_started" in line for line in worker.lines), 20)
    finally:
        worker.stop()
    started = next(line for line in worker.lines if "worker_started" in line)
    assert not started.lstrip().startswith("{")


def test_a_successful_job_logs_one_event_at_info(
    beanstalkd: Beanstalkd, lab: Lab, inputs_server: ResultsServer
) -> None:
    """At info a successful job logs one line (job_deleted) in all; debug shows each step,
    the input server's answer included."""
    input_url = inputs_server.base_url + "in.json"
    for level in ("info", "debug"):
        worker = lab.worker(beanstalkd.address, env={"JOBRUNNER_LOG_LEVEL": level})
        name = f"lean-{level}"
        try:
            put_raw(
                beanstalkd.port,
                job_body("echo", f"{lab.base_url}{name}.json", input_url, job_id=name),
            )
            assert wait_for_status(lab.result(name))["status"] == "done"
            worker.wait_event("job_deleted", job_id=name)
        finally:
            worker.stop()
        mine = [e for e in worker.events if e.get("job_id") == name]
        if level == "info":
            assert [(e["event"], e["level"]) for e in mine] == [("job_deleted", "info")]
        else:
            steps = {e["event"] for e in mine if e["level"] == "debug"}
            assert {"job_reserved", "job_started", "job_fetched", "job_published"} <= steps
            assert ("input_answer", 200) in {(e["event"], e.get("status")) for e in mine}
