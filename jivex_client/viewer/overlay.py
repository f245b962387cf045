"""The four-corner text of a viewport: templates per modality.

A template is a list of lines per corner; each line holds ``{Keyword}``
fields naming DICOM attributes of the image shown (any top-level keyword,
names and dates made readable) and the viewer's own fields:

``{image}``      ``Im: 3/120`` (and the frame of a multi-frame object)
``{window}``     ``W: 400 L: 40`` (empty for colour)
``{zoom}``       ``Zoom: 150%``
``{location}``   ``Loc: -12.5 mm`` (position along the slice normal)
``{thickness}``  ``Thk: 5 mm``
``{spacing}``    what lengths are measured in, when not mm in the patient
``{rotation}``   ``Rot: 90°`` / ``Flip`` when the image is turned

A line whose fields are all empty is left out, so that one template serves
objects with and without an attribute; a part of a line in square brackets
is left out when its fields are (``[{KVP} kV] [{XRayTubeCurrent} mA]``
reads ``120 kV`` without a tube current, not ``120 kV  mA``). The defaults
are below; the configuration file overrides them per modality (``[viewer.overlay.CT]``,
see ``resources/jivex.toml``).
"""

from __future__ import annotations

import logging
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.valuerep import PersonName

from jivex_client.text import format_date, format_person_name

logger = logging.getLogger(__name__)

CORNERS = ("top_left", "top_right", "bottom_left", "bottom_right")

#: The viewer's own fields (not DICOM keywords).
VIEWER_FIELDS = (
    "image",
    "window",
    "zoom",
    "location",
    "thickness",
    "spacing",
    "rotation",
)


@dataclass(frozen=True)
class CornerTemplate:
    """Lines of the four corners."""

    top_left: tuple[str, ...] = ()
    top_right: tuple[str, ...] = ()
    bottom_left: tuple[str, ...] = ()
    bottom_right: tuple[str, ...] = ()

    def lines(self, corner: str) -> tuple[str, ...]:
        """The lines of *corner* (one of :data:`CORNERS`)."""
        return tuple(getattr(self, corner))


DEFAULT_TEMPLATE = CornerTemplate(
    top_left=(
        "{PatientName}",
        "{PatientID}",
        "{PatientBirthDate} {PatientSex}",
    ),
    top_right=(
        "{InstitutionName}",
        "{StudyDescription}",
        "{StudyDate} {StudyTime}",
        "S {SeriesNumber}: {SeriesDescription}",
    ),
    bottom_left=("{image}", "{location}", "{thickness}"),
    bottom_right=("{spacing}", "{rotation}", "{zoom}", "{window}"),
)

#: Defaults per modality; modalities not listed use :data:`DEFAULT_TEMPLATE`.
MODALITY_TEMPLATES: dict[str, CornerTemplate] = {
    "CT": CornerTemplate(
        top_left=DEFAULT_TEMPLATE.top_left,
        top_right=DEFAULT_TEMPLATE.top_right,
        bottom_left=(
            "{image}",
            "{location}",
            "{thickness}",
            "[{KVP} kV] [{XRayTubeCurrent} mA]",
        ),
        bottom_right=DEFAULT_TEMPLATE.bottom_right,
    ),
    "MR": CornerTemplate(
        top_left=DEFAULT_TEMPLATE.top_left,
        top_right=DEFAULT_TEMPLATE.top_right,
        bottom_left=(
            "{image}",
            "{location}",
            "{thickness}",
            "[TR {RepetitionTime}] [TE {EchoTime}]",
        ),
        bottom_right=DEFAULT_TEMPLATE.bottom_right,
    ),
}


