"""One frozen :class:`Config`, built from flags, environment, a TOML file and defaults.

Precedence: command-line flags > ``JOBRUNNER_*`` environment variables >
the TOML file (``--config`` or ``JOBRUNNER_CONFIG``) > defaults. Every
setting is declared once, in :class:`Config`, with its help text; the CLI
flags, the environment names and the TOML keys are derived from it:
setting ``allow_host`` is flag ``--allow-host``, variable
``JOBRUNNER_ALLOW_HOST`` (lists comma-separated) and TOML key ``allow_host``.
Nothing here reads the environment at import time.
"""

from __future__ import annotations

import errno
import os
import re
import socket
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from jobrunner._log import get_logger
from jobrunner.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

__all__ = [
    "Config",
    "Setting",
    "check_dir_writable",
    "check_port_free",
    "load_config",
    "settings",
]

log = get_logger(__name__)

ENV_PREFIX = "JOBRUNNER_"
#: ``JOBRUNNER_*`` variables that are not settings but are read by jobrunner's
#: own scripts and tests: not warned about.
KNOWN_OTHER_ENV = frozenset(
    {
        "JOBRUNNER_CONFIG",
        "JOBRUNNER_SKIP_SETUP",
        "JOBRUNNER_BROWSER_TESTS",
        "JOBRUNNER_PROMTOOL_TESTS",
        "JOBRUNNER_BENCH_CACHE",
    }
)
# What Kubernetes injects for a Service named "jobrunner..." (docker links did the
# same): JOBRUNNER_SERVICE_HOST, JOBRUNNER_SERVICE_PORT[_NAME], JOBRUNNER_PORT=tcp://...,
# JOBRUNNER_PORT_8080_TCP[_PROTO|_PORT|_ADDR]. Never settings: ignored, not warned about.
_SERVICE_LINK_NAME = re.compile(
    r"[A-Z0-9_]*?(_SERVICE_HOST|_SERVICE_PORT(_[A-Z0-9_]+)?|_PORT_\d+_(TCP|UDP|SCTP)(_PROTO|_PORT|_ADDR)?)"
)
# beanstalkd's own rule for tube names (protocol.txt: "Names").
_TUBE_NAME = re.compile(r"[A-Za-z0-9+/;.$_()][A-Za-z0-9+/;.$_()-]{0,199}")
_SERVICE_LINK_VALUE = re.compile(r"(tcp|udp|sctp)://[^/\s]+:\d+")
_MIB = 1024 * 1024

# Which commands take a setting as a flag.
WORK = "work"
SUBMIT = "submit"
SERVE = "serve"
QUEUE = "queue"  # stats, peek, buried, kick, delete, schedule
STATUS = "status"  # jobrunner status: reads result documents
DASHBOARD = "dashboard"  # jobrunner dashboard


#: Tables of the same TOML file read by one command only (``jobrunner schedule``).
TABLES = ("schedule", "scheduler")


def _opt(
    default: Any,
    help: str,
    *,
    commands: tuple[str, ...] = (WORK,),
    secret: bool = False,
    metavar: str | None = None,
) -> Any:
    return attrs.field(
        default=default,
        metadata={"help": help, "commands": commands, "secret": secret, "metavar": metavar},
    )


def _cpus() -> int:
    return os.cpu_count() or 1


