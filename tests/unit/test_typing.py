"""The public API is typed: user code written against the docs passes ``mypy --strict``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import jobrunner

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "docs" / "examples"


def test_docs_examples_pass_mypy_strict() -> None:
    """The docs' scripts (submit, read status documents, a JobType) type-check strictly."""
    scripts = sorted(str(p) for p in EXAMPLES.glob("*.py"))
    assert len(scripts) >= 3
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", *scripts],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "MYPYPATH": str(ROOT)},
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_public_names_are_real_attributes() -> None:
    """Every name in ``jobrunner.__all__`` is a module attribute (no lazy loading hiding types)."""
    assert "__getattr__" not in vars(jobrunner)
    for name in jobrunner.__all__:
        assert name in vars(jobrunner), name
    assert isinstance(jobrunner.Client, type)


def test_package_ships_py_typed() -> None:
    """The package marks itself typed (PEP 561), so type checkers use its annotations."""
    assert (Path(jobrunner.__file__).parent / "py.typed").is_file()
