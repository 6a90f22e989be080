"""Privacy: which items carry personal data, and keeping them away from hosted arms.

Detected (each with a check that keeps look-alikes out):

- ``email``: addresses with a domain and a top-level domain.
- ``phone``: numbers the ``phonenumbers`` library finds and judges *valid* for ``region`` (or given
  with +country code); numbers written right after order/invoice/ticket/tracking/ref/account/ISBN are
  taken as identifiers, not phones.
- ``card``: 13-19 digit payment card numbers with a card-network prefix that pass the Luhn check.
- ``iban``: IBANs of the right length for their country that pass the mod-97 check.
- ``ssn``: US social security numbers written 123-45-6789 / 123 45 6789, or 9 digits right after
  "SSN"/"social security"; area 000, 666 and 900-999, group 00, serial 0000 and the known
  advertising numbers are refused.
- ``ip``: IPv4 and IPv6 addresses (``ipaddress``), not version strings (1.2.3, v1.2.3.4), not
  loopback, unspecified or multicast addresses.
- ``dob``: a full date (numeric or with a month name) within a few words of born / birth / DOB.
- ``name``: only where a cheap reliable cue exists: an honorific (Mr, Mrs, Ms, Miss, Dr, Prof, Mx)
  before a capitalised word, or a labelled field ("Name: Jane Roe", "Patient: ...").

Not detected: bare names without such a cue ("Sabrina Salerno"), postal addresses, birth years
alone, medical facts, account numbers of other formats, free-text identifiers. A clean scan is not
proof that the text holds no personal data.

>>> [m.kind for m in find_pii("Mail jane.roe@example.com or call (415) 555-2671.")]
['email', 'phone']
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Iterable, Sequence


from kit.errors import ConfigError

if TYPE_CHECKING:
    pass

KINDS = ("email", "phone", "card", "iban", "ssn", "ip", "dob", "name")
_PRIORITY = {k: i for i, k in enumerate(("email", "iban", "card", "ssn", "ip", "dob", "phone", "name"))}


@dataclass(frozen=True)
class PiiMatch:
    kind: str
    start: int
    end: int
    redacted: str


# -- detectors ---------------------------------------------------------------------------------------

_EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9][A-Za-z0-9._%+-]*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(?![\w-])")
_ID_CUE = re.compile(r"(?:order|invoice|inv|ticket|tracking|track|ref|reference|case|account|acct|id|serial|isbn|"
                     r"sku|po|confirmation|booking|shipment|parcel|claim|policy)\s*(?:number|num|no\.?|nr\.?|#)?"
                     r"\s*[:#]?\s*$", re.IGNORECASE)
_CARD = re.compile(r"(?<![\w-])\d(?:[ -]?\d){12,18}(?![\w-])")
_CARD_PREFIX = re.compile(r"^(?:4|5[1-5]|2(?:2[2-9]|[3-6]\d|7[01]|720)|3[47]|6011|64[4-9]|65|35(?:2[89]|[3-8]\d)|"
                          r"30[0-5]|3[68]|62)")
_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}")
_IBAN_LENGTH = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29, "CH": 21,
    "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FO": 18,
    "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23,
    "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27,
    "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PS": 29,
    "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "TN": 24, "TR": 26,
    "UA": 29, "VG": 24, "XK": 20,
}
_SSN = re.compile(r"(?<![\w-])(\d{3})([- ])(\d{2})\2(\d{4})(?![\w-])")
_SSN_BARE = re.compile(r"(?:ssn|social security(?: number| no\.?)?)\s*[:#]?\s*(\d{9})(?!\d)", re.IGNORECASE)
_SSN_ADVERTISED = {"078051120", "219099999", "123456789"}
_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?!\.?\d)(?!\w)")
_IPV6 = re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
_VERSION_CUE = re.compile(r"\b(?:versions?|ver|releases?|build|firmware|upgraded?|updated?|patch|v)\b", re.IGNORECASE)
_MONTH = (r"(?P<mon>Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|"
          r"Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)\.?")
_DATES = (
    re.compile(r"(?<![\d/.-])(?P<y>(?:19|20)\d{2})-(?P<m>\d{1,2})-(?P<d>\d{1,2})(?![\d/.-])"),
    re.compile(r"(?<![\d/.-])(?P<a>\d{1,2})[/.-](?P<b>\d{1,2})[/.-](?P<y>(?:19|20)\d{2})(?![\d/.-])"),
    re.compile(_MONTH + r"\s+(?P<d>\d{1,2})(?:st|nd|rd|th)?,?\s+(?P<y>(?:19|20)\d{2})\b"),
    re.compile(r"\b(?P<d>\d{1,2})(?:st|nd|rd|th)?\s+(?:of\s+)?" + _MONTH + r",?\s+(?P<y>(?:19|20)\d{2})\b"),
)
_BIRTH_CUE = re.compile(r"\b(?:born|birth|birthday|birthdate|dob|d\.o\.b\.?|date of birth)\b", re.IGNORECASE)
_NAME_HONORIFIC = re.compile(r"\b(?:Mr|Mrs|Ms|Miss|Dr|Prof|Mx)\.?"
                             r"\s+(?:[A-Z]\.\s*)?[A-Z][a-z'’-]+(?:\s+[A-Z][a-z'’-]+)?")
_NAME_LABEL = re.compile(r"\b(?i:name|full name|patient|customer|client|contact)\s*:\s*[A-Z][a-z'’-]+(?:\s+[A-Z][a-z'’-]+)+")


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _iban_ok(candidate: str) -> str | None:
    compact = candidate.replace(" ", "")
    length = _IBAN_LENGTH.get(compact[:2])
    if length is None or len(compact) < length:
        return None
    iban = compact[:length]
    moved = iban[4:] + iban[:4]
    return iban if int("".join(str(int(c, 36)) for c in moved)) % 97 == 1 else None


def _ssn_ok(area: str, group: str, serial: str) -> bool:
    a = int(area)
    return not (a == 0 or a == 666 or a >= 900 or group == "00" or serial == "0000"
                or area + group + serial in _SSN_ADVERTISED)


def _date_ok(m: re.Match) -> bool:
    g = m.groupdict()
    year = int(g["y"])
    if year > date.today().year:
        return False
    if g.get("mon"):
        months = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
        month, days = months.index(g["mon"][:3].lower()) + 1, [int(g["d"])]
        candidates = [(month, days[0])]
    elif g.get("m"):
        candidates = [(int(g["m"]), int(g["d"]))]
    else:  # 03/05/1984: month/day (US) or day/month (elsewhere); either valid date counts
        candidates = [(int(g["a"]), int(g["b"])), (int(g["b"]), int(g["a"]))]
    for month, day in candidates:
        try:
            date(year, month, day)
            return True
        except ValueError:
            continue
    return False


def _phones(text: str, region: str) -> Iterable[PiiMatch]:
    import phonenumbers

    for m in phonenumbers.PhoneNumberMatcher(text, region, leniency=phonenumbers.Leniency.VALID):
        before = text[:m.start]
        if before[-1:].isalnum() or before[-1:] in "-#/" or _ID_CUE.search(before[-40:]):
            continue
        digits = re.sub(r"\D", "", m.raw_string)
        yield PiiMatch("phone", m.start, m.end, f"phone ending {digits[-2:]}")


def _detect(text: str, region: str) -> Iterable[PiiMatch]:
    for m in _EMAIL.finditer(text):
        yield PiiMatch("email", m.start(), m.end(), "***@" + m.group().split("@", 1)[1])
    for m in _IBAN.finditer(text):
        iban = _iban_ok(m.group())
        if iban:
            end = m.start() + len(m.group()) - (len(m.group().replace(" ", "")) - len(iban))
            yield PiiMatch("iban", m.start(), end, f"{iban[:2]}** **** {iban[-4:]}")
    for m in _CARD.finditer(text):
        digits = re.sub(r"\D", "", m.group())
        if 13 <= len(digits) <= 19 and _CARD_PREFIX.match(digits) and _luhn(digits) and len(set(digits)) > 1:
            yield PiiMatch("card", m.start(), m.end(), f"card ending {digits[-4:]}")
    for m in _SSN.finditer(text):
        if _ssn_ok(m.group(1), m.group(3), m.group(4)):
            yield PiiMatch("ssn", m.start(), m.end(), "***-**-****")
    for m in _SSN_BARE.finditer(text):
        d = m.group(1)
        if _ssn_ok(d[:3], d[3:5], d[5:]):
            yield PiiMatch("ssn", m.start(1), m.end(1), "***-**-****")
    for pattern, cls in ((_IPV4, ipaddress.IPv4Address), (_IPV6, ipaddress.IPv6Address)):
        for m in pattern.finditer(text):
            if _VERSION_CUE.search(text[max(0, m.start() - 40):m.start()]):  # "version 1.2.3.4", "upgraded to 2.10.4.1"
                continue
            try:
                ip = cls(m.group())
            except ValueError:
                continue
            if not (ip.is_loopback or ip.is_unspecified or ip.is_multicast):
                masked = ".".join(m.group().split(".")[:2] + ["x", "x"]) if cls is ipaddress.IPv4Address else "ipv6"
                yield PiiMatch("ip", m.start(), m.end(), masked)
    for pattern in _DATES:
        for m in pattern.finditer(text):
            window = text[max(0, m.start() - 40):m.start()] + " " + text[m.end():m.end() + 20]
            if _BIRTH_CUE.search(window) and _date_ok(m):
                yield PiiMatch("dob", m.start(), m.end(), "date of birth")
    yield from _phones(text, region)
    for pattern in (_NAME_HONORIFIC, _NAME_LABEL):
        for m in pattern.finditer(text):
            if m.group().startswith("Dr") and re.search(r"\b[A-Z][a-z]+\s+$", text[:m.start()]):
                continue  # "Oak Dr Suite 4": Drive after a street name, not Doctor
            cue, _, rest = m.group().partition(":") if pattern is _NAME_LABEL else m.group().partition(" ")
            initials = " ".join(w[0] + "." for w in rest.replace(".", " ").split())
            yield PiiMatch("name", m.start(), m.end(), f"{cue.strip()} {initials}".strip())


def find_pii(text: str, *, region: str = "US", kinds: Sequence[str] = KINDS) -> list[PiiMatch]:
    """Personal data found in ``text``, in reading order; overlapping finds keep the most specific kind.

    ``region`` is the default country for phone numbers written without +country code.

    >>> [m.redacted for m in find_pii("card 4111 1111 1111 1111, order #4829301746, v1.2.3")]
    ['card ending 1111']
    """
    unknown = set(kinds) - set(KINDS)
    if unknown:
        raise ConfigError(f"unknown PII kinds {sorted(unknown)}", where="kit.privacy.find_pii", fix=f"use {KINDS}")
    found = sorted((m for m in _detect(text or "", region) if m.kind in kinds),
                   key=lambda m: (_PRIORITY[m.kind], m.start))
    kept: list[PiiMatch] = []
    for m in found:
        if all(m.end <= k.start or m.start >= k.end for k in kept):
            kept.append(m)
    return sorted(kept, key=lambda m: m.start)


# -- items and traffic -------------------------------------------------------------------------------
