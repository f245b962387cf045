"""The character sets of the conformance statement (section 5) on top of pydicom.

pydicom decodes and encodes every Specific Character Set the statement lists
but one; this module adds that one and what matching and answering need:

- ``ISO_IR 14`` (JIS X 0201 Romaji) is listed by the statement but is not a
  Defined Term of PS3.3 C.12.1.1.2: ISO-IR 14 is the G0 half of ``ISO_IR 13``
  (PS3.5 H.1.1), so objects and queries that name it are read as ISO_IR 13.
  Its bytes 05/12 and 07/14 (yen sign, overline) read as backslash and
  tilde; 05/12 is the value delimiter in either case (PS3.4 C.2.2.2). Answers
  never use it: it has no repertoire beyond ASCII of its own.
- :func:`fold` gives the form in which person names are compared, so that
  matching ignores case in every script that has case, and the width of
  Japanese and Latin full-width/half-width forms (PS3.4 C.2.2.2.1 lets PN
  matching ignore "character encoding variants").
- :func:`response_character_set` picks the Specific Character Set of an
  answer (PS3.4 C.4.1.1.3.2) among candidates, UTF-8 when none can carry it.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable

from pydicom import charset
from pydicom.valuerep import TEXT_VR_DELIMS, PersonName
from pydicom.values import convert_PN

charset.python_encoding.setdefault("ISO_IR 14", charset.python_encoding["ISO_IR 13"])

#: Terms whose repertoire is ASCII only. pydicom's default codec accepts all
#: of Latin-1, which is not what these terms allow.
_ASCII_TERMS = frozenset({"", "ISO_IR 6", "ISO 2022 IR 6", "ISO_IR 14"})
#: What any answer can be encoded in (PS3.3 C.12.1.1.2, ISO_IR 192).
UTF8 = "ISO_IR 192"

# Characters whose meaning to matching must not change by folding:
# delimiters and wild cards.
_PROTECTED = frozenset("=^\\*?")
_DELIMITERS = re.compile(r"([=^\\])")
# Upper-case forms that str.upper() does not give in one character.
_UPPER = {"ß": "ẞ", "İ": "I"}


def fold(value: str) -> str:
    """Return the folded form of a person name (or of a PN query value).

    Per component: one-to-one compatibility forms become their plain form
    (half-width katakana and full-width Latin letters), the result is
    composed (NFC, so decomposed accents match precomposed ones), then each
    character is upper-cased where that gives one character (the German
    sharp s becomes capital sharp s, the Turkish dotted capital I plain I).
    Every fold keeps the delimiters ``= ^ \\`` and the wild cards ``* ?``
    where they are, so a folded query matches folded names component by
    component, and ``?`` still stands for one character.
    """
    if value.isascii():
        return value.upper()
    return "".join(
        part if part in ("=", "^", "\\") else _fold_run(part)
        for part in _DELIMITERS.split(value)
    )


def _fold_run(run: str) -> str:
    if run.isascii():
        return run.upper()
    plain = unicodedata.normalize("NFC", "".join(_compatible(c) for c in run))
    return "".join(_upper(c) for c in plain)


@functools.lru_cache(maxsize=8192)
def _compatible(char: str) -> str:
    mapped = unicodedata.normalize("NFKC", char)
    if len(mapped) != 1 or mapped in _PROTECTED:
        return char
    return mapped


@functools.lru_cache(maxsize=8192)
def _upper(char: str) -> str:
    upper = char.upper()
    if len(upper) != 1:
        upper = char
    return _UPPER.get(upper, upper)


def terms(value: str | Iterable[str] | None) -> list[str]:
    """The values of a Specific Character Set, as stored or as read."""
    if value is None:
        return []
    if isinstance(value, str):
        items = value.split("\\")
    else:
        items = list(value)
    items = [str(item).strip() for item in items]
    return [] if not any(items) else items


#: Multi-byte sets that code extensions invoke next to ASCII, never on
#: their own in G0 for a whole value (PS3.3 C.12.1.1.2, table C.12-4).
_NEEDS_DEFAULT_FIRST = frozenset(
    {"ISO 2022 IR 58", "ISO 2022 IR 87", "ISO 2022 IR 149", "ISO 2022 IR 159"}
)


def query_character_set(value: str | Iterable[str] | None) -> list[str]:
    """A query's Specific Character Set as the terms to answer it in.

    A value whose first term is one of the multi-byte code extension sets
    (``ISO 2022 IR 87`` alone, as some systems send it) lacks the default
    repertoire that must come first (PS3.3 C.12.1.1.2): it is read as
    ``\\ISO 2022 IR 87``, as other archives read it, so that an answer in
    it switches back to ASCII where the standard asks.
    """
    found = terms(value)
    if found and found[0] in _NEEDS_DEFAULT_FIRST:
        return ["", *found]
    return found


def can_encode(values: Iterable[tuple[str, str]], character_set: list[str]) -> bool:
    """Whether pydicom writes every (VR, text) in *character_set* without loss.

    Checked character by character against the codecs pydicom uses, as it
    encodes each run of text with the first one that can; with code
    extensions, also by writing and reading each value back. An unknown term
    cannot encode anything beyond ASCII.
    """
    codecs = []
    for term in character_set:
        if term in _ASCII_TERMS:
            codecs.append("ascii")
        elif term in charset.python_encoding:
            codecs.append(charset.python_encoding[term])
        else:
            return False
    default_first = character_set[0] in _ASCII_TERMS and len(character_set) > 1
    for _vr, text in values:
        for char in set(text):
            if char.isascii():
                continue
            if default_first and char <= "\xff":
                # pydicom's default codec takes Latin-1 letters as they are,
                # without the escape sequence ISO 2022 needs for them.
                return False
            if not any(_encodes(char, codec) for codec in codecs):
                return False
    if len(character_set) > 1:
        encodings = charset.convert_encodings(character_set)
        return all(_round_trips(vr, text, encodings) for vr, text in values)
    return True


def _round_trips(vr: str, text: str, encodings: list[str]) -> bool:
    """Whether pydicom reads back what it wrote.

    pydicom 3.0 does not switch back to the first character set before the
    ``^`` and ``=`` of a name (PS3.5 6.2.1.2 asks for it) after a single-byte
    set of code extensions, and reads the name as if the switch were there:
    such names come back with the wrong letters, so they go out in UTF-8.
    """
    for value in text.split("\\"):
        if value.isascii():
            continue
        if vr == "PN":
            raw = PersonName(value).encode(encodings)
            back = str(convert_PN(raw, encodings))
        else:
            raw = charset.encode_string(value, encodings)
            back = charset.decode_bytes(raw, encodings, TEXT_VR_DELIMS)
        if back != value:
            return False
    return True


@functools.lru_cache(maxsize=8192)
def _encodes(char: str, codec: str) -> bool:
    encoder = charset.custom_encoders.get(codec)
    try:
        if encoder is not None:
            encoder(char)
        else:
            char.encode(codec)
    except (UnicodeError, LookupError):
        return False
    return True


def response_character_set(
    values: Iterable[tuple[str, str]],
    candidates: Iterable[str | Iterable[str] | None],
) -> str | list[str] | None:
    """The Specific Character Set of an answer carrying *values* (VR, text).

    None when every text is ASCII (the attribute is then left out, PS3.4
    C.4.1.1.3.2). Otherwise the first of the *candidates* that encodes every
    text, UTF-8 when none does: UTF-8 encodes everything. An unknown term,
    and ISO_IR 14, encode nothing beyond ASCII.
    """
    wide = [(vr, text) for vr, text in values if not text.isascii()]
    if not wide:
        return None
    for value in candidates:
        candidate = terms(value)
        if candidate and can_encode(wide, candidate):
            return candidate[0] if len(candidate) == 1 else candidate
    return UTF8
