"""The rendering pipeline: stored pixels to display bytes, for every client.

The viewer, and later WADO, print and export, all render through this
module, so that an image looks the same wherever it is shown. The order is
the grayscale pipeline of PS3.4 N.2.1:

1. **Decode** one frame (:mod:`~jivex_core.imaging.frames`): stored values
   with the sign of Pixel Representation, Bits Stored wide (bits outside
   them, where old overlays live, are masked out); colour as RGB (YCbCr
   converted once; palette colour through its tables,
   :mod:`~jivex_core.imaging.color`).
2. **Modality LUT** (PS3.3 C.11.1): rescale slope/intercept or the Modality
   LUT Sequence, per frame for enhanced multi-frame objects; or the modality
   transform of a presentation state.
3. **VOI LUT** (PS3.3 C.11.2): a window (LINEAR, LINEAR_EXACT, SIGMOID) or a
   VOI LUT; the caller's window, else the presentation state's, else the
   file's first (per frame), else the frame's value range.
4. **Presentation LUT** (PS3.3 C.11.6): the presentation state's shape or
   table; without a state, the image's own Presentation LUT Shape, else
   MONOCHROME1 (PS3.3 C.7.6.3.1.2), inverts. The result is 8-bit.
5. **Overlays** (60xx) burnt in white, when asked and no state is applied.
6. With a presentation state (:mod:`~jivex_core.imaging.output`):
   shutters, displayed area, rotation then flip, graphic annotations.

Decoding and the modality LUT run once per frame (:func:`prepare_frame`);
changing the window recomputes an 8-bit table over the frame's range of
stored values and maps the pixels through it with one ``numpy.take``
(:meth:`PreparedFrame.render`), about a millisecond for 512x512.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
from pydicom.dataset import Dataset

from jivex_core.imaging.color import apply_palette, to_rgb8
from jivex_core.imaging.common import (
    RenderError,
    Window,
    as_float,
    as_text,
    element_get,
    number_of_frames,
    values_of,
)
from jivex_core.imaging.frames import (
    MONOCHROME,
    PALETTE,
    decode_frame,
    frame_group,
    pixel_format,
)
from jivex_core.imaging.luts import (
    Lut,
    ModalityLut,
    VoiPreset,
    file_presets,
    modality_lut,
    present_unit,
    to_bytes,
    voi_unit,
)
from jivex_core.imaging.overlays import Overlay, burn_in, read_overlays

if TYPE_CHECKING:
    from jivex_core.imaging.presentation import PresentationState

logger = logging.getLogger(__name__)

__all__ = [
    "MONOCHROME",
    "SPACING_FUNCTIONAL_GROUPS",
    "SPACING_IMAGER",
    "SPACING_PIXEL",
    "Lut",
    "ModalityLut",
    "Overlay",
    "PreparedFrame",
    "RenderError",
    "Rendered",
    "VoiPreset",
    "Window",
    "apply_window",
    "check_grey_for_state",
    "file_window",
    "number_of_frames",
    "prepare_frame",
    "range_window",
    "render",
    "render_frame",
    "window_coefficients",
]

#: Where a frame's pixel spacing came from (:attr:`PreparedFrame.spacing_source`).
SPACING_PIXEL = "Pixel Spacing"
SPACING_IMAGER = "Imager Pixel Spacing"
SPACING_FUNCTIONAL_GROUPS = "Pixel Measures"

#: Stored value ranges up to this many values render through a table.
_TABLE_LIMIT = 1 << 20


def file_window(ds: Dataset) -> Window | None:
    """Return the first Window Center/Width of *ds*, or None when unusable.

    A missing, non-numeric or zero width is treated as no window, since a
    width below 1 is not allowed by PS3.3 C.11.2.1.2.
    """
    center = as_float(element_get(ds, "WindowCenter"))
    width = as_float(element_get(ds, "WindowWidth"))
    if center is None or width is None or width < 1:
        return None
    return Window(center, width)


def range_window(values: np.ndarray) -> Window:
    """Return the window that maps the value range of *values* onto 0..255.

    With the LINEAR function, width ``max - min + 1`` and center
    ``(min + max + 1) / 2`` send the minimum to 0 and the maximum to 255. An
    image of one value shows black.
    """
    if values.size == 0:
        return Window(0.5, 1.0)
    low = float(np.min(values))
    high = float(np.max(values))
    if high == low:
        # One value only: a threshold just above it shows it black, as
        # DCMTK's min-max window does.
        return Window(low + 1.0, 1.0)
    center, width = (low + high + 1.0) / 2.0, high - low + 1.0
    if not (np.isfinite(center) and np.isfinite(width)):
        # Float pixels near the limits of float64: no overflow in between.
        center = low / 2.0 + (high + 1.0) / 2.0
        width = min(width, float(np.finfo(np.float64).max))
    return Window(center, width)


def window_coefficients(
    window: Window, function: str = "LINEAR", invert: bool = False
) -> tuple[float, float]:
    """Return ``(a, b)`` so that ``clip(x * a + b, 0, 255)`` is the output.

    The result includes +0.5 so that truncating to uint8 rounds. LINEAR is
    PS3.3 C.11.2.1.2.1 with y in [0, 255]; LINEAR_EXACT is C.11.2.1.3.2.
    *invert* applies the MONOCHROME1 inversion after the window. (SIGMOID is
    not linear; :func:`apply_window` handles it.)
    """
    c, w = window.center, window.width
    if function == "LINEAR_EXACT":
        a = 255.0 / w
        b = (0.5 - c / w) * 255.0
    elif w <= 1.0:
        # Width 1: a threshold at c - 0.5; a steep ramp gives the same bytes.
        a = 255.0 * 1e6
        b = -(c - 0.5) * a
    else:
        a = 255.0 / (w - 1.0)
        b = (0.5 - (c - 0.5) / (w - 1.0)) * 255.0
    if invert:
        return -a, 255.0 - b + 0.5
    return a, b + 0.5


def apply_window(
    values: np.ndarray,
    window: Window,
    function: str = "LINEAR",
    invert: bool = False,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Map modality values to 8-bit grey through a VOI window.

    Parameters
    ----------
    values : numpy.ndarray
        Modality values (output of the modality LUT), preferably float32.
    window : Window
        The VOI window.
    function : str
        VOI LUT Function (0028,1056): ``LINEAR`` (default), ``LINEAR_EXACT``
        or ``SIGMOID``; anything else is treated as LINEAR.
    invert : bool
        Invert after the window, as MONOCHROME1 requires.
    out : numpy.ndarray, optional
        A float32 scratch array of the same shape, reused between calls so
        that dragging the window allocates nothing large.

    Returns
    -------
    numpy.ndarray
        uint8 array of the shape of *values*.
    """
    if function == "SIGMOID":
        unit = voi_unit(values, VoiPreset("", window, "SIGMOID"))
        return to_bytes(present_unit(unit, invert))
    a, b = window_coefficients(window, function, invert)
    if out is None or out.shape != values.shape:
        out = np.empty(values.shape, dtype=np.float32)
    np.multiply(values, np.float32(a), out=out, casting="unsafe")
    out += np.float32(b)
    np.clip(out, 0.0, 255.0, out=out)
    return out.astype(np.uint8)


