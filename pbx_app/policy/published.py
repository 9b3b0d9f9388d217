"""One policy for engines on several hosts (docs/cluster.md): the YAML file stays the source of
truth; `pbx-app publish` checks it and stores the document in PostgreSQL with a NOTIFY, and every
engine started with PBX_POLICY_URL LISTENs and swaps in each new version for new calls, checked
with the same loader as a file. An engine that cannot reach the store keeps its last good policy
(the file's, at start) and says so in /health; nothing about calls waits on the store."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import psycopg
import yaml

from .folder import read_folder
from .loader import analyse_file
from .model import Policy
from .problems import PolicyError
from .store import PolicyStore, stamp as policy_stamp
from .swap import read_in_child, retire

log = logging.getLogger(__name__)

SCHEMA = """CREATE TABLE IF NOT EXISTS policy_documents (
    version bigserial PRIMARY KEY,
    body text NOT NULL,
    source text NOT NULL,
    published_at timestamptz NOT NULL DEFAULT now())"""
CHANNEL = "pbx_policy"
RECHECK = 30.0  # s: read the newest version even without a notification (one could be missed)


def publish(url: str, path: str | Path, announcements_dir: str | Path | None = None) -> int:
    """Checks the file and publishes it; its version. A file with errors is never published."""
    analysis = analyse_file(path, announcements_dir)
    if analysis.errors:
        raise PolicyError(analysis.errors)
    body = policy_text(Path(path))
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(SCHEMA)
        with conn.transaction():
            row = conn.execute("INSERT INTO policy_documents (body, source) VALUES (%s, %s) RETURNING version",
                               (body, str(path))).fetchone()
            conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, str(row[0])))
    return row[0]


async def publish_on_change(url: str, path: Path, announcements_dir: str | Path | None = None,
                            interval: float = 0.5) -> None:
    """Publishes the file whenever it changes (a save on the web page, a sysadmin's edit)."""
    stamp = None
    while True:
        now = await asyncio.to_thread(policy_stamp, path)
        if now is not None and now != stamp:
            try:
                version = await asyncio.to_thread(publish, url, path, announcements_dir)
                log.info("policy %s published as version %d", path, version)
                stamp = now
            except PolicyError as exc:
                log.error("policy %s not published, it has errors:\n%s", path, exc)
                stamp = now
            except (psycopg.Error, OSError) as exc:  # stamp kept: tried again next time
                log.warning("policy %s: cannot publish it yet: %s", path, exc)
        await asyncio.sleep(interval)


def policy_text(path: Path) -> str:
    """The policy as one YAML text: a file's own; a directory's files merged (engines read it
    as "published policy vN")."""
    if not path.is_dir():
        return path.read_text(encoding="utf-8")
    doc, _ = read_folder(path)
    return yaml.safe_dump(_plain(doc), allow_unicode=True, sort_keys=False, width=4096)


def _plain(node):
    if isinstance(node, dict):
        return {k: _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    return node


class PublishedPolicy:
    """The policy holder of an engine that follows the store (same interface as PolicyStore)."""

    def __init__(self, url: str, start: PolicyStore, recheck: float = RECHECK):
        self.url = url
        self.announcements_dir = start.announcements_dir
        self.current: Policy = start.current
        self.reloads = start.reloads
        self.recheck = recheck
        self.version: int | None = None
        self.reachable = False

    def __call__(self) -> Policy:
        return self.current

    @property
    def store_status(self) -> str:
        if self.reachable:
            return "ok"
        return "unreachable: the last good policy stays in force"

    async def reload_off_loop(self) -> bool:
        """SIGHUP: nothing to re-read here; `pbx-app publish` is how a new version comes."""
        log.info("policy: this engine follows the published policy (v%s); publish to change it", self.version)
        return True

    async def watch(self) -> None:
        backoff = 0.5
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self.url, autocommit=True, connect_timeout=5) as conn:
                    await conn.execute(SCHEMA)
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self.reachable, backoff = True, 0.5
                    log.info("policy: following the published policy (%s)", CHANNEL)
                    while True:
                        await self._fetch(conn)
                        async for _ in conn.notifies(timeout=self.recheck, stop_after=1):
                            pass
            except (psycopg.Error, OSError) as exc:
                if self.reachable:
                    log.warning("policy store unreachable (%s): the last good policy stays in force", exc)
                self.reachable = False
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)

    async def _fetch(self, conn: psycopg.AsyncConnection) -> None:
        cur = await conn.execute("SELECT version, body FROM policy_documents ORDER BY version DESC LIMIT 1")
        row = await cur.fetchone()
        if row is None or row[0] == self.version:
            return
        version, body = row
        analysis = await read_in_child(f"published policy v{version}", self.announcements_dir, text=body)
        self.version = version
        if analysis.errors:  # checked before publishing; a file announcements refer to may be missing here
            self.reloads["refused"] += 1
            log.error("published policy v%d refused, the last good policy stays in force:\n%s",
                      version, PolicyError(analysis.errors))
            return
        old, self.current = self.current, analysis.policy  # type: ignore[assignment]
        retire(old)
        del old
        self.reloads["ok"] += 1
        log.info("published policy v%d in force for new calls (%d employees)", version, len(self.current.employees))
