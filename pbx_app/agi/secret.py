"""The FastAGI shared secret: the proof that a request comes from our Asterisk, and the key that
signs what a call carries on its channel (state.py).

One file serves both sides. Asterisk reads it into its [globals] (dialplan/pbx_agi.conf
`#tryinclude`s it), so it is one line ``PBX_AGI_SECRET=<value>``; the server reads the same line
(PBX_AGI_SECRET_FILE). The secret itself never travels: on every request the server asks the
channel for SHA1(nonce:secret) with a fresh random nonce (``GET FULL VARIABLE`` evaluates the
expression inside Asterisk), so nothing a peer saw once can be replayed, and neither Asterisk's
verbose log (which prints every application's arguments) nor ours ever holds it."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import stat
from pathlib import Path

from ..contract import AGI_SECRET as NAME
# Characters that pass through the dialplan's ${SHA1(...)} untouched: no comma, brace or quote.
_VALUE = re.compile(r"[A-Za-z0-9_-]{32,256}")


class SecretError(ValueError):
    """The secret file cannot be used; the message names the file (and line)."""


def read_secret(path: Path) -> bytes:
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SecretError(f"{path}: cannot read it ({exc.strerror}); make one with: "
                          f"printf '{NAME}=%s\\n' \"$(openssl rand -hex 32)\" > {path}") from None
    if mode & stat.S_IROTH:
        raise SecretError(f"{path}: readable by every user (mode {stat.S_IMODE(mode):o}); "
                          "chmod 640 it (owner root, group shared by Asterisk and pbx_app)")
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split(";", 1)[0].strip()
        name, sep, value = line.partition("=")
        if not sep or name.strip() != NAME:
            continue
        value = value.lstrip(">").strip()  # Asterisk also takes "NAME => value"
        if not _VALUE.fullmatch(value):
            raise SecretError(f"{path}:{number}:{raw.index('=') + 2}: {NAME} must be 32 to 256 letters, digits, "
                              "'-' or '_' (openssl rand -hex 32 makes one)")
        return value.encode()
    raise SecretError(f"{path}: no line {NAME}=… in it")


def challenge() -> tuple[str, str]:
    """A fresh nonce and the expression Asterisk answers it with."""
    nonce = secrets.token_hex(16)
    return nonce, "${SHA1(%s:${%s})}" % (nonce, NAME)


def proof(secret: bytes, nonce: str) -> str:
    return hashlib.sha1(nonce.encode() + b":" + secret).hexdigest()


def proves(secret: bytes, nonce: str, answer: str | None) -> bool:
    return hmac.compare_digest((answer or "").strip().lower().encode(), proof(secret, nonce).encode())


def state_key(secret: bytes) -> bytes:
    """The signing key: derived, so the challenge's answers tell nothing about it."""
    return hmac.new(secret, b"pbx_app FastAGI channel state", hashlib.sha256).digest()
