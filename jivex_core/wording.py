"""Counted nouns for messages: "1 object", "2 objects", "1 study"."""

from __future__ import annotations


def counted(count: int, singular: str, plural: str | None = None) -> str:
    """*count* and the noun in the number it takes (English)."""
    return f"{count} {singular if count == 1 else (plural or singular + 's')}"
