"""Issue 17: the systemd units of a host install (config/systemd) load without complaint and stay
hardened. systemd-analyze reads them offline, in a scratch root that has the system's units and
a stand-in for the installed pbx-app; no systemd needs to run."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

UNITS = Path(__file__).resolve().parents[2] / "config" / "systemd"
ANALYZE = shutil.which("systemd-analyze")
pytestmark = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed (Debian's systemd package)")


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("root")
    shutil.copytree("/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    shutil.copytree(UNITS, root / "etc/systemd/system")
    for tool in ("opt/pbx_app/venv/bin/pbx-app", "bin/kill"):
        (root / tool).parent.mkdir(parents=True, exist_ok=True)
        (root / tool).write_text("#!/bin/sh\n")
        (root / tool).chmod(0o755)
    return root


def analyze(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([ANALYZE, *args], capture_output=True, text=True, timeout=60)


def test_units_verify_cleanly(root):
    done = analyze("verify", f"--root={root}", "pbx-engine@a.service", "pbx-engine@b.service", "pbx-web.service", "pbx-notify.service",
                   "pbx-agi.service", "pbx-app.target")
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr


@pytest.mark.parametrize("unit", ["pbx-engine@.service", "pbx-web.service", "pbx-notify.service", "pbx-agi.service"])
def test_units_are_hardened(root, unit):
    done = analyze("security", "--offline=true", f"--root={root}", str(root / "etc/systemd/system" / unit))
    exposure = float(re.search(r"Overall exposure level for \S+: ([\d.]+)", done.stdout + done.stderr).group(1))
    assert exposure <= 2.0, f"{unit}: exposure {exposure} (systemd-analyze security: 0 best, 10 worst)\n{done.stdout}"
    assert "✗ User=/DynamicUser=" not in done.stdout, "runs as its own user, not root"


def test_the_fastagi_unit_has_room_for_many_calls_and_keeps_the_fallback_plans_readable():
    text = (UNITS / "pbx-agi.service").read_text()
    assert "LimitNOFILE=65536" in text
    assert "pbx_app/fallback" in text and "UMask=0022" in text, "Asterisk's user reads the no-engine plans"
