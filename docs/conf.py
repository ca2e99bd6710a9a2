"""Sphinx configuration of the jobrunner documentation (built with ``-W``: warnings are errors)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import jobrunner  # noqa: E402

project = "jobrunner"
author = "the jobrunner authors"
copyright = "2026, the jobrunner authors"
release = jobrunner.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
]
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_ivar = True  # "Attributes:" sections as fields, not duplicate entries
nitpicky = False

exclude_patterns = ["_build"]
html_theme = "alabaster"
html_theme_options = {"description": "A pluggable job runner on beanstalkd", "fixed_sidebar": True}
html_static_path: list[str] = []
