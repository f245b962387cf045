"""Lookup tables and the grayscale transforms of PS3.4 N.2.1.

- Modality LUT (PS3.3 C.11.1): Rescale Slope/Intercept, or a Modality LUT
  Sequence; in enhanced multi-frame objects the Pixel Value Transformation
  functional group of each frame.
- VOI LUT (PS3.3 C.11.2): windows with the LINEAR (C.11.2.1.2.1),
  LINEAR_EXACT (C.11.2.1.3.2) or SIGMOID (C.11.2.1.3.1) function, or a VOI
  LUT Sequence; in enhanced objects the Frame VOI LUT functional group.
- Presentation LUT (PS3.3 C.11.6): shape IDENTITY or INVERSE, or a
  Presentation LUT Sequence.

The VOI step here produces values between 0 and 1 (its output range scaled
to 1); the presentation step maps those to P-values and, for display, to
8 bits. Working on the unit range lets a presentation LUT of any number of
entries follow any VOI output, as PS3.4 N.2.1.1 requires.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset

from jivex_core.imaging.common import (
    RenderError,
    Window,
    as_float,
    as_text,
    element_get,
    values_of,
)

logger = logging.getLogger(__name__)

#: VOI LUT Function values (0028,1056) the pipeline knows.
VOI_FUNCTIONS = ("LINEAR", "LINEAR_EXACT", "SIGMOID")


# -- tables ---------------------------------------------------------------


def lut_words(ds: Dataset, keyword: str) -> np.ndarray:
    """The 16-bit words of a LUT data element (OW, US or SS), as int64."""
    element = ds[keyword]
    value = element.value
    if isinstance(value, bytes | bytearray):
        encoding = getattr(ds, "original_encoding", (None, True))
        order = ">" if encoding[1] is False else "<"
        usable = len(value) // 2 * 2
        return np.frombuffer(value[:usable], dtype=f"{order}u2").astype(np.int64)
    words = np.asarray(values_of(value), dtype=np.int64)
    return words & 0xFFFF


def lut_entries(words: np.ndarray, entries: int, bits: int) -> np.ndarray:
    """Table entries from its words; 8-bit entries may be packed two to a
    word (low byte first), which the number of words tells."""
    if bits <= 8 and len(words) < entries <= len(words) * 2:
        packed = np.empty(len(words) * 2, dtype=np.int64)
        packed[0::2] = words & 0xFF
        packed[1::2] = words >> 8
        return packed[:entries]
    return words[:entries]


@dataclass(frozen=True, eq=False)
class Lut:
    """A lookup table read from a data set (PS3.3 C.11.1.1, C.11.2.1.1).

    Attributes
    ----------
    first_mapped : int
        The input value of the first entry (second descriptor value).
    bits : int
        Bits of each entry (third descriptor value).
    data : numpy.ndarray
        The entries, int64; a descriptor whose first value is 0 means 65536.
    explanation : str
        LUT Explanation (0028,3003).
    """

    first_mapped: int
    bits: int
    data: np.ndarray
    explanation: str = ""

    @property
    def top(self) -> int:
        """The largest value an entry can have: ``2**bits - 1``."""
        return (1 << self.bits) - 1

    def lookup(self, values: np.ndarray) -> np.ndarray:
        """Entries for *values* (float64), clamped to the first/last entry."""
        index = np.rint(np.asarray(values, dtype=np.float64)) - self.first_mapped
        np.clip(index, 0, len(self.data) - 1, out=index)
        return self.data[index.astype(np.intp)].astype(np.float64)

    @classmethod
    def from_model(cls, table: object) -> Lut:
        """A :class:`Lut` from :class:`~jivex_core.imaging.presentation.LookupTable`
        (or anything with ``first_mapped``, ``bits``, ``data``, ``explanation``)."""
        data = np.asarray(getattr(table, "data"), dtype=np.int64)  # noqa: B009
        if data.size == 0:
            raise RenderError("a lookup table of the presentation state is empty")
        return cls(
            int(getattr(table, "first_mapped")),  # noqa: B009
            int(getattr(table, "bits")),  # noqa: B009
            data,
            str(getattr(table, "explanation", "") or ""),
        )


def read_lut(
    item: Dataset,
    what: str,
    data_keyword: str = "LUTData",
    signed_input: bool = False,
) -> Lut:
    """Read a LUT item (LUT Descriptor, LUT Data, LUT Explanation).

    Parameters
    ----------
    item : pydicom.dataset.Dataset
        A Modality, VOI or Presentation LUT Sequence item.
    what : str
        Its name for messages (``"VOI LUT Sequence item 1"``).
    signed_input : bool
        Whether the first mapped value may be negative (its US value above
        32767 then means a negative one, PS3.3 C.11.1.1.1).

    Raises
    ------
    RenderError
        When the descriptor or data is missing or malformed.
    """
    descriptor = values_of(element_get(item, "LUTDescriptor"))
    if len(descriptor) != 3:
        raise RenderError(
            f"the LUT Descriptor of the {what} is missing or not 3 values"
        )
    try:
        entries, first, bits = (int(v) for v in descriptor)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        raise RenderError(f"the LUT Descriptor of the {what} is not numbers") from None
    entries = entries or 65536
    if signed_input and first >= 0x8000:
        first -= 0x10000
    if not 1 <= bits <= 16:
        raise RenderError(f"the LUT Descriptor of the {what} says {bits} bits")
    if data_keyword not in item:
        raise RenderError(f"the {what} has no LUT Data")
    try:
        words = lut_entries(lut_words(item, data_keyword), entries, bits)
    except Exception as exc:
        raise RenderError(f"the LUT Data of the {what} cannot be read: {exc}") from exc
    if words.size == 0:
        raise RenderError(f"the LUT Data of the {what} is empty")
    if words.size < entries:
        logger.debug(
            "%s: %d of %d entries; repeating the last", what, words.size, entries
        )
        words = np.concatenate([words, np.full(entries - words.size, words[-1])])
    if bits < 16 and int(words.max()) > (1 << bits) - 1:
        # Tables whose entries exceed the bits their descriptor gives are
        # common (a descriptor saying 8 or 12 for 16-bit data); the data
        # tells the truth.
        bits = int(words.max()).bit_length()
    explanation = as_text(element_get(item, "LUTExplanation"))
    return Lut(first, bits, words, explanation)


# -- modality LUT ---------------------------------------------------------


@dataclass(frozen=True, eq=False)
class ModalityLut:
    """The modality transform of one frame (PS3.3 C.11.1).

    Either a rescale (*slope*, *intercept*) or a *lut*; *units* names the
    output: Rescale Type or Modality LUT Type (``HU`` for CT when not
    given), the PET Units, or ``""`` when unspecified.
    """

    slope: float = 1.0
    intercept: float = 0.0
    lut: Lut | None = None
    units: str = ""

    @property
    def is_identity(self) -> bool:
        """Whether stored values are modality values unchanged."""
        return self.lut is None and self.slope == 1.0 and self.intercept == 0.0

    def apply(self, stored: np.ndarray) -> np.ndarray:
        """Modality values (float64) of *stored* values."""
        if self.lut is not None:
            return self.lut.lookup(stored)
        out = np.asarray(stored, dtype=np.float64)
        if self.slope != 1.0:
            out = out * self.slope
        if self.intercept != 0.0:
            out = out + self.intercept
        return out


_HU_CLASSES = (
    "1.2.840.10008.5.1.4.1.1.2",  # CT Image Storage
    "1.2.840.10008.5.1.4.1.1.2.1",  # Enhanced CT
    "1.2.840.10008.5.1.4.1.1.2.2",  # Legacy Converted Enhanced CT
)


def _units(ds: Dataset, rescale_type: str) -> str:
    if rescale_type and rescale_type != "US":
        return rescale_type
    modality = as_text(element_get(ds, "Modality")).upper()
    sop_class = as_text(element_get(ds, "SOPClassUID"))
    if modality == "CT" or sop_class in _HU_CLASSES:
        return "HU"
    if modality == "PT":
        return as_text(element_get(ds, "Units"))
    return ""


def written(ds: Dataset, keyword: str) -> str | None:
    """The value of *keyword* as the file writes it, for messages.

    None when the attribute is absent or empty; ``"unreadable"`` when
    pydicom cannot decode it.
    """
    tag = tag_for_keyword(keyword)
    if tag is None or tag not in ds:
        return None
    try:
        value = ds[tag].value
    except Exception:
        return "unreadable"
    if isinstance(value, bytes | bytearray):
        value = bytes(value).decode("latin-1", "replace")
    items = values_of(value)
    text = "\\".join(str(v).strip(" \x00") for v in items)
    return text or None


def modality_lut(
    ds: Dataset,
    group: Dataset | None,
    signed: bool,
    color: bool = False,
    warnings: list[str] | None = None,
) -> ModalityLut:
    """The modality transform of a frame.

    *group* is the frame's Pixel Value Transformation item (functional
    groups), which takes the place of the top-level attributes. Colour
    images have none (PS3.3 C.7.6.3: the modality LUT is for grey only).

    A Rescale Slope of 0, or one that is not a finite number, would send
    every pixel to one value (PS3.3 C.11.1.1.2 gives no meaning to it); it
    is read as 1, and a Rescale Intercept that is not a number as 0, each
    with a sentence appended to *warnings*.
    """
    if color:
        return ModalityLut()
    source = group if group is not None else ds
    sequence = element_get(ds, "ModalityLUTSequence") if group is None else None
    if sequence:
        try:
            lut = read_lut(sequence[0], "Modality LUT Sequence", signed_input=signed)  # type: ignore[index]
        except RenderError as exc:
            logger.warning("Ignoring the Modality LUT Sequence: %s", exc)
        else:
            kind = as_text(element_get(sequence[0], "ModalityLUTType"))  # type: ignore[index]
            return ModalityLut(lut=lut, units=_units(ds, kind))
    slope = as_float(element_get(source, "RescaleSlope"))
    intercept = as_float(element_get(source, "RescaleIntercept"))
    kind = as_text(element_get(source, "RescaleType"))
    if slope is None or slope == 0.0:
        shown = written(source, "RescaleSlope")
        if shown is not None and warnings is not None:
            warnings.append(
                f"Rescale Slope (0028,1053) is {shown}: read as 1 (the modality "
                "values may be wrong)"
            )
        slope = 1.0
    if intercept is None:
        shown = written(source, "RescaleIntercept")
        if shown is not None and warnings is not None:
            warnings.append(f"Rescale Intercept (0028,1052) is {shown}: read as 0")
    return ModalityLut(slope, intercept or 0.0, None, _units(ds, kind))


# -- VOI ------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class VoiPreset:
    """One VOI setting of a file: a window with its function, or a VOI LUT.

    The viewer lists a frame's presets (their :attr:`explanation`) so that
    the reader can switch between the windows the modality chose.
    """

    explanation: str = ""
    window: Window | None = None
    function: str = "LINEAR"
    lut: Lut | None = None

    @property
    def label(self) -> str:
        """Text for a menu: the explanation, else the window's numbers."""
        if self.explanation:
            return self.explanation
        if self.window is not None:
            return f"W {self.window.width:g} L {self.window.center:g}"
        return "VOI LUT"

    def approximate_window(self) -> Window | None:
        """The window of a VOI LUT's input range (for dragging from it)."""
        if self.window is not None:
            return self.window
        if self.lut is None:
            return None
        width = max(float(len(self.lut.data)), 1.0)
        return Window(self.lut.first_mapped + width / 2.0, width)


