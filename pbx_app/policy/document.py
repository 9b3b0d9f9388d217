"""The YAML text as a tree that remembers where each value stood, so errors can point at it.

Read with libyaml (PyYAML's C parser) into plain dicts and lists that carry their marks: a
company's policy (10,000 employees) reads in well under a second, where the round-trip parser
took ten. Scalars resolve as YAML 1.2 (``yes``, ``on``, ``010`` and ``10:30`` stay what the
sysadmin typed, as they did with ruamel). Duplicate keys are found here, each with both places.
Text libyaml refuses is read once more by ruamel, whose messages (and our hints for them) say
more about the usual slips; only the file being edited on the page is ever round-tripped."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import yaml
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.resolver import BaseResolver

from .problems import Problem

if TYPE_CHECKING:
    from ruamel.yaml.error import MarkedYAMLError
    from ruamel.yaml.nodes import Node

# ruamel's words for the usual slips, and what a sysadmin should look at.
_HINTS = (
    ("found character '\\t'", "a tab: indent with spaces only"),
    ("expected <block end>", "the indentation of this line does not match the lines above it"),
    ("mapping values are not allowed here", "a ':' where it cannot be: quote the value, or check the indentation"),
    ("could not find expected ':'", "a key without ':' (or a value that needs quotes)"),
    ("found undefined alias", "an alias (*name) with no anchor (&name) above it"),
    ("found unexpected end of stream", "a quote or bracket that is never closed"),
)


def _yaml_problem(exc: MarkedYAMLError, source: str) -> Problem:
    mark = exc.problem_mark or exc.context_mark
    line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    what = exc.problem or exc.context or "cannot be read"
    hint = next((h for needle, h in _HINTS if needle in what), None)
    return Problem(source, line, col, f"not valid YAML: {hint} ({what})" if hint else f"not valid YAML: {what}")


class Marks:
    """0-based places of a mapping's keys and values (or a list's items), as ruamel's ``lc``."""

    __slots__ = ("line", "col", "places", "duplicates", "source", "sources")

    def __init__(self, line: int, col: int, source: str | None = None):
        self.line, self.col = line, col
        self.source = source  # the file, where a policy is a directory of them
        self.sources: dict[Any, str] | None = None  # per key, for a table merged from several files
        self.places: dict[Any, tuple[int, int, int, int]] | list[tuple[int, int, int, int]] = {}
        # (key, first place, this place) of each key given twice; a list only where there are any.
        self.duplicates: list[tuple[str, tuple[int, int], tuple[int, int]]] | tuple = ()

    def key(self, key: Any) -> tuple[int, int]:
        return self.places[key][:2]  # type: ignore[index]

    def value(self, key: Any) -> tuple[int, int]:
        return self.places[key][2:]  # type: ignore[index]

    def item(self, index: int) -> tuple[int, int]:
        return self.places[index][2:]  # type: ignore[index]


class MarkedMap(dict):
    __slots__ = ("lc",)


class MarkedSeq(list):
    __slots__ = ("lc",)


class _Resolver12(BaseResolver):
    """YAML 1.2 core schema, as the round-trip parser read the policy."""


