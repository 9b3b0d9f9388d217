"""What `pbx-app asterisk install` adds to a site's /etc/asterisk, and how it takes it back.

Every addition to a site's own file is one marked block at its end (re-running replaces it, --undo
removes it), so the site's lines are never rewritten. Additions to a section Asterisk already read
use the "(+)" form, which appends to that section. Our own files (pbx_app.conf, pbx_agi.conf, the
ARI password file) are created whole. Nothing is written before every file has been read and
understood; every file touched is first copied into <etc>/pbx_app-backup/<time>/."""

from __future__ import annotations

import difflib
import secrets
import sys
from dataclasses import dataclass, field
from pathlib import Path

from . import conffile
from .blocks import strip_block, with_block
from .conffile import ConfError

OWN_FILES = ("pbx_app.conf", "pbx_agi.conf", "pbx_external.conf")  # our dialplan, copied whole
HIDDEN = "********"
# Asterisk's modules the product needs; a site with autoload=no must load them itself.
MODULES = ("res_http_websocket.so", "res_stasis.so", "res_ari.so", "res_ari_channels.so", "res_ari_events.so",
           "res_ari_asterisk.so", "res_ari_applications.so", "app_stasis.so", "app_stasis_broadcast.so",
           "func_env.so", "cdr_sqlite3_custom.so", "app_voicemail.so", "res_agi.so",
           # external legs (dialplan/pbx_external.conf): the Diversion header, REDIRECTING, the confirm
           "res_pjsip_diversion.so", "func_callerid.so", "app_read.so")
VOICEMAIL_VARIANTS = ("app_voicemail_odbc.so", "app_voicemail_imap.so")
# One row per leg in a SQLite file of our own, beside whatever CDR the site keeps (the engines read
# it back: history/cdr.py's default). The same columns as the test bed's config/asterisk.
CDR_FILE = "pbx_app-cdr.db"
CDR_COLUMNS = ("calldate, answerdate, enddate, clid, src, dst, dcontext, channel, dstchannel, lastapp, lastdata, "
               "duration, billsec, disposition, amaflags, accountcode, uniqueid, linkedid, sequence, userfield")
CDR_FIELDS = ("start, answer, end, clid, src, dst, dcontext, channel, dstchannel, lastapp, lastdata, duration, "
              "billsec, disposition, amaflags, accountcode, uniqueid, linkedid, sequence, userfield")


@dataclass(frozen=True)
class Options:
    etc: Path
    secret_file: Path = Path("/etc/pbx_app/ari-password")
    ari_user: str = "pbx_app"
    http_bind: str = "127.0.0.1:8088"
    decline_varset: bool = False  # stasis.conf: no ChannelVarset messages (AMI VarSet readers lose them)
    dialplan_dir: Path | None = None


@dataclass
class Change:
    path: Path
    before: str | None  # None: not there
    after: str | None  # None: removed
    secret: str = ""  # hidden in what is shown
    mode: int = 0o640

    @property
    def changes(self) -> bool:
        return self.before != self.after

    def diff(self) -> str:
        def lines(text: str | None) -> list[str]:
            return (text or "").replace(self.secret, HIDDEN).splitlines(keepends=True) if self.secret else \
                (text or "").splitlines(keepends=True)
        return "".join(difflib.unified_diff(lines(self.before), lines(self.after),
                                            "/dev/null" if self.before is None else str(self.path),
                                            "/dev/null" if self.after is None else str(self.path)))


@dataclass
class Plan:
    changes: list[Change] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # What Asterisk must be told afterwards. A stock config has no cdr_sqlite3_custom section, so
    # Asterisk declined that module at its start: a reload does not load a declined module.
    after: list[str] = field(default_factory=lambda: ["asterisk -rx 'core reload'",
                                                      "asterisk -rx 'module load cdr_sqlite3_custom.so'"])

    @property
    def pending(self) -> list[Change]:
        return [c for c in self.changes if c.changes]


