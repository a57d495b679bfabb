"""Run AWS DynamoDB Local (the Java emulator) for tests.

The emulator is fetched into ``.cache/dynamodb-local`` by
``tools/fetch-ddb-local.sh`` (``make ddb-local``). Nothing here downloads
anything, and nothing here skips: if the emulator cannot run, the caller gets a
``RuntimeError`` that says why and how to fix it.

Usage::

    with DynamoDBLocal() as ddb:
        client = boto3_client(ddb.endpoint)
        client.list_tables()
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import boto3
import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

REPO_ROOT = Path(__file__).resolve().parents[2]
JAR_DIR = REPO_ROOT / ".cache" / "dynamodb-local"
JAR_PATH = JAR_DIR / "DynamoDBLocal.jar"
LIB_DIR = JAR_DIR / "DynamoDBLocal_lib"

REGION = "us-east-1"
ACCESS_KEY = "local"
SECRET_KEY = "local"
FIX_HINT = "run `make ddb-local` (or `bash tools/fetch-ddb-local.sh`) to install it"

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
_POLL_INTERVAL_S = 0.2
_LOG_TAIL_LINES = 40


def boto3_client(endpoint: str, **config: Any) -> Any:
    """Return a DynamoDB client for a DynamoDB Local ``endpoint``.

    Standard retry mode, short timeouts, dummy credentials, no HTTP proxy and
    no named profile from the environment (the emulator is on loopback).
    ``config`` overrides individual ``botocore.config.Config`` options.
    """
    options: dict[str, Any] = {
        "retries": {"mode": "standard", "max_attempts": 3},
        "connect_timeout": 3,
        "read_timeout": 5,
        "proxies": {},
    }
    options.update(config)
    # Ignore AWS_PROFILE / AWS_DEFAULT_PROFILE: a developer's (possibly absent)
    # real-account profile must neither break nor steer a local test client.
    isolated = botocore.session.Session(session_vars={"profile": (None, None, None, None)})
    session = boto3.session.Session(
        botocore_session=isolated,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name=REGION,
    )
    return session.client("dynamodb", endpoint_url=endpoint, config=Config(**options))


def _free_loopback_port() -> int:
    """Ask the kernel for a currently free TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class DynamoDBLocal:
    """A DynamoDB Local process on a free loopback port, as a context manager.

    ``.endpoint`` is the ``http://127.0.0.1:PORT`` URL once started. The server
    is in-memory with a shared database and telemetry disabled. Note that
    DynamoDB Local has no bind-address option: it listens on all interfaces.
    """

    def __init__(self, jar_dir: Path = JAR_DIR, start_timeout: float = START_TIMEOUT_S) -> None:
        """Configure (but do not start) an emulator from ``jar_dir``."""
        self.jar_dir = Path(jar_dir)
        self.start_timeout = start_timeout
        self.port: int | None = None
        self.startup_seconds: float | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._tmpdir: Path | None = None
        self._log: IO[bytes] | None = None

    @property
    def endpoint(self) -> str:
        """The emulator's URL; only valid while it runs."""
        if self.port is None or self._proc is None:
            raise RuntimeError("DynamoDB Local is not running")
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path | None:
        """The file receiving the emulator's stdout and stderr, if started."""
        return None if self._tmpdir is None else self._tmpdir / "dynamodb-local.log"

    def command(self, java: str, port: int) -> list[str]:
        """The java command line that runs the emulator on ``port``."""
        return [
            java,
            f"-Djava.library.path={self.jar_dir / 'DynamoDBLocal_lib'}",
            "-jar",
            str(self.jar_dir / "DynamoDBLocal.jar"),
            "-inMemory",
            "-disableTelemetry",
            "-sharedDb",
            "-port",
            str(port),
        ]

    def start(self) -> DynamoDBLocal:
        """Start the emulator and wait until it answers ``ListTables``."""
        if self._proc is not None:
            raise RuntimeError("DynamoDB Local is already running")
        jar = self.jar_dir / "DynamoDBLocal.jar"
        lib = self.jar_dir / "DynamoDBLocal_lib"
        if not jar.is_file() or not lib.is_dir():
            raise RuntimeError(f"DynamoDB Local is not installed: {jar} or {lib} is missing; {FIX_HINT}")
        java = shutil.which("java")
        if java is None:
            raise RuntimeError(
                f"DynamoDB Local needs Java 17+, but `java` is not on PATH; install a JDK, then {FIX_HINT}"
            )

        self._tmpdir = Path(tempfile.mkdtemp(prefix="ddb-local-"))
        self.port = _free_loopback_port()
        started = time.monotonic()
        try:
            self._log = (self._tmpdir / "dynamodb-local.log").open("wb")
            self._proc = subprocess.Popen(
                self.command(java, self.port),
                cwd=self._tmpdir,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
            )
            self._wait_ready(started)
        except Exception as exc:
            detail = self._failure_detail(exc)
            self.stop()
            raise RuntimeError(detail) from exc
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started
        return self

    def _wait_ready(self, started: float) -> None:
        """Poll ``ListTables`` until it succeeds, the process dies, or time runs out."""
        assert self._proc is not None
        assert self.port is not None
        probe = boto3_client(
            f"http://127.0.0.1:{self.port}",
            retries={"mode": "standard", "max_attempts": 1},
            connect_timeout=1,
            read_timeout=2,
        )
        deadline = started + self.start_timeout
        last_error = "no attempt yet"
        while True:
            code = self._proc.poll()
            if code is not None:
                raise RuntimeError(f"DynamoDB Local exited with code {code} before answering on port {self.port}")
            try:
                probe.list_tables(Limit=1)
            except (BotoCoreError, ClientError) as exc:
                last_error = f"{type(exc).__name__}: {exc}"
            else:
                if self._proc.poll() is None:  # it answered, and it is still our process
                    return
                continue
            if time.monotonic() >= deadline:
                raise RuntimeError(
                    f"DynamoDB Local did not answer on port {self.port} within {self.start_timeout:g}s "
                    f"(last error: {last_error})"
                )
            time.sleep(_POLL_INTERVAL_S)

    def _failure_detail(self, exc: BaseException) -> str:
        """Describe a failed start: the cause, the command, the log tail and the fix."""
        cmd = " ".join(self.command("java", self.port or 0))
        return (
            f"could not start DynamoDB Local: {exc}\n"
            f"command: {cmd}\n"
            f"--- last {_LOG_TAIL_LINES} log lines ---\n{self._log_tail()}\n---\n"
            f"If it is missing or broken, {FIX_HINT}."
        )

    def _log_tail(self) -> str:
        """The last lines of the emulator's log, or a note that there are none."""
        if self._log is not None:
            self._log.flush()
        path = self.log_path
        if path is None or not path.exists():
            return "(no log)"
        lines = path.read_text(errors="replace").splitlines()[-_LOG_TAIL_LINES:]
        return "\n".join(lines) if lines else "(log is empty)"

    def stop(self) -> None:
        """Terminate the emulator (kill it if it lingers) and remove its temp dir."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=STOP_TIMEOUT_S)
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def __enter__(self) -> DynamoDBLocal:
        """Start the emulator."""
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the emulator."""
        self.stop()
