"""Readable forms of DICOM values for display (no Qt)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any


def format_person_name(value: str) -> str:
    """Return a Person Name (PS3.5 6.2, VR PN) in readable form.

    Components (family^given^middle^prefix^suffix) are joined with spaces
    and the alphabetic, ideographic and phonetic groups with `` = ``, so
    that every group of a Japanese or Korean name stays visible:
    ``Yamada^Tarou=山田^太郎=やまだ^たろう`` reads
    ``Yamada Tarou = 山田 太郎 = やまだ たろう``. Several values (separated
    by a backslash) are joined with ``; ``.
    """
    names = []
    for one in value.split("\\"):
        groups = [
            " ".join(part for part in group.split("^") if part.strip())
            for group in one.split("=")
        ]
        while groups and not groups[-1]:
            groups.pop()
        names.append(" = ".join(groups))
    return "; ".join(name for name in names if name)


def format_date(value: str) -> str:
    """Return a DICOM date ``YYYYMMDD`` as ``YYYY-MM-DD``; other text unchanged."""
    text = value.strip()
    if len(text) == 8 and text.isdigit():
        return f"{text[:4]}-{text[4:6]}-{text[6:]}"
    return text


def count_text(count: int, one: str, many: str) -> str:
    """*one* or *many* (each with a ``{n}`` placeholder) for *count* things.

    The caller passes both forms through its translation call; languages with
    more plural forms than English get the *many* form for all but one.
    """
    return (one if count == 1 else many).format(n=count)


def patients_text(
    studies: Iterable[Mapping[str, Any]], tr: Callable[[str], str] = str
) -> str:
    """Whose studies these are: the first two patients' names (or IDs),
    then how many more, e.g. ``Doe Jane, Roe Richard and 3 more``.

    *tr* translates the ``{names} and {count} more`` pattern.
    """
    names: list[str] = []
    for study in studies:
        name = format_person_name(str(study.get("PatientName") or "")) or str(
            study.get("PatientID") or "?"
        )
        if name not in names:
            names.append(name)
    who = ", ".join(names[:2])
    if len(names) > 2:
        who = tr("{names} and {count} more").format(names=who, count=len(names) - 2)
    return who
