"""Secret values in every form text can carry them, and the process-wide list of live ones.

``redact(text, secrets)`` replaces each secret with ``***`` wherever it appears: as is, JSON-escaped
(``\\"``, ``\\\\``, ``\\u00e9``, at any depth of nesting), URL-encoded (``%22``, ``+`` for a
space, upper or lower hex, and URL-encoded JSON escapes), as HTML character references, in Python's
``repr`` form (``\\xe9``), inside base64 (any alignment, standard or URL-safe alphabet), and, for a
multi-line value, line by line as well as whole. Each secret becomes one regular expression in
which every character may take any of its encodings, so mixed forms (an encoder that escapes only
some characters) match too.

Short secrets: a value under ``SHORT`` characters is replaced only as a whole token, that is where
no letter, digit or underscore touches it on either side (an escape sequence such as ``%20`` or
``\\n`` before it counts as a separator). Decision: scrubbing a short value inside longer words
would blank parts of ordinary words, ids and numbers, and every such blank would show a reader
where the secret sits inside text they can guess (an oracle); as a whole token it is replaced
wherever it is actually shown as a value: in a header, a form field, a JSON string, a cookie.
A one-character value blanks that character wherever it stands alone: that costs readability,
never a secret.

Live secrets: every ``HttpClient`` registers itself here (weakly) and answers ``secrets()`` with
what its session holds: the configured password or token, every cookie value the session got,
the CSRF and access tokens. ``live_secrets()`` is what ``jobs.logs`` adds to its own list when it
scrubs a line, and what every error scrubs its text with when it is made.
"""

from __future__ import annotations

import binascii
import re
import threading
import weakref
from functools import lru_cache
from typing import Iterable, Protocol

MASK = "***"
# Secrets shorter than this are replaced only as whole tokens (see the module docstring).
SHORT = 8

# Backslashes as JSON or repr escapes write them, raw or URL-encoded, one or more (nested JSON).
_BS = r"(?:\\|%5[cC])+"
# Before a short secret: no word character, or the end of an escape (``%20``, ``\n``, ``\u00e9``).
_BEFORE = r"(?:(?<!\w)|(?<=%[0-9A-Fa-f]{2})|(?<=\\[nrtbf])|(?<=\\u[0-9A-Fa-f]{4}))"
_AFTER = r"(?!\w)"
# A run that may be base64 (standard or URL-safe alphabet).
_BASE64_RUN = re.compile(r"[A-Za-z0-9+/_-]{4,}={0,2}")
_TO_STANDARD = str.maketrans("-_", "+/")
_NAMED = {'"': "&quot;", "&": "&amp;", "<": "&lt;", ">": "&gt;", "'": "&#39;|&apos;"}
_JSON_LETTER = {"\n": "n", "\r": "r", "\t": "t", "\b": "b", "\f": "f"}


class SecretSource(Protocol):
    def secrets(self) -> list[str]:
        """The secret values this object holds now (and held before, while they may still work)."""


_sources: "weakref.WeakSet[SecretSource]" = weakref.WeakSet()
_sources_lock = threading.Lock()


def register(source: SecretSource) -> None:
    """Add ``source`` to the live sources; it leaves by itself when it is garbage collected."""
    with _sources_lock:
        _sources.add(source)


