"""Install size of the base distribution and of each extra, in fresh virtualenvs.

    python bench/install_sizes.py [--python PYTHON]

Builds the wheel from this checkout, installs it with each extra into a new
virtualenv and prints the disk space the install adds to an empty venv
(site-packages and scripts, pip itself excluded) and the distributions it
brings. Needs the package index (or pip's cache).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXTRAS = ["", "status", "worker", "serve", "timeseries", "worker,serve,timeseries"]


def size_of(path: Path) -> int:
    """Bytes of the files below ``path`` (as ``du --apparent-size`` counts them)."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def measure(python: str, wheel: Path, extra: str, work: Path) -> tuple[int, list[str]]:
    venv = work / (extra.replace(",", "+") or "base")
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    vpy = str(venv / "bin" / "python")
    before = size_of(venv)
    target = f"{wheel}[{extra}]" if extra else str(wheel)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run([vpy, "-m", "pip", "install", "-q", target], check=True, env=env)
    listed = subprocess.run(
        [vpy, "-m", "pip", "list", "--format=json", "--exclude", "pip", "--exclude", "setuptools"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    names = sorted(d["name"] for d in json.loads(listed))
    return size_of(venv) - before, names


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=sys.executable, help="interpreter for the venvs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="jobrunner-sizes-") as tmp:
        work = Path(tmp)
        subprocess.run(
            [sys.executable, "-m", "build", "--wheel", "--no-isolation", "-o", tmp, str(ROOT)],
            check=True,
            capture_output=True,
        )
        [wheel] = work.glob("*.whl")
        base = 0
        print(f"{'install':<44} {'size':>9} {'added':>9}  distributions")
        for extra in EXTRAS:
            size, names = measure(args.python, wheel, extra, work)
            base = base or size
            label = f"beanstalk-jobrunner[{extra}]" if extra else "beanstalk-jobrunner"
            added = f"+{(size - base) / 1e6:.1f} MB" if extra else ""
            print(f"{label:<44} {size / 1e6:6.1f} MB {added:>9}  {len(names)}: {', '.join(names)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
