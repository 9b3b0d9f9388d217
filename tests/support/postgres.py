"""A real PostgreSQL server for the tests: Debian's binaries (package `postgresql`, installed by
scripts/testbed install_host_tools), initdb into a temporary folder, the server on 127.0.0.1 on
a free port, run as a non-root user (the `postgres` account when the tests run as root). Never
mocked, never skipped: if it cannot start, the tests that need it fail and say why.

    def test_x(postgres_server): url = postgres_server.new_database()   # a session fixture (tests/conftest.py)
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import psycopg
import pytest

from tests.support.net import free_port
from tests.support.wait import until_sync

SUPERUSER = "pbx"


def _bindir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent
    raise RuntimeError("no PostgreSQL server binaries: install Debian's `postgresql` (scripts/setup does)")


class PostgresServer:
    def __init__(self) -> None:
        self.bindir = _bindir()
        self.user = os.environ.get("PBX_TEST_PG_OS_USER", "postgres") if os.geteuid() == 0 else None
        self.root = Path(tempfile.mkdtemp(prefix="pbx-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self._names = itertools.count(1)

    def _as_user(self) -> dict:
        """Popen arguments that run the program itself as the OS user (no runuser in between:
        the signals that stop the server must reach the postmaster)."""
        if not self.user:
            return {}
        pw = pwd.getpwnam(self.user)
        return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": [], "cwd": self.root}

    def start(self) -> "PostgresServer":
        if self.user:
            try:
                pw = pwd.getpwnam(self.user)
            except KeyError:
                raise RuntimeError(f"no OS user {self.user!r} to run PostgreSQL as (Debian's postgresql package makes it)")
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        subprocess.run(
            [str(self.bindir / "initdb"), "-D", str(self.data), "-U", SUPERUSER, "-A", "trust", "-E", "UTF8", "--no-sync"],
            check=True, capture_output=True, text=True, timeout=60, **self._as_user(),
        )
        log = open(self.root / "postgres.log", "w")
        self.proc = subprocess.Popen(
            [str(self.bindir / "postgres"), "-D", str(self.data), "-h", "127.0.0.1", "-p", str(self.port),
             "-k", str(self.root), "-c", "fsync=off", "-c", "full_page_writes=off"],
            stdout=log, stderr=subprocess.STDOUT, **self._as_user(),
        )
        log.close()

        def answers() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited: {(self.root / 'postgres.log').read_text()[-2000:]}")
            try:
                with psycopg.connect(self.url("postgres"), connect_timeout=2):
                    return True
            except psycopg.OperationalError:  # not listening yet, or "the database system is starting up"
                return False

        try:
            until_sync(answers, 30, f"postgres answers on 127.0.0.1:{self.port}")
        except TimeoutError as exc:
            raise RuntimeError(str(exc)) from None
        return self

    def url(self, database: str) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def new_database(self, prefix: str = "t") -> str:
        """A fresh, empty database; its URL."""
        name = f"{prefix}_{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        """Fast shutdown (SIGINT to the postmaster: open sessions are cut off, the server and its
        workers are gone when it returns); immediate shutdown if that hangs."""
        if self.proc is not None:
            for sig, wait in ((signal.SIGINT, 10), (signal.SIGQUIT, 5), (signal.SIGKILL, 5)):
                if self.proc.poll() is not None:
                    break
                self.proc.send_signal(sig)
                try:
                    self.proc.wait(wait)
                except subprocess.TimeoutExpired:
                    continue
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
