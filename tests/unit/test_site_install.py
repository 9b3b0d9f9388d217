"""`pbx-app asterisk install` on a copy of Debian's stock /etc/asterisk: what a sysadmin sees
(the diff, the backups, the notes) and what Asterisk then reads (sections and settings)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from pbx_app.cli import main
from pbx_app.site import conffile

STOCK = Path(__file__).parent / "data" / "debian-etc-asterisk"


@pytest.fixture
def etc(tmp_path) -> Path:
    folder = tmp_path / "asterisk"
    shutil.copytree(STOCK, folder)
    (folder / "README.md").unlink()
    return folder


def install(etc: Path, *args: str) -> int:
    return main(["asterisk", "install", "--etc", str(etc), "--secret-file", str(etc.parent / "pbx_app" / "ari-password"),
                 *args])


def files(folder: Path) -> dict[str, str]:
    return {p.name: p.read_text(errors="surrogateescape") for p in folder.iterdir() if p.is_file()}


def test_install_adds_what_asterisk_needs_to_the_stock_config(etc, capsys):
    assert install(etc) == 0
    out = capsys.readouterr().out
    password = (etc.parent / "pbx_app" / "ari-password").read_text().strip()
    assert len(password) >= 24 and oct((etc.parent / "pbx_app" / "ari-password").stat().st_mode & 0o777) == "0o600"
    ari = conffile.read(etc / "ari.conf")
    assert conffile.value(ari, "general", "enabled") == "yes"
    user = conffile.section(ari, "pbx_app")
    assert (user.get("type"), user.get("read_only"), user.get("password")) == ("user", "no", password)
    http = conffile.read(etc / "http.conf")
    assert [conffile.value(http, "general", k) for k in ("enabled", "bindaddr", "bindport")] == ["yes", "127.0.0.1", "8088"]
    cdr = conffile.read(etc / "cdr.conf")
    assert conffile.value(cdr, "general", "unanswered") == "yes"
    assert conffile.section(conffile.read(etc / "cdr_sqlite3_custom.conf"), "pbx_app-cdr.db").get("table") == "cdr"
    modules = conffile.read(etc / "modules.conf")
    assert [v for sec in modules if sec.name == "modules" for k, v in sec.settings if k == "noload"][-2:] == [
        "app_voicemail_odbc.so", "app_voicemail_imap.so"], "one voicemail storage: VoiceMail() stays"
    assert "core restart when convenient" in out and "module load cdr_sqlite3_custom.so" in out
    assert "pbx_app.conf" in conffile.includes((etc / "extensions.conf").read_text())
    assert (etc / "pbx_app.conf").exists() and "#include pbx_agi.conf" in (etc / "pbx_app.conf").read_text()
    # The site's own lines are all still there, in order, unchanged.
    for name, text in files(STOCK).items():
        if name != "README.md":
            assert (etc / name).read_text(errors="surrogateescape").startswith(text.rstrip("\n")), name
    [backup] = (etc / "pbx_app-backup").iterdir()
    assert files(backup)["extensions.conf"] == files(STOCK)["extensions.conf"], "the original is kept"
    assert "stasis.conf" not in files(backup), "not asked for: not touched"
    assert password not in out
    assert "PBX_ARI_PASSWORD_FILE=" in out


def test_running_it_again_changes_nothing_and_keeps_the_password(etc, capsys):
    assert install(etc) == 0
    first = files(etc)
    password = (etc.parent / "pbx_app" / "ari-password").read_text()
    assert install(etc) == 0
    assert "nothing to change" in capsys.readouterr().out
    assert files(etc) == first
    assert (etc.parent / "pbx_app" / "ari-password").read_text() == password
    assert len(list((etc / "pbx_app-backup").iterdir())) == 1


def test_dry_run_shows_a_diff_without_the_password_and_writes_nothing(etc, capsys):
    assert install(etc, "--dry-run") == 0
    out = capsys.readouterr().out
    assert f"+++ {etc / 'extensions.conf'}" in out and "+#include pbx_app.conf" in out
    assert "+password = ********" in out
    assert files(etc) == {k: v for k, v in files(STOCK).items() if k != "README.md"}
    assert not (etc.parent / "pbx_app").exists()


def test_undo_gives_back_the_stock_files(etc, capsys):
    assert install(etc, "--decline-varset") == 0
    assert conffile.value(conffile.read(etc / "stasis.conf"), "declined_message_types", "decline") == "ast_channel_varset_type"
    assert install(etc, "--undo") == 0
    after = files(etc)
    for name, text in files(STOCK).items():
        if name != "README.md":
            assert after[name].rstrip("\n") == text.rstrip("\n"), name
    assert not (etc / "pbx_app.conf").exists() and not (etc.parent / "pbx_app" / "ari-password").exists()
    assert len(list((etc / "pbx_app-backup").iterdir())) == 2, "the undo backed up what it took out"


def test_a_file_it_cannot_read_is_named_with_its_line_and_nothing_is_written(etc, capsys):
    text = (etc / "http.conf").read_text().splitlines()
    text[9] = "[general"
    (etc / "http.conf").write_text("\n".join(text) + "\n")
    before = files(etc)
    assert install(etc) == 2
    err = capsys.readouterr().err
    assert f"{etc / 'http.conf'}:10:1: a section header that does not close" in err
    assert files(etc) == before and not (etc / "pbx_app-backup").exists()


def test_a_site_whose_http_server_is_already_on_keeps_its_binding(etc, capsys):
    with open(etc / "http.conf", "a") as f:
        f.write("\n[general](+)\nenabled = yes\nbindaddr = 10.0.0.5\nbindport = 8080\n")
    before = (etc / "http.conf").read_text()
    assert install(etc) == 0
    assert (etc / "http.conf").read_text() == before
    assert "already on at 10.0.0.5:8080" in capsys.readouterr().out


def test_an_ari_user_of_the_sites_own_with_our_name_is_refused(etc, capsys):
    with open(etc / "ari.conf", "a") as f:
        f.write("\n[pbx_app]\ntype = user\npassword = theirs\n")
    assert install(etc) == 2
    assert "choose another name with --ari-user" in capsys.readouterr().err
    assert not (etc / "pbx_app.conf").exists()


def test_a_site_that_chose_its_voicemail_storage_keeps_it(etc, capsys):
    with open(etc / "modules.conf", "a") as f:
        f.write("\n[modules](+)\nload => app_voicemail_odbc.so\nnoload => app_voicemail.so\n")
    before = (etc / "modules.conf").read_text()
    assert install(etc) == 0
    assert (etc / "modules.conf").read_text() == before
    assert "core restart" not in capsys.readouterr().out


def test_modules_loaded_one_by_one_are_named(etc, capsys):
    (etc / "modules.conf").write_text("[modules]\nautoload = no\nload => res_ari.so\n")
    assert install(etc, "--dry-run") == 0
    out = capsys.readouterr().out
    assert "autoload is off; add load => for res_http_websocket.so" in out and "res_ari.so," not in out


@pytest.mark.parametrize("line, column, what", [
    ("   exten = > x", None, None),
    ("#includ foo.conf", 1, "not an #include"),
    ("just some words", 1, "neither a section, a setting nor an #include"),
])
def test_conf_parser_names_line_and_column(line, column, what):
    text = f"[general]\nenabled = yes ; a comment\n;-- a block\ncomment --;\n{line}\n"
    if what is None:
        conffile.parse(text, "x.conf")
        return
    with pytest.raises(conffile.ConfError, match=rf"^x\.conf:5:{column}: {what}"):
        conffile.parse(text, "x.conf")


def test_every_stock_file_it_touches_is_understood():
    for path in STOCK.glob("*.conf"):
        conffile.read(path)
    assert os.path.getsize(STOCK / "extensions.conf") > 10_000, "the real stock file, not a stub"
