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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import CommentMark
from ruamel.yaml.tokens import CommentToken
from ruamel.yaml.scalarstring import DoubleQuotedScalarString
from ruamel.yaml.util import load_yaml_guess_indent

from ...policy import Policy, PolicyError, Problem, analyse_file, analyse_policy
from ...policy.document import Marks, MarkedMap, original_key, read_yaml, source_of
from ...policy.folder import mark_source, policy_files
from ...policy.loader import CALLBACK_KEYS, announcements_folder
from ...policy.store import stamp
from .no_answer import CallbackChoice, NoAnswerSetting, ThenChoice
from .policy_entry import checked_entry, checked_table, cut, edited_entry, entry_lines, indented


class UnknownEmployee(LookupError):
    pass


class StaleVersion(Exception):
    def __init__(self, current: str):
        self.current = current
        super().__init__("the setting was changed by someone else since this version")


class _NotValid(Exception):
    """A policy that does not validate; the loader's problems are in ``error``."""

    def __init__(self, error: PolicyError):
        self.error = error
        super().__init__(str(error))


class InvalidEdit(_NotValid):
    """The edited policy does not validate: the edit is not made."""


class FileChanged(Exception):
    """The file changed on disk (a hand edit) while a save was being made; nothing was written.
    ``audited``: the audit log already has the change, which then did not happen."""

    def __init__(self, audited: bool = True):
        self.audited = audited
        super().__init__("the policy file changed while the save was being made")


class PolicyBroken(_NotValid):
    """The file as it stands does not validate: nothing is edited until the sysadmin fixes it."""


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
    """The file as read at one moment: its text, its tree as libyaml read it (with marks) and
    the validated policy."""

    text: str
    doc: dict
    policy: Policy
    search: list | None = field(default=None, repr=False, compare=False)  # view.search_index's, once built

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

    def announcement_file(self, ext: str, slot: str = "on_no_answer") -> str | None:
        """The recording a setting of the employee plays, by file name, if it plays one."""
        raw = self.raw_announcement(ext, slot)
        return raw.get("file") if isinstance(raw, dict) and isinstance(raw.get("file"), str) else None


@dataclass(frozen=True)
class Saved:
    before: Snapshot
    after: Snapshot
    old_text: str = ""  # the file the save rewrote, before and after (a directory's: that one file)
    new_text: str = ""