def _function(value: object) -> str:
    text = as_text(value).upper() or "LINEAR"
    if text not in VOI_FUNCTIONS:
        logger.debug("Unknown VOI LUT Function '%s': using LINEAR", text)
        return "LINEAR"
    return text


def file_presets(
    ds: Dataset, group: Dataset | None, warnings: list[str] | None = None
) -> list[VoiPreset]:
    """Every VOI setting of a frame: its windows, then its VOI LUTs.

    *group* is the frame's Frame VOI LUT item (functional groups), which
    takes the place of the top-level attributes. Windows whose center or
    width is not a finite number, or whose width is below 1 (PS3.3
    C.11.2.1.2), are left out, each with a sentence appended to *warnings*.
    """
    source = group if group is not None else ds
    centers = values_of(element_get(source, "WindowCenter"))
    widths = values_of(element_get(source, "WindowWidth"))
    explanations = values_of(element_get(source, "WindowCenterWidthExplanation"))
    function = _function(element_get(source, "VOILUTFunction"))
    presets: list[VoiPreset] = []
    for number, (c, w) in enumerate(zip(centers, widths, strict=False)):
        center, width = as_float(c), as_float(w)
        reason = ""
        if center is None:
            reason = "its center is not a finite number"
        elif width is None:
            reason = "its width is not a finite number"
        elif width < 1:
            reason = "its width is below 1"
        if reason:
            text = (
                f"Window {number + 1} of the file (center {as_text(c)}, width "
                f"{as_text(w)}) is ignored: {reason}"
            )
            logger.debug("%s", text)
            if warnings is not None:
                warnings.append(text)
            continue
        assert center is not None and width is not None
        text = as_text(explanations[number]) if number < len(explanations) else ""
        presets.append(VoiPreset(text, Window(center, width), function))
    sequence = element_get(source, "VOILUTSequence") or (
        element_get(ds, "VOILUTSequence") if group is not None else None
    )
    for number, item in enumerate(sequence or ()):  # type: ignore[attr-defined]
        try:
            lut = read_lut(
                item, f"VOI LUT Sequence item {number + 1}", signed_input=True
            )
        except RenderError as exc:
            logger.warning("Ignoring a VOI LUT: %s", exc)
            continue
        presets.append(VoiPreset(lut.explanation, None, "LINEAR", lut))
    return presets