@dataclass(eq=False)
class PreparedFrame:
    """One decoded frame, ready to be windowed many times.

    Attributes
    ----------
    values : numpy.ndarray
        Grey: float32 modality values (rows, columns), in :attr:`units`;
        what ROI statistics are computed on. Colour: uint8 RGB
        (rows, columns, 3).
    photometric : str
        ``MONOCHROME1``, ``MONOCHROME2`` or ``RGB`` (colour of any kind after
        decoding).
    default_window : Window or None
        The window the viewer starts with: the file's first window for this
        frame, else (a VOI LUT first) the window of that LUT's input range,
        else the value range; None for colour.
    voi_function : str
        VOI LUT Function of the file for this frame (LINEAR when absent);
        applied to windows the user sets too.
    windows : list of VoiPreset
        Every window and VOI LUT of the file for this frame, with their
        explanations (the viewer offers them as presets).
    default_voi : VoiPreset or None
        What :meth:`render` uses without an argument.
    inverse : bool
        Whether grey levels are inverted for display without a presentation
        state (the image's Presentation LUT Shape, else MONOCHROME1).
    overlays : list of Overlay
        The frame's overlay planes (60xx), not drawn into the pixels.
    pixel_spacing : (float, float) or None
        (row spacing, column spacing) in mm, for measurements.
    spacing_source : str or None
        :data:`SPACING_PIXEL`, :data:`SPACING_IMAGER` or
        :data:`SPACING_FUNCTIONAL_GROUPS`; None without spacing.
    units : str
        Units of :attr:`values`: ``HU`` for CT, Rescale Type or Modality LUT
        Type when given, PET Units; ``""`` when unspecified.
    modality : ModalityLut
        The modality transform that produced :attr:`values`.
    index : int
        0-based frame number.
    sop_instance_uid : str
    warnings : list of str
        What the reader should be told about the frame, one sentence each:
        pixels missing from Pixel Data (``"Pixel Data holds 131072 of 262144
        bytes: the rest shows black"``), a Rescale Slope of 0 or not a
        number read as 1, a window of the file that is ignored. The viewer
        shows them; ``jivex render`` prints them.
    missing : numpy.ndarray or None
        (rows, columns) bool, True for the pixels Pixel Data does not hold;
        :meth:`render` shows them black (0) whatever the window, and their
        :attr:`values` are the lowest of the frame's real values, so that
        windows computed from the values are not pulled by them. None when
        the frame is complete.
    """

    _values: np.ndarray | None
    photometric: str
    default_window: Window | None
    voi_function: str = "LINEAR"
    windows: list[VoiPreset] = field(default_factory=list)
    default_voi: VoiPreset | None = None
    inverse: bool = False
    overlays: list[Overlay] = field(default_factory=list)
    pixel_spacing: tuple[float, float] | None = None
    spacing_source: str | None = None
    units: str = ""
    modality: ModalityLut = field(default_factory=ModalityLut)
    index: int = 0
    sop_instance_uid: str = ""
    warnings: list[str] = field(default_factory=list)
    missing: np.ndarray | None = field(default=None, repr=False)
    #: Stored values kept as they are when no table serves the frame (see
    #: :attr:`stored`).
    _stored: np.ndarray | None = field(default=None, repr=False)
    _stored_dtype: np.dtype | None = field(default=None, repr=False)
    _low: int = field(default=0, repr=False)
    _index: np.ndarray | None = field(default=None, repr=False)
    _inputs: np.ndarray | None = field(default=None, repr=False)
    _scratch: np.ndarray | None = field(default=None, repr=False)

    @property
    def values(self) -> np.ndarray:
        """Modality values (grey, float32) or RGB bytes (colour).

        A grey frame served by a table keeps only the table and its indices
        (a third of the memory of float32 values, which matters to a cache
        holding a whole CT); its values are computed when asked for (ROI
        statistics, auto window), about a millisecond at 512x512.
        """
        if self._values is not None:
            return self._values
        assert self._inputs is not None and self._index is not None
        return np.take(self._inputs.astype(np.float32), self._index)

    @values.setter
    def values(self, values: np.ndarray) -> None:
        self._values = values

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of :attr:`values`, without computing them."""
        array = self._values if self._values is not None else self._index
        assert array is not None
        return tuple(array.shape)

    @property
    def is_color(self) -> bool:
        """Whether the frame is RGB rather than grey."""
        return len(self.shape) == 3

    @property
    def invert(self) -> bool:
        """Whether grey levels are inverted for display (MONOCHROME1)."""
        return self.inverse

    @property
    def stored(self) -> np.ndarray | None:
        """The stored values of a grey frame (None for colour).

        With a table they are kept only as table indices (stored value minus
        the lowest one), which saves memory in the viewer's cache; this
        rebuilds them.
        """
        if self._stored is not None:
            return self._stored
        if self._index is None or self._stored_dtype is None:
            return None
        wide = self._index.astype(np.int64) + self._low
        return wide.astype(self._stored_dtype)

    @property
    def nbytes(self) -> int:
        """Memory the frame's arrays hold (for caches with a budget)."""
        arrays = (self._values, self._stored, self._index, self._inputs, self._scratch)
        seen: set[int] = set()
        total = 0
        for array in arrays:
            if array is not None and id(array) not in seen:
                seen.add(id(array))
                total += array.nbytes
        return total

    @property
    def incomplete(self) -> bool:
        """Whether pixels are missing from the file (:attr:`missing`)."""
        return self.missing is not None

    @property
    def rows(self) -> int:
        """Rows of the frame."""
        return int(self.shape[0])

    @property
    def columns(self) -> int:
        """Columns of the frame."""
        return int(self.shape[1])

    def preset(self, window: Window | VoiPreset | None = None) -> VoiPreset:
        """The VOI setting :meth:`render` uses for *window*.

        A bare :class:`Window` takes the frame's VOI LUT Function.
        """
        if isinstance(window, VoiPreset):
            return window
        if window is not None:
            return VoiPreset("", window, self.voi_function)
        if self.default_voi is not None:
            return self.default_voi
        return VoiPreset("", self.default_window or range_window(self.values))

    def render(
        self,
        window: Window | VoiPreset | None = None,
        *,
        inverse: bool | None = None,
        presentation_lut: Lut | None = None,
    ) -> np.ndarray:
        """Return display bytes: (rows, cols) uint8 grey or (rows, cols, 3) RGB.

        Parameters
        ----------
        window : Window or VoiPreset, optional
            The VOI setting; defaults to :attr:`default_voi`. Colour ignores it.
        inverse : bool, optional
            Presentation LUT Shape INVERSE (True) or IDENTITY (False);
            defaults to :attr:`inverse`.
        presentation_lut : Lut, optional
            A Presentation LUT Sequence table, instead of a shape.
        """
        if self.is_color:
            return self.values  # missing pixels were set black when prepared
        image = self._grey(window, inverse, presentation_lut)
        if self.missing is not None:
            # After every LUT: missing pixels are black whatever the window,
            # inversion or presentation LUT.
            image[self.missing] = 0
        return image

    def _grey(
        self,
        window: Window | VoiPreset | None,
        inverse: bool | None,
        presentation_lut: Lut | None,
    ) -> np.ndarray:
        preset = self.preset(window)
        invert = self.inverse if inverse is None else inverse
        if self._inputs is not None and self._index is not None:
            unit = voi_unit(self._inputs, preset)
            table = to_bytes(present_unit(unit, invert, presentation_lut))
            return np.take(table, self._index)
        if (
            presentation_lut is None
            and preset.lut is None
            and preset.window is not None
            and preset.function != "SIGMOID"
        ):
            if self._scratch is None or self._scratch.shape != self.shape:
                self._scratch = np.empty(self.shape, dtype=np.float32)
            return apply_window(
                self.values, preset.window, preset.function, invert, self._scratch
            )
        unit = voi_unit(self.values, preset)
        return to_bytes(present_unit(unit, invert, presentation_lut))

    def with_modality(self, modality: ModalityLut) -> PreparedFrame:
        """This frame with another modality transform (a presentation
        state's, PS3.3 C.11.1), sharing the decoded stored values."""
        stored = self.stored
        if self.is_color or stored is None:
            return self
        frame = replace(self, modality=modality, units=modality.units or self.units)
        _fill_values(frame, stored)
        frame.default_window = range_window(frame.values)
        frame.default_voi = VoiPreset("", frame.default_window)
        return frame


