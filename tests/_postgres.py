"""A real PostgreSQL server for the tests: Debian's binaries, a throwaway cluster, a free port.

`PostgresServer` runs `initdb` in a temporary directory and `postgres` on a free loopback
port (its unix socket in the same directory), as an unprivileged user: PostgreSQL refuses
to run as root, and CI runs as root, so there the server runs as `nobody` (through
`setpriv`). Durability is switched off (`fsync=off`): a test cluster is thrown away, and a
crash of the machine is not what these tests are about.

Each test gets a database of its own (`create_database`), made from `template0` so a
test's leftovers never reach the next one. `stop()` and `start()` restart the same cluster
on the same port (the restart-under-the-replicas test).

The binaries are found under `/usr/lib/postgresql/*/bin` (`scripts/install-system-deps`
installs them). When they are missing a test skips for a developer, and fails under CI
(`tests._shared.missing`), where a silently skipped PostgreSQL suite would hide a broken
backend.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

SERVER_USER = "nobody"  # who runs the server when the tests run as root
START_TIMEOUT = 30.0  # seconds; a bounded wait for the server to accept connections
SUPERUSER = "healthd"


def find_bin_dir() -> Path | None:
    """The newest installed PostgreSQL's bin directory, or None."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda path: int(path.parent.name) if path.parent.name.isdigit() else 0,
    )
    usable = [path for path in candidates if (path / "postgres").exists()]
    return usable[-1] if usable else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PostgresServer:
    """One throwaway cluster; see the module docstring."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="healthd-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.host = "127.0.0.1"
        self._process: subprocess.Popen[bytes] | None = None
        self._databases = 0
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            user = pwd.getpwnam(SERVER_USER)
            os.chown(self.root, user.pw_uid, user.pw_gid)
            self._as_user = [
                "setpriv",
                f"--reuid={user.pw_uid}",
                f"--regid={user.pw_gid}",
                "--clear-groups",
                "--",
            ]

    # -- lifecycle ---------------------------------------------------------------------------

    def init(self) -> None:
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            SUPERUSER,
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        )

    def start(self) -> None:
        log = (self.root / "postgres.log").open("ab")
        self._process = subprocess.Popen(
            [
                *self._as_user,
                str(self.bin_dir / "postgres"),
                "-D",
                str(self.data),
                "-p",
                str(self.port),
                "-k",
                str(self.root),
                "-c",
                f"listen_addresses={self.host}",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=200",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.root,
        )
        log.close()
        self._wait_ready()

    def stop(self) -> None:
        """A fast shutdown (SIGINT): every session is cut, as when a database fails over."""
        process, self._process = self._process, None
        if process is None:
            return
        process.send_signal(2)
        try:
            process.wait(timeout=START_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=START_TIMEOUT)

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    # -- databases -------------------------------------------------------------------------

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@{self.host}:{self.port}/{database}"

    def create_database(self) -> str:
        """A new empty database's name."""
        self._databases += 1
        name = f"t{self._databases}"
        self.psql(f"CREATE DATABASE {name} TEMPLATE template0")
        return name

    def psql(self, sql: str, database: str = "postgres") -> str:
        return self._run(
            "psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
            "-h", str(self.root), "-p", str(self.port), "-U", SUPERUSER,
            "-d", database, "-c", sql,
        )  # fmt: skip

    # -- helpers -----------------------------------------------------------------------------

    def _run(self, tool: str, *args: str) -> str:
        done = subprocess.run(
            [*self._as_user, str(self.bin_dir / tool), *args],
            capture_output=True,
            text=True,
            cwd=self.root,
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{tool} {' '.join(args[:2])} failed: {done.stderr.strip()}")
        return done.stdout

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert self._process is not None
            if self._process.poll() is not None:
                log = (self.root / "postgres.log").read_text(errors="replace")
                raise RuntimeError(f"postgres exited at start: {log[-2000:]}")
            ready = subprocess.run(
                [str(self.bin_dir / "pg_isready"), "-q", "-h", self.host, "-p", str(self.port)],
                check=False,
                timeout=10,
            )
            if ready.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"postgres not ready on port {self.port} after {START_TIMEOUT}s")
            time.sleep(0.05)


def start_server(
    tools: Sequence[str] = ("initdb", "postgres", "pg_isready", "psql"),
) -> PostgresServer:
    """A running server; skips (fails under CI) when PostgreSQL is not installed."""
    from tests._shared import missing  # here: tests._shared imports conftest, which imports this

    bin_dir = find_bin_dir()
    if bin_dir is None or not all((bin_dir / tool).exists() for tool in tools):
        missing(
            "PostgreSQL is not installed (/usr/lib/postgresql/*/bin);"
            " scripts/install-system-deps installs it"
        )
    server = PostgresServer(bin_dir)
    try:
        server.init()
        server.start()
    except BaseException:
        server.destroy()
        raise
    return server