def voi_unit(values: np.ndarray, preset: VoiPreset) -> np.ndarray:
    """Apply a VOI setting: modality values to the unit range [0, 1].

    LINEAR: PS3.3 C.11.2.1.2.1; LINEAR_EXACT: C.11.2.1.3.2; SIGMOID:
    C.11.2.1.3.1; a VOI LUT maps through its table scaled by its bits.
    """
    x = np.asarray(values, dtype=np.float64)
    if preset.lut is not None:
        return preset.lut.lookup(x) / float(preset.lut.top)
    window = preset.window
    if window is None:
        raise ValueError("a VOI preset needs a window or a LUT")
    c, w = float(window.center), float(window.width)
    if preset.function == "SIGMOID":
        return 1.0 / (1.0 + np.exp(np.clip(-4.0 * (x - c) / w, -700, 700)))
    if preset.function == "LINEAR_EXACT":
        y = (x - c) / w + 0.5
    elif w <= 1.0:
        # Width 1: the ramp has no length; below the threshold 0, above 1.
        y = (x > c - 0.5).astype(np.float64)
    else:
        y = (x - (c - 0.5)) / (w - 1.0) + 0.5
    return np.clip(y, 0.0, 1.0)


# -- presentation LUT -----------------------------------------------------


def present_unit(
    unit: np.ndarray, inverse: bool = False, table: Lut | None = None
) -> np.ndarray:
    """P-values scaled to [0, 1] from VOI output in [0, 1] (PS3.3 C.11.6).

    A Presentation LUT Sequence takes the VOI output over its input range
    (0 to entries - 1) and gives P-values of its bits; otherwise the shape
    is IDENTITY, or INVERSE when *inverse* (also how MONOCHROME1 is shown
    without a presentation state, PS3.3 C.7.6.3.1.2).
    """
    if table is not None:
        index = np.rint(unit * (len(table.data) - 1))
        out = table.data[index.astype(np.intp)].astype(np.float64) / float(table.top)
        return np.clip(out, 0.0, 1.0)
    return 1.0 - unit if inverse else unit


def to_bytes(unit: np.ndarray) -> np.ndarray:
    """8-bit display values of unit-range values, rounded."""
    return np.floor(np.asarray(unit) * 255.0 + 0.5).astype(np.uint8)


def pvalue_to_byte(pvalue: int) -> int:
    """A 16-bit P-value (0 black .. 65535 white) as an 8-bit grey level."""
    return round(min(max(int(pvalue), 0), 0xFFFF) * 255 / 0xFFFF)
