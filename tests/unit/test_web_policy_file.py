"""Issue 6: a save through the web rewrites the sysadmin's YAML atomically, changing only the
employee's no-answer setting — comments, key order and quoting survive."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from pbx_app.policy import parse_policy
from pbx_app.web.settings.policy_file import InvalidEdit, PolicyFile, StaleVersion, apply_setting, write_atomically
from pbx_app.web.settings.no_answer import AnnouncementChoice, NoAnswerSetting

POLICY = """\
# pbx_app policy — edited by hand and by the web page.
site:
  ring_time: 120          # seconds the phone rings
  language: en
  on_no_answer:
    action: drop          # the default
    drop: busy

employees:
  # the sales team
  "101":
    name: Ivan Petrov
    endpoint: PJSIP/101
    ring_time: 20
    on_no_answer:
      action: forward     # the recommended choice
      to: "102"
      announcement: standard
  "102":
    name: Petr Ivanov
    endpoint: PJSIP/102   # desk phone
  "103": {name: Anna Smirnova, endpoint: PJSIP/103, ring_time: 3}

departments:
  sales:
    name: Sales
    members:
      - "101"
      - "102"
    strategy: ringall     # everyone at once
"""


@pytest.fixture(autouse=True)
def sounds(tmp_path, monkeypatch):
    """The announcements folder the loader checks, with the files these tests name."""
    folder = tmp_path / "sounds"
    folder.mkdir()
    for name in ("upload-1.wav", "tts-1.wav"):
        (folder / name).write_bytes(b"RIFF")
    monkeypatch.setenv("PBX_ANNOUNCEMENTS_DIR", str(folder))
    return folder


@pytest.fixture
def policy_file(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    return PolicyFile(path)


def comments(text: str) -> list[str]:
    return [line[line.index("#"):] for line in text.splitlines() if "#" in line]


async def save(pf: PolicyFile, ext: str, setting: NoAnswerSetting):
    return await pf.edit(ext, lambda entry: apply_setting(entry, setting), pf.read().version(ext))


async def test_comments_key_order_and_quotes_survive_a_save(policy_file):
    await save(policy_file, "102", NoAnswerSetting("forward", to="sales", ring_time=25,
                                                   announcement=AnnouncementChoice("custom", "upload-1.wav")))
    text = policy_file.path.read_text()
    assert comments(text) == comments(POLICY), "every comment, in its place"
    # Everything outside Petr's entry is byte for byte what the sysadmin wrote.
    head, tail = POLICY.split('  "102":')[0], POLICY.split('  "103":')[1]
    assert text.startswith(head) and text.endswith(tail)
    petr = text.split('  "102":')[1].split('  "103":')[0]
    assert petr == (
        "\n    name: Petr Ivanov\n"
        "    endpoint: PJSIP/102   # desk phone\n"
        "    ring_time: 25\n"
        "    on_no_answer:\n"
        "      action: forward\n"
        "      to: sales\n"
        "      announcement: {file: upload-1.wav}\n"
    )
    assert '"101"' in text and '- "101"' in text, "quoted extensions and the list's indentation stay"


async def test_saving_the_demo_policys_own_setting_changes_no_byte(tmp_path):
    demo = Path(__file__).resolve().parents[2] / "config" / "policy.yaml"
    path = tmp_path / "policy.yaml"
    path.write_text(demo.read_text())
    pf = PolicyFile(path)
    await save(pf, "105", NoAnswerSetting("drop", drop="message", ring_time=15))
    await save(pf, "104", NoAnswerSetting("voicemail"))
    assert path.read_text() == demo.read_text()


async def test_editing_an_existing_setting_keeps_its_keys_in_place(policy_file):
    await save(policy_file, "101", NoAnswerSetting("drop", drop="message", ring_time=30))
    text = policy_file.path.read_text()
    ivan = text.split('  "101":')[1].split('  "102":')[0]
    assert ivan == (
        "\n    name: Ivan Petrov\n"
        "    endpoint: PJSIP/101\n"
        "    ring_time: 30\n"
        "    on_no_answer:\n"
        "      action: drop        # the recommended choice\n"
        "      drop: message\n"
    )
    assert comments(text) == comments(POLICY)


async def test_a_flow_style_entry_stays_valid_and_the_ring_time_can_go_back_to_the_default(policy_file):
    await save(policy_file, "103", NoAnswerSetting("forward", to="101", announcement=AnnouncementChoice(
        "tts", "tts-1.wav", 'He said "call back" — перезвоните')))
    policy = parse_policy(policy_file.path.read_text())
    anna = policy.employee("103")
    assert anna.ring_time is None, "empty ring time: the site default"
    assert (anna.on_no_answer.target, anna.on_no_answer.announcement.file) == ("101", "tts-1.wav")
    assert 'text: "He said \\"call back\\" — перезвоните"' in policy_file.path.read_text()


async def test_the_version_follows_the_employees_entry_only(policy_file):
    first = policy_file.read()
    await save(policy_file, "101", NoAnswerSetting("voicemail"))
    second = policy_file.read()
    assert first.version("101") != second.version("101")
    assert first.version("103") == second.version("103"), "another employee's version is unchanged"
    with pytest.raises(StaleVersion):
        await policy_file.edit("101", lambda entry: apply_setting(entry, NoAnswerSetting("drop")), first.version("101"))


async def test_an_edit_the_loader_refuses_leaves_the_file_alone(policy_file):
    with pytest.raises(InvalidEdit) as caught:
        await save(policy_file, "103", NoAnswerSetting("forward", to="103"))
    assert "themselves" in str(caught.value)
    assert policy_file.path.read_text() == POLICY


async def test_the_before_write_hook_runs_first_and_can_stop_the_change(policy_file):
    def audit_down(before, after):
        raise OSError("disk full")

    with pytest.raises(OSError):
        await policy_file.edit("101", lambda entry: apply_setting(entry, NoAnswerSetting("voicemail")), policy_file.read().version("101"),
                                         before_write=audit_down)
    assert policy_file.path.read_text() == POLICY, "a change the audit log cannot record is not made"


def test_atomic_write_keeps_the_mode_and_leaves_no_temp_files(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text("old")
    os.chmod(path, 0o640)
    write_atomically(path, "new")
    assert path.read_text() == "new"
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["policy.yaml", "sounds"], "no temp file left"


def test_atomic_write_through_a_symlink_replaces_the_target(tmp_path):
    real = tmp_path / "real.yaml"
    real.write_text("old")
    link = tmp_path / "policy.yaml"
    link.symlink_to(real)
    write_atomically(link, "new")
    assert link.is_symlink() and real.read_text() == "new"
