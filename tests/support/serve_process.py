"""`quotaflow serve` as a user starts it: its own process, a bare environment (no Makefile, no test-suite
variables), the output captured line by line, and its worker processes found by process id in /proc."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType

ADMIN_KEY = "qf_admin_serve_process_0123456789"
START_SECONDS_MAX = 120.0
STOP_SECONDS_MAX = 60.0
SERVING = re.compile(r"quotaflow serving on (http://\S+)")


def bare_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """What a fresh shell has: PATH and HOME (and PYTHONPATH when this checkout's code is chosen by it)."""
    env = {name: os.environ[name] for name in ("PATH", "HOME", "PYTHONPATH", "LANG") if name in os.environ}
    return {**env, "QUOTAFLOW_ADMIN_KEY": ADMIN_KEY, **(extra or {})}


class ServeProcess:
    def __init__(self, *args: str, env: Mapping[str, str] | None = None) -> None:
        self.args = ["--port", "0", *args]
        self.env = bare_env(env)
        self.lines: list[str] = []
        self.url = ""
        self.admin_key = self.env["QUOTAFLOW_ADMIN_KEY"]
        self._changed = threading.Condition()
        self.process: subprocess.Popen[str] | None = None
        self.worker_pids_seen: set[int] = set()

    def __enter__(self) -> ServeProcess:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "quotaflow.cli.main", "serve", *self.args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=self.env,
            cwd=Path(__file__).resolve().parents[2],
        )
        threading.Thread(target=self._read, daemon=True).start()
        found = self.wait_for_line(SERVING, START_SECONDS_MAX)
        assert found is not None, "serve never said where it listens:\n" + self.output
        match = SERVING.search(found)
        assert match is not None
        self.url = match.group(1)
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        if self.process is not None and self.process.poll() is None:
            self.workers()  # known by id, so they can be ended even if serve cannot end them
            self.process.kill()
            self.process.wait(timeout=STOP_SECONDS_MAX)
        for pid in self.worker_pids_seen:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def output(self) -> str:
        with self._changed:
            return "\n".join(self.lines)

    def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()

    def wait_for_line(self, pattern: re.Pattern[str], seconds: float) -> str | None:
        """The first output line matching `pattern`, waiting up to `seconds` for it (None if it never comes)."""
        deadline = time.monotonic() + seconds
        with self._changed:
            while True:
                for line in self.lines:
                    if pattern.search(line):
                        return line
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._changed.wait(min(left, 0.5))

    def workers(self) -> list[int]:
        pids = children(self.pid)
        self.worker_pids_seen.update(pids)
        return pids

    def stop(self, stop_signal: signal.Signals) -> int:
        """Send `stop_signal` and wait for the exit; returns the exit code."""
        assert self.process is not None
        self.process.send_signal(stop_signal)
        return self.process.wait(timeout=STOP_SECONDS_MAX)


def children(parent_pid: int) -> list[int]:
    """The live processes whose parent is `parent_pid`, read from /proc/<pid>/stat."""
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # it ended while we looked
        fields = stat[stat.rindex(")") + 2 :].split()
        state, ppid = fields[0], int(fields[1])
        if ppid == parent_pid and state not in ("Z", "X"):
            found.append(int(entry.name))
    return sorted(found)


def alive(pid: int) -> bool:
    """Whether `pid` is a running process (a zombie, ended but not reaped, counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return state[state.rindex(")") + 2 :].split()[0] not in ("Z", "X")


def eventually(condition: Callable[[], bool], seconds: float, what: str) -> None:
    """Poll `condition` until it holds; fail naming `what` if it still does not after `seconds` (a bound on
    waiting, not a speed check)."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"{what}: still not the case after {seconds:.0f} s"
        time.sleep(0.2)
