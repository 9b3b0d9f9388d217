"""Directory sign-in (LDAP, Active Directory) through ldap3: bind as the user over LDAPS or
StartTLS — the password goes to the directory, never into our database — then read the user's
entry: a group decides the role, an attribute holds the extension.

Every network step has a deadline (PBX_LDAP_TIMEOUT): a directory that does not answer gives
DirectoryDown, never a hung request. Blocking: the page calls it from a worker thread and waits
for it with the same deadline (web/signin/service.py)."""

from __future__ import annotations

import math
import os
import ssl
from dataclasses import dataclass

import ldap3
from ldap3.core import exceptions as ldap_errors
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import escape_rdn

from ..settings import env_number
from .names import EXTENSION_RE

DEFAULT_TIMEOUT = 5.0


class DirectoryDown(Exception):
    """The directory could not be asked (unreachable, silent past the deadline, TLS refused)."""


class DirectoryRefused(Exception):
    """The directory answered: wrong password, or the user is in none of the page's groups."""


@dataclass(frozen=True)
class DirectorySettings:
    url: str  # ldaps://dc.example.com or ldap://dc.example.com (then StartTLS)
    user_dn: str  # where the user binds: uid={name},ou=people,dc=example,dc=com or {name}@example.com (AD)
    base: str  # searched for the user's entry after the bind
    user_filter: str = "(uid={name})"  # AD: (sAMAccountName={name})
    admin_group: str | None = None  # members are administrators
    employee_group: str | None = None  # members are employees (None: everyone with an extension)
    extension_attribute: str = "telephoneNumber"
    timeout: float = DEFAULT_TIMEOUT
    ca_file: str | None = None  # the CA the directory's certificate is checked by (None: the system's)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "DirectorySettings | None":
        env = dict(os.environ if env is None else env)
        url = env.get("PBX_LDAP_URL", "").strip()
        if not url:
            return None
        if not url.lower().startswith(("ldaps://", "ldap://")):
            raise SystemExit(f"PBX_LDAP_URL={url}: expected ldaps://host[:port] or ldap://host[:port] (StartTLS)")
        for needed in ("PBX_LDAP_USER_DN", "PBX_LDAP_BASE"):
            if not env.get(needed, "").strip():
                raise SystemExit(f"PBX_LDAP_URL is set but {needed} is not (see docs/accounts.md)")
        if "{name}" not in env["PBX_LDAP_USER_DN"]:
            raise SystemExit("PBX_LDAP_USER_DN must contain {name}, e.g. uid={name},ou=people,dc=example,dc=com")
        return cls(
            url=url, user_dn=env["PBX_LDAP_USER_DN"].strip(), base=env["PBX_LDAP_BASE"].strip(),
            user_filter=env.get("PBX_LDAP_USER_FILTER") or cls.user_filter,
            admin_group=env.get("PBX_LDAP_ADMIN_GROUP") or None,
            employee_group=env.get("PBX_LDAP_EMPLOYEE_GROUP") or None,
            extension_attribute=env.get("PBX_LDAP_EXTENSION_ATTRIBUTE") or cls.extension_attribute,
            timeout=env_number(env, "PBX_LDAP_TIMEOUT", float, DEFAULT_TIMEOUT) or DEFAULT_TIMEOUT,
            ca_file=env.get("PBX_LDAP_CA_FILE") or None,
        )


@dataclass(frozen=True)
class DirectoryUser:
    name: str
    role: str
    extension: str | None
    display_name: str | None
    email: str | None


def _first(entry: dict, attribute: str) -> str | None:
    value = entry.get(attribute)
    if isinstance(value, list):
        value = value[0] if value else None
    return str(value) if value not in (None, "") else None