def _fill_values(frame: PreparedFrame, stored: np.ndarray) -> None:
    """Set values, and the table inputs when the stored range allows one."""
    modality = frame.modality
    frame._stored, frame._stored_dtype = None, stored.dtype
    frame._index = frame._inputs = None
    if stored.dtype.kind in "iu" and stored.size:
        low, high = int(stored.min()), int(stored.max())
        count = high - low + 1
        if count <= _TABLE_LIMIT:
            inputs = modality.apply(np.arange(low, high + 1, dtype=np.int64))
            if low == 0 and stored.dtype in (np.uint8, np.uint16):
                index = stored  # already the table index: no copy
            else:
                kind = np.uint16 if count <= 65536 else np.uint32
                index = np.subtract(stored, low, dtype=np.int64).astype(kind)
            frame._low = low
            frame._index = index
            frame._inputs = inputs
            frame._values = None  # computed on demand (see values)
            return
    frame._stored = stored
    frame.values = np.ascontiguousarray(modality.apply(stored), dtype=np.float32)


def _image_inverse(ds: Dataset, photometric: str) -> bool:
    """Whether a grey image shows inverted without a presentation state.

    MONOCHROME1 shows its lowest value white (PS3.3 C.7.6.3.1.2). Images
    with a Presentation LUT Shape of their own (DX, MG, IO: PS3.3 C.8.11.6)
    say INVERSE exactly for MONOCHROME1: the shape is the inversion, not a
    second one, and it decides when present (DCMTK reads it the same way).
    """
    shape = as_text(element_get(ds, "PresentationLUTShape")).upper()
    if shape in ("INVERSE", "IDENTITY"):
        return shape == "INVERSE"
    return photometric == "MONOCHROME1"


