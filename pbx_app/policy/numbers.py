"""The company's own numbers (DIDs): whatever form a number is written in, in the policy or by
the carrier, it has one key."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# A Russian number: the country prefix (+7, 7 or the trunk prefix 8) before 10 digits.
_NATIONAL_DIGITS = 10
_COUNTRY_PREFIXES = ("7", "8")
COUNTRY_CODE = "7"
NATIONAL_PREFIX = "8"


def normalise_did(text: str) -> str:
    """One key per number: '+7 495 123-45-67', '84951234567', '8 (495) 123 45 67' and
    '4951234567' are all '4951234567'. Other numbers keep all their digits (written the same
    way each time, they match)."""
    digits = "".join(filter(str.isdigit, str(text)))
    if len(digits) == _NATIONAL_DIGITS + 1 and digits[0] in _COUNTRY_PREFIXES:
        return digits[1:]
    return digits


def dialled_forms(key: str) -> tuple[str, ...]:
    """The digit strings a carrier may send for the number whose key is ``key`` (the inverse of
    normalise_did): where only an exact match is possible (the dialplan without an engine)."""
    if len(key) == _NATIONAL_DIGITS:
        return (key, *(prefix + key for prefix in _COUNTRY_PREFIXES))
    return (key,)


@dataclass(frozen=True)
class NumberOwner:
    """Who a company number reaches, and where the policy says so."""

    kind: Literal["employee", "department"]
    id: str  # the extension or the department id
    written: str  # as the policy writes it
    place: str  # file:line:column of that item


def canonical_number(text: str) -> str:
    """An outside number in its international digits, whatever usual form it is written in:
    '+7 900 123-45-67', '8 (900) 123 45 67', '79001234567' and '9001234567' are all
    '79001234567'. Numbers of other countries are written with their country code ('+44 …')
    and keep their digits."""
    digits = "".join(filter(str.isdigit, str(text)))
    if len(digits) == _NATIONAL_DIGITS + 1 and digits[0] in _COUNTRY_PREFIXES:
        return COUNTRY_CODE + digits[1:]
    if len(digits) == _NATIONAL_DIGITS and not str(text).strip().startswith("+"):
        return COUNTRY_CODE + digits
    return digits
