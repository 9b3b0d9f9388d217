"""The guard as a process runs it (an ARI engine, the FastAGI server): its counts in the journal's
database, refusals fed to /metrics, the site's limit told to administrators through the notices'
outbox when notices are set up (PBX_SMTP_HOST or PBX_NOTICE_WEBHOOK_URL)."""

from __future__ import annotations

import os
from typing import Callable

from ..notices.admin import AdminNotices
from ..notices.database import open_database
from ..notices.settings import notices_enabled
from ..policy.model import Policy
from .guard import OutboundGuard
from .stores import open_limits


def open_guard(database_url: str, policy: Callable[[], Policy], refused: Callable[[str], None],
               env: dict[str, str] | None = None) -> OutboundGuard:
    """``refused(reason)``: e.g. ``lambda r: metrics.outbound_refused.labels(r).inc()``. Close
    with ``await guard.close()``."""
    env = dict(os.environ if env is None else env)
    admin = AdminNotices(open_database(database_url), policy, webhook=bool(env.get("PBX_NOTICE_WEBHOOK_URL")))
    guard = OutboundGuard(open_limits(database_url), refused=refused,
                          tell=admin.outbound_limit if notices_enabled(env) else None)
    guard.closing.append(admin.db.close)
    return guard