def _spacing(ds: Dataset, index: int) -> tuple[tuple[float, float] | None, str | None]:
    """Pixel spacing of a frame and where it came from (PS3.3 10.7.1.3)."""
    candidates: list[tuple[object, str]] = []
    measures = frame_group(ds, index, "PixelMeasuresSequence")
    if measures is not None:
        candidates.append(
            (element_get(measures, "PixelSpacing"), SPACING_FUNCTIONAL_GROUPS)
        )
    candidates.append((element_get(ds, "PixelSpacing"), SPACING_PIXEL))
    xa = frame_group(ds, index, "XAXRFFramePixelDataPropertiesSequence")
    if xa is not None:
        candidates.append((element_get(xa, "ImagerPixelSpacing"), SPACING_IMAGER))
    candidates.append((element_get(ds, "ImagerPixelSpacing"), SPACING_IMAGER))
    for value, source in candidates:
        items = [as_float(v) for v in values_of(value)]
        if len(items) == 2 and all(v is not None and v > 0 for v in items):
            return (float(items[0]), float(items[1])), source  # type: ignore[arg-type]
    return None, None


def prepare_frame(
    ds: Dataset, index: int = 0, modality: ModalityLut | None = None
) -> PreparedFrame:
    """Decode frame *index* of *ds* and apply the modality LUT.

    Parameters
    ----------
    ds : pydicom.dataset.Dataset
        A data set with Pixel Data (or Float/Double Float Pixel Data).
    index : int
        Frame number starting at 0.
    modality : ModalityLut, optional
        A modality transform to use instead of the image's own.

    Returns
    -------
    PreparedFrame

    Raises
    ------
    RenderError
        When there is no pixel data, an Image Pixel attribute is missing or
        inconsistent, the frame does not exist, or the pixel data cannot be
        decoded; the message says which. No other exception leaves.
    """
    try:
        return _prepare(ds, index, modality)
    except RenderError:
        raise
    except MemoryError:
        raise RenderError("not enough memory to decode the image") from None
    except Exception as exc:
        logger.exception("Unexpected failure preparing frame %d", index)
        raise RenderError(f"the image cannot be rendered: {exc}") from exc


