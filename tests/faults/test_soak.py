"""The whole stack as `make run` starts it, through benchmarks/soak.py: a mixed workload while its processes
are SIGKILLed at random, and repeated stops by Ctrl-C and SIGTERM. Every invariant must hold at the end."""

import json
import subprocess
import sys

import pytest

from tests.helpers import PROJECT_ROOT

pytestmark = pytest.mark.faults


def soak(*args: str, timeout: float) -> dict:
    done = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "benchmarks" / "soak.py"), *args],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=timeout,
    )
    lines = done.stdout.strip().splitlines()
    assert lines and lines[-1].startswith("{"), f"soak.py failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    result = json.loads(lines[-1])
    result["_report"] = "\n".join(lines[-30:-1])
    return result


def test_two_minutes_of_mixed_work_under_chaos_lose_nothing():
    result = soak("--minutes", "2", "--settle-timeout", "600", timeout=1500)
    report = result["_report"]
    assert result["kills"] >= 10, report
    assert result["jobs"] >= 30, report
    assert result["stuck"] == 0, report
    assert result["lost_lines"] == 0 and result["doubled_lines"] == 0, report
    assert result["published_twice"] == 0, report
    assert result["orphans"] == 0, report
    assert result["max_recovery_s"] <= result["recovery_bound_s"], report
    assert not result["driver_errors"], report


def test_ctrl_c_and_sigterm_stop_everything_every_time():
    result = soak("--stops", "4", timeout=600)
    assert result["leftovers"] == 0, result["_report"]