@attrs.frozen(kw_only=True)
class Config:
    """The effective settings of one jobrunner process.

    ``sources`` records where each setting came from (``default``, ``file``,
    ``env`` or ``flag``), for ``jobrunner config``.
    """

    # queue
    beanstalk: tuple[str, ...] = _opt(
        ("127.0.0.1:11300",),
        "beanstalkd server HOST:PORT (repeatable)",
        commands=(WORK, SUBMIT, QUEUE, DASHBOARD),
        metavar="HOST:PORT",
    )
    tube: tuple[str, ...] = _opt(
        ("default",),
        "tube to watch (work) or use (submit); repeatable for work",
        commands=(WORK, SUBMIT, QUEUE, DASHBOARD),
        metavar="NAME",
    )
    # worker
    concurrency: int = _opt(attrs.Factory(_cpus), "jobs run at once (child processes)")
    publisher: tuple[str, ...] = _opt(
        ("file",), "publisher backend, in order (repeatable)", metavar="NAME"
    )
    results_dir: Path | None = _opt(
        None,
        "directory the file publisher writes results to",
        commands=(WORK, SERVE, DASHBOARD, QUEUE),
        metavar="DIR",
    )
    base_url: str | None = _opt(
        None,
        "URL under which results_dir is served (status: resolves a job ID to BASE_URL/ID.json)",
        commands=(WORK, STATUS, DASHBOARD, QUEUE),
        metavar="URL",
    )
    allow_host: tuple[str, ...] = _opt(
        (),
        "input host allowed (exact, *.suffix or CIDR); loopback/private only when listed",
        metavar="HOST",
    )
    allow_file_inputs: Path | None = _opt(None, "allow file: input URLs below DIR", metavar="DIR")
    max_redirects: int = _opt(5, "redirects followed when fetching inputs")
    max_input_bytes: int = _opt(64 * _MIB, "largest input body accepted, in bytes")
    connect_timeout: float = _opt(5.0, "seconds to connect to an input server")
    read_timeout: float = _opt(30.0, "seconds to wait for input data between reads")
    fetch_timeout: float = _opt(120.0, "total seconds one input fetch may take")
    max_timeout: float = _opt(86400.0, "longest a job may run, in seconds (caps job 'timeout')")
    max_attempts: int = _opt(3, "attempts for retryable failures when the job does not say")
    retry_base: float = _opt(10.0, "first retry delay in seconds (doubles each attempt)")
    retry_max: float = _opt(3600.0, "longest retry delay in seconds")
    grace: float = _opt(30.0, "seconds running jobs may finish after SIGTERM")
    max_jobs_per_child: int = _opt(10000, "recycle a child process after this many jobs")
    max_memory_per_child: int = _opt(1024, "recycle a child process above this RSS, in MiB")
    max_result_bytes: int = _opt(16 * _MIB, "largest result document published, in bytes")
    running_delay: float = _opt(
        0.2, "seconds a job runs before its first running document (0: at once)"
    )
    progress_interval: float = _opt(1.0, "least seconds between two progress documents")
    fsync: bool = _opt(True, "fsync result files before renaming them into place")
    final_markers: bool = _opt(
        True,
        "file publisher: mark done/failed documents with an empty RESULTS/.final/PATH file "
        "(nginx caches them long)",
    )
    worker_name: str = _opt(
        attrs.Factory(socket.gethostname), "name of this worker node in result documents"
    )
    put_origin: tuple[str, ...] = _opt(
        (), "origin the http publisher may PUT to (repeatable)", metavar="ORIGIN"
    )
    http_token: str | None = _opt(None, "bearer token the http publisher sends", secret=True)
    http_timeout: float = _opt(30.0, "seconds one HTTP PUT of a result document may take")
    rsync_peer: tuple[str, ...] = _opt(
        (), "rsync destination results are pushed to", metavar="DEST"
    )
    rsync_required: bool = _opt(False, "fail the publication when an rsync peer fails")
    rsync_timeout: float = _opt(30.0, "seconds one rsync push may take")
    rsync_retries: int = _opt(
        5, "attempts to push a final document to a failing rsync peer (in the background)"
    )
    metrics_host: str = _opt(
        "127.0.0.1", "address the metrics and health endpoint listens on (0.0.0.0 for all)"
    )
    metrics_port: int | None = _opt(
        None, "serve Prometheus metrics and /health on this port", metavar="PORT"
    )
    metrics_queue: bool = _opt(
        False,
        "also export the watched tubes' depth (jobrunner_queue_jobs): on one worker only, "
        "or sum() over workers counts each job once per worker",
    )
    # serve
    host: str = _opt("127.0.0.1", "address the results server listens on", commands=(SERVE,))
    port: int = _opt(8080, "port the results server listens on", commands=(SERVE,))
    cors_origin: tuple[str, ...] = _opt(
        (), "origin allowed to read results (CORS); * for any", commands=(SERVE,), metavar="ORIGIN"
    )
    put_token: str | None = _opt(
        None,
        "accept PUT of result documents with this bearer token",
        commands=(SERVE,),
        secret=True,
    )
    max_put_bytes: int = _opt(
        16 * _MIB, "largest result document accepted by PUT", commands=(SERVE,)
    )
    create_results_dir: bool = _opt(
        False, "create the results directory when it does not exist", commands=(SERVE,)
    )
    idle_timeout: float = _opt(
        10.0,
        "seconds a connection may wait for a complete request head (idle or slow) before closing",
        commands=(SERVE,),
    )
    max_connections: int = _opt(
        0,
        "most client connections open at once (0: half the file-descriptor limit)",
        commands=(SERVE,),
    )
    body_timeout: float = _opt(
        60.0, "seconds a PUT body may take to arrive (408 after)", commands=(SERVE,)
    )
    access_log: bool = _opt(False, "log every request served", commands=(SERVE,))
    cache_finished: int = _opt(
        86400,
        "seconds HTTP caches may keep a done or failed result document (0: revalidate always)",
        commands=(SERVE,),
        metavar="SECONDS",
    )
    cache_not_found: int = _opt(
        2,
        "seconds HTTP caches may keep a 404 (a result not yet published; 0: never)",
        commands=(SERVE,),
        metavar="SECONDS",
    )
    # dashboard
    dashboard_host: str = _opt(
        "127.0.0.1",
        "address the dashboard listens on (other than loopback only with a token)",
        commands=(DASHBOARD,),
    )
    dashboard_port: int = _opt(8070, "port the dashboard listens on", commands=(DASHBOARD,))
    dashboard_token: str | None = _opt(
        None,
        "token the dashboard asks for (as ?token= once, then a cookie); allows kicking jobs",
        commands=(DASHBOARD,),
        secret=True,
    )
    dashboard_worker: tuple[str, ...] = _opt(
        (),
        "a worker's metrics URL (http://HOST:PORT of --metrics-port) to show (repeatable)",
        commands=(DASHBOARD,),
        metavar="URL",
    )
    dashboard_interval: float = _opt(
        5.0, "seconds between two polls of the queue and the workers", commands=(DASHBOARD,)
    )
    # all commands
    log_level: str = _opt(
        "info",
        "debug, info, warning or error",
        commands=(WORK, SUBMIT, SERVE, QUEUE, STATUS, DASHBOARD),
    )
    log_format: str = _opt(
        "auto",
        "json (one JSON object per line), console, or auto: console on a terminal, else json",
        commands=(WORK, SUBMIT, SERVE, QUEUE, STATUS, DASHBOARD),
    )
    sources: Mapping[str, str] = attrs.field(factory=dict, eq=False, repr=False)

    def as_dict(self, *, mask: bool = True) -> dict[str, Any]:
        """Return the settings as plain JSON values, secrets masked unless ``mask=False``."""
        out: dict[str, Any] = {}
        for setting in settings():
            value = getattr(self, setting.name)
            if mask and setting.secret and value:
                value = "********"
            elif isinstance(value, Path):
                value = str(value)
            elif isinstance(value, tuple):
                value = list(value)
            out[setting.name] = value
        return out