def _prepare(ds: Dataset, index: int, modality: ModalityLut | None) -> PreparedFrame:
    fmt = pixel_format(ds)
    decoded = decode_frame(ds, fmt, index)
    spacing, source = _spacing(ds, index)
    overlays = read_overlays(ds, index, decoded.words, (fmt.rows, fmt.columns))
    warnings = list(decoded.warnings)
    missing = decoded.missing
    common: dict[str, Any] = {
        "overlays": overlays,
        "pixel_spacing": spacing,
        "spacing_source": source,
        "index": index,
        "sop_instance_uid": as_text(element_get(ds, "SOPInstanceUID")),
        "warnings": warnings,
        "missing": missing,
    }

    if decoded.photometric in ("RGB", PALETTE):
        if decoded.photometric == "RGB":
            rgb = to_rgb8(decoded.pixels, fmt.bits_stored)
        else:
            try:
                rgb = apply_palette(decoded.pixels, ds, fmt.signed)
            except RenderError:
                raise
            except Exception as exc:
                raise RenderError(f"the palette cannot be applied: {exc}") from exc
        if missing is not None:
            rgb = np.array(rgb, copy=True)
            rgb[missing] = 0
        _log_warnings(index, warnings)
        return PreparedFrame(rgb, "RGB", None, **common)

    photometric = decoded.photometric
    if photometric not in MONOCHROME:
        photometric = "MONOCHROME2"
    stored = decoded.pixels
    if missing is not None:
        # Values for the missing pixels that pull no window computed from
        # the values (range, auto window); render() shows them black.
        stored = np.array(stored, copy=True)
        stored[missing] = stored[~missing].min()
    if modality is None:
        group = frame_group(ds, index, "PixelValueTransformationSequence")
        modality = modality_lut(ds, group, fmt.signed, warnings=warnings)
    presets = file_presets(
        ds, frame_group(ds, index, "FrameVOILUTSequence"), warnings=warnings
    )
    presets = _drop_flat_windows(presets, _value_range(fmt, modality), warnings)
    frame = PreparedFrame(
        stored,  # replaced by the modality values below
        photometric,
        None,
        windows=presets,
        inverse=_image_inverse(ds, photometric),
        units=modality.units,
        modality=modality,
        **common,
    )
    _fill_values(frame, stored)
    if presets:
        frame.default_voi = presets[0]
        frame.voi_function = presets[0].function if presets[0].window else "LINEAR"
        frame.default_window = presets[0].approximate_window()
    elif fmt.bits_stored == 1:
        # A binary image (a segmentation): 0 black and 1 white, whatever
        # values this frame happens to hold.
        frame.default_window = range_window(modality.apply(np.array([0, 1])))
        frame.default_voi = VoiPreset("", frame.default_window)
    else:
        frame.default_window = range_window(frame.values)
        frame.default_voi = VoiPreset("", frame.default_window)
    _log_warnings(index, warnings)
    return frame