def _restamped(identity: tuple, target: Path) -> tuple | None:
    """A policy directory's stamp (policy/folder.py) with ``target``'s entry brought up to date;
    None where ``target`` is not one of its files."""
    try:
        st = os.stat(target)
    except OSError:
        return None
    entries = list(identity)
    for i, entry in enumerate(entries):
        if entry[0] == str(target):
            entries[i] = (entry[0], st.st_mtime_ns, st.st_size, st.st_ino)
            return tuple(entries)
    return None


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
            if self.path.is_dir():
                identity = stamp(self.path)
            else:
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
        if self.path.is_dir():
            analysis = analyse_file(self.path, keep_document=True)
            if analysis.errors:
                raise PolicyBroken(PolicyError(analysis.errors))
            return Snapshot("", analysis.document, analysis.policy)  # type: ignore[arg-type]
        try:
            text = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise PolicyBroken(PolicyError([Problem(str(self.path), 1, 1, f"cannot read the policy: {reason}")])) from None
        policy, errors, doc = validate(text, self.path)
        if errors:
            raise PolicyBroken(PolicyError(errors))
        return Snapshot(text, doc if isinstance(doc, dict) else {}, policy)

    @property
    def lock_path(self) -> Path:
        """A script that edits the policy may take this flock too, to never race a save."""
        target = Path(os.path.realpath(self.path))
        return target.with_name(f".{target.name}.lock")

    async def edit(self, ext: str, change: Callable[[CommentedMap], None], version: str, before_write=None) -> Saved:
        return await asyncio.to_thread(self.edit_now, ext, change, version, before_write)

    def edit_now(self, ext: str, change: Callable[[CommentedMap], None], version: str, before_write=None) -> Saved:
        """Applies ``change`` to ``ext``'s entry in the round-trip tree if the entry is still at
        ``version``. ``before_write`` (the audit record) runs after validation and before the
        file is replaced: a change it cannot record is not made. Raises FileChanged when the
        file changed (a hand edit) while this save was being made: nothing is written then."""
        with self._lock, _flocked(self.lock_path):
            before = self.read()  # what this process last read or wrote, if the file is still that
            identity = self._cache[0] if self._cache is not None and self._cache[1] is before else None
            body = before.employee_body(ext)
            if body is None:
                raise UnknownEmployee(ext)
            if before.version(ext) != version:
                raise StaleVersion(before.version(ext))
            if self.path.is_dir():
                target, old, new, after = self._edit_in_folder(before, ext, change)
            else:
                after = self._edit_entry(before, ext, change) or self._edit_whole(before, ext, change)
                target, old, new = self.path, before.text, after.text
            if _current_text(target) != old:
                raise FileChanged(audited=False)
            if before_write is not None:
                before_write(before, after)
            write_atomically(target, new, expected=old)
            self._remember(after, target, identity)
            return Saved(before, after, old, new)

    def _edit_in_folder(self, before: Snapshot, ext: str, change) -> tuple[Path, str, str, Snapshot]:
        """A policy directory: the employee's own file is round-tripped and checked."""
        employees = before.doc["employees"]
        key = original_key(employees, ext)
        target = Path(source_of(employees, key) or "")
        old = target.read_text(encoding="utf-8")
        yaml = _yaml_for(old)
        doc = yaml.load(old)
        entry = doc["employees"][original_key(doc["employees"], ext)]
        with keeping_tail(entry):
            change(entry)
        out = io.StringIO()
        yaml.dump(doc, out)
        new = out.getvalue()
        tree, problems = read_yaml(new, str(target))
        table = tree.get("employees") if isinstance(tree, dict) else None
        if problems or not isinstance(table, dict) or original_key(table, ext) is None:
            raise InvalidEdit(PolicyError(problems or [Problem(str(target), 1, 1, f"employees.{ext}: the entry did not survive the edit")]))
        mark_source(table, str(target))
        policy, errors = checked_table(table, ext, before.doc, before.policy, str(target), announcements_folder(before.policy))
        if errors:
            raise InvalidEdit(PolicyError(errors))
        after = Snapshot("", _with_entry(before.doc, ext, table, 0, 0), policy)  # type: ignore[arg-type]
        return target, old, new, after

    def _edit_entry(self, before: Snapshot, ext: str, change) -> Snapshot | None:
        """Only the entry's own lines are round-tripped and checked (policy_entry.py); None
        where the entry is not laid out so that they can be cut out."""
        lines = before.text.splitlines(keepends=True)
        entry = entry_lines(before.doc, ext, len(lines))
        found = cut(lines, entry) if entry is not None else None
        if found is None or not lines[-1].endswith("\n"):
            return None
        fragment, end = found
        written = edited_entry(fragment, ext, change, _yaml_for, keeping_tail)
        new = indented(written, entry.column)
        text = "".join(lines[:entry.start]) + new + "".join(lines[end:])
        folder = announcements_folder(before.policy)
        tree, policy, errors = checked_entry(written, ext,
                                             entry.start, entry.column, before.doc, before.policy,
                                             str(self.path), folder)
        if errors:
            raise InvalidEdit(PolicyError(errors))
        moved = new.count("\n") - (end - entry.start)
        return Snapshot(text, _with_entry(before.doc, ext, tree, entry.start, moved), policy)  # type: ignore[arg-type]

    def _edit_whole(self, before: Snapshot, ext: str, change) -> Snapshot:
        yaml = _yaml_for(before.text)
        doc = yaml.load(before.text)
        entry = doc["employees"][original_key(doc["employees"], ext)]
        with keeping_tail(entry):
            change(entry)
        out = io.StringIO()
        yaml.dump(doc, out)
        text = out.getvalue()
        policy, errors, tree = validate(text, self.path)
        if errors:
            raise InvalidEdit(PolicyError(errors))
        return Snapshot(text, tree, policy)

    def _remember(self, after: Snapshot, target: Path, identity: tuple | None) -> None:
        """The file as just written is what the next read gets, unless it changed since."""
        if self.path.is_dir():
            # The directory as read before the save, with the one file written: 10,000 stats
            # fewer (~50 ms) than stamping it again, and a hand edit of another file meanwhile
            # still shows on the next read.
            restamped = _restamped(identity, target) if identity is not None else None
            self._cache = (restamped, after) if restamped is not None else None
            return
        try:
            st = os.stat(self.path)
        except OSError:
            return
        if _current_text(self.path) == after.text:
            self._cache = ((st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns), after)

    def all_text(self) -> str:
        """Every word of the policy as written (comments too): a directory's files one after
        another. Raises OSError when it cannot be read."""
        if not self.path.is_dir():
            return self.path.read_text(encoding="utf-8")
        return "\n".join(p.read_text(encoding="utf-8") for p in policy_files(self.path))


def _with_entry(doc: dict, ext: str, tree: dict, start: int, moved: int) -> dict:
    """A copy of ``doc`` with ``ext``'s entry from ``tree`` and the places of the entries and
    sections below it moved by ``moved`` lines (they are where the next save cuts)."""
    def shifted(node: dict) -> dict:
        copy = MarkedMap(node)
        marks = getattr(node, "lc", None)
        if isinstance(marks, Marks) and isinstance(marks.places, dict):
            copy.lc = Marks(marks.line, marks.col, marks.source)
            copy.lc.sources = marks.sources
            copy.lc.places = dict(marks.places) if not moved else {
                k: (p if p[0] <= start else (p[0] + moved, p[1], p[2] + moved, p[3])) for k, p in marks.places.items()}
        return copy

    top = shifted(doc)
    employees = top["employees"] = shifted(doc["employees"])
    key = original_key(employees, ext)
    new_key = original_key(tree, ext)
    employees[key] = tree[new_key]
    if isinstance(getattr(employees, "lc", None), Marks):
        employees.lc.places[key] = tree.lc.places[new_key]
    return top


def validate(text: str, path: Path) -> tuple[Policy | None, list, Any]:
    """The same check the app's policy holder makes when it reloads the file (announcement files
    included), so a saved file is never one the app would refuse; and the tree read."""
    analysis = analyse_policy(text, str(path), check_files=True, keep_document=True)
    return analysis.policy, list(analysis.errors), analysis.document


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
    """The shape docs/callback.md's example has: action, then, announcement, attempts, retry_after,
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
