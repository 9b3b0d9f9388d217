"""A real OpenLDAP server (Debian's slapd) for the directory sign-in tests: started on
127.0.0.1 with LDAPS and StartTLS (a certificate made by openssl for the test, for the name
localhost: ldap3 2.9.1 on Python 3.12+ checks a certificate against a host name only, never an
IP address, so the URLs name localhost as a site names its directory's host), filled with two
groups and three people, stopped at the end. ``Silent`` is a server that accepts connections and
never answers, as a directory behind a dead network path does."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import ldap3

from tests.support.net import free_port
from tests.support.smtp import self_signed

SUFFIX = "dc=example,dc=org"
ROOT_DN = f"cn=admin,{SUFFIX}"
ROOT_PW = "root-secret"
PEOPLE = f"ou=people,{SUFFIX}"
ADMINS = f"cn=pbx-admins,ou=groups,{SUFFIX}"
EMPLOYEES = f"cn=pbx-employees,ou=groups,{SUFFIX}"
# name: (password, telephoneNumber, groups)
PERSONS = {
    "olga": ("olga-directory-pw", "101", [EMPLOYEES]),
    "ivan": ("ivan-directory-pw", None, [ADMINS]),
    "gleb": ("gleb-directory-pw", "109", []),  # in no group of the page's
}
SCHEMAS = ("core", "cosine", "inetorgperson", "nis")


def _module_dir() -> str:
    """bookworm keeps slapd's modules in /usr/lib/ldap, later Debian under the multiarch folder."""
    for found in [*glob.glob("/usr/lib/ldap/back_mdb.so"), *glob.glob("/usr/lib/*/ldap/back_mdb.so")]:
        return os.path.dirname(found)
    return "/usr/lib/ldap"


class Slapd:
    def __init__(self, folder: Path):
        self.folder = folder
        self.cert, self.key = self_signed(folder)
        self.port, self.tls_port = free_port(), free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def ldaps_url(self) -> str:
        return f"ldaps://localhost:{self.tls_port}"

    @property
    def starttls_url(self) -> str:
        return f"ldap://localhost:{self.port}"

    def env(self, url: str | None = None) -> dict[str, str]:
        return {"PBX_LDAP_URL": url or self.ldaps_url, "PBX_LDAP_USER_DN": f"uid={{name}},{PEOPLE}",
                "PBX_LDAP_BASE": PEOPLE, "PBX_LDAP_ADMIN_GROUP": ADMINS, "PBX_LDAP_EMPLOYEE_GROUP": EMPLOYEES,
                "PBX_LDAP_CA_FILE": str(self.cert), "PBX_LDAP_TIMEOUT": "2"}

    def start(self) -> "Slapd":
        slapd = shutil.which("slapd") or "/usr/sbin/slapd"
        if not os.path.exists(slapd):
            raise RuntimeError("slapd is not installed: run scripts/setup (it installs Debian's slapd)")
        db = self.folder / "ldap-db"
        db.mkdir(exist_ok=True)
        conf = self.folder / "slapd.conf"
        conf.write_text("\n".join([
            *(f"include /etc/ldap/schema/{s}.schema" for s in SCHEMAS),
            f"pidfile {self.folder / 'slapd.pid'}",
            f"modulepath {_module_dir()}", "moduleload back_mdb",
            f"TLSCertificateFile {self.cert}", f"TLSCertificateKeyFile {self.key}",
            "database mdb", f'suffix "{SUFFIX}"', f'rootdn "{ROOT_DN}"', f"rootpw {ROOT_PW}",
            f"directory {db}", "maxsize 10485760",
            "access to attrs=userPassword by anonymous auth by self write by * none",
            "access to * by users read by * none", ""]))
        self.proc = subprocess.Popen([slapd, "-d", "0", "-f", str(conf),
                                      "-h", f"ldap://127.0.0.1:{self.port}/ ldaps://127.0.0.1:{self.tls_port}/"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 15
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    err = self.proc.stderr.read().decode(errors="replace") if self.proc.poll() is not None else ""
                    self.stop()
                    raise RuntimeError(f"slapd did not start: {err[-2000:]}")
                time.sleep(0.05)
        self._fill()
        return self

    def _fill(self) -> None:
        conn = ldap3.Connection(ldap3.Server(self.starttls_url), ROOT_DN, ROOT_PW, auto_bind=True)
        conn.add(SUFFIX, ["dcObject", "organization"], {"dc": "example", "o": "Example"})
        conn.add(PEOPLE, ["organizationalUnit"], {"ou": "people"})
        conn.add(f"ou=groups,{SUFFIX}", ["organizationalUnit"], {"ou": "groups"})
        for name, (password, phone, _) in PERSONS.items():
            attrs = {"uid": name, "cn": name.title(), "sn": name.title(), "userPassword": password,
                     "mail": f"{name}@example.org", "displayName": f"{name.title()} Directory"}
            if phone:
                attrs["telephoneNumber"] = phone
            assert conn.add(f"uid={name},{PEOPLE}", ["inetOrgPerson"], attrs), conn.result
        for group in (ADMINS, EMPLOYEES):
            members = [f"uid={n},{PEOPLE}" for n, (_, _, groups) in PERSONS.items() if group in groups]
            assert conn.add(group, ["groupOfNames"], {"cn": group.split(",")[0][3:], "member": members}), conn.result
        conn.unbind()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


class Silent:
    """Accepts TCP connections on 127.0.0.1 and never says a word."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        self._stop = True
        self.sock.close()
        for c in self.held:
            c.close()