def _log_warnings(index: int, warnings: list[str]) -> None:
    for warning in warnings:
        logger.info("Frame %d: %s", index + 1, warning)


def _value_range(fmt: Any, modality: ModalityLut) -> tuple[float, float] | None:
    """The lowest and highest modality value the stored bits can give.

    None for Float Pixel Data, whose range the bits do not bound.
    """
    if fmt.is_float:
        return None
    if modality.lut is not None:
        data = modality.lut.data
        return float(data.min()), float(data.max())
    if fmt.signed:
        low, high = -(1 << (fmt.bits_stored - 1)), (1 << (fmt.bits_stored - 1)) - 1
    else:
        low, high = 0, (1 << fmt.bits_stored) - 1
    ends = modality.apply(np.array([low, high], dtype=np.int64))
    return float(ends.min()), float(ends.max())


def _drop_flat_windows(
    presets: list[VoiPreset],
    value_range: tuple[float, float] | None,
    warnings: list[str],
) -> list[VoiPreset]:
    """The presets without the windows that show no contrast at all.

    A window that maps the lowest and the highest value the image can hold
    to the same grey (a center of 1e30, a width of 1e30 around 0) shows
    any content as a flat field: the file's numbers are broken, and the
    next window, else the value range, serves better.
    """
    if value_range is None:
        return presets
    ends = np.array(value_range, dtype=np.float64)
    kept = []
    for number, preset in enumerate(presets, 1):
        if preset.window is not None:
            shades = to_bytes(voi_unit(ends, preset))
            if shades[0] == shades[1]:
                text = (
                    f"Window {number} of the file (center "
                    f"{preset.window.center:g}, width {preset.window.width:g}) is "
                    "ignored: it shows every value the image can hold as one grey"
                )
                logger.debug("%s", text)
                warnings.append(text)
                continue
        kept.append(preset)
    return kept


@dataclass(frozen=True)
class Rendered:
    """One frame rendered, with what the reader must be told about it.

    Attributes
    ----------
    image : numpy.ndarray
        uint8 (rows, cols) grey or (rows, cols, 3) RGB.
    warnings : tuple of str
        :attr:`PreparedFrame.warnings` of the frame.
    incomplete : bool
        Pixels are missing from the file; they show black.
    """

    image: np.ndarray
    warnings: tuple[str, ...] = ()
    incomplete: bool = False


