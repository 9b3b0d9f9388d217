"""The notifier's settings and its place in `pbx-app run`."""

from __future__ import annotations

import asyncio

import pytest

from pbx_app.notices.service import run_notifier
from pbx_app.notices.settings import NoticeSettings
from pbx_app.settings import Settings
from pbx_app.supervisor import children


def test_smtp_settings_come_from_the_environment_and_the_password_from_its_file(tmp_path):
    secret = tmp_path / "pw"
    secret.write_text("hunter2\n")
    s = NoticeSettings.from_env({"PBX_SMTP_HOST": "mail.example.test", "PBX_SMTP_PORT": "2525", "PBX_SMTP_USER": "pbx",
                                 "PBX_SMTP_PASSWORD_FILE": str(secret), "PBX_SMTP_FROM": "pbx@example.test",
                                 "PBX_VOICEMAIL_DIR": "/srv/vm", "PBX_NOTICE_MAX_ATTACHMENT_MB": "2"})
    assert (s.smtp.host, s.smtp.port, s.smtp.starttls, s.smtp.user, s.smtp.password, s.smtp.sender) == (
        "mail.example.test", 2525, True, "pbx", "hunter2", "pbx@example.test")
    assert (str(s.voicemail_dir), s.max_attachment_bytes, s.webhook_url) == ("/srv/vm", 2 * 1024 * 1024, None)
    assert "hunter2" not in repr(s)


def test_a_login_without_starttls_to_another_host_is_refused():
    with pytest.raises(SystemExit, match="unencrypted"):
        NoticeSettings.from_env({"PBX_SMTP_HOST": "mail.example.test", "PBX_SMTP_STARTTLS": "0", "PBX_SMTP_USER": "pbx"})


def test_an_unreadable_password_file_stops_the_start(tmp_path):
    with pytest.raises(SystemExit, match="PBX_SMTP_PASSWORD_FILE"):
        NoticeSettings.from_env({"PBX_SMTP_HOST": "mail.example.test", "PBX_SMTP_PASSWORD_FILE": str(tmp_path / "none")})


def test_pbx_app_run_starts_a_notifier_only_when_there_is_somewhere_to_send(monkeypatch):
    monkeypatch.delenv("PBX_SMTP_HOST", raising=False)
    monkeypatch.delenv("PBX_NOTICE_WEBHOOK_URL", raising=False)
    assert "notify" not in [c.name for c in children(Settings(), None)]
    monkeypatch.setenv("PBX_SMTP_HOST", "mail.example.test")
    [notify] = [c for c in children(Settings(), "p.yaml") if c.name == "notify"]
    assert notify.argv[-3:] == ("notify", "--policy", "p.yaml")


def test_a_notifier_with_nowhere_to_send_exits_as_misconfigured(tmp_path):
    assert asyncio.run(run_notifier(Settings(policy_path=tmp_path / "none.yaml"), NoticeSettings())) == 2
