"""The documentation renders: every README and the changelog are valid reStructuredText."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

docutils_core = pytest.importorskip("docutils.core")

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted(
    [ROOT / "README.rst", ROOT / "CHANGELOG.rst"]
    + [p for p in ROOT.glob("examples/**/README.rst")]
    + [p for p in ROOT.glob("plugins/*/README.rst")]
)


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_rst_renders_without_warnings(path: Path) -> None:
    """A README with a broken table or heading shows as garbage on package indexes."""
    warnings = io.StringIO()
    docutils_core.publish_doctree(
        path.read_text(encoding="utf-8"),
        source_path=str(path),
        settings_overrides={"warning_stream": warnings, "report_level": 2, "halt_level": 5},
    )
    assert warnings.getvalue() == ""


def test_readme_has_the_two_commands_near_the_top() -> None:
    """A newcomer finds the set-up-and-demo and the test commands in the first screenful."""
    head = "\n".join((ROOT / "README.rst").read_text().splitlines()[:40])
    assert "scripts/demo.sh" in head
    assert "scripts/test.sh" in head
    assert "scripts/test.sh" in (ROOT / ".ci" / "run").read_text()


def test_sphinx_site_builds_without_warnings(tmp_path: Path) -> None:
    """The documentation site (docs/) builds with warnings as errors: no broken reference."""
    import subprocess
    import sys

    build = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html"]
    done = subprocess.run(
        [*build, str(ROOT / "docs"), str(tmp_path / "html")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "html" / "reference" / "api.html").exists()