def render(
    ds: Dataset,
    index: int = 0,
    window: Window | VoiPreset | None = None,
    state: PresentationState | None = None,
    *,
    overlays: bool = True,
) -> np.ndarray:
    """Render one frame to display bytes, the single entry for every output.

    The order of operations is the module's (PS3.4 N.2.1): decode, modality
    LUT (the state's when it has one), VOI (*window*, else the state's for
    this frame, else the file's first, else the value range), presentation
    LUT (the state's shape or table; else the image's own shape, else
    MONOCHROME1 inverts), then without a state the overlays (60xx) in
    white when *overlays* is true; with a state its shutter, displayed area
    (cropped or padded in the image's frame), clockwise rotation,
    horizontal flip and graphic annotations, in that order
    (:func:`jivex_core.imaging.output.present`). Pixels missing from Pixel
    Data are black. :func:`render_frame` does the same and also returns the
    frame's warnings.

    Parameters
    ----------
    ds : pydicom.dataset.Dataset
    index : int
        0-based frame number.
    window : Window or VoiPreset, optional
    state : PresentationState, optional
        A Grayscale Softcopy Presentation State; colour images refuse it.
    overlays : bool
        Burn the image's overlay planes in (without a state only: a
        presentation state shows none it does not activate, PS3.4 N.2).

    Returns
    -------
    numpy.ndarray
        uint8 (rows, cols) grey or (rows, cols, 3) RGB.

    Raises
    ------
    RenderError
        For anything that prevents rendering, with the reason; among them
        a presentation state given for a colour image.
    """
    return render_frame(ds, index, window, state, overlays=overlays).image


def render_frame(
    ds: Dataset,
    index: int = 0,
    window: Window | VoiPreset | None = None,
    state: PresentationState | None = None,
    *,
    overlays: bool = True,
) -> Rendered:
    """:func:`render`, with the frame's warnings and whether it is complete.

    Raises
    ------
    RenderError
        As :func:`render`.
    """
    if state is not None:
        from jivex_core.imaging.output import present

        check_grey_for_state(ds)
        state_modality = getattr(state, "modality", None)
        modality = None
        if state_modality is not None:
            modality = _state_modality(state_modality)
        frame = prepare_frame(ds, index, modality)
        try:
            image = present(frame, state, window)
        except RenderError:
            raise
        except Exception as exc:
            logger.exception("Unexpected failure applying a presentation state")
            raise RenderError(
                f"the presentation state cannot be applied: {exc}"
            ) from exc
        return Rendered(image, tuple(frame.warnings), frame.incomplete)
    frame = prepare_frame(ds, index)
    try:
        image = frame.render(window)
    except Exception as exc:
        raise RenderError(f"the image cannot be rendered: {exc}") from exc
    if overlays and frame.overlays:
        image = burn_in(image, frame.overlays)
    return Rendered(image, tuple(frame.warnings), frame.incomplete)


def check_grey_for_state(ds: Dataset) -> None:
    """Refuse a colour image for a Grayscale Softcopy Presentation State.

    A GSPS carries a grayscale pipeline (PS3.3 A.33.1, PS3.4 N.2.1): it
    applies to MONOCHROME1 and MONOCHROME2 images; colour images take a
    Color or Pseudo-Color Softcopy Presentation State instead.

    Raises
    ------
    RenderError
        Naming the image's Photometric Interpretation.
    """
    photometric = as_text(element_get(ds, "PhotometricInterpretation")).upper()
    samples = as_float(element_get(ds, "SamplesPerPixel"))
    if photometric in MONOCHROME or (not photometric and samples in (None, 1.0)):
        return
    raise RenderError(
        "a Grayscale Softcopy Presentation State applies to grey images only "
        f"(this image is {photometric or f'{samples:g} samples per pixel'})"
    )


def _state_modality(transform: Any) -> ModalityLut:
    """A presentation state's modality transform as a :class:`ModalityLut`."""
    if getattr(transform, "lut", None) is not None:
        return ModalityLut(lut=Lut.from_model(transform.lut), units=transform.type)
    units = "" if transform.type in ("", "US") else transform.type
    return ModalityLut(float(transform.slope), float(transform.intercept), None, units)