_Resolver12.yaml_implicit_resolvers = {}
for _tag, _pattern, _first in (
    ("bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    ("float", r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?|[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
              |[-+]?\.[0-9_]+(?:[eE][-+][0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$""", "-+0123456789."),
    ("int", r"^(?:[-+]?0b[0-1_]+|[-+]?0o?[0-7_]+|[-+]?[0-9_]+|[-+]?0x[0-9a-fA-F_]+)$", "-+0123456789"),
    ("merge", r"^(?:<<)$", "<"),
    ("null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    ("timestamp", r"""^(?:[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]|[0-9][0-9][0-9][0-9]-[0-9][0-9]?-[0-9][0-9]?
                  (?:[Tt]|[ \t]+)[0-9][0-9]?:[0-9][0-9]:[0-9][0-9](?:\.[0-9]*)?(?:[ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?)$""",
     "0123456789"),
):
    _Resolver12.add_implicit_resolver(f"tag:yaml.org,2002:{_tag}", re.compile(_pattern, re.X), list(_first))


# The composer asks for each node's tag; the answers are these very objects, so that building
# the tree tells them apart by identity (an explicit ``!!str`` is an equal string, not this one).
_STR = "tag:yaml.org,2002:str"  # a quoted or block scalar: a string whatever it holds
_PLAIN = "tag:pbx-app,2026:plain"  # a plain scalar: resolved (YAML 1.2) when the tree is built
_MERGE = "tag:yaml.org,2002:merge"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
_SPECIAL_KEYS = (_MERGE, "tag:yaml.org,2002:value")  # what flatten_mapping rewrites
_UNSEEN = object()


class _Builder(SafeConstructor):
    """Builds the marked tree from the composed nodes in one recursive pass: no generators, no
    per-node dispatch (those cost more than libyaml's parse itself at 10,000 employees)."""

    def __init__(self, text: str):
        super().__init__()
        self.duplicates = False  # any seen: only then is the tree walked to report them
        # Mappings are flattened (merge keys) only where one may be: a plain ``<<`` seen by the
        # composer, or any explicit tag (``!!merge``, ``!!value``), which needs a '!' in the text.
        self.merges = "!" in text
        self.built: dict[yaml.Node, Any] = {}  # an anchored node is built once (None: being built)
        self.file: str | None = None  # what each mapping and list says it came from (Marks.source)

    def construct_object(self, node, deep=False):
        return self.build(node)  # what SafeConstructor's own constructors call for children

    def construct_yaml_int(self, node):  # YAML 1.2: 010 is ten, 0o10 is eight
        text = str(self.construct_scalar(node)).replace("_", "")
        sign = -1 if text.startswith("-") else 1
        digits = text.lstrip("+-")
        for prefix, base in (("0b", 2), ("0x", 16), ("0o", 8)):
            if digits.startswith(prefix):
                return sign * int(digits[2:], base)
        return sign * int(digits)

    def build(self, node):
        tag = node.tag
        if tag is _STR:
            return node.value
        if tag is _PLAIN:
            value = _PLAIN_VALUES.get(node.value, _UNSEEN)
            return self.plain(node) if value is _UNSEEN else value
        if tag is _MAP or tag is _SEQ:
            return self.collection(node, tag is _MAP)
        return self.explicit(node)

    def plain(self, node):
        value = node.value
        tag = BaseResolver.resolve(self, yaml.ScalarNode, value, (True, False))
        data = value if tag == _STR else self.yaml_constructors[tag](self, node)
        if len(value) <= 32:  # the same few words (forward, ru, ringall…) thousands of times
            if len(_PLAIN_VALUES) >= _PLAIN_VALUES_MAX:
                _PLAIN_VALUES.clear()
            _PLAIN_VALUES[value] = data
        return data

    def collection(self, node, mapping: bool):
        built = self.built.get(node, _UNSEEN)
        if built is None:  # an alias inside its own anchor: a tree, not a graph, is a policy
            raise ConstructorError(None, None, "found unconstructable recursive node", node.start_mark)
        if built is not _UNSEEN:
            return built
        self.built[node] = None
        data = self.built[node] = self.marked_map(node) if mapping else self.marked_seq(node)
        return data

    def explicit(self, node):
        """A node with a tag written in the text (``!!str 101``, ``!!map``, ``!!set``…)."""
        tag = node.tag
        if tag == _MAP and node.__class__ is yaml.MappingNode or tag == _SEQ and node.__class__ is yaml.SequenceNode:
            return self.collection(node, tag == _MAP)
        data = self.built.get(node, _UNSEEN)
        if data is _UNSEEN:
            data = self.built[node] = SafeConstructor.construct_object(self, node, deep=True)
        return data

    def marked_map(self, node):
        data = MarkedMap()
        marks = data.lc = Marks(node.start_mark.line, node.start_mark.column, self.file)
        if self.merges and any(k.tag in _SPECIAL_KEYS for k, _ in node.value):
            self.flatten_mapping(node)
        places: dict = marks.places  # type: ignore[assignment]
        others: dict[str, Any] | None = None  # str(key) → key, of the keys that are not strings
        build, plain = self.build, _PLAIN_VALUES  # build()'s first steps, inline for 200,000 nodes
        for key_node, value_node in node.value:
            tag = key_node.tag
            key = key_node.value if tag is _STR else plain.get(key_node.value, _UNSEEN) if tag is _PLAIN else _UNSEEN
            if key is _UNSEEN:
                key = build(key_node)
            if key.__class__ is str:
                name = key
            else:
                try:
                    hash(key)
                except TypeError:
                    raise ConstructorError("while constructing a mapping", node.start_mark, "found unhashable key",
                                           key_node.start_mark) from None
                name = str(key)
            k = key_node.start_mark
            if name in data or others is not None and name in others:
                # The first stays; the duplicate is reported with both places. A key that is not
                # a string (101) is the same as its text ("101") to the policy.
                first = name if name in data else others[name]  # type: ignore[index]
                self.duplicates = True
                if not marks.duplicates:
                    marks.duplicates = []
                marks.duplicates.append((name, places[first][:2], (k.line, k.column)))
                continue
            if name is not key:
                if others is None:
                    others = {}
                others[name] = key
            tag = value_node.tag
            value = value_node.value if tag is _STR else plain.get(value_node.value, _UNSEEN) if tag is _PLAIN else _UNSEEN
            data[key] = build(value_node) if value is _UNSEEN else value
            v = value_node.start_mark
            places[key] = (k.line, k.column, v.line, v.column)
        return data

    def marked_seq(self, node):
        data = MarkedSeq()
        marks = data.lc = Marks(node.start_mark.line, node.start_mark.column, self.file)
        marks.places = [(i.start_mark.line, i.start_mark.column) * 2 for i in node.value]
        build = self.build
        data.extend(item.value if item.tag is _STR else build(item) for item in node.value)
        return data


_Builder.add_constructor("tag:yaml.org,2002:int", _Builder.construct_yaml_int)


try:
    from yaml.cyaml import CParser as _Parser  # libyaml
except ImportError:  # a PyYAML built without it: the same results, slower
    from yaml.composer import Composer
    from yaml.parser import Parser
    from yaml.reader import Reader as _YamlReader
    from yaml.scanner import Scanner

    class _Parser(_YamlReader, Scanner, Parser, Composer):  # type: ignore[no-redef]
        def __init__(self, stream: str):
            _YamlReader.__init__(self, stream)
            Scanner.__init__(self)
            Parser.__init__(self)
            Composer.__init__(self)


# Plain scalar → its value, shared by every read (a policy directory is 10,000 small files, each
# with its own loader). Bounded: a long-running page reads many versions of the policy.
_PLAIN_VALUES: dict[str, Any] = {}
_PLAIN_VALUES_MAX = 100_000


class _Loader(_Parser, _Builder, _Resolver12):
    def __init__(self, stream: str):
        _Parser.__init__(self, stream)
        _Builder.__init__(self, stream)
        _Resolver12.__init__(self)

    # libyaml's composer calls these two around each of the 200,000 nodes, for path resolvers,
    # which this loader has none of: C callables that take the same arguments and do nothing of
    # note spare a Python frame each (~4 % of `pbx-app check` at 10,000 employees, callgrind).
    descend_resolver = slice  # slice(parent, index): made and dropped
    ascend_resolver = tuple  # tuple(): the empty tuple

    def resolve(self, kind, value, implicit):
        # Called by libyaml's composer for each of the 200,000 nodes: only sorts them (the tree
        # is built knowing the kind); the YAML 1.2 rules run once per distinct plain word.
        if value is None:
            return _MAP if kind is yaml.MappingNode else _SEQ
        if not implicit[0]:
            return _STR
        if value == "<<":
            self.merges = True
            return _MERGE
        return _PLAIN


def read_yaml(text: str, source: str, part: bool = False) -> tuple[Any, list[Problem]]:
    """The document (None when it cannot be read at all) and the problems found reading it.
    ``part``: the text is one file of a policy directory, and each mapping and list read says so
    (its ``lc.source``, as folder.mark_source would set it)."""
    loader = _Loader(text)
    loader.file = source if part else None
    try:
        root = loader.get_single_node()
        doc = None if root is None else loader.build(root)
    except yaml.YAMLError:
        return _read_round_trip(text, source)  # what is wrong, in the words the hints know
    finally:
        loader.built.clear()
        loader.dispose()
    return doc, list(_duplicates_found(doc, source, ())) if loader.duplicates else []


def take_apart(doc: Any) -> None:
    """Empties a big document entry by entry: freed in one go, its 100,000 nodes would hold the
    GIL (and any event loop beside this thread) for tens of milliseconds."""
    if not isinstance(doc, dict):
        return
    while doc:
        _, value = doc.popitem()
        while isinstance(value, dict) and value:
            value.popitem()
        while isinstance(value, list) and value:
            value.pop()


def _duplicates_found(node: Any, source: str, path: tuple[str, ...]):
    if isinstance(node, MarkedMap):
        for name, first, here in node.lc.duplicates:
            first, here = sorted((first, here))
            yield Problem(source, here[0] + 1, here[1] + 1, _duplicate_message(path, name, first[0] + 1, first[1] + 1))
        for key, value in node.items():
            if isinstance(value, (dict, list)):
                yield from _duplicates_found(value, source, path + (str(key),))
    elif isinstance(node, MarkedSeq):
        for i, item in enumerate(node):
            if isinstance(item, (dict, list)):
                yield from _duplicates_found(item, source, path + (str(i),))


def _read_round_trip(text: str, source: str) -> tuple[Any, list[Problem]]:
    # ruamel is imported only for text libyaml refused: `pbx-app check` of a good policy does
    # not pay for it (~10 ms of the 1 s issue 25 allows at 10,000 employees).
    from ruamel.yaml import YAML
    from ruamel.yaml.constructor import DuplicateKeyError
    from ruamel.yaml.error import MarkedYAMLError
    from ruamel.yaml.reader import ReaderError

    rt = YAML(typ="rt")
    try:
        doc = rt.load(text)  # one pass in the usual case; duplicates take the slow path below
        return doc, list(_mixed_duplicates(doc, source, ()))
    except DuplicateKeyError:
        pass
    except MarkedYAMLError as exc:
        return None, [_yaml_problem(exc, source)]
    except ReaderError as exc:  # a control character (a NUL, a backspace…): no mark, an offset
        return None, [_character_problem(exc, text, source)]
    rt = YAML(typ="rt")
    try:
        root = rt.compose(text)
    except MarkedYAMLError as exc:
        return None, [_yaml_problem(exc, source)]
    problems = list(_duplicates(root, source, ()))
    rt = YAML(typ="rt")
    rt.allow_duplicate_keys = True  # reported above; read on to find the other errors too
    try:
        doc = rt.load(text)
    except MarkedYAMLError as exc:  # e.g. an unknown tag: composes, does not construct
        return None, problems + [_yaml_problem(exc, source)]
    return doc, problems


def _character_problem(exc: Any, text: str, source: str) -> Problem:
    at = min(max(exc.position, 0), len(text))
    line, col = text.count("\n", 0, at) + 1, at - (text.rfind("\n", 0, at) + 1) + 1
    what = f"#x{exc.character:04x}" if isinstance(exc.character, int) else repr(exc.character)
    return Problem(source, line, col, f"not valid YAML: the character {what} cannot be in it ({exc.reason})")


def _duplicate_message(path: tuple[str, ...], name: str, line: int, col: int) -> str:
    what = "extension" if path == ("employees",) else "department" if path == ("departments",) else "key"
    where = ".".join(path) or "the top level"
    return f"{where}: duplicate {what} '{name}' (already defined at line {line}, column {col}); each may appear once"


def _mixed_duplicates(node: Any, source: str, path: tuple[str, ...]):
    """Keys that differ in YAML but not to us: 101 (a number) and "101" (a string)."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq  # as in _read_round_trip

    if isinstance(node, CommentedMap):
        seen: dict[str, Any] = {}
        for key, value in node.items():
            name = str(key)
            if name in seen:
                first, here = position(node, seen[name], at_key=True), position(node, key, at_key=True)
                if here < first:
                    first, here = here, first
                yield Problem(source, here[0], here[1], _duplicate_message(path, name, *first))
            else:
                seen[name] = key
            yield from _mixed_duplicates(value, source, path + (name,))
    elif isinstance(node, CommentedSeq):
        for i, item in enumerate(node):
            yield from _mixed_duplicates(item, source, path + (str(i),))


def _duplicates(node: Node | None, source: str, path: tuple[str, ...]):
    from ruamel.yaml.nodes import MappingNode, ScalarNode, SequenceNode  # as in _read_round_trip

    if isinstance(node, MappingNode):
        seen: dict[str, Node] = {}
        for key, value in node.value:
            name = str(key.value) if isinstance(key, ScalarNode) else None
            if name is not None and name in seen:
                mark = seen[name].start_mark
                message = _duplicate_message(path, name, mark.line + 1, mark.column + 1)
                yield Problem(source, key.start_mark.line + 1, key.start_mark.column + 1, message)
            elif name is not None:
                seen[name] = key
            yield from _duplicates(value, source, path + (name or "?",))
    elif isinstance(node, SequenceNode):
        for i, item in enumerate(node.value):
            yield from _duplicates(item, source, path + (str(i),))


def position(node: Any, key: Any = None, at_key: bool = False) -> tuple[int, int]:
    """1-based line and column of ``node[key]`` (its key when the value is a mapping, a list or
    empty, or ``at_key``; else the value), or of ``node`` itself."""
    lc = getattr(node, "lc", None)
    if lc is None or lc.line is None:
        return 1, 1
    try:
        if key is not None and isinstance(node, dict) and key in node:
            if at_key or isinstance(node[key], (dict, list)) or node[key] is None:
                line, col = lc.key(key)
            else:
                line, col = lc.value(key)
        elif key is not None and isinstance(node, list):
            line, col = lc.item(key)
        else:
            line, col = lc.line, lc.col
    except (KeyError, IndexError, TypeError):
        line, col = lc.line, lc.col
    return line + 1, col + 1


def original_key(node: Any, name: str) -> Any:
    """The key as written: ``101`` unquoted is an int in YAML, ``"101"`` a string."""
    if isinstance(node, dict):
        if name in node:  # the usual case, without a walk over 10,000 keys
            return name
        if name.isdigit() and str(int(name)) == name and int(name) in node:
            return int(name)
        for key in node:
            if str(key) == name:
                return key
    return None


def locate(doc: Any, path: tuple[str | int, ...]) -> tuple[int, int]:
    """Where ``doc[path[0]][path[1]]…`` stands; the nearest existing parent if it does not."""
    return place(doc, path)[1:]  # type: ignore[return-value]


def place(doc: Any, path: tuple[str | int, ...]) -> tuple[str | None, int, int]:
    """``locate``, with the file it is in where a policy is a directory (None: the one file)."""
    node, key = doc, None
    for i, step in enumerate(path):
        if isinstance(node, dict):
            real = original_key(node, str(step))
        elif isinstance(node, list) and isinstance(step, int) and step < len(node):
            real = step
        else:
            real = None
        if real is None:
            return (source_of(node), *position(node, None))
        if i == len(path) - 1:
            return (source_of(node, real), *position(node, real))
        node = node[real]
    return (source_of(node), *position(node, key))


def source_of(node: Any, key: Any = None) -> str | None:
    marks = getattr(node, "lc", None)
    sources = getattr(marks, "sources", None)
    if sources and key in sources:
        return sources[key]
    return getattr(marks, "source", None)


def kind(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing"
    return f"{type(value).__name__} {value!r}"
