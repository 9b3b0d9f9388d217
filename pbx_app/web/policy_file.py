"""Edits of the policy YAML the sysadmin also edits: one source of truth.

A save re-reads the file, checks the version the editor started from, changes only the
employee's ``on_no_answer``/``ring_time`` in the round-trip tree (comments, key order and quoting
stay as the sysadmin wrote them), validates the new text with the policy loader, and replaces
the file atomically. The version is a hash of that employee's entry: an edit made on an
outdated view of the entry is refused, while two people saving different employees do not
get in each other's way (each save re-reads the file, so neither loses the other's change).

Saves hold a flock on ``.<file>.lock`` beside the policy (across processes), and just before
the file is replaced it is checked once more: if it changed meanwhile — the sysadmin's editor
or script — the save is refused (the page answers 409) and the hand edit stays."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import fcntl
import hashlib
import io
import json
import os
import re
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import CommentMark
from ruamel.yaml.tokens import CommentToken
from ruamel.yaml.scalarstring import DoubleQuotedScalarString
from ruamel.yaml.util import load_yaml_guess_indent

from ..policy import Policy, PolicyError, Problem, analyse_policy
from ..policy.document import original_key
from ..policy.loader import CALLBACK_KEYS
from .setting import CallbackChoice, NoAnswerSetting, ThenChoice


class UnknownEmployee(LookupError):
    pass


class StaleVersion(Exception):
    def __init__(self, current: str):
        self.current = current
        super().__init__("the setting was changed by someone else since this version")


class InvalidEdit(Exception):
    """The edited policy does not validate (the loader's problems are in ``error``)."""

    def __init__(self, error: PolicyError):
        self.error = error
        super().__init__(str(error))


class FileChanged(Exception):
    """The file changed on disk (a hand edit) while a save was being made; nothing was written.
    ``audited``: the audit log already has the change, which then did not happen."""

    def __init__(self, audited: bool = True):
        self.audited = audited
        super().__init__("the policy file changed while the save was being made")


class PolicyBroken(Exception):
    """The file as it stands does not validate: nothing is edited until the sysadmin fixes it."""

    def __init__(self, error: PolicyError):
        self.error = error
        super().__init__(str(error))


def _yaml_for(text: str) -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap the sysadmin's long lines
    # Write with the file's own indentation. ruamel's guess measures block sequences (the dash
    # offset and the item's indent); the mapping indent is the smallest indent of a nested key.
    nested = [len(m.group(1)) for m in re.finditer(r"^( +)[^\s#-]", text, re.MULTILINE)]
    mapping = min(nested, default=2)
    _, seq_indent, dash_offset = load_yaml_guess_indent(text) if text.strip() else (None, None, None)
    if dash_offset is None:  # no block sequence to learn from
        yaml.indent(mapping=mapping, sequence=mapping + 2, offset=2)
    else:
        yaml.indent(mapping=mapping, sequence=max(seq_indent or 2, dash_offset + 2), offset=dash_offset)
    return yaml


def _plain(node: Any) -> Any:
    if isinstance(node, dict):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    return node if isinstance(node, (int, float, bool)) or node is None else str(node)


@dataclass
class Snapshot:
    """The file as read at one moment: its text, round-trip tree and validated policy."""

    text: str
    doc: CommentedMap
    policy: Policy

    def employee_body(self, ext: str) -> CommentedMap | None:
        employees = self.doc.get("employees")
        key = original_key(employees, ext)
        return None if key is None else employees[key]

    def version(self, ext: str) -> str:
        body = self.employee_body(ext)
        canonical = json.dumps([ext, _plain(body)], sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(canonical.encode()).hexdigest()[:20]

    def raw_announcement(self, ext: str, slot: str = "on_no_answer") -> Any:
        body = self.employee_body(ext)
        action = body.get(slot) if isinstance(body, dict) else None
        return _plain(action.get("announcement")) if isinstance(action, dict) else None


@dataclass(frozen=True)
class Saved:
    before: Snapshot
    after: Snapshot


class PolicyFile:
    """The policy file as the page reads and edits it. Everything here is blocking (parsing,
    validating, fsync): the page calls it from worker threads, never on its event loop."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()  # one save at a time in this process; flock across processes
        self._cache: tuple[tuple, Snapshot] | None = None

    def read(self) -> Snapshot:
        """Raises PolicyBroken when the file does not validate as it stands. An unchanged file
        (same inode, size and mtime) is not parsed again."""
        try:
            st = os.stat(self.path)
            identity = (st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns)
        except OSError:
            identity = None
        cached = self._cache
        if identity is not None and cached is not None and cached[0] == identity:
            return cached[1]
        snapshot = self._read_fresh()
        if identity is not None:
            self._cache = (identity, snapshot)
        return snapshot

    def _read_fresh(self) -> Snapshot:
        try:
            text = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise PolicyBroken(PolicyError([Problem(str(self.path), 1, 1, f"cannot read the policy: {reason}")])) from None
        policy, errors = validate(text, self.path)
        if errors:
            raise PolicyBroken(PolicyError(errors))
        doc = _yaml_for(text).load(text) or CommentedMap()
        return Snapshot(text, doc, policy)

    @property
    def lock_path(self) -> Path:
        """A script that edits the policy may take this flock too, to never race a save."""
        target = Path(os.path.realpath(self.path))
        return target.with_name(f".{target.name}.lock")

    async def save_no_answer(self, ext: str, setting: NoAnswerSetting, version: str,
                             before_write=None) -> Saved:
        return await asyncio.to_thread(self.save_no_answer_now, ext, setting, version, before_write)

    def save_no_answer_now(self, ext: str, setting: NoAnswerSetting, version: str, before_write=None) -> Saved:
        return self.edit_now(ext, lambda body: apply_setting(body, setting), version, before_write)

    async def edit(self, ext: str, change: Callable[[CommentedMap], None], version: str, before_write=None) -> Saved:
        return await asyncio.to_thread(self.edit_now, ext, change, version, before_write)

    def edit_now(self, ext: str, change: Callable[[CommentedMap], None], version: str, before_write=None) -> Saved:
        """Applies ``change`` to ``ext``'s entry in the round-trip tree if the entry is still at
        ``version``. ``before_write`` (the audit record) runs after validation and before the
        file is replaced: a change it cannot record is not made. Raises FileChanged when the
        file changed (a hand edit) while this save was being made: nothing is written then."""
        with self._lock, _flocked(self.lock_path):
            before = self._read_fresh()
            body = before.employee_body(ext)
            if body is None:
                raise UnknownEmployee(ext)
            if before.version(ext) != version:
                raise StaleVersion(before.version(ext))
            yaml = _yaml_for(before.text)
            doc = yaml.load(before.text)
            entry = doc["employees"][original_key(doc["employees"], ext)]
            with keeping_tail(entry):
                change(entry)
            out = io.StringIO()
            yaml.dump(doc, out)
            text = out.getvalue()
            policy, errors = validate(text, self.path)
            if errors:
                raise InvalidEdit(PolicyError(errors))
            after = Snapshot(text, doc, policy)
            if _current_text(self.path) != before.text:
                raise FileChanged(audited=False)
            if before_write is not None:
                before_write(before, after)
            write_atomically(self.path, text, expected=before.text)
            return Saved(before, after)


def validate(text: str, path: Path) -> tuple[Policy | None, list]:
    """The same check the app's policy holder makes when it reloads the file (announcement files
    included), so a saved file is never one the app would refuse."""
    analysis = analyse_policy(text, str(path), check_files=True)
    return analysis.policy, list(analysis.errors)


def apply_setting(body: CommentedMap, setting: NoAnswerSetting) -> None:
    """Changes the employee's ring time and ``on_no_answer`` in place; keys it does not own stay
    untouched."""
    if setting.ring_time is None:
        body.pop("ring_time", None)
    elif "ring_time" in body:
        body["ring_time"] = setting.ring_time
    else:
        keys = list(body)
        at = keys.index("on_no_answer") if "on_no_answer" in keys else len(keys)
        body.insert(at, "ring_time", setting.ring_time)
    apply_action(body, "on_no_answer", setting)


def apply_action(body: CommentedMap, slot: str, setting: NoAnswerSetting | None) -> None:
    """One action slot (on_no_answer, on_busy, on_unreachable, on_absent); None removes it (the
    employee's no-answer action applies)."""
    if setting is None:
        body.pop(slot, None)
        return
    node = body.get(slot)
    if not isinstance(node, CommentedMap):
        node = CommentedMap()
        if body.fa.flow_style():
            node.fa.set_flow_style()
        node["action"] = setting.action
        add_key(body, slot, node)
    node["action"] = setting.action
    if setting.action != "callback":
        for key in CALLBACK_KEYS:  # only a callback may have them: the loader refuses them elsewhere
            node.pop(key, None)
    if setting.action == "drop":
        node["drop"] = setting.drop
        for key in ("to", "announcement"):
            node.pop(key, None)
    elif setting.action == "voicemail":
        for key in ("to", "announcement", "drop"):
            node.pop(key, None)
    elif setting.action == "callback":
        _apply_callback(node, setting)
    else:
        # A forward keeps its 'drop' (how the call ends if the forward fails too) as written.
        node["to"] = _quoted_if_numeric(setting.to or "")
        node["announcement"] = _announcement_yaml(setting)


def _apply_callback(node: CommentedMap, setting: NoAnswerSetting) -> None:
    """The shape README's example has: action, then, announcement, attempts, retry_after,
    expires_after; ``route`` and ``digit_timeout`` stay as the administrator wrote them."""
    callback = setting.callback or CallbackChoice()
    for key in ("to", "drop"):
        node.pop(key, None)
    then = _then_yaml(node.get("then"), callback.then)
    if "then" in node:
        node["then"] = then
    else:
        add_key(node, "then", then, list(node).index("action") + 1)
    node["announcement"] = _announcement_yaml(setting)
    for key in ("attempts", "retry_after", "expires_after"):
        node[key] = getattr(callback, key)


def _then_yaml(old: Any, then: ThenChoice) -> CommentedMap:
    node = CommentedMap()
    node.fa.set_flow_style()
    node["action"] = then.action
    if then.action == "forward":
        node["to"] = _quoted_if_numeric(then.to or "")
        # A fallback forward's own announcement, written by hand, stays while it still forwards.
        if isinstance(old, dict) and old.get("action") == "forward" and "announcement" in old:
            node["announcement"] = old["announcement"]
    elif then.action == "drop":
        node["drop"] = then.drop
    return node


@contextlib.contextmanager
def keeping_tail(body: CommentedMap):
    """What followed the entry's last line — blank lines, the comment over the next employee —
    stays after the entry whatever the edit adds or removes at its end (ruamel keeps it on the
    entry's last key, so a key added after it would land below the blank line)."""
    last = _tail(body)
    token = _tail_token(*last) if last is not None else None
    carried = None
    if token is not None and "\n" in token.value:
        first, rest = token.value.split("\n", 1)
        if rest:
            token.value = first + "\n"
            carried = rest
    yield
    if carried is None:
        return
    last = _tail(body)
    if last is None:
        return
    node, where = last
    existing = _tail_token(node, where)
    if existing is not None:
        existing.value = existing.value.rstrip("\n") + "\n" + carried
    else:
        slot = 0 if isinstance(node, CommentedSeq) else 2
        node.ca.items.setdefault(where, [None, None, None, None])[slot] = CommentToken("\n" + carried, CommentMark(0))


def add_key(body: CommentedMap, key: str, value: Any, at: int | None = None) -> None:
    if at is None or at >= len(body):
        body[key] = value
    else:
        body.insert(at, key, value)


def _tail(node: Any) -> tuple[Any, Any] | None:
    """The (collection, key or index) whose comment holds whatever follows ``node``'s last line."""
    while isinstance(node, (CommentedMap, CommentedSeq)) and len(node) and not node.fa.flow_style():
        where = list(node)[-1] if isinstance(node, CommentedMap) else len(node) - 1
        value = node[where]
        if isinstance(value, (CommentedMap, CommentedSeq)) and len(value) and not value.fa.flow_style():
            node = value
            continue
        return node, where
    return None


def _tail_token(node: Any, where: Any) -> CommentToken | None:
    entry = node.ca.items.get(where)
    token = entry[0 if isinstance(node, CommentedSeq) else 2] if entry else None
    return token if isinstance(token, CommentToken) else None


def _quoted_if_numeric(value: str) -> Any:
    # "102" would read back as a number unquoted; the policy writes extensions quoted.
    return DoubleQuotedScalarString(value) if value.isdigit() else value


def _announcement_yaml(setting: NoAnswerSetting) -> Any:
    a = setting.announcement
    if a.kind in ("standard", "none"):
        return a.kind
    node = CommentedMap()
    node["file"] = a.file
    if a.kind == "tts" and a.text:
        node["text"] = DoubleQuotedScalarString(a.text)
    node.fa.set_flow_style()
    return node


def write_atomically(path: Path, text: str, expected: str | None = None) -> None:
    """Temp file in the same folder, fsync, then it takes the target's place in one step: a
    reader sees the old file or the new one, never a mix. Mode and owner of the old file are
    kept. With ``expected``, the file must still hold that text: the two are exchanged
    atomically (renameat2 RENAME_EXCHANGE), and if what came out is not ``expected`` — a hand
    edit landed at that instant — it is put back and FileChanged raised, so no edit is lost."""
    target = Path(os.path.realpath(path))  # a symlinked policy: replace the file it points at
    try:
        st = target.stat()
    except FileNotFoundError:
        st = None
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            if st is not None:
                os.fchmod(f.fileno(), st.st_mode & 0o7777)
                try:
                    os.fchown(f.fileno(), st.st_uid, st.st_gid)
                except PermissionError:
                    pass
            os.fsync(f.fileno())
        if expected is None or st is None or not _exchange(tmp, target):
            if expected is not None and _current_text(target) != expected:
                raise FileChanged()
            os.replace(tmp, target)
        else:
            displaced = _current_text(Path(tmp))
            if displaced != expected:
                _exchange(tmp, target)  # the hand edit goes back in place
                if _current_text(Path(tmp)) != text:
                    _exchange(tmp, target)  # a newer edit had replaced ours meanwhile: it stays
                raise FileChanged()
    finally:
        Path(tmp).unlink(missing_ok=True)
    dir_fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _current_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100
_libc = ctypes.CDLL(None, use_errno=True)
_renameat2 = getattr(_libc, "renameat2", None)


def _exchange(a: str | Path, b: str | Path) -> bool:
    """Swaps two paths in one step; False where the system or file system cannot."""
    if _renameat2 is None:
        return False
    if _renameat2(_AT_FDCWD, os.fsencode(str(a)), _AT_FDCWD, os.fsencode(str(b)), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(b))


@contextlib.contextmanager
def _flocked(path: Path):
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
