"""Running the application under uvicorn: socket, limits, signals, logging."""

from __future__ import annotations

import logging
import resource
import signal
import socket
import threading
from pathlib import Path
from types import FrameType

from jobrunner.caching import CachePolicy
from jobrunner.config import Config
from jobrunner.errors import ConfigError
from jobrunner.resultsdir import ResultsDir
from jobrunner.serve._app import create_app
from jobrunner.serve._guard import ConnectionGuard, protocol_class
from jobrunner.serve._logs import StdlibBridge, log

__all__ = ["connection_budget", "run_server"]

#: Seconds in-flight requests get to finish after SIGTERM.
_GRACEFUL_SHUTDOWN = 10
#: File descriptors kept for everything but client connections (listening
#: socket, event loop, log files, thread pool, ...).
_RESERVED_FDS = 64
#: The soft file-descriptor limit is raised towards the hard one, up to this.
_WANTED_FDS = 65536
#: Longest queue of connections not yet accepted (nginx's default).
_MAX_BACKLOG = 511
#: Largest request head (request line and headers), in bytes.
_MAX_HEAD_BYTES = 16 * 1024


def connection_budget(requested: int) -> int:
    """The number of connections to allow, within the file-descriptor limit.

    The soft limit is raised to the hard limit (at most 65,536) first. Each
    connection may hold a file open besides its socket, so half of what is
    left after a reserve is available.

    Args:
        requested: the ``max_connections`` setting; 0 for "as many as fit".

    Raises:
        ConfigError: ``requested`` does not fit within the limit.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = _WANTED_FDS if hard == resource.RLIM_INFINITY else min(hard, _WANTED_FDS)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (ValueError, OSError):
            pass
    fits = max(1, (min(soft, _WANTED_FDS) - _RESERVED_FDS) // 2)
    if requested == 0:
        return fits
    if requested > fits:
        raise ConfigError(
            f"max_connections {requested} does not fit in the file-descriptor limit {soft} "
            f"(at most {fits}: two per connection plus {_RESERVED_FDS}); raise the limit "
            "(ulimit -n, systemd LimitNOFILE=) or lower --max-connections"
        )
    return requested


def _bind(host: str, port: int) -> socket.socket:
    """Bind the listening socket ourselves, so that a busy port is our error to report."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except BaseException:
        sock.close()
        raise
    return sock


def run_server(config: Config) -> int:
    """Serve ``config.results_dir`` on ``config.host``:``config.port`` until SIGTERM/SIGINT.

    Uses the ``serve`` settings of ``config`` (``cors_origin``, ``put_token``,
    ``max_put_bytes``, ``body_timeout``, ``idle_timeout``, ``max_connections``, ``access_log``,
    ``create_results_dir``). On SIGTERM or SIGINT the server stops accepting
    connections, lets requests in flight finish (for at most a few seconds)
    and returns 0.

    Returns:
        The exit code: 0 after a clean shutdown, 1 when the server could not
        start (address in use, ...).

    Raises:
        ConfigError: no results directory, or it does not exist (and
            ``create_results_dir`` is off), or a limit that cannot hold.
    """
    import uvicorn  # imported when serving only

    if config.results_dir is None:
        raise ConfigError("jobrunner serve needs --results-dir (the directory to serve)")
    results_dir = Path(config.results_dir)
    try:
        ResultsDir(results_dir, create=config.create_results_dir)
    except ConfigError as exc:
        raise ConfigError(f"{exc} (--create-results-dir creates it)") from None
    max_connections = connection_budget(config.max_connections)
    app = create_app(
        results_dir,
        cors_origins=config.cors_origin,
        put_token=config.put_token,
        max_put_bytes=config.max_put_bytes,
        body_timeout=config.body_timeout,
        cache_policy=CachePolicy(finished=config.cache_finished, not_found=config.cache_not_found),
    )
    try:
        sock = _bind(config.host, config.port)
    except OSError as exc:
        log.error(
            "serve_failed", host=config.host, port=config.port, error=exc.strerror or str(exc)
        )
        return 1
    guard = ConnectionGuard(max_connections, config.idle_timeout)
    # asyncio accepts up to ``backlog`` connections in one go before the guard
    # sees any of them: a small batch keeps descriptors for the evictions to
    # complete. The kernel's queue is made longer once the server listens.
    batch = max(16, max_connections // 8)
    queue = min(_MAX_BACKLOG, max_connections)

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            for listening in sockets or ():
                listening.listen(queue)

    server = Server(
        uvicorn.Config(
            app,
            http=protocol_class(guard),
            timeout_keep_alive=max(1, round(config.idle_timeout)),
            h11_max_incomplete_event_size=_MAX_HEAD_BYTES,
            log_config=None,  # logging is configured by the CLI
            access_log=config.access_log,
            lifespan="on",
            ws="none",
            proxy_headers=False,
            server_header=False,
            timeout_graceful_shutdown=_GRACEFUL_SHUTDOWN,
            backlog=batch,
        )
    )
    # uvicorn re-raises the signal that stopped it once it has shut down;
    # these handlers take it, so that a signal ends in a clean exit 0.
    received: list[int] = []

    def note_signal(signum: int, frame: FrameType | None) -> None:
        received.append(signum)

    bridge = StdlibBridge(logging.INFO)
    bridged = {}
    # uvicorn logs access records only when its access logger has a handler.
    names = ("uvicorn", "asyncio", *(("uvicorn.access",) if config.access_log else ()))
    for name in names:
        logger = logging.getLogger(name)
        bridged[name] = (logger.propagate, logger.level)
        logger.addHandler(bridge)
        logger.propagate = False
        logger.setLevel(logging.INFO if name == "uvicorn.access" else logging.WARNING)
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, note_signal)
    bound = sock.getsockname()
    log.info(
        "serve_started",
        results_dir=str(results_dir),
        host=bound[0],
        port=bound[1],
        cors_origins=list(config.cors_origin),
        put=config.put_token is not None,
        max_connections=max_connections,
        idle_timeout=config.idle_timeout,
    )
    code = 0
    try:
        server.run(sockets=[sock])
    except SystemExit as exc:  # uvicorn exits when it cannot start
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        guard.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for name, (propagate, level) in bridged.items():
            logger = logging.getLogger(name)
            logger.removeHandler(bridge)
            logger.propagate = propagate
            logger.setLevel(level)
        sock.close()
    signals = [signal.Signals(sig).name for sig in received]
    log.info(
        "serve_stopped",
        signal=signals[0] if signals else None,
        exit_code=code,
        connections_refused=guard.refused,
        connections_evicted=guard.evicted,
        connections_timed_out=guard.timed_out,
    )
    return code