@dataclass
class OverlayTemplates:
    """The templates in force: defaults, then the configuration's.

    *overrides* maps a modality (or ``default``) to corners given in the
    configuration; a corner not given keeps the built-in lines.
    """

    overrides: Mapping[str, Mapping[str, list[str] | None]] = field(
        default_factory=dict
    )

    def template(self, modality: str) -> CornerTemplate:
        """The template of *modality*."""
        base = MODALITY_TEMPLATES.get(modality.upper(), DEFAULT_TEMPLATE)
        lines = {corner: base.lines(corner) for corner in CORNERS}
        for key in ("default", modality.upper()):
            given = self.overrides.get(key) or {}
            for corner in CORNERS:
                value = given.get(corner)
                if value is not None:
                    lines[corner] = tuple(value)
        return CornerTemplate(**lines)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, PersonName):
        return format_person_name(str(value))
    if isinstance(value, MultiValue | list | tuple):
        return "\\".join(_text(v) for v in value)
    if isinstance(value, bytes):
        return ""
    if isinstance(value, float):
        return f"{value:g}"
    return str(value).strip()


def header_values(ds: Dataset) -> dict[str, str]:
    """Readable text of the top-level attributes of *ds*, by keyword.

    Dates (DA) read ``YYYY-MM-DD`` and times (TM) ``HH:MM:SS``; sequences
    and bulk data are left out.
    """
    out: dict[str, str] = {}
    for elem in ds:
        keyword = elem.keyword
        if not keyword or elem.VR in ("SQ", "OB", "OW", "OF", "OD", "OL", "OV", "UN"):
            continue
        try:
            value = elem.value
        except Exception:  # a value pydicom cannot convert: leave it out
            continue
        text = _text(value)
        if elem.VR == "DA":
            text = format_date(text)
        elif elem.VR == "TM" and len(text) >= 4 and text[:4].isdigit():
            parts = [text[0:2], text[2:4]] + ([text[4:6]] if len(text) >= 6 else [])
            text = ":".join(parts)
        elif elem.VR == "PN":
            text = format_person_name(text)
        out[keyword] = text
    return out


class _Formatter(string.Formatter):
    """Fills named fields only: no attribute or index access, unknown = ''."""

    def get_field(self, field_name: str, args: Any, kwargs: Any) -> Any:
        return kwargs.get(field_name, ""), field_name

    def format_field(self, value: Any, format_spec: str) -> str:
        try:
            return super().format_field(value, format_spec)
        except (ValueError, TypeError):
            return str(value)


_FORMATTER = _Formatter()


#: An optional part of a template line: text in square brackets.
_OPTIONAL = re.compile(r"\[([^\[\]]*)\]")


def _fields(text: str) -> list[str] | None:
    """The field names of *text*; None when it does not parse."""
    try:
        return [name for _t, name, _s, _c in _FORMATTER.parse(text) if name]
    except ValueError:
        return None


def _fill(text: str, values: Mapping[str, str]) -> str | None:
    try:
        return _FORMATTER.vformat(text, (), dict(values))
    except (ValueError, IndexError, KeyError):
        return None


def render_line(line: str, values: Mapping[str, str]) -> str:
    """One template line filled from *values*; empty when all its fields are.

    A part in square brackets is left out when all its fields are empty
    (and its brackets are dropped otherwise). A malformed line (an
    unmatched brace) is shown as written, so that a typo in the
    configuration is visible, not fatal.
    """
    names = _fields(_OPTIONAL.sub(lambda m: m.group(1), line))
    if names is None:
        return line
    if names and not any(values.get(name, "") for name in names):
        return ""

    dropped = []

    def optional(match: re.Match[str]) -> str:
        inner = match.group(1)
        fields = _fields(inner)
        if fields and not any(values.get(name, "") for name in fields):
            dropped.append(inner)
            return ""
        return inner

    template = _OPTIONAL.sub(optional, line)
    if dropped:
        # The blanks around what was left out, not those of the values.
        template = re.sub(r" {2,}", " ", template)
    text = _fill(template, values)
    if text is None:
        return line
    return text.strip()


def corner_texts(template: CornerTemplate, values: Mapping[str, str]) -> dict[str, str]:
    """The text of each corner: its non-empty lines joined with newlines."""
    out = {}
    for corner in CORNERS:
        lines = [render_line(line, values) for line in template.lines(corner)]
        out[corner] = "\n".join(line for line in lines if line)
    return out
