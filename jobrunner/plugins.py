"""The plugin registry: every stevedore call of jobrunner lives here.

Job types are entry points in group ``jobrunner.job_types`` (the name is the
job's ``type``); publishers are entry points in group ``jobrunner.publishers``.
A plugin that fails to import is recorded with its error rather than
skipped: ``jobrunner plugins`` shows it, its jobs fail with
``plugin_unavailable``, and every other plugin keeps working.

stevedore is imported when first used (listing plugins, loading a job
type); publishers are loaded with :mod:`importlib.metadata` alone (see
:func:`_load_entry_point`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from importlib import metadata
from typing import Any

import attrs

from jobrunner._log import get_logger
from jobrunner.errors import ConfigError, PluginUnavailable, UnknownType

__all__ = [
    "JOB_TYPES",
    "PUBLISHERS",
    "JobTypeRegistry",
    "LoadedJobType",
    "PluginInfo",
    "forget_entry_points",
    "list_plugins",
    "load_publisher_class",
]

JOB_TYPES = "jobrunner.job_types"
PUBLISHERS = "jobrunner.publishers"

log = get_logger(__name__)


@attrs.frozen(kw_only=True)
class PluginInfo:
    """One entry point of a plugin group, loaded or not."""

    name: str
    group: str
    target: str
    distribution: str | None = None
    version: str | None = None
    error: str | None = None
    summary: str | None = None

    @property
    def ok(self) -> bool:
        """True when the plugin loaded."""
        return self.error is None


@attrs.frozen(kw_only=True)
class LoadedJobType:
    """A job type ready to run: the callable, its ``Params`` class and its origin."""

    name: str
    run: Callable[[Any], Any]
    params_cls: type | None
    distribution: str | None
    version: str | None
    accepts: tuple[str, ...] | None = None

    def takes(self, content_type: str | None) -> bool:
        """True when the job type takes inputs of this content type (``accepts``).

        Patterns may end in ``/*`` (``text/*``) or be ``*/*+json`` style suffixes;
        without ``accepts`` every content type is taken.
        """
        if self.accepts is None:
            return True
        media = (content_type or "").split(";", 1)[0].strip().lower()
        for pattern in self.accepts:
            pattern = pattern.lower()
            if pattern in (media, "*/*"):
                return True
            if pattern.endswith("/*") and media.startswith(pattern[:-1]):
                return True
            if pattern.startswith("*/*+") and media.endswith(pattern[3:]):
                return True
        return False


def _distribution(entry_point: Any) -> tuple[str | None, str | None]:
    """Name and version of the distribution that declares ``entry_point``."""
    dist = getattr(entry_point, "dist", None)
    if dist is None:
        # stevedore rebuilds entry points from its cache without their distribution.
        group = str(getattr(entry_point, "group", ""))
        for candidate in metadata.entry_points(group=group, name=entry_point.name):
            if candidate.value == entry_point.value:
                dist = candidate.dist
                break
    if dist is None:
        return None, None
    return dist.metadata["Name"], dist.version


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def _summary(obj: Any) -> str | None:
    doc = inspect.getdoc(obj)
    return doc.strip().splitlines()[0] if doc else None


def list_plugins(group: str) -> list[PluginInfo]:
    """Load every plugin of ``group`` and describe each, failures included."""
    failures: dict[str, tuple[Any, BaseException]] = {}

    def on_failure(_manager: Any, entry_point: Any, error: BaseException) -> None:
        failures[entry_point.name] = (entry_point, error)

    from stevedore import ExtensionManager

    manager = ExtensionManager(group, on_load_failure_callback=on_failure)
    infos = []
    for ext in manager:
        dist, version = _distribution(ext.entry_point)
        infos.append(
            PluginInfo(
                name=ext.name,
                group=group,
                target=ext.entry_point.value,
                distribution=dist,
                version=version,
                summary=_summary(ext.plugin),
            )
        )
    for name, (entry_point, error) in failures.items():
        dist, version = _distribution(entry_point)
        infos.append(
            PluginInfo(
                name=name,
                group=group,
                target=entry_point.value,
                distribution=dist,
                version=version,
                error=_describe(error),
            )
        )
    return sorted(infos, key=lambda info: info.name)


def _load_named(group: str, name: str) -> tuple[Any, Any]:
    """Load one entry point; return ``(plugin object, entry point)``.

    Raises:
        LookupError: no entry point of that name is installed.
        PluginUnavailable: it is installed but failed to load.
    """
    failures: list[tuple[Any, BaseException]] = []

    def on_failure(_manager: Any, entry_point: Any, error: BaseException) -> None:
        failures.append((entry_point, error))

    from stevedore import NamedExtensionManager

    manager = NamedExtensionManager(
        group, names=[name], on_load_failure_callback=on_failure, name_order=True
    )
    if failures:
        raise _unavailable(name, *failures[0])
    if name not in manager.names():
        raise LookupError(name)
    ext = manager[name]
    return ext.plugin, ext.entry_point


def _unavailable(name: str, entry_point: Any, error: BaseException) -> PluginUnavailable:
    return PluginUnavailable(
        f"plugin {name!r} ({entry_point.value}) failed to load: {_describe(error)}; "
        "check that its distribution and dependencies are installed on this worker "
        "('jobrunner plugins' shows the error)"
    )


def _load_entry_point(group: str, name: str) -> Any:
    """Load the first entry point called ``name`` in ``group``, with importlib.metadata alone.

    For publishers, which the worker and each child load once at start:
    stevedore's entry point cache would import :mod:`hashlib`, and with it
    OpenSSL's libcrypto (3 MB), into a worker that needs neither.

    Raises:
        LookupError: no entry point of that name is installed.
        PluginUnavailable: it is installed but failed to load.
    """
    for entry_point in metadata.entry_points(group=group, name=name):
        try:
            return entry_point.load()
        except Exception as exc:
            raise _unavailable(name, entry_point, exc) from exc
    raise LookupError(name)


class JobTypeRegistry:
    """Resolves job types by name, loading each once (per process) and caching it.

    A class is instantiated once, here; a function is used as it is.
    """

    def __init__(self) -> None:
        self._loaded: dict[str, LoadedJobType] = {}

    def get(self, name: str) -> LoadedJobType:
        """Return the job type called ``name``.

        Raises:
            UnknownType: nothing is installed under that name.
            PluginUnavailable: it is installed but failed to load or instantiate.
        """
        loaded = self._loaded.get(name)
        if loaded is None:
            loaded = self._load(name)
            self._loaded[name] = loaded
        return loaded

    def _load(self, name: str) -> LoadedJobType:
        try:
            obj, entry_point = _load_named(JOB_TYPES, name)
        except LookupError:
            known = ", ".join(sorted(metadata_names(JOB_TYPES))) or "none"
            raise UnknownType(
                f"no job type {name!r} is installed on this worker (installed: {known}); "
                "pip install the plugin that provides it, or fix the job's 'type'"
            ) from None
        params_cls = getattr(obj, "Params", None)
        if params_cls is not None and not attrs.has(params_cls):
            raise PluginUnavailable(
                f"job type {name!r}: its Params must be an attrs class, got {params_cls!r}"
            )
        run: Callable[[Any], Any]
        if inspect.isclass(obj):
            try:
                run = obj()  # type: ignore[assignment]  # instances are callable
            except Exception as exc:
                raise PluginUnavailable(
                    f"job type {name!r}: creating {obj.__name__}() failed: {_describe(exc)}"
                ) from exc
        elif callable(obj):
            run = obj
        else:
            raise PluginUnavailable(
                f"job type {name!r} ({entry_point.value}) is neither a class nor a function"
            )
        dist, version = _distribution(entry_point)
        log.debug("job_type_loaded", job_type=name, distribution=dist, version=version)
        accepts = getattr(obj, "accepts", None)
        if accepts is not None and (
            isinstance(accepts, str) or not all(isinstance(a, str) for a in accepts)
        ):
            raise PluginUnavailable(
                f"job type {name!r}: accepts must be a tuple of media types, got {accepts!r}"
            )
        return LoadedJobType(
            name=name,
            run=run,
            params_cls=params_cls,
            distribution=dist,
            version=version,
            accepts=tuple(accepts) if accepts is not None else None,
        )


def forget_entry_points() -> None:
    """Forget the entry point lists stevedore keeps per process, to see new installs.

    stevedore reads each group's entry points once per process; a plugin
    installed later (or put on ``sys.path`` by a test) is seen only after this.
    """
    from stevedore import ExtensionManager

    ExtensionManager.ENTRY_POINT_CACHE.clear()


def metadata_names(group: str) -> list[str]:
    """Names of the entry points in ``group``, without importing any of them."""
    return sorted({ep.name for ep in metadata.entry_points(group=group)})


def load_publisher_class(name: str) -> Any:
    """Return the publisher class registered as ``name``.

    Raises:
        ConfigError: no such publisher, or it failed to load.
    """
    try:
        obj = _load_entry_point(PUBLISHERS, name)
    except LookupError:
        known = ", ".join(metadata_names(PUBLISHERS)) or "none"
        raise ConfigError(
            f"unknown publisher {name!r} (installed: {known}); check --publisher"
        ) from None
    except PluginUnavailable as exc:
        raise ConfigError(str(exc)) from exc
    return obj