@attrs.frozen
class Setting:
    """One setting: its name, type and help, and where it can be given."""

    name: str
    kind: Any
    help: str
    commands: tuple[str, ...]
    secret: bool
    metavar: str | None

    @property
    def flag(self) -> str:
        """The command-line flag, e.g. ``--allow-host``."""
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        """The environment variable, e.g. ``JOBRUNNER_ALLOW_HOST``."""
        return ENV_PREFIX + self.name.upper()

    @property
    def is_list(self) -> bool:
        """True for repeatable settings (tuples)."""
        return str(self.kind).startswith("tuple")


def settings() -> list[Setting]:
    """Every setting of :class:`Config`, in declaration order."""
    out = []
    for field in attrs.fields(Config):
        if field.name == "sources":
            continue
        meta = field.metadata
        out.append(
            Setting(
                field.name,
                field.type,
                meta["help"],
                meta["commands"],
                meta["secret"],
                meta["metavar"],
            )
        )
    return out


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _convert(setting: Setting, value: Any, where: str) -> Any:
    """Convert a raw value (string from env, TOML value, flag value) to the setting's type."""
    kind = str(setting.kind)
    if value is None:
        return None
    try:
        if setting.is_list:
            if isinstance(value, str):
                items = [item.strip() for item in value.split(",") if item.strip()]
            elif isinstance(value, (list, tuple)):
                items = [str(item) for item in value]
            else:
                raise ValueError("expected a list of strings")
            return tuple(items)
        if kind.startswith("bool"):
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in _TRUE:
                return True
            if text in _FALSE:
                return False
            raise ValueError("expected true or false")
        if kind.startswith("int"):
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError("expected a whole number")
            return int(value)
        if kind.startswith("float"):
            if isinstance(value, bool):
                raise ValueError("expected a number")
            return float(value)
        if kind.startswith("Path"):
            return Path(str(value)).expanduser()
        return str(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: invalid value {value!r} for {setting.name}: {exc}") from None


def read_toml_tables(path: Path) -> dict[str, Any]:
    """Read a whole TOML file (settings and the other commands' tables).

    Raises:
        ConfigError: unreadable file or TOML syntax error.
    """
    try:
        with path.open("rb") as fh:
            data: dict[str, Any] = tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path}: {exc}") from None
    return data


