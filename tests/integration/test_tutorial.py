"""The tutorial works as written: every file and command of docs/tutorial.rst, from nothing."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import require_binary

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
TUTORIAL = ROOT / "docs" / "tutorial.rst"
BLOCK = re.compile(r"^\.\. code-block:: (\w+)\n((?:   :\w+: .*\n)*)\n((?:(?:   .*)?\n)+)", re.M)


def tutorial_steps(text: str) -> Iterator[tuple[str, str]]:
    """The tutorial's files (``("file", path, content)``) and commands, in order."""
    for match in BLOCK.finditer(text):
        language, options, body = match.groups()
        lines = [line[3:] for line in body.rstrip("\n").splitlines()]
        caption = re.search(r":caption: (\S+)", options)
        if caption:
            yield caption.group(1), "\n".join(lines) + "\n"
        elif language == "console":
            for line in lines:
                if line.startswith("$ "):
                    yield "$", line[2:]


def as_script(steps: Iterator[tuple[str, str]]) -> str:
    """One bash script: files written with quoted here-documents, commands as they are."""
    script = ["set -euo pipefail", "set -x"]
    for kind, content in steps:
        if kind == "$":
            script.append(content)
        else:
            assert "TUTORIAL_FILE_END" not in content
            script.append(f"cat > {kind} <<'TUTORIAL_FILE_END'\n{content}TUTORIAL_FILE_END")
    return "\n".join(script) + "\n"


def test_tutorial_parses_into_files_and_commands() -> None:
    """The test below sees every snippet: the four files and the commands of each step."""
    steps = list(tutorial_steps(TUTORIAL.read_text()))
    files = [kind for kind, _ in steps if kind != "$"]
    assert files == ["scale_plugin.py", "pyproject.toml", "setup.cfg", "test_scale_plugin.py"]
    commands = [content for kind, content in steps if kind == "$"]
    assert commands[0] == "mkdir scale-plugin" and commands[-1] == "kill %1 %2 %3"
    assert any(c.startswith("jobrunner submit") and "--wait" in c for c in commands)


@contextlib.contextmanager
def tutorial_ports() -> Iterator[None]:
    """Hold the tutorial's fixed ports (11320, 8320) for one test run on this machine.

    The tutorial names its ports, so two test runs at once (two checkouts, or
    root file systems sharing this machine's network) would meet there. An
    abstract Unix socket is the lock: its name is per network namespace, not per
    file system, and it goes away with the process.
    """
    lock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    deadline = time.monotonic() + 600
    while True:
        try:
            lock.bind("\0jobrunner-tutorial-ports")
            break
        except OSError:
            if time.monotonic() > deadline:
                raise AssertionError("another run held the tutorial's ports for 600 s") from None
            time.sleep(1)
    try:
        for port in (11320, 8320):
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    raise AssertionError(f"port {port}, which the tutorial uses, is taken")
        yield
    finally:
        lock.close()


@pytest.mark.timeout(1600)  # builds a wheel and a virtualenv: minutes on a loaded machine
def test_tutorial_runs_from_an_empty_folder(tmp_path: Path) -> None:
    """Followed literally in an empty folder, the tutorial installs, tests and runs a real job."""
    require_binary("beanstalkd")
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "-o", str(wheels), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    # beanstalk-jobrunner comes from this checkout's wheel, as it would from the index.
    links = " ".join(p for p in (str(wheels), os.environ.get("PIP_FIND_LINKS", "")) if p)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PIP_FIND_LINKS"] = links
    work = tmp_path / "empty"
    work.mkdir()
    (tmp_path / "tutorial.sh").write_text(as_script(tutorial_steps(TUTORIAL.read_text())))
    with tutorial_ports():
        proc = subprocess.Popen(
            ["bash", str(tmp_path / "tutorial.sh")],
            cwd=work,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # the services it starts in the background die with it
        )
        try:
            output, _ = proc.communicate(timeout=600)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            output = proc.communicate()[0] + "\n[killed after 600 s]"
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    assert proc.returncode == 0, output[-5000:]
    assert re.search(r"^1 passed", output, re.M), output[-3000:]
    assert re.search(r"^  scale +scale-plugin 0\.1\.0 ", output, re.M), output[-3000:]
    doc = json.loads((work / "scale-plugin" / "results" / "scaled.json").read_text())
    assert doc["status"] == "done"
    assert doc["data"] == {"series": [[0, 6.0], [1800, 10.5]]}
    assert doc["provenance"]["plugin"] == "scale-plugin"
