"""Sphinx configuration of the jobrunner documentation (built with ``-W``: warnings are errors)."""

from __future__ import annotations

import os
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


# -- reference pages generated from the code ----------------------------------
# The command line's help and the settings table come from the parser and the
# Config declarations themselves, so the reference cannot drift from the code.

HERE = Path(__file__).resolve().parent


def _write_cli_help() -> None:
    import argparse

    from jobrunner.cli import build_parser

    os.environ["COLUMNS"] = "88"  # argparse wraps to this width
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    out: list[str] = []
    for name, sub in commands.choices.items():
        title = f"jobrunner {name}"
        out += [title, "-" * len(title), "", "::", ""]
        out += [f"   {line}".rstrip() for line in sub.format_help().splitlines()]
        out.append("")
    _write_if_changed(HERE / "reference" / "_cli-help.txt", "\n".join(out))


def _write_settings() -> None:
    from jobrunner.config import Config, settings

    defaults = Config()
    rows = []
    for setting in settings():
        default = getattr(defaults, setting.name)
        if setting.secret or setting.name in ("worker_name", "concurrency"):
            shown = "(see help)" if not setting.secret else "(none)"
        elif isinstance(default, tuple):
            shown = ", ".join(map(str, default)) or "(none)"
        else:
            shown = "(none)" if default is None else str(default)
        rows.append(
            (
                f"``{setting.flag}``",
                f"``{setting.env}``",
                f"``{shown}``" if shown not in ("(none)", "(see help)") else shown,
                setting.help.replace("*", "\\*"),
                ", ".join(setting.commands),
            )
        )
    out = [".. list-table::", "   :header-rows: 1", "   :widths: 18 22 12 38 10", ""]
    out += [
        "   * - flag / TOML key",
        "     - environment",
        "     - default",
        "     - meaning",
        "     - commands",
    ]
    for flag, env, default, meaning, where in rows:
        out += [
            f"   * - {flag}",
            f"     - {env}",
            f"     - {default}",
            f"     - {meaning}",
            f"     - {where}",
        ]
    _write_if_changed(HERE / "reference" / "_settings.txt", "\n".join(out) + "\n")


def _write_if_changed(path: Path, text: str) -> None:
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


_write_cli_help()
_write_settings()
