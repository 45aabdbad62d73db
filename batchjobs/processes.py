"""What the console knows about its own processes: who started whom, who is still alive, and how a child
is tied to its parent so that nothing outlives what started it.

Linux only where it matters (prctl, /proc); elsewhere the helpers do nothing and liveness falls back to
heartbeats. No Django here: the launcher's exec wrapper runs this module before any settings exist.

    python -m batchjobs.processes bind PARENT_PID -- COMMAND [ARG ...]

runs COMMAND so that it is killed when PARENT_PID dies (the parent-death signal survives exec), which is how
the launcher ties programs it cannot change, such as redis-server, to itself.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import sys
from functools import cache

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36

#: Marks every process of one console stack (inherited by all descendants), so the stack's processes can be
#: told apart from another stack's on the same machine.
STACK_ENV = "PERSONALIZE_STACK_ID"


@cache
def _libc():
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def _prctl(option: int, value: int) -> bool:
    libc = _libc()
    if libc is None or not sys.platform.startswith("linux"):
        return False
    return libc.prctl(option, value, 0, 0, 0) == 0


def die_with_parent(expected_parent: int, sig: int = signal.SIGKILL) -> None:
    """Have the kernel send `sig` to this process when its parent dies; exit now if it already has.

    The check after the prctl closes the race of a parent that died before the call: this process has then
    been re-parented and would never get the signal."""
    _prctl(_PR_SET_PDEATHSIG, int(sig))
    if os.getppid() != expected_parent:
        os._exit(1)


def become_subreaper() -> bool:
    """Adopt orphaned descendants (a dead child's children come to us, not to init), so a supervisor can
    reap and stop them."""
    return _prctl(_PR_SET_CHILD_SUBREAPER, 1)


def children(pid: int) -> list[int]:
    found = []
    try:
        with os.scandir(f"/proc/{pid}/task") as tasks:
            for task in tasks:
                with open(f"/proc/{pid}/task/{task.name}/children") as fh:
                    found += [int(c) for c in fh.read().split()]
    except (FileNotFoundError, ProcessLookupError, NotADirectoryError):
        pass
    return found


def descendants(pid: int) -> list[int]:
    """Every live process below `pid`, children before their own children."""
    found, frontier = [], [pid]
    while frontier:
        below = [c for p in frontier for c in children(p)]
        found += below
        frontier = below
    return found


def _stat_field(pid: int, index: int) -> int | None:
    """Field `index` of /proc/<pid>/stat counted after the command name, or None once the process is gone.
    The command name (field 2) may hold spaces and parentheses; fields after its closing ")" do not."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return int(stat[stat.rindex(b")") + 2 :].split()[index])


def parent_of(pid: int) -> int | None:
    return _stat_field(pid, 1)


def ancestors(pid: int) -> list[int]:
    found = []
    while (pid := parent_of(pid)) and pid not in found:
        found.append(pid)
    return found


def stack_processes(stack_id: str) -> list[int]:
    """Every live process carrying this stack's marker in its environment (ours excluded)."""
    marker = f"{STACK_ENV}={stack_id}".encode()
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as fh:
                if marker in fh.read().split(b"\0"):
                    found.append(int(entry.name))
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return found


def start_ticks(pid: int) -> int | None:
    """When the process started, in clock ticks since boot: with the pid, it names one process for good
    (a pid alone may be reused)."""
    return _stat_field(pid, 19)


@cache
def _host_id() -> str:
    """This machine and pid namespace: two containers on one host see different pids for one number."""
    try:
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        namespace = 0
    return f"{socket.gethostname()}#{namespace}"


def process_owner(pid: int | None = None) -> str:
    """A name for this process (or `pid`) that stays unique across pid reuse and machines."""
    pid = pid or os.getpid()
    return f"{_host_id()}/{pid}/{start_ticks(pid) or 0}"


def owner_is_gone(owner: str) -> bool:
    """True when `owner` (from process_owner) names a process of this machine that no longer runs. A process
    of another machine is never known to be gone here: the heartbeat decides for those."""
    try:
        host, pid, ticks = owner.rsplit("/", 2)
        pid, ticks = int(pid), int(ticks)
    except ValueError:
        return False
    if host != _host_id() or not ticks:
        # Another machine's process, or one whose start could not be read (no /proc): unknown, not gone.
        return False
    return start_ticks(pid) != ticks


def signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def signal_process(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _bind_main(argv: list[str]) -> None:
    if len(argv) < 4 or argv[0] != "bind" or argv[2] != "--":
        sys.exit("usage: python -m batchjobs.processes bind PARENT_PID -- COMMAND [ARG ...]")
    die_with_parent(int(argv[1]))
    os.execvp(argv[3], argv[3:])


if __name__ == "__main__":
    _bind_main(sys.argv[1:])