def dialplan_dir() -> Path:
    """The shipped dialplan: the checkout's dialplan/, or the wheel's share/pbx_app/dialplan."""
    for candidate in (Path(__file__).resolve().parents[2] / "dialplan", Path(sys.prefix) / "share/pbx_app/dialplan"):
        if (candidate / "pbx_app.conf").exists():
            return candidate
    raise FileNotFoundError("the shipped dialplan (pbx_app.conf) is neither in the checkout nor in "
                            f"{Path(sys.prefix) / 'share/pbx_app/dialplan'}")


def _existing(path: Path) -> tuple[str | None, list[conffile.Section]]:
    """A file's text and sections, or (None, []) when it is not there. ConfError if unreadable."""
    if not path.exists():
        return None, []
    text = conffile.read_text(path)
    return text, conffile.parse(strip_block(text), str(path))


def _true(value: str | None) -> bool:
    return (value or "").strip().lower() in ("yes", "true", "y", "t", "1", "on")


def _add_to(sections: list[conffile.Section], name: str) -> str:
    """The header that adds settings to section ``name``: (+) if the file has it, else the section."""
    return f"[{name}](+)" if conffile.section(sections, name) else f"[{name}]"


def plan_install(opts: Options) -> Plan:
    etc = opts.etc
    plan = Plan()
    source = opts.dialplan_dir or dialplan_dir()
    texts = {name: _existing(etc / name) for name in ("extensions.conf", "ari.conf", "http.conf", "cdr.conf",
                                                         "cdr_sqlite3_custom.conf", "stasis.conf", "modules.conf")}
    if texts["extensions.conf"][0] is None:
        raise ConfError(f"{etc / 'extensions.conf'}: not there: is {etc} Asterisk's configuration folder?")

    # The dialplan: our files whole, one #include in the site's extensions.conf.
    for name in OWN_FILES:
        before = conffile.read_text(etc / name) if (etc / name).exists() else None
        plan.changes.append(Change(etc / name, before, (source / name).read_text(encoding="utf-8")))
    text, _ = texts["extensions.conf"]
    already = "pbx_app.conf" in conffile.includes(strip_block(text))
    plan.changes.append(Change(etc / "extensions.conf", text, with_block(text, [] if already else [
        "; pbx_app's contexts (pbx-direct, pbx-direct-agi, ...); send each inbound route there with",
        ";   exten => _1XX,1,Goto(pbx-direct,${EXTEN},1)",
        "#include pbx_app.conf"])))

    # ARI: enabled, and our user with the password the engines read from the secret file.
    password = _password(opts.secret_file)
    text, sections = texts["ari.conf"]
    user = conffile.section(sections, opts.ari_user)
    if user is not None:
        raise ConfError(f"{etc / 'ari.conf'}: already has a [{opts.ari_user}] section of the site's own: "
                        f"choose another name with --ari-user")
    lines = []
    if not _true(conffile.value(sections, "general", "enabled")):
        lines += [_add_to(sections, "general"), "enabled = yes"]
    lines += [f"[{opts.ari_user}]", "type = user", "read_only = no", "password_format = plain", f"password = {password}"]
    plan.changes.append(Change(etc / "ari.conf", text, with_block(text or "", lines), secret=password))
    if opts.secret_file.exists():
        plan.notes.append(f"{opts.secret_file}: kept (the ARI password the engines already use)")
    plan.changes.append(Change(opts.secret_file, _read_or_none(opts.secret_file), password + "\n", secret=password,
                               mode=0o600))

    # HTTP: ARI needs Asterisk's web server; a site that already runs it keeps its binding.
    text, sections = texts["http.conf"]
    host, _, port = opts.http_bind.rpartition(":")
    if _true(conffile.value(sections, "general", "enabled")):
        bound = f"{conffile.value(sections, 'general', 'bindaddr') or '0.0.0.0'}:" \
                f"{conffile.value(sections, 'general', 'bindport') or '8088'}"
        plan.notes.append(f"http.conf: Asterisk's HTTP server is already on at {bound}: kept; PBX_ARI_URL=http://{bound}")
        lines = []
    else:
        lines = [_add_to(sections, "general"), "enabled = yes", f"bindaddr = {host}", f"bindport = {port}"]
    plan.changes.append(Change(etc / "http.conf", text, with_block(text or "", lines)))

    # CDR: every leg, unanswered ones too, in our own SQLite file (history reads it back).
    text, sections = texts["cdr.conf"]
    plan.changes.append(Change(etc / "cdr.conf", text, with_block(text or "", [
        "; one row per Dial() leg, unanswered ones too: history reads a call back from them when no engine watched it",
        _add_to(sections, "general"), "enable = yes", "unanswered = yes", "congestion = yes", "endbeforehexten = yes"])))
    text, _ = texts["cdr_sqlite3_custom.conf"]
    plan.changes.append(Change(etc / "cdr_sqlite3_custom.conf", text, with_block(text or "", [
        f"[{CDR_FILE}]", "table = cdr", f"columns = {CDR_COLUMNS}", f"fields = {CDR_FIELDS}", "busy_timeout = 1000"])))

    # stasis.conf, only when asked: a site whose tools read AMI VarSet events keeps them.
    text, sections = texts["stasis.conf"]
    lines = [_add_to(sections, "declined_message_types"), "decline = ast_channel_varset_type"] if opts.decline_varset else []
    if text is not None or lines:
        plan.changes.append(Change(etc / "stasis.conf", text, with_block(text or "", lines)))

    # modules.conf: a site that loads modules one by one is told what to add. With autoload, Debian's
    # asterisk-modules has app_voicemail_odbc.so beside app_voicemail.so: both load, the ODBC one
    # fails without its database and, unloading, takes VoiceMail() away (seen on 22.10.1 with the
    # stock files). Unless the site chose a storage itself, the ODBC and IMAP variants stay out.
    text, sections = texts["modules.conf"]
    lines = []
    if text is not None:
        chosen = {v for s in sections if s.name == "modules" for k, v in s.settings
                  if k.lower() in ("load", "noload", "require", "preload")}
        if not _true(conffile.value(sections, "modules", "autoload")):
            missing = [m for m in MODULES if m not in chosen]
            if missing:
                plan.notes.append(f"modules.conf: autoload is off; add load => for {', '.join(missing)}")
        elif not chosen & set(VOICEMAIL_VARIANTS):
            lines = ["; one voicemail storage: with autoload the ODBC variant would take VoiceMail() away",
                     _add_to(sections, "modules"), *(f"noload => {m}" for m in VOICEMAIL_VARIANTS)]
        refused = [v for s in sections if s.name == "modules" for k, v in s.settings if k.lower() == "noload"]
        for module in MODULES:
            if module in refused:
                plan.notes.append(f"modules.conf: noload => {module}: pbx_app needs it loaded")
        change = Change(etc / "modules.conf", text, with_block(text, lines))
        plan.changes.append(change)
        if change.changes:
            # app_voicemail cannot be unloaded while other modules use it: VoiceMail() comes back
            # with a restart, which this one puts off until no call is in progress.
            plan.after.append("asterisk -rx 'core restart when convenient'")
    plan.notes.append(f"engines: PBX_ARI_URL=http://{opts.http_bind} PBX_ARI_USER={opts.ari_user} "
                      f"PBX_ARI_PASSWORD_FILE={opts.secret_file}")
    return plan


def plan_undo(opts: Options) -> Plan:
    plan = Plan()
    for name in ("extensions.conf", "ari.conf", "http.conf", "cdr.conf", "cdr_sqlite3_custom.conf", "stasis.conf",
                 "modules.conf"):
        path = opts.etc / name
        if path.exists():
            text = conffile.read_text(path)
            plan.changes.append(Change(path, text, strip_block(text)))
    for name in OWN_FILES:
        if (opts.etc / name).exists():
            plan.changes.append(Change(opts.etc / name, conffile.read_text(opts.etc / name), None))
    if opts.secret_file.exists():
        secret = opts.secret_file.read_text(encoding="utf-8").strip()
        plan.changes.append(Change(opts.secret_file, secret + "\n", None, secret=secret))
    return plan


def _read_or_none(path: Path) -> str | None:
    return path.read_text(encoding="utf-8") if path.exists() else None


def _password(path: Path) -> str:
    """The engines' ARI password: kept from the secret file when there is one (re-running changes
    nothing), else made now."""
    if path.exists():
        kept = path.read_text(encoding="utf-8").strip()
        if kept:
            return kept
    return secrets.token_urlsafe(24)
