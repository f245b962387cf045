"""Objects that are not images: PDF, structured reports and waveforms.

Qt-free: what to show is worked out here (pages as RGB arrays, report lines,
waveform channels), the widgets only draw it.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
from pydicom.dataset import Dataset

from jivex_client.text import format_date, format_person_name

logger = logging.getLogger(__name__)

ENCAPSULATED_PDF = "1.2.840.10008.5.1.4.1.1.104.1"
#: Structured Reporting storage classes (PS3.4 B.5), Key Objects included.
SR_PREFIX = "1.2.840.10008.5.1.4.1.1.88."
KEY_OBJECT_SELECTION = "1.2.840.10008.5.1.4.1.1.88.59"
#: Waveform storage classes (PS3.4 B.5): 1.2.840.10008.5.1.4.1.1.9.x.y.
WAVEFORM_PREFIX = "1.2.840.10008.5.1.4.1.1.9."
GRAYSCALE_SOFTCOPY_PRESENTATION_STATE = "1.2.840.10008.5.1.4.1.1.11.1"
#: Presentation states of every kind (grayscale, colour, pseudo-colour, …).
PRESENTATION_STATE_PREFIX = "1.2.840.10008.5.1.4.1.1.11."


class ObjectKindValues(StrEnum):
    """How an object is shown."""

    IMAGE = "IMAGE"
    PDF = "PDF"
    REPORT = "REPORT"
    WAVEFORM = "WAVEFORM"
    PRESENTATION = "PRESENTATION"
    KEY_OBJECTS = "KEY_OBJECTS"
    OTHER = "OTHER"


#: Non-image classes that the viewer neither shows nor lists (RT plans...).
_NON_IMAGE_PREFIXES = (
    "1.2.840.10008.5.1.4.1.1.481.",  # RT objects other than RT Image
    "1.2.840.10008.5.1.4.1.1.66",  # raw data, registration, segmentation...
)
RT_IMAGE = "1.2.840.10008.5.1.4.1.1.481.1"
SEGMENTATION = "1.2.840.10008.5.1.4.1.1.66.4"


def object_kind(sop_class_uid: str) -> ObjectKindValues:
    """How the viewer shows an object of *sop_class_uid*."""
    uid = sop_class_uid or ""
    if uid == ENCAPSULATED_PDF:
        return ObjectKindValues.PDF
    if uid == KEY_OBJECT_SELECTION:
        return ObjectKindValues.KEY_OBJECTS
    if uid.startswith(SR_PREFIX):
        return ObjectKindValues.REPORT
    if uid.startswith(WAVEFORM_PREFIX):
        return ObjectKindValues.WAVEFORM
    if uid.startswith(PRESENTATION_STATE_PREFIX):
        return ObjectKindValues.PRESENTATION
    if uid == RT_IMAGE or uid == SEGMENTATION:
        return ObjectKindValues.IMAGE
    if any(uid.startswith(p) for p in _NON_IMAGE_PREFIXES):
        return ObjectKindValues.OTHER
    if uid.startswith("1.2.840.10008.5.1.4.1.1.104."):
        return ObjectKindValues.OTHER  # CDA, STL, OBJ...
    return ObjectKindValues.IMAGE


# -- Encapsulated PDF -------------------------------------------------------------


class DocumentError(Exception):
    """A document object cannot be shown; the message says why."""


def pdf_bytes(ds: Dataset) -> bytes:
    """The PDF of an Encapsulated PDF object (PS3.3 C.24.2).

    Encapsulated Document Length (0042,0015), when present, cuts the pad
    byte that keeps the value's length even.
    """
    data = ds.get("EncapsulatedDocument")
    if not data:
        raise DocumentError("the object holds no Encapsulated Document")
    data = bytes(data)
    length = ds.get("EncapsulatedDocumentLength")
    if length:
        data = data[: int(length)]
    if not data.startswith(b"%PDF"):
        raise DocumentError("the encapsulated document is not a PDF")
    return data


_PDFIUM_LOCK = threading.Lock()


def render_pdf(data: bytes, dpi: float = 96.0) -> list[np.ndarray]:
    """Render every page of a PDF to RGB arrays (rows, columns, 3).

    PDFium is not thread safe; calls are serialised.
    """
    try:
        import pypdfium2
    except ImportError as exc:
        raise DocumentError("pypdfium2 is not installed: PDF cannot be shown") from exc
    pages: list[np.ndarray] = []
    with _PDFIUM_LOCK:
        try:
            pdf = pypdfium2.PdfDocument(data)
        except pypdfium2.PdfiumError as exc:
            raise DocumentError(f"the PDF cannot be opened: {exc}") from exc
        try:
            for index in range(len(pdf)):
                page = pdf[index]
                bitmap = page.render(scale=dpi / 72.0)
                array = bitmap.to_numpy()
                mode = bitmap.mode
                if mode == "BGR":
                    array = array[..., ::-1]
                elif mode in ("BGRA", "BGRX"):
                    array = array[..., 2::-1]
                elif mode == "L":
                    array = np.repeat(array[..., None], 3, axis=2)
                pages.append(np.ascontiguousarray(array[..., :3]))
                page.close()
        finally:
            pdf.close()
    return pages


# -- Structured reports -----------------------------------------------------------


@dataclass
class ReportLine:
    """One line of a report as shown: nesting depth, kind and text.

    *heading* marks CONTAINER titles.
    """

    depth: int
    text: str
    heading: bool = False


def _meaning(item: Dataset, keyword: str = "ConceptNameCodeSequence") -> str:
    seq = item.get(keyword)
    if not seq:
        return ""
    return str(seq[0].get("CodeMeaning") or seq[0].get("CodeValue") or "")


def _content_value(item: Dataset) -> str:
    kind = str(item.get("ValueType") or "")
    if kind == "TEXT":
        return str(item.get("TextValue") or "")
    if kind == "CODE":
        return _meaning(item, "ConceptCodeSequence")
    if kind == "NUM":
        measured = item.get("MeasuredValueSequence")
        if not measured:
            return "(no value)"
        value = measured[0].get("NumericValue")
        units = _meaning(measured[0], "MeasurementUnitsCodeSequence")
        unit_code = ""
        seq = measured[0].get("MeasurementUnitsCodeSequence")
        if seq:
            unit_code = str(seq[0].get("CodeValue") or "")
        unit = unit_code if unit_code and unit_code != "1" else units
        return f"{value} {unit}".strip()
    if kind == "DATE":
        return format_date(str(item.get("Date") or ""))
    if kind == "TIME":
        return str(item.get("Time") or "")
    if kind == "DATETIME":
        return str(item.get("DateTime") or "")
    if kind == "PNAME":
        return format_person_name(str(item.get("PersonName") or ""))
    if kind == "UIDREF":
        return str(item.get("UID") or "")
    if kind in ("IMAGE", "COMPOSITE", "WAVEFORM"):
        seq = item.get("ReferencedSOPSequence")
        if not seq:
            return f"({kind.lower()} reference)"
        ref = seq[0]
        text = f"{kind.lower()} {ref.get('ReferencedSOPInstanceUID', '')}"
        frames = ref.get("ReferencedFrameNumber")
        if frames:
            text += f" frame {frames}"
        return text
    if kind == "SCOORD":
        data = item.get("GraphicData") or []
        points = ", ".join(
            f"({float(data[i]):.1f}, {float(data[i + 1]):.1f})"
            for i in range(0, len(data) - 1, 2)
        )
        return f"{item.get('GraphicType', '')} {points}".strip()
    if kind == "SCOORD3D":
        data = item.get("GraphicData") or []
        return f"{item.get('GraphicType', '')} ({len(data) // 3} points, 3D)"
    if kind == "TCOORD":
        return str(item.get("TemporalRangeType") or "")
    if kind == "CONTAINER":
        return ""
    return f"({kind or 'unknown'} content item)"


def _walk(items: Dataset | list, depth: int, lines: list[ReportLine], seen: int) -> int:
    for item in items:
        if seen > 20000:
            lines.append(ReportLine(depth, "… (report cut: too many items)"))
            return seen
        seen += 1
        kind = str(item.get("ValueType") or "")
        name = _meaning(item)
        relation = str(item.get("RelationshipType") or "")
        if kind == "CONTAINER":
            lines.append(ReportLine(depth, name or "(untitled section)", heading=True))
        else:
            value = _content_value(item)
            prefix = f"{name}: " if name else ""
            if relation in ("HAS OBS CONTEXT", "HAS ACQ CONTEXT"):
                prefix = f"[{name}] " if name else ""
            lines.append(ReportLine(depth, f"{prefix}{value}".strip()))
        children = item.get("ContentSequence")
        if children:
            seen = _walk(children, depth + 1, lines, seen)
    return seen


def report_lines(ds: Dataset) -> list[ReportLine]:
    """A structured report as readable lines (PS3.3 C.17.3 content tree).

    The document title (the root's Concept Name), its state (completion,
    verification), who and when, then the content items depth first:
    containers as headings, other items as ``concept: value`` with numbers
    in their units, codes by meaning, references by UID.
    """
    lines = [ReportLine(0, _meaning(ds) or "Structured report", heading=True)]
    facts = []
    for keyword, label in (
        ("CompletionFlag", "Completion"),
        ("VerificationFlag", "Verification"),
    ):
        if keyword in ds:
            facts.append(f"{label}: {ds.get(keyword)}")
    date = format_date(str(ds.get("ContentDate") or ""))
    if date:
        facts.append(f"Date: {date} {ds.get('ContentTime', '')}".strip())
    for observer in ds.get("VerifyingObserverSequence") or []:
        name = format_person_name(str(observer.get("VerifyingObserverName") or ""))
        if name:
            facts.append(f"Verified by {name}")
    if facts:
        lines.append(ReportLine(0, " · ".join(facts)))
    content = ds.get("ContentSequence")
    if content:
        _walk(content, 1, lines, 0)
    else:
        lines.append(ReportLine(1, "(the report has no content)"))
    return lines


# -- Waveforms ----------------------------------------------------------------------


@dataclass
class Channel:
    """One waveform channel: its label, unit and samples (in that unit)."""

    label: str
    unit: str
    samples: np.ndarray


@dataclass
class WaveformGroup:
    """A multiplex group of channels sampled together (PS3.3 C.10.9)."""

    label: str
    frequency: float
    channels: list[Channel] = field(default_factory=list)

    @property
    def duration(self) -> float:
        """Seconds covered by the samples."""
        if not self.channels or self.frequency <= 0:
            return 0.0
        return len(self.channels[0].samples) / self.frequency


def waveforms(ds: Dataset) -> list[WaveformGroup]:
    """Every multiplex group of a waveform object, channels in their units.

    pydicom's ``waveform_array`` applies Channel Sensitivity, its correction
    factor and baseline (PS3.3 C.10.9.1.4).
    """
    seq = ds.get("WaveformSequence")
    if not seq:
        raise DocumentError("the object holds no Waveform Sequence")
    groups = []
    for index, item in enumerate(seq):
        try:
            data = ds.waveform_array(index)
        except Exception as exc:
            raise DocumentError(
                f"waveform group {index + 1} cannot be read: {exc}"
            ) from exc
        definitions = item.get("ChannelDefinitionSequence") or []
        channels = []
        for number in range(data.shape[1]):
            label, unit = f"Channel {number + 1}", ""
            if number < len(definitions):
                definition = definitions[number]
                label = (
                    _meaning(definition, "ChannelSourceSequence")
                    or str(definition.get("ChannelLabel") or "")
                    or label
                )
                units = definition.get("ChannelSensitivityUnitsSequence")
                if units:
                    unit = str(units[0].get("CodeValue") or "")
            channels.append(
                Channel(label, unit, np.asarray(data[:, number], dtype=np.float64))
            )
        groups.append(
            WaveformGroup(
                str(item.get("MultiplexGroupLabel") or f"Group {index + 1}"),
                float(item.get("SamplingFrequency") or 0.0),
                channels,
            )
        )
    return groups
