"""Process trees on Linux: subreapers, finding descendants, killing a whole tree.

Shared by both sides. A job type may start programs, and those may start
others, call ``setsid`` or double-fork to leave their parent. Two facts
keep them findable:

* a *subreaper* (``PR_SET_CHILD_SUBREAPER``) adopts the orphans among its
  descendants, so a process that double-forks stays below the child that
  ran the job (and below the worker, if the child died first);
* ``/proc/PID/stat`` names each process's parent, so a tree is found by
  walking the parent links down from its root, whatever sessions and process
  groups its members moved to.

:func:`kill_tree` stops the members first (``SIGSTOP``: a stopped process
cannot fork) and walks again until no new member appears, then kills them
all, so no fork races the kill.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal

__all__ = ["descendants", "kill_tree", "parents", "set_subreaper"]

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
#: Walks of a tree before giving up on a process that forks faster than we stop it.
_ROUNDS = 50


def _prctl(option: int, value: int) -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(option, value, 0, 0, 0)) == 0
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        return False


def set_subreaper() -> bool:
    """Make this process adopt its descendants' orphans; False where unsupported."""
    return _prctl(_PR_SET_CHILD_SUBREAPER, 1)


def set_parent_death_signal(sig: int) -> bool:
    """Have the kernel send ``sig`` to this process when its parent thread ends."""
    return _prctl(_PR_SET_PDEATHSIG, sig)


def parents() -> dict[int, tuple[int, int]]:
    """Every process's ``(parent pid, session id)``, by pid, from ``/proc``."""
    out: dict[int, tuple[int, int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        # After the command: state, ppid, pgrp, session, ...
        out[int(entry)] = (int(fields[1]), int(fields[3]))
    return out


def descendants(root: int, table: dict[int, tuple[int, int]] | None = None) -> list[int]:
    """The pids of every process below ``root`` (not ``root`` itself)."""
    table = parents() if table is None else table
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    found: list[int] = []
    stack = list(children.get(root, ()))
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(children.get(pid, ()))
    return found


def _signal(pids: list[int] | set[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def kill_tree(root: int, *, include_root: bool = True) -> int:
    """SIGKILL every process below ``root`` (and ``root`` when ``include_root``).

    Returns how many processes below ``root`` were killed. Zombies are left
    to their parent to reap.
    """
    stopped: set[int] = set()
    for _ in range(_ROUNDS):
        new = set(descendants(root)) - stopped
        if not new:
            break
        _signal(new, signal.SIGSTOP)
        stopped |= new
    _signal(stopped, signal.SIGKILL)
    if include_root:
        _signal([root], signal.SIGKILL)
    return len(stopped)
