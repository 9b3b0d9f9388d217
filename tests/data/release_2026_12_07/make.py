"""Made the databases in this folder with the code of commit c2c0cd1 (the release of 2026-12-07,
before schema versions): the stores of that day created their tables and wrote a few rows, so
the migration tests start from what a site running that release really has on disk. Kept to
show how; running it on a later release makes a later schema, which is not what the tests want.

    .venv/bin/python tests/data/release_2026_12_07/make.py"""

import asyncio
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

from pbx_app.callback.requests import CallbackRequest
from pbx_app.callback.sqlite_requests import SqliteCallbacks
from pbx_app.callback.postgres_requests import PostgresCallbacks
from pbx_app.history.database import open_store
from pbx_app.history.events import CallEnded, CallStarted, LegEnded, LegStarted
from pbx_app.history.spool import Position
from pbx_app.notices.database import open_database
from pbx_app.notices.notice import Notice
from pbx_app.notices.outbox import Outbox

HERE = Path(__file__).parent
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)


def events():
    at = lambda s: T0 + timedelta(seconds=s)  # noqa: E731
    return [
        CallStarted("old-1", at(0), "79001234567", "101", "ch-1", channel_name="PJSIP/client-1"),
        LegStarted("old-1", 1, at(0), "employee", ("101",)),
        LegEnded("old-1", 1, at(20), "no_answer"),
        LegStarted("old-1", 2, at(20), "voicemail", ("101",)),
        LegEnded("old-1", 2, at(40), "message_left"),
        CallEnded("old-1", at(41), "voicemail", "message left"),
        CallStarted("old-2", at(60), "79007654321", "102", "ch-2", channel_name="PJSIP/client-2"),
        LegStarted("old-2", 1, at(60), "employee", ("102",)),
        LegEnded("old-2", 1, at(70), "answered", answered_by="102", answered_at=at(65)),
        CallEnded("old-2", at(130), "answered", "answered by 102"),
    ]


async def fill(journal, callbacks, outbox_db):
    await journal.ship("spool-a", None, events(), Position(3, 1234))
    await callbacks.add(CallbackRequest("old-3", "103", "PJSIP/103", "79005550000", "PJSIP/{number}@trunk",
                                        T0, T0 + timedelta(hours=1), T0, 3, 60, 2))
    await Outbox(outbox_db).add([("old-1", [Notice("old-1", "voicemail", "boss@example.com", "en",
                                                   {"caller": "79001234567"})])], T0)
    for s in (journal, callbacks, outbox_db):
        await s.close()


async def main(pg_url: str | None):
    db = HERE / "journal.sqlite"
    db.unlink(missing_ok=True)
    url = f"sqlite:///{db}"
    await fill(open_store(url), SqliteCallbacks(url), open_database(url))
    if pg_url:
        await fill(open_store(pg_url), PostgresCallbacks(pg_url), open_database(pg_url))
        dump = subprocess.run(["pg_dump", "--no-owner", "--no-privileges", "--inserts", pg_url],
                              check=True, capture_output=True, text=True).stdout
        (HERE / "journal.postgres.sql").write_text(dump)


if __name__ == "__main__":
    import sys
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else None))