class Directory:
    def __init__(self, settings: DirectorySettings):
        self.settings = settings

    def _server(self) -> ldap3.Server:
        s = self.settings
        tls = ldap3.Tls(validate=ssl.CERT_REQUIRED, version=ssl.PROTOCOL_TLS_CLIENT, ca_certs_file=s.ca_file)
        return ldap3.Server(s.url, use_ssl=s.url.lower().startswith("ldaps://"), tls=tls,
                            connect_timeout=s.timeout, get_info=ldap3.NONE)

    def _bind_dn(self, name: str) -> str:
        template = self.settings.user_dn
        return template.replace("{name}", escape_rdn(name) if "=" in template else name)

    def authenticate(self, name: str, password: str) -> DirectoryUser:
        """The user as the directory has them; DirectoryRefused or DirectoryDown otherwise."""
        if not password:
            # An LDAP bind with an empty password is an anonymous bind, and it "succeeds".
            raise DirectoryRefused("no password")
        s = self.settings
        conn = ldap3.Connection(self._server(), user=self._bind_dn(name), password=password,
                                receive_timeout=max(1, math.ceil(s.timeout)),  # ldap3 packs it as an integer
                                raise_exceptions=False, auto_bind=ldap3.AUTO_BIND_NONE,
                                read_only=True)
        try:
            conn.open()
            if not s.url.lower().startswith("ldaps://") and not conn.start_tls():
                raise DirectoryDown(f"{s.url}: StartTLS refused ({conn.result.get('description')})")
            if not conn.bind():
                if conn.result.get("result") == 49:  # invalidCredentials
                    raise DirectoryRefused("wrong name or password")
                raise DirectoryDown(f"{s.url}: bind failed ({conn.result.get('description')}: {conn.result.get('message')})")
            return self._read(conn, name)
        except (ldap_errors.LDAPSocketOpenError, ldap_errors.LDAPSocketReceiveError, ldap_errors.LDAPSocketSendError,
                ldap_errors.LDAPStartTLSError, ldap_errors.LDAPSSLConfigurationError, ldap_errors.LDAPSessionTerminatedByServerError,
                ldap_errors.LDAPCommunicationError, ldap_errors.LDAPResponseTimeoutError, ssl.SSLError, OSError) as exc:
            raise DirectoryDown(f"{s.url}: {type(exc).__name__}: {exc}") from None
        except ldap_errors.LDAPException as exc:
            raise DirectoryDown(f"{s.url}: {type(exc).__name__}: {exc}") from None
        finally:
            try:
                conn.unbind()
            except Exception:  # a connection that never opened: nothing to close
                pass

    def _read(self, conn: ldap3.Connection, name: str) -> DirectoryUser:
        s = self.settings
        ext_attr = s.extension_attribute
        wanted = [ext_attr, "memberOf", "displayName", "cn", "mail"]
        search = s.user_filter.replace("{name}", escape_filter_chars(name))
        if not conn.search(s.base, search, attributes=wanted, time_limit=int(s.timeout) + 1) or not conn.response:
            raise DirectoryRefused("the user's entry is not found under PBX_LDAP_BASE")
        found = [e for e in conn.response if e.get("type") == "searchResEntry"]
        if len(found) != 1:
            raise DirectoryRefused("not exactly one entry matches the user")
        dn, entry = found[0]["dn"], found[0]["attributes"]
        groups = {g.lower() for g in (entry.get("memberOf") or [])}

        def member(group: str | None) -> bool:
            if group is None:
                return False
            if group.lower() in groups:
                return True
            check = f"(|(member={escape_filter_chars(dn)})(uniqueMember={escape_filter_chars(dn)})(memberUid={escape_filter_chars(name)}))"
            return bool(conn.search(group, check, search_scope=ldap3.BASE, attributes=[], time_limit=int(s.timeout) + 1)
                        and conn.response)

        extension = _first(entry, ext_attr)
        if extension is not None:
            extension = "".join(extension.split())
            if not EXTENSION_RE.match(extension):
                extension = None
        if member(s.admin_group):
            role = "admin"
        elif (s.employee_group is None or member(s.employee_group)) and extension:
            role = "employee"
        else:
            raise DirectoryRefused("the user is in none of the page's groups, or has no extension")
        return DirectoryUser(name, role, extension, _first(entry, "displayName") or _first(entry, "cn"), _first(entry, "mail"))
