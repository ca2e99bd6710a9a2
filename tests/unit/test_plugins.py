"""The plugin registry: discovery through entry points, failures recorded, not skipped."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from jobrunner.errors import ConfigError, PluginUnavailable, UnknownType
from jobrunner.plugins import (
    JOB_TYPES,
    PUBLISHERS,
    JobTypeRegistry,
    forget_entry_points,
    list_plugins,
    load_publisher_class,
)
from tests.support import install_fake_plugin

CODE = '''
import attrs
import jobrunner

def double(ctx):
    """Double a number."""
    return ctx.input * 2

class Counter(jobrunner.JobType):
    """Count calls per instance."""

    @attrs.define
    class Params:
        step: int = 1

    def __init__(self):
        self.calls = 0

    def __call__(self, ctx):
        self.calls += ctx.params.step
        return self.calls

class BadParams:
    Params = dict
    def __call__(self, ctx):
        return None

class Exploding:
    def __init__(self):
        raise RuntimeError("no licence file")
'''


@pytest.fixture
def fake_plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = install_fake_plugin(
        tmp_path / "site",
        "jrfake",
        CODE,
        {
            JOB_TYPES: {
                "double": "jrfake:double",
                "counter": "jrfake:Counter",
                "broken": "jrfake_missing_module:run",
                "badparams": "jrfake:BadParams",
                "exploding": "jrfake:Exploding",
            },
            PUBLISHERS: {"brokenpub": "jrfake_missing_module:Publisher"},
        },
    )
    monkeypatch.syspath_prepend(str(directory))
    forget_entry_points()  # an earlier test in this process may have listed the groups
    yield directory
    forget_entry_points()
    sys.modules.pop("jrfake", None)


def test_listing_shows_loaded_and_failed_plugins(fake_plugins: Path) -> None:
    """A plugin that fails to import is listed with its error, next to the working ones."""
    infos = {info.name: info for info in list_plugins(JOB_TYPES)}
    assert infos["echo"].ok
    assert infos["double"].ok
    assert infos["double"].distribution == "jrfake"
    assert infos["double"].version == "1.0"
    assert infos["double"].summary == "Double a number."
    assert not infos["broken"].ok
    assert "ModuleNotFoundError" in (infos["broken"].error or "")
    publishers = {info.name: info for info in list_plugins(PUBLISHERS)}
    assert publishers["file"].ok
    assert not publishers["brokenpub"].ok


def test_registry_resolves_functions_and_classes(fake_plugins: Path) -> None:
    """A function is used as is; a class is instantiated once and reused."""
    registry = JobTypeRegistry()
    assert registry.get("double").params_cls is None
    counter = registry.get("counter")
    assert counter.params_cls is not None
    assert registry.get("counter").run is counter.run


@pytest.mark.parametrize(
    ("name", "error", "fragment"),
    [
        ("no_such_type", UnknownType, "pip install"),
        ("broken", PluginUnavailable, "failed to load"),
        ("badparams", PluginUnavailable, "attrs class"),
        ("exploding", PluginUnavailable, "no licence file"),
    ],
)
def test_registry_errors_have_codes_and_advice(
    fake_plugins: Path, name: str, error: type[Exception], fragment: str
) -> None:
    """Unknown and broken job types raise the failure whose code the result will carry."""
    with pytest.raises(error) as info:
        JobTypeRegistry().get(name)
    assert fragment in str(info.value)


def test_unknown_publisher_is_a_config_error(fake_plugins: Path) -> None:
    """--publisher with a name nobody installed fails at start-up, listing what exists."""
    with pytest.raises(ConfigError, match="file"):
        load_publisher_class("s3")
    with pytest.raises(ConfigError, match="failed to load"):
        load_publisher_class("brokenpub")
