"""A real PostgreSQL server for the tests: Debian's binaries (package `postgresql`, installed by
scripts/testbed install_host_tools), initdb into a temporary folder, the server on 127.0.0.1 on
a free port, run as a non-root user (the `postgres` account when the tests run as root). Never
mocked, never skipped: if it cannot start, the tests that need it fail and say why.

    from tests.support.postgres import postgres_server   # a session fixture
    def test_x(postgres_server): url = postgres_server.new_database()
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

SUPERUSER = "pbx"


def _bindir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent
    raise RuntimeError("no PostgreSQL server binaries: install Debian's `postgresql` (scripts/setup does)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    def __init__(self) -> None:
        self.bindir = _bindir()
        self.user = os.environ.get("PBX_TEST_PG_OS_USER", "postgres") if os.geteuid() == 0 else None
        self.root = Path(tempfile.mkdtemp(prefix="pbx-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.proc: subprocess.Popen | None = None
        self._names = itertools.count(1)

    def _as_user(self, cmd: list[str]) -> list[str]:
        return ["runuser", "-u", self.user, "--", *cmd] if self.user else cmd

    def start(self) -> "PostgresServer":
        if self.user:
            try:
                pw = pwd.getpwnam(self.user)
            except KeyError:
                raise RuntimeError(f"no OS user {self.user!r} to run PostgreSQL as (Debian's postgresql package makes it)")
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        subprocess.run(
            self._as_user([str(self.bindir / "initdb"), "-D", str(self.data), "-U", SUPERUSER, "-A", "trust",
                           "-E", "UTF8", "--no-sync"]),
            check=True, capture_output=True, text=True,
        )
        log = open(self.root / "postgres.log", "w")
        if self.user:
            os.chown(self.root / "postgres.log", pwd.getpwnam(self.user).pw_uid, -1)
        self.proc = subprocess.Popen(
            self._as_user([str(self.bindir / "postgres"), "-D", str(self.data), "-h", "127.0.0.1", "-p", str(self.port),
                           "-k", str(self.root), "-c", "fsync=off", "-c", "full_page_writes=off"]),
            stdout=log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited: {(self.root / 'postgres.log').read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    pass
                import psycopg

                with psycopg.connect(self.url("postgres"), connect_timeout=2):
                    return self
            except OSError:
                pass
            except Exception:  # starting up: "the database system is starting up"
                pass
            time.sleep(0.1)
        raise RuntimeError(f"postgres did not answer on 127.0.0.1:{self.port}")

    def url(self, database: str) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def new_database(self, prefix: str = "t") -> str:
        """A fresh, empty database; its URL."""
        import psycopg

        name = f"{prefix}_{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # fast shutdown: clients still connected are cut off
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server():
    server = PostgresServer()
    try:
        server.start()
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", "") or ""
        server.stop()
        pytest.fail(f"could not start a PostgreSQL server for the tests: {exc}\n{detail}", pytrace=False)
    yield server
    server.stop()
