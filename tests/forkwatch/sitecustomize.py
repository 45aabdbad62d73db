"""Put on PYTHONPATH (with FORKWATCH_LOG set) to record every os.fork() a process makes while it runs more
than one thread: the fork that can deadlock the child. Tests read the log and expect it empty."""

import os
import sys
import threading


def _watch(event: str, args) -> None:
    if event == "os.fork" and threading.active_count() > 1:
        names = ", ".join(sorted(t.name for t in threading.enumerate()))
        with open(os.environ["FORKWATCH_LOG"], "a") as log:
            log.write(f"pid {os.getpid()} ({' '.join(sys.argv[:3])}) forked with threads: {names}\n")


if os.environ.get("FORKWATCH_LOG"):
    sys.addaudithook(_watch)
