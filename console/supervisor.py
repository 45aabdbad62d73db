"""The process supervisor behind `make run`: it starts the stack's programs, restarts any that dies, and
stops them all, leaving no process, port or socket behind.

Each program runs in a session of its own, so a Ctrl-C in the terminal reaches only the supervisor, which
then stops the programs in order (web and workers, then Redis, which they use until they exit) with SIGTERM,
and SIGKILL for what does not stop in time. Each is started through `python -m batchjobs.processes bind` and
so dies with the supervisor even if the supervisor itself is killed. The supervisor is a child subreaper:
whatever a dead program started (a work horse, a web worker) is re-parented to it and killed, and every
process of the stack carries the stack's id in its environment, so a last sweep finds anything that escaped.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from batchjobs import processes

#: Seconds before a program is started again, by how many times in a row it exited on its own soon after
#: starting (a crash loop): the first restart is almost immediate.
RESTART_BACKOFF_S = (0.2, 1, 2, 5, 10)
# A program that ran this long before exiting was not crash-looping.
_HEALTHY_AFTER_S = 10


@dataclass
class Program:
    name: str
    argv: list[str]
    #: Seconds a SIGTERM gets before SIGKILL.
    stop_timeout: float = 8.0
    #: Signals sent, in order, before SIGKILL: an RQ worker stops after its job on the first SIGTERM and at
    #: once (killing its horse) on the second.
    stop_signals: tuple[int, ...] = (signal.SIGTERM,)
    cwd: str | None = None
    #: Called after each start with the process; may raise to refuse the start.
    on_start: Callable[[subprocess.Popen], None] | None = None
    process: subprocess.Popen | None = field(default=None, repr=False)
    started_at: float = 0.0
    failures: int = 0
    restart_at: float = 0.0


class Supervisor:
    def __init__(self, log: Callable[[str], None], stack_id: str | None = None):
        self.log = log
        self.stack_id = stack_id or os.environ.get(processes.STACK_ENV) or uuid.uuid4().hex
        self.env = {**os.environ, processes.STACK_ENV: self.stack_id}
        self.programs: list[Program] = []
        processes.become_subreaper()

    # ------------------------------------------------------------------------------------------- running

    def run_once(self, argv: list[str], on_line: Callable[[str], None], cwd: str | None = None) -> int:
        """Run a one-off program of the stack to its end (bound to us, like every other), passing each line
        it prints to `on_line`; returns its exit status."""
        process = self._spawn(argv, cwd, capture=True)
        try:
            for line in process.stdout:
                on_line(line.rstrip("\n"))
            return process.wait()
        finally:
            self._kill_group(process)
            process.stdout.close()

    def start(self, program: Program) -> None:
        program.process = self._spawn(program.argv, program.cwd)
        program.started_at = time.monotonic()
        if program not in self.programs:
            self.programs.append(program)
        if program.on_start is not None:
            program.on_start(program.process)

    def _spawn(self, argv: list[str], cwd: str | None, capture: bool = False) -> subprocess.Popen:
        bound = [sys.executable, "-m", "batchjobs.processes", "bind", str(os.getpid()), "--", *argv]
        return subprocess.Popen(
            bound,
            cwd=cwd,
            env=self.env,
            start_new_session=True,
            stdout=subprocess.PIPE if capture else None,
            stderr=subprocess.STDOUT if capture else None,
            text=capture,
        )

    def watch(self) -> None:
        """One round of supervision: restart programs that died, kill and reap adopted orphans."""
        now = time.monotonic()
        for program in self.programs:
            process = program.process
            if process is not None and process.poll() is None:
                continue
            if process is not None:
                # Killed (the OOM killer, an operator): back at once. Exiting on its own soon after starting
                # is a crash loop, which backs off.
                crashed = process.returncode >= 0 and now - program.started_at < _HEALTHY_AFTER_S
                program.failures = program.failures + 1 if crashed else 0
                delay = RESTART_BACKOFF_S[min(program.failures, len(RESTART_BACKOFF_S) - 1)]
                self.log(f"{program.name} exited with status {process.returncode}; restarting it in {delay}s.")
                # Whatever it started goes with it (a horse, web workers), before a new one takes its place.
                self._kill_group(process)
                program.process = None
                program.restart_at = now + delay
            if now >= program.restart_at:
                self.start(program)
        self._reap_orphans()

    def _reap_orphans(self) -> None:
        ours = {p.process.pid for p in self.programs if p.process is not None}
        for pid in processes.children(os.getpid()):
            if pid in ours:
                continue
            # Adopted: its parent died. Nothing of the stack may run without the program that started it.
            processes.signal_process(pid, signal.SIGKILL)
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass

    # ------------------------------------------------------------------------------------------ stopping

    def stop(self, order: list[tuple[str, ...]]) -> None:
        """Stop the programs, a group at a time (each group named by prefixes of its programs' names, all of
        a group at once), then sweep the stack for anything left."""
        remaining = list(self.programs)
        for prefixes in [*order, ("",)]:
            group = [p for p in remaining if p.name.startswith(prefixes)]
            remaining = [p for p in remaining if p not in group]
            self._stop_group(group)
        self._sweep()

    def _stop_group(self, programs: list[Program]) -> None:
        live = [p for p in programs if p.process is not None and p.process.poll() is None]
        if not live:
            return
        deadline = time.monotonic() + max(p.stop_timeout for p in live)
        steps = max(len(p.stop_signals) for p in live)
        for step in range(steps):
            for program in live:
                if step < len(program.stop_signals) and program.process.poll() is None:
                    processes.signal_group(program.process.pid, program.stop_signals[step])
            step_deadline = time.monotonic() + (deadline - time.monotonic()) / (steps - step)
            while time.monotonic() < step_deadline and any(p.process.poll() is None for p in live):
                time.sleep(0.05)
        for program in live:
            self._kill_group(program.process)

    @staticmethod
    def _kill_group(process: subprocess.Popen) -> None:
        for pid in processes.descendants(process.pid):
            processes.signal_process(pid, signal.SIGKILL)
        processes.signal_group(process.pid, signal.SIGKILL)
        processes.signal_process(process.pid, signal.SIGKILL)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass

    def _sweep(self) -> None:
        # The stack's id may have come from our own environment (a test harness started us): spare our ancestors.
        spared = set(processes.ancestors(os.getpid()))
        for _ in range(50):
            left = [pid for pid in processes.stack_processes(self.stack_id) if pid not in spared]
            if not left:
                break
            for pid in left:
                processes.signal_process(pid, signal.SIGKILL)
            self._reap_orphans()
            time.sleep(0.05)
        self._reap_orphans()
