"""The docs cannot drift from the code: every policy shown in README.md and docs/*.md goes
through the real loader, every `pbx-app` command must exist with the options it is given, and
every PBX_* setting, repository path and relative link a doc names must exist.

A ```yaml block is a complete policy unless its first line is `# fragment` (part of a policy,
shown alone for the reader): fragments are only parsed as YAML."""

from __future__ import annotations

import argparse
import glob
import re
import shlex
from pathlib import Path

import pytest
from ruamel.yaml import YAML, YAMLError

from pbx_app import cli
from pbx_app.policy.loader import analyse_policy

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# Where a PBX_* name may be read or set: the code, the dialplan (its globals), configs, scripts.
SETTING_SOURCES = ["pbx_app/**/*.py", "dialplan/*.conf", "config/**/*", "scripts/*"]
# Repository paths a doc names are recognised by their top folder.
TOP = ("pbx_app", "scripts", "config", "dialplan", "tests", "docs", "bench", "sounds")
PATH = re.compile(r"(?<![\w/.~$-])((?:%s)/[^\s`'\")\]|,;:#]*)" % "|".join(TOP))
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```[ \t]*$", re.M | re.S)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
INLINE = re.compile(r"(?<!`)`([^`\n]*\bpbx-app [^`\n]*)`(?!`)")
# Files a doc names that the app makes at run time, not the repository.
RUNTIME = {"config/.policy.yaml.lock"}  # the policy's flock, beside the policy (docs/security.md)
SETTING = re.compile(r"\bPBX_[A-Z0-9_]*[A-Z0-9]\b|\bPBX_[A-Z0-9_]+_(?=\*)")


class _Captured(Exception):
    def __init__(self, parser: argparse.ArgumentParser) -> None:
        self.parser = parser


def cli_parser() -> argparse.ArgumentParser:
    """The parser `pbx-app` really builds (cli.main builds it inline): caught at parse time."""

    def capture(self, *args, **kwargs):
        raise _Captured(self)

    original = argparse.ArgumentParser.parse_args
    argparse.ArgumentParser.parse_args = capture  # type: ignore[method-assign]
    try:
        cli.main(["--help"])
    except _Captured as caught:
        return caught.parser
    finally:
        argparse.ArgumentParser.parse_args = original  # type: ignore[method-assign]
    raise AssertionError("pbx_app.cli.main never parsed its arguments")


PARSER = cli_parser()


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def command_problems(args: list[str]) -> list[str]:
    """What is wrong with `pbx-app ARGS`: an unknown subcommand, an option it does not take."""
    parser, said, problems = PARSER, ["pbx-app"], []
    rest = list(args)
    while rest and not rest[0].startswith("-") and (subs := _subcommands(parser)):
        name = rest.pop(0)
        if not re.fullmatch(r"[a-z][a-z-]*", name):
            return problems  # a placeholder such as <sub>: nothing to check
        if name not in subs:
            return [f"`{' '.join(said)} {name}`: no such command (has {', '.join(sorted(subs))})"]
        parser = subs[name]
        said.append(name)
    for token in rest:
        if token.startswith("-") and token != "-" and not re.fullmatch(r"-\d.*", token):
            option = token.split("=", 1)[0]
            if option not in parser._option_string_actions:
                problems.append(f"`{' '.join(said)}` has no option {option}")
    return problems


def _commands(line: str) -> list[list[str]]:
    """The simple commands of one shell line (split at ; & | && and parentheses)."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        tokens = list(lexer)
    except ValueError:
        tokens = line.split()
    commands, current = [], []
    for token in tokens:
        if token and set(token) <= set(";&|()"):
            commands.append(current)
            current = []
        else:
            current.append(token)
    return [c for c in commands + [current] if c]


def pbx_app_problems(line: str) -> list[str]:
    problems = []
    for words in _commands(line):
        for i, word in enumerate(words):
            if word == "pbx-app" or word.endswith("/pbx-app"):
                problems += command_problems(words[i + 1:])
                break
    return problems


def shell_lines(block: str) -> list[str]:
    """The command lines of a ```sh block: with `$ ` prompts, only those lines (the rest is output)."""
    text = re.sub(r"\\\n\s*", " ", block)
    lines = text.splitlines()
    if any(line.startswith("$ ") for line in lines):
        return [line[2:] for line in lines if line.startswith("$ ")]
    return lines


def code_settings() -> str:
    return "\n".join(
        p.read_text(encoding="utf-8", errors="replace")
        for pattern in SETTING_SOURCES for p in ROOT.glob(pattern) if p.is_file()
    )


CODE_SETTINGS = code_settings()


def is_sound(name: str) -> bool:
    """Asterisk plays the app's sounds as pbx_app/NAME (sounds/<lang>/NAME.wav, installed under
    Asterisk's sounds folder): such a name is a sound, not a repository path."""
    sound = name.removeprefix("pbx_app/")
    return sound != name and bool(glob.glob(str(ROOT / "sounds" / "*" / f"{sound}.wav")))


def path_problems(text: str) -> list[str]:
    problems = []
    for found in sorted(set(PATH.findall(text))):
        path = found.rstrip(".…")
        if path in RUNTIME:
            continue
        pattern = re.sub(r"<[^>]*>|\{[^}]*\}|\*+|\bNAME\b|…", "*", path)
        if not glob.glob(str(ROOT / pattern)) and not is_sound(path):
            problems.append(f"names {path}, which is not in the repository")
    return problems


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(md: Path) -> set[str]:
    text = FENCE.sub("", md.read_text(encoding="utf-8"))
    return {_slug(m) for m in re.findall(r"^#{1,6} +(.+?) *#*$", text, re.M)}


def link_problems(doc: Path, text: str) -> list[str]:
    problems = []
    # A link inside inline code (Asterisk's `[section](+)`) is text, not a link.
    for target in LINK.findall(re.sub(r"`[^`\n]*`", "", FENCE.sub("", text))):
        if re.match(r"[a-z]+:", target):
            continue  # http:, https:, mailto: are not the repository's
        file, _, anchor = target.partition("#")
        where = (doc.parent / file).resolve() if file else doc
        if not where.exists():
            problems.append(f"links to {target}, which does not exist")
        elif anchor and where.suffix == ".md" and anchor not in anchors(where):
            problems.append(f"links to {target}: {where.name} has no heading with that anchor")
    return problems


def doc_problems(doc: Path, text: str) -> list[str]:
    problems = []
    for m in FENCE.finditer(text):
        kind, block = m.group(1), m.group(2)
        line = text.count("\n", 0, m.start()) + 1
        where = f"{doc.name}:{line}"
        if kind == "yaml" and block.startswith("# fragment"):
            try:
                YAML(typ="safe").load(block)
            except YAMLError as exc:
                problems.append(f"{where}: the fragment is not YAML: {exc}")
        elif kind == "yaml":
            analysis = analyse_policy(block, where)
            problems += [f"{where}: the policy is refused: {p}" for p in analysis.errors]
        elif kind == "sh":
            for command in shell_lines(block):
                problems += [f"{where}: {p}" for p in pbx_app_problems(command)]
    prose = FENCE.sub("", text)
    for span in INLINE.findall(prose):
        problems += [f"{doc.name}: {p}" for p in pbx_app_problems(span)]
    for name in sorted(set(SETTING.findall(text))):
        if name not in CODE_SETTINGS:
            problems.append(f"{doc.name}: names the setting {name}, which nothing in pbx_app/, dialplan/, config/ or scripts/ reads")
    problems += [f"{doc.name}: {p}" for p in path_problems(text)]
    problems += [f"{doc.name}: {p}" for p in link_problems(doc, text)]
    return problems


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_command_setting_path_and_policy_in_the_doc_exists(doc: Path) -> None:
    assert doc_problems(doc, doc.read_text(encoding="utf-8")) == []


def test_the_docs_show_policies_and_commands_at_all() -> None:
    """The checks above only bite if the docs have something to check."""
    texts = {d.name: d.read_text(encoding="utf-8") for d in DOCS}
    kinds = [m.group(1) for t in texts.values() for m in FENCE.finditer(t)]
    assert kinds.count("yaml") >= 4 and kinds.count("sh") >= 10
    assert texts["README.md"].startswith("# pbx_app\n\n```sh\nscripts/run ")


def _problems_of(text: str) -> list[str]:
    return doc_problems(ROOT / "docs" / "example.md", text)


def test_a_command_that_does_not_exist_is_caught() -> None:
    assert _problems_of("```sh\npbx-app frobnicate --now\n```\n") == [
        "example.md:1: `pbx-app frobnicate`: no such command (has agi, asterisk, check, engine, explain, history, names, notify, publish, run, user, web)"
    ]


def test_an_option_a_command_does_not_take_is_caught_in_blocks_and_prose() -> None:
    text = "```sh\n$ .venv/bin/pbx-app history --since 2026-01-01\nout\n```\nand `pbx-app user add x --role admin --team a`\n"
    assert _problems_of(text) == [
        "example.md:1: `pbx-app history` has no option --since",
        "example.md: `pbx-app user add` has no option --team",
    ]


def test_real_commands_with_their_options_pass() -> None:
    text = ("```sh\nPBX_ENGINE_NAME=a pbx-app engine --policy p.yaml &\n"
            "pbx-app explain 101 --caller \"+7 900\" --at \"sat 10:00\" --offline   # why\n"
            "pbx-app user list\n```\n")
    assert _problems_of(text) == []


def test_a_policy_the_loader_refuses_is_caught_with_its_place() -> None:
    text = "text\n\n```yaml\nemployees:\n  \"101\": {on_no_answer: {action: forward, to: \"199\"}}\n```\n"
    (problem,) = _problems_of(text)
    assert problem.startswith("example.md:3: the policy is refused: example.md:3:")
    assert "unknown extension or department '199'" in problem


def test_a_fragment_is_only_parsed_as_yaml() -> None:
    assert _problems_of("```yaml\n# fragment\n\"102\": {name: Petr}\n```\n") == []
    (problem,) = _problems_of("```yaml\n# fragment\n\"102\": {name: Petr\n```\n")
    assert problem.startswith("example.md:1: the fragment is not YAML")


def test_unknown_settings_paths_and_links_are_caught() -> None:
    text = ("Set `PBX_RING_FOREVER=1` and `PBX_SMTP_HOST`, see `scripts/deploy` and `config/policy.yaml`,\n"
            "[install](install-debian.md), [gone](nowhere.md), [anchor](cluster.md#no-such-part).\n")
    assert _problems_of(text) == [
        "example.md: names the setting PBX_RING_FOREVER, which nothing in pbx_app/, dialplan/, config/ or scripts/ reads",
        "example.md: names scripts/deploy, which is not in the repository",
        "example.md: links to nowhere.md, which does not exist",
        "example.md: links to cluster.md#no-such-part: cluster.md has no heading with that anchor",
    ]


def test_placeholders_in_paths_match_any_name() -> None:
    assert _problems_of("`sounds/<lang>/callback-offer.wav`, `pbx_app/locale/<lang>/`\n") == []
    assert _problems_of("`sounds/<lang>/no-such-message.wav`\n") == [
        "example.md: names sounds/<lang>/no-such-message.wav, which is not in the repository"
    ]


def test_a_sound_asterisk_plays_is_a_sound_name_only_if_the_sound_exists() -> None:
    assert _problems_of("the caller hears `pbx_app/callback-confirm`\n") == []
    assert _problems_of("the caller hears `pbx_app/callback-goodbye`\n") == [
        "example.md: names pbx_app/callback-goodbye, which is not in the repository"
    ]