def read_toml(path: Path) -> dict[str, Any]:
    """Read a TOML configuration file; settings may sit at top level or under ``[jobrunner]``.

    Raises:
        ConfigError: unreadable file, TOML syntax error or unknown key.
    """
    data = read_toml_tables(path)
    if isinstance(data.get("jobrunner"), dict):
        data = {**{k: v for k, v in data.items() if k != "jobrunner"}, **data["jobrunner"]}
    known = {s.name for s in settings()} | set(TABLES)
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(
            f"config file {path}: unknown setting(s) {', '.join(unknown)}; "
            "'jobrunner config' lists the settings"
        )
    return data


def load_config(
    flags: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    config_file: str | Path | None = None,
) -> Config:
    """Build the effective configuration.

    Args:
        flags: settings given on the command line (``None`` values are "not given").
        env: the environment to read ``JOBRUNNER_*`` variables from (``os.environ``
            when ``None``).
        config_file: a TOML file; ``JOBRUNNER_CONFIG`` is used when not given.

    Raises:
        ConfigError: any invalid value, naming the setting and where it came from.
    """
    flags = dict(flags or {})
    env = os.environ if env is None else env
    config_file = config_file or env.get(ENV_PREFIX + "CONFIG") or None
    file_values = read_toml(Path(config_file)) if config_file else {}
    for table in TABLES:
        file_values.pop(table, None)
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    _warn_unknown_env(env)
    for setting in settings():
        if flags.get(setting.name) is not None:
            raw, where, source = flags[setting.name], f"flag {setting.flag}", "flag"
        elif setting.env in env and not _is_service_link(setting.env, env[setting.env]):
            raw, where, source = env[setting.env], f"environment {setting.env}", "env"
        elif setting.name in file_values:
            raw, where, source = file_values[setting.name], f"config file {config_file}", "file"
        else:
            sources[setting.name] = "default"
            continue
        values[setting.name] = _convert(setting, raw, where)
        sources[setting.name] = source
    config = Config(**values, sources=sources)
    validate(config)
    return config


def _is_service_link(name: str, value: str) -> bool:
    """True for a variable Kubernetes (or docker links) set for a Service, not a setting."""
    if _SERVICE_LINK_NAME.fullmatch(name):
        return True
    return name.endswith("_PORT") and bool(_SERVICE_LINK_VALUE.fullmatch(value.strip()))


def _warn_unknown_env(env: Mapping[str, str]) -> None:
    """Log a warning for each ``JOBRUNNER_*`` variable that no setting reads (a typo)."""
    known = {s.env for s in settings()} | KNOWN_OTHER_ENV
    for name in sorted(env):
        if not name.startswith(ENV_PREFIX) or name in known:
            continue
        if _is_service_link(name, env[name]):
            continue
        log.warning(
            "unknown_environment_variable",
            variable=name,
            hint="no setting reads it; 'jobrunner config' lists the settings",
        )


