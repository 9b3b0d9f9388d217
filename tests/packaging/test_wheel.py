"""Issue 17: the product as users install it. The wheel is built, installed into a fresh venv
(not editable, run from outside the source tree), and used the way a sysadmin would: check the
policy, add a web user, start the page, sign in, load its CSS and play the standard message."""

from __future__ import annotations

import http.cookiejar
import os
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.support.net import free_port
from tests.support.wait import until_sync

REPO = Path(__file__).resolve().parents[2]
# The subcommand that serves the self-service page. `run` serves it beside the call engine
# today; once the page has its own process this becomes ["web"].
SERVE_PAGE = ["web"]


def sh(*cmd: object, **kw) -> subprocess.CompletedProcess:
    done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=180, **kw)
    assert done.returncode == 0, f"{cmd} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    """A fresh venv with the wheel installed the ordinary way (dependencies from the index,
    or pip's cache when it has them)."""
    work = tmp_path_factory.mktemp("wheel")
    # From a clean copy: an in-tree build/ left by an earlier build would hide missing files.
    source = work / "source"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(".*", "build", "*.egg-info", "__pycache__", "var"))
    sh(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", work / "dist", source)
    wheels = list((work / "dist").glob("pbx_app-*.whl"))
    assert len(wheels) == 1, wheels
    env = work / "venv"
    sh(sys.executable, "-m", "venv", env)
    sh(env / "bin" / "pip", "install", "-q", "--disable-pip-version-check", wheels[0])
    return env


def test_installed_package_is_the_wheel_not_the_source_tree(venv, tmp_path):
    where = sh(venv / "bin" / "python", "-c", "import pbx_app; print(pbx_app.__file__)", cwd=tmp_path).stdout
    assert Path(where.strip()).is_relative_to(venv), where


def test_check_validates_the_shipped_policy(venv, tmp_path):
    done = sh(venv / "bin" / "pbx-app", "check", REPO / "config" / "policy.yaml", cwd=tmp_path)
    assert "error" not in (done.stdout + done.stderr).lower()


def test_asterisk_install_finds_the_shipped_dialplan(venv, tmp_path):
    etc = tmp_path / "asterisk"
    shutil.copytree(REPO / "tests/unit/data/debian-etc-asterisk", etc)
    done = sh(venv / "bin" / "pbx-app", "asterisk", "install", "--etc", etc, "--secret-file", tmp_path / "secret", cwd=tmp_path)
    assert (etc / "pbx_app.conf").read_text() == (REPO / "dialplan" / "pbx_app.conf").read_text(), done.stdout
    assert (etc / "pbx_agi.conf").exists() and (etc / "pbx_external.conf").exists()


def test_page_serves_login_css_and_the_standard_message(venv, tmp_path):
    pbx = venv / "bin" / "pbx-app"
    policy = tmp_path / "policy.yaml"
    policy.write_bytes((REPO / "config" / "policy.yaml").read_bytes())
    web_port = free_port()
    state = tmp_path / "state"
    env = {
        **os.environ,
        "PBX_POLICY": str(policy),
        "PBX_USERS": str(state / "users.json"),
        "PBX_AUDIT_LOG": str(state / "audit.jsonl"),
        "PBX_ANNOUNCEMENTS_DIR": str(state / "sounds"),
        "PBX_DATABASE_URL": f"sqlite:///{state / 'journal.db'}",
        "PBX_SPOOL_DIR": str(state / "spool"),
        "PBX_WEB_BIND": f"127.0.0.1:{web_port}",
        "PBX_ENGINE_BIND": f"127.0.0.1:{free_port()}",
        # Nothing listens there: the page must not depend on Asterisk, and a test bed on
        # :8088 must never see this app.
        "PBX_ARI_URL": f"http://127.0.0.1:{free_port()}",
        "PBX_ARI_PASSWORD": "unused",
    }
    sh(pbx, "user", "add", "boss", "--role", "admin", "--password-file", "-", input="s3cret-pass\n", env=env, cwd=tmp_path)
    log = open(tmp_path / "page.log", "w")
    server = subprocess.Popen([str(pbx), *SERVE_PAGE], env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{web_port}"
    browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    try:
        login = wait_for_page(browser, f"{base}/login", server, tmp_path / "page.log")
        assert "Sign in" in login
        css_href = re.search(r'<link rel="stylesheet" href="([^"]+)"', login).group(1)
        with browser.open(base + css_href) as r:
            assert r.headers.get_content_type() == "text/css"
            assert r.read() == (REPO / "pbx_app" / "web" / "static" / "app.css").read_bytes()

        with browser.open(urllib.request.Request(f"{base}/login", headers={"Accept-Language": "ru"})) as r:
            assert "<h1>Вход</h1>" in r.read().decode(), "the wheel carries the Russian catalog"

        csrf = re.search(r'name="csrf_token" value="([^"]+)"', login).group(1)
        form = urllib.parse.urlencode({"csrf_token": csrf, "name": "boss", "password": "s3cret-pass"}).encode()
        with browser.open(f"{base}/login", data=form) as r:  # follows the redirect to the page
            assert "Sign out" in r.read().decode()
        with browser.open(f"{base}/api/sounds/standard/en") as r:
            assert r.headers.get_content_type() == "audio/wav"
            assert r.read() == (REPO / "sounds" / "en" / "forward-notice.wav").read_bytes()
    finally:
        server.terminate()
        server.wait(10)
        log.close()


def wait_for_page(browser, url: str, server: subprocess.Popen, log: Path, timeout: float = 20.0) -> str:
    def page() -> str | None:
        if server.poll() is not None:
            pytest.fail(f"the page's process exited ({server.returncode}):\n{log.read_text()[-3000:]}")
        try:
            with browser.open(url, timeout=2) as r:
                return r.read().decode()
        except (urllib.error.URLError, ConnectionError):
            return None

    try:
        return until_sync(page, timeout, f"a page at {url}", every=0.2)
    except TimeoutError as exc:
        pytest.fail(f"{exc}:\n{log.read_text()[-3000:]}")
