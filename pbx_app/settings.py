"""Run-time settings from the environment. The ARI password comes from PBX_ARI_PASSWORD or a
secrets file (PBX_ARI_PASSWORD_FILE) and is never printed."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    # One Asterisk, or several nodes of one site as a comma-separated list: an engine serves them all.
    ari_url: str = "http://127.0.0.1:8088"
    ari_user: str = "pbx_app"
    ari_password: str = field(default="", repr=False)
    # This engine's name: its ARI app is pbx_app-<name>. Engines serving one Asterisk need
    # different names; a restarted engine may keep its name (its callers come straight back to it).
    engine_name: str = "1"
    engine_bind: str = "127.0.0.1:8091"  # an engine's own /health and /metrics
    engines: int = 2  # how many engines `pbx-app run` starts on this host
    # Put before the numbers `pbx-app run` names its engines by: hosts whose engines serve the same
    # Asterisk nodes need different prefixes (e.g. "hostA-"), or two engines would share an ARI app.
    engine_prefix: str = ""
    # Asterisk's CDR, read back to end calls left in progress while no engine watched them.
    cdr_url: str | None = None
    reconcile_grace: float = 10.0  # seconds a call's channel must be gone before it is ended from the CDR
    sweep_interval: float = 10.0  # seconds between looks for abandoned callers and calls left in progress
    # seconds an Asterisk node may stay unlisted before its calls are ended as lost with it
    node_lost_after: float = 120.0
    # seconds a caller may wait in an engine's Stasis before another engine rescues it (wedged owner).
    # 0 (the default): a caller seen waiting on two sweeps is rescued. The fast rescue lists every
    # channel every stranded_after/3 s, a cost per engine that grows with the calls in progress, and
    # only pays where other engines can take the caller (scripts/cluster sets 1.5).
    stranded_after: float = 0.0
    policy_path: Path = Path("config/policy.yaml")
    # Engines on several hosts: follow the policy `pbx-app publish` stores here (postgresql://...),
    # starting from the file's. Unset: the file, polled every second.
    policy_url: str | None = None
    # The self-service page: who may sign in (pbx-app user add), the audit log of changes, and
    # where uploaded/TTS announcements are written (Asterisk sees them at sounds.CUSTOM_DIR).
    users_path: Path = Path("var/users.json")
    audit_path: Path = Path("var/audit.jsonl")
    audit_max_mb: float = 10.0  # the audit log rotates past this (web/audit.py)
    audit_keep: int = 10  # rotated audit files kept
    announcements_dir: Path = Path("/var/lib/pbx_app/sounds")
    web_secure_cookies: bool = False  # set PBX_WEB_SECURE_COOKIES=1 when the page is behind HTTPS
    # The call journal: one URL picks the database (postgresql://user@host:5432/db for PostgreSQL);
    # events are spooled to local disk first, so no row is lost while the database is away.
    database_url: str = "sqlite:////var/lib/pbx_app/journal.db"
    spool_dir: Path = Path("/var/lib/pbx_app/spool")
    history_keep_days: float = 0  # calls older than this are removed (history/retention.py); 0: kept forever
    # Asterisk's voicemail spool (astspooldir/voicemail): the page plays messages from it.
    voicemail_dir: Path = Path("/var/spool/asterisk/voicemail")
    web_bind: str = "127.0.0.1:8090"  # the self-service page (pbx-app web)
    web_nice: int = 10  # the page's CPU priority below the engines' and Asterisk's (nice(2) increment)
    max_calls: int = 500  # calls in progress before new ones go to the dialplan fallback; 0: no limit
    ari_give_up_after: float | None = None  # seconds without ARI before exiting non-zero; None: never
    # How engines make ARI requests: http, or websocket (ari/ws_rest.py): 1.5 ms less app CPU a call,
    # but Asterisk 22.10.1 segfaulted in res_http_websocket at 100 calls/s with it (bench/README.md).
    ari_rest: str = "http"
    # The page under attack (docs/security.md): which Host names it answers for, which peers'
    # X-Forwarded-For is believed, and what one employee may store in the announcements folder.
    web_allowed_hosts: tuple[str, ...] = ("localhost", "127.0.0.1", "::1")
    web_trusted_proxies: tuple[str, ...] = ()
    web_upload_quota_mb: float = 20.0  # per user: recordings and messages made from text
    web_uploads_per_hour: int = 20  # per user: uploads and messages made from text
    web_conversions: int = 2  # sox/espeak-ng runs at a time
    web_unused_upload_hours: float = 24.0  # a page-made sound nothing refers to is removed after this
    # The no-engine fallback: one file per employee, read by the dialplan (calls/app_down.py). The
    # dialplan's global PBX_FALLBACK_DIR names the same folder as Asterisk sees it.
    fallback_dir: Path = Path("/var/lib/pbx_app/fallback")
    agi_bind: str = "127.0.0.1:4573"  # `pbx-app agi`: where the FastAGI server listens
    # Only Asterisk may talk FastAGI to us (docs/security.md): its addresses, the secret file it
    # #includes too, and how many connections may be open at once.
    agi_allowed_peers: tuple[str, ...] = ("127.0.0.1", "::1")
    agi_secret_file: Path = Path("/etc/asterisk/pbx_agi_secret.conf")
    agi_max_connections: int = 512
    callback_interval: float = 5.0  # s between an engine's looks for callback requests whose employee is free
    ami_url: str = ""  # `pbx-app agi`: tcp://host:5038 — with it FastAGI mode offers callbacks (docs/fastagi.md)
    ami_user: str = "pbx_app"
    ami_secret: str = field(default="", repr=False)

    @property
    def ari_urls(self) -> tuple[str, ...]:
        return tuple(u.strip() for u in self.ari_url.split(",") if u.strip()) or (type(self).ari_url,)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, need_ari: bool = True) -> "Settings":
        """``need_ari=False``: the web page's and the FastAGI server's processes, which never talk to ARI."""
        env = dict(os.environ if env is None else env)
        password = env.get("PBX_ARI_PASSWORD", "")
        secret_file = env.get("PBX_ARI_PASSWORD_FILE")
        if secret_file:
            try:
                password = Path(secret_file).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise SystemExit(f"PBX_ARI_PASSWORD_FILE={secret_file}: cannot read it ({exc.strerror})") from None
        if not password and need_ari:
            raise SystemExit("no ARI password: set PBX_ARI_PASSWORD or PBX_ARI_PASSWORD_FILE")
        ami_secret = env.get("PBX_AMI_SECRET", "")
        if env.get("PBX_AMI_SECRET_FILE"):
            try:
                ami_secret = Path(env["PBX_AMI_SECRET_FILE"]).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise SystemExit(f"PBX_AMI_SECRET_FILE={env['PBX_AMI_SECRET_FILE']}: cannot read it ({exc.strerror})") from None
        if env.get("PBX_AMI_URL") and not ami_secret:
            raise SystemExit("PBX_AMI_URL is set but there is no AMI secret: set PBX_AMI_SECRET_FILE")
        return cls(
            ari_url=env.get("PBX_ARI_URL", cls.ari_url),
            ari_user=env.get("PBX_ARI_USER", cls.ari_user),
            ari_password=password,
            engine_name=env.get("PBX_ENGINE_NAME", cls.engine_name),
            engine_bind=env.get("PBX_ENGINE_BIND", cls.engine_bind),
            engines=env_number(env, "PBX_ENGINES", int, cls.engines),
            engine_prefix=env.get("PBX_ENGINE_PREFIX", cls.engine_prefix),
            cdr_url=env.get("PBX_CDR_URL") or None,
            reconcile_grace=env_number(env, "PBX_RECONCILE_GRACE", float, cls.reconcile_grace),
            sweep_interval=env_number(env, "PBX_SWEEP_INTERVAL", float, cls.sweep_interval) or cls.sweep_interval,
            node_lost_after=env_number(env, "PBX_NODE_LOST_AFTER", float, cls.node_lost_after) or cls.node_lost_after,
            stranded_after=env_number(env, "PBX_STRANDED_AFTER", float, cls.stranded_after),
            policy_path=Path(env.get("PBX_POLICY", str(cls.policy_path))),
            policy_url=env.get("PBX_POLICY_URL") or None,
            users_path=Path(env.get("PBX_USERS", str(cls.users_path))),
            audit_path=Path(env.get("PBX_AUDIT_LOG", str(cls.audit_path))),
            audit_max_mb=env_number(env, "PBX_AUDIT_MAX_MB", float, cls.audit_max_mb) or cls.audit_max_mb,
            audit_keep=env_number(env, "PBX_AUDIT_KEEP", int, cls.audit_keep) or 1,
            announcements_dir=Path(env.get("PBX_ANNOUNCEMENTS_DIR") or str(cls.announcements_dir)),
            web_secure_cookies=env.get("PBX_WEB_SECURE_COOKIES", "").strip().lower() in ("1", "yes", "true"),
            database_url=env.get("PBX_DATABASE_URL", cls.database_url),
            spool_dir=Path(env.get("PBX_SPOOL_DIR", str(cls.spool_dir))),
            history_keep_days=env_number(env, "PBX_HISTORY_KEEP_DAYS", float, cls.history_keep_days),
            voicemail_dir=Path(env.get("PBX_VOICEMAIL_DIR") or str(cls.voicemail_dir)),
            web_bind=env.get("PBX_WEB_BIND", cls.web_bind),
            web_nice=env_number(env, "PBX_WEB_NICE", int, cls.web_nice),
            max_calls=env_number(env, "PBX_MAX_CALLS", int, cls.max_calls),
            ari_give_up_after=env_number(env, "PBX_ARI_GIVE_UP_AFTER", float, None),
            ari_rest=_choice(env, "PBX_ARI_REST", ("http", "websocket"), cls.ari_rest),
            web_allowed_hosts=_names(env, "PBX_WEB_ALLOWED_HOSTS", cls.web_allowed_hosts),
            web_trusted_proxies=_names(env, "PBX_WEB_TRUSTED_PROXIES", ()),
            web_upload_quota_mb=env_number(env, "PBX_WEB_UPLOAD_QUOTA_MB", float, cls.web_upload_quota_mb),
            web_uploads_per_hour=env_number(env, "PBX_WEB_UPLOADS_PER_HOUR", int, cls.web_uploads_per_hour),
            web_conversions=max(1, env_number(env, "PBX_WEB_CONVERSIONS", int, cls.web_conversions)),
            web_unused_upload_hours=env_number(env, "PBX_WEB_UNUSED_UPLOAD_HOURS", float, cls.web_unused_upload_hours),
            fallback_dir=Path(env.get("PBX_FALLBACK_DIR") or str(cls.fallback_dir)),
            agi_bind=env.get("PBX_AGI_BIND", cls.agi_bind),
            agi_allowed_peers=_names(env, "PBX_AGI_ALLOWED_PEERS", cls.agi_allowed_peers),
            agi_secret_file=Path(env.get("PBX_AGI_SECRET_FILE") or str(cls.agi_secret_file)),
            agi_max_connections=max(1, env_number(env, "PBX_AGI_MAX_CONNECTIONS", int, cls.agi_max_connections)),
            callback_interval=env_number(env, "PBX_CALLBACK_INTERVAL", float, cls.callback_interval) or cls.callback_interval,
            ami_url=env.get("PBX_AMI_URL", ""),
            ami_user=env.get("PBX_AMI_USER", cls.ami_user),
            ami_secret=ami_secret,
        )


def _choice(env: dict[str, str], name: str, allowed: tuple[str, ...], default: str) -> str:
    text = env.get(name, "").strip().lower() or default
    if text not in allowed:
        raise SystemExit(f"{name}={text[:40]!r}: expected one of {', '.join(allowed)}")
    return text


def env_number(env: dict[str, str], name: str, kind, default):
    """A number from the environment: unset keeps the default; not a number or negative stops the
    program, naming the variable."""
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        value = kind(text)
    except ValueError:
        raise SystemExit(f"{name}={text!r}: not a number") from None
    if value < 0:
        raise SystemExit(f"{name}={text!r}: must not be negative")
    return value


def _names(env: dict[str, str], name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    """A comma-separated list; unset or empty keeps the default."""
    items = tuple(item.strip() for item in env.get(name, "").split(",") if item.strip())
    return items or default