def validate(config: Config) -> None:
    """Check values that are wrong whatever their source.

    Raises:
        ConfigError: naming the setting and what to do.
    """
    problems = []
    for name in (
        "concurrency",
        "max_jobs_per_child",
        "max_memory_per_child",
        "max_attempts",
        "max_input_bytes",
        "max_result_bytes",
        "max_put_bytes",
        "rsync_retries",
    ):
        if getattr(config, name) < 1:
            problems.append(f"{name} must be at least 1, got {getattr(config, name)}")
    for name in (
        "connect_timeout",
        "read_timeout",
        "fetch_timeout",
        "max_timeout",
        "retry_base",
        "retry_max",
        "rsync_timeout",
        "http_timeout",
        "dashboard_interval",
    ):
        if getattr(config, name) <= 0:
            problems.append(f"{name} must be above 0, got {getattr(config, name)}")
    for name in ("idle_timeout", "body_timeout"):
        if getattr(config, name) <= 0:
            problems.append(f"{name} must be above 0, got {getattr(config, name)}")
    if config.max_connections < 0:
        problems.append(f"max_connections must not be negative, got {config.max_connections}")
    for name in ("port", "metrics_port"):
        port = getattr(config, name)
        if port is not None and not 1 <= port <= 65535:
            problems.append(f"{name} must be a TCP port from 1 to 65535, got {port}")
    if config.running_delay < 0:
        problems.append(f"running_delay must not be negative, got {config.running_delay}")
    if config.grace < 0:
        problems.append(f"grace must not be negative, got {config.grace}")
    for name in ("cache_finished", "cache_not_found"):
        if not 0 <= getattr(config, name) <= 10 * 365 * 86400:
            problems.append(f"{name} must be 0 to 315360000 seconds, got {getattr(config, name)}")
    if config.max_redirects < 0:
        problems.append(f"max_redirects must not be negative, got {config.max_redirects}")
    from jobrunner.policy import host_name_problem, parse_ip

    for address in config.beanstalk:
        host, _, port = address.rpartition(":")
        host = host.strip("[]")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            problems.append(f"beanstalk: expected HOST:PORT (port 1-65535), got {address!r}")
        elif parse_ip(host) is None and (why := host_name_problem(host.lower())) is not None:
            problems.append(f"beanstalk: {host!r} is not a valid host name: {why}")
    for url in config.dashboard_worker:
        if not url.startswith(("http://", "https://")):
            problems.append(f"dashboard_worker must be an http(s) URL, got {url!r}")
    for name in ("port", "metrics_port", "dashboard_port"):
        value = getattr(config, name)
        if value is not None and not 0 <= value < 65536:
            problems.append(f"{name} must be 0-65535, got {value}")
    if not config.beanstalk:
        problems.append("beanstalk: at least one server is needed")
    if not config.tube:
        problems.append("tube: at least one tube is needed")
    for tube in config.tube:
        if not _TUBE_NAME.fullmatch(tube):
            problems.append(
                f"tube: {tube!r} is not a beanstalkd tube name (1-200 of letters, digits "
                "and +/;.$_()-, not starting with -)"
            )
    if config.base_url is not None and not config.base_url.startswith(("http://", "https://")):
        problems.append(f"base_url must be an http(s) URL, got {config.base_url!r}")
    if config.log_level.lower() not in ("debug", "info", "warning", "error"):
        problems.append(
            f"log_level must be debug, info, warning or error, got {config.log_level!r}"
        )
    if config.log_format not in ("auto", "json", "console"):
        problems.append(f"log_format must be auto, json or console, got {config.log_format!r}")
    if problems:
        raise ConfigError("invalid configuration: " + "; ".join(problems))
    # A bad --allow-host entry must fail here, before any child process starts.
    from jobrunner.policy import UrlPolicy

    try:
        UrlPolicy(config.allow_host, allow_file_inputs=config.allow_file_inputs)
    except ValueError as exc:
        raise ConfigError(f"invalid configuration: {exc}") from None


def check_dir_writable(path: Path, setting: str) -> None:
    """Check at start-up that files can be created in ``path`` (created when missing).

    Raises:
        ConfigError: naming the setting, the directory and the reason.
    """
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".jobrunner-check-"):
            pass
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError(
            f"{setting} {path} is not a writable directory ({reason}); "
            "create it and give this user write access"
        ) from None


def check_port_free(host: str, port: int | None, setting: str) -> None:
    """Check at start-up that a server can listen on ``host:port`` (0 or None: any port).

    Raises:
        ConfigError: naming the setting, the address and the reason.
    """
    if not port:
        return
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (OSError, UnicodeError) as exc:
        raise ConfigError(f"{setting}: cannot listen on {host!r}: {exc}") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            why = "the port is in use" if exc.errno == errno.EADDRINUSE else exc.strerror
            raise ConfigError(
                f"{setting}: cannot listen on {host}:{port} ({why}); "
                "stop what holds it or choose another port"
            ) from None