def live_secrets() -> list[str]:
    """The secrets every live source holds right now."""
    with _sources_lock:
        sources = list(_sources)
    out: list[str] = []
    for source in sources:
        out.extend(source.secrets())
    return out


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every form of every secret replaced by ``***``.

    Args:
        text: any text about to reach a log, a report, an error or a caller.
        secrets: the secret values in force; empty ones are ignored.
    """
    if not text or not isinstance(text, str):
        return text
    held = tuple(dict.fromkeys(s for s in secrets if s))
    if not held:
        return text
    for pattern in _patterns(held):
        text = pattern.sub(MASK, text)
    shortest, anywhere = _any_of(held)
    return _BASE64_RUN.sub(
        lambda m: MASK if len(m.group()) >= shortest and _base64_holds(m.group(), anywhere) else m.group(),
        text)


def holds_secret(text: str, secrets: Iterable[str]) -> bool:
    """Whether ``redact`` would change ``text``."""
    return redact(text, secrets) != text


def _patterns(secrets: tuple[str, ...]) -> list[re.Pattern[str]]:
    return [pattern for secret in secrets for pattern in _compiled(secret)]


@lru_cache(maxsize=64)
def _any_of(secrets: tuple[str, ...]) -> tuple[int, re.Pattern[str]]:
    """(the shortest base64 run that can hold one of ``secrets``, one pattern for them all)."""
    shortest = min(_base64_length(secret) for secret in secrets)
    return shortest, re.compile("|".join(f"(?:{p.pattern})" for p in _patterns(secrets)))


@lru_cache(maxsize=1024)
def _compiled(secret: str) -> tuple[re.Pattern[str], ...]:
    """The patterns of one secret: the whole value, and each line of a multi-line value."""
    parts = [secret]
    lines = [line.strip() for line in secret.splitlines()]
    if len(lines) > 1:
        # Decision: a line without a letter or digit ("-----", "==") holds nothing secret and
        # would blank ordinary punctuation everywhere.
        parts += [line for line in lines if any(ch.isalnum() for ch in line)]
    out = []
    for part in dict.fromkeys(parts):
        body = "".join(_char(ch) for ch in part)
        out.append(re.compile(body if len(part) >= SHORT else f"{_BEFORE}{body}{_AFTER}"))
    return tuple(out)


def _char(ch: str) -> str:
    """A regular expression matching ``ch`` in any of the encodings it may take."""
    if ch == "\n":
        # A line break as is, escaped, URL-encoded, or collapsed into one space by a message cut.
        return rf"(?:\r?\n|(?:{_BS}r)?{_BS}n|(?i:(?:%0d)?%0a)| )"
    code = ord(ch)
    forms = [re.escape(ch)]
    forms += [f"(?i:{''.join(f'%{b:02x}' for b in ch.encode('utf-8'))})"]
    if ch == " ":
        forms.append(r"\+")
    if not (ch.isascii() and ch.isalnum()):
        forms += [f"&#{code};", f"(?i:&#x{code:x};)"]
        if ch in _NAMED:
            forms += _NAMED[ch].split("|")
        if ch in "\"\\/'":
            forms.append(_BS + "(?:" + re.escape(ch) + f"|(?i:%{code:02x}))")
        if ch in _JSON_LETTER:
            forms.append(_BS + _JSON_LETTER[ch])
        if code > 0xFFFF:
            high, low = divmod(code - 0x10000, 0x400)
            forms.append(f"{_BS}(?i:u{0xD800 + high:04x}){_BS}(?i:u{0xDC00 + low:04x})")
        else:
            forms.append(f"{_BS}(?i:u{code:04x})")
        if code < 0x100:
            forms.append(f"{_BS}(?i:x{code:02x})")
    return "(?:" + "|".join(forms) + ")"


@lru_cache(maxsize=1024)
def _base64_length(secret: str) -> int:
    """The fewest base64 characters that can hold ``secret`` (its shortest line, unpadded)."""
    parts = [line.strip() for line in secret.splitlines() if line.strip()] or [secret]
    return max(4, min(-(-4 * len(part.encode("utf-8")) // 3) for part in parts))


def _base64_holds(run: str, pattern: re.Pattern[str]) -> bool:
    """Whether the base64 in ``run``, read from any of the four alignments, holds a secret."""
    body = run.rstrip("=").translate(_TO_STANDARD)
    for skip in range(4):
        part = body[skip:]
        part = part[: len(part) - (len(part) % 4 == 1)]
        if len(part) < 4:
            break
        try:
            decoded = binascii.a2b_base64(part + "=" * (-len(part) % 4)).decode("utf-8", "replace")
        except binascii.Error:
            continue
        if pattern.search(decoded):
            return True
    return False
