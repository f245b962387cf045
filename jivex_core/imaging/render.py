"""The first slice of the rendering pipeline: stored pixels to display bytes.

The order follows the grayscale pipeline of PS3.4 N.2.1: modality LUT
(Rescale Slope and Intercept, or a Modality LUT Sequence), then the VOI
window, then the presentation LUT (here only the MONOCHROME1 inversion,
PS3.3 C.7.6.3.1.2). Colour images skip the grayscale steps and come out as
RGB.

Decoding a frame and applying the modality LUT are the slow steps, so they
happen once per frame (:func:`prepare_frame`); a window change only maps the
cached float32 values to bytes (:meth:`PreparedFrame.render`), which takes
well under a millisecond for a 512x512 image.

Not handled yet, and rendered with the first window or the value range
instead: VOI LUT Sequence, the SIGMOID VOI LUT function, Presentation LUT
Sequence, per-frame functional groups of enhanced multi-frame objects.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.pixels import apply_color_lut, apply_modality_lut, pixel_array

logger = logging.getLogger(__name__)

#: Photometric interpretations shown as grey levels.
MONOCHROME = ("MONOCHROME1", "MONOCHROME2")


@dataclass(frozen=True)
class Window:
    """A VOI window in modality units (PS3.3 C.11.2.1.2).

    Parameters
    ----------
    center : float
        Window Center (0028,1050).
    width : float
        Window Width (0028,1051); at least 1.
    """

    center: float
    width: float

    def __post_init__(self) -> None:
        if not self.width >= 1:
            raise ValueError(f"window width {self.width!r} is below 1")


class RenderError(Exception):
    """The pixel data of an object cannot be turned into an image."""


def number_of_frames(ds: Dataset) -> int:
    """Return the number of frames of *ds* (1 when Number of Frames is absent)."""
    try:
        return max(1, int(ds.get("NumberOfFrames", 1) or 1))
    except (TypeError, ValueError):
        return 1


def _first(value: object) -> float | None:
    if isinstance(value, MultiValue | list | tuple):
        value = value[0] if len(value) else None
    if value is None or value == "":
        return None
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def file_window(ds: Dataset) -> Window | None:
    """Return the first Window Center/Width of *ds*, or None when unusable.

    A missing, non-numeric or zero width is treated as no window, since a
    width below 1 is not allowed by PS3.3 C.11.2.1.2.
    """
    center = _first(ds.get("WindowCenter"))
    width = _first(ds.get("WindowWidth"))
    if center is None or width is None or not np.isfinite([center, width]).all():
        return None
    if width < 1:
        return None
    return Window(center, width)


def range_window(values: np.ndarray) -> Window:
    """Return the window that maps the value range of *values* onto 0..255.

    With the LINEAR function, width ``max - min + 1`` and center
    ``(min + max + 1) / 2`` send the minimum to 0 and the maximum to 255.
    """
    if values.size == 0:
        return Window(0.5, 1.0)
    low = float(np.min(values))
    high = float(np.max(values))
    return Window((low + high + 1.0) / 2.0, high - low + 1.0)


def window_coefficients(
    window: Window, function: str = "LINEAR", invert: bool = False
) -> tuple[float, float]:
    """Return ``(a, b)`` so that ``clip(x * a + b, 0, 255)`` is the output.

    The result includes +0.5 so that truncating to uint8 rounds. LINEAR is
    PS3.3 C.11.2.1.2.1 with y in [0, 255]; LINEAR_EXACT is C.11.2.1.3.2.
    *invert* applies the MONOCHROME1 inversion after the window.
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
        VOI LUT Function (0028,1056): ``LINEAR`` (default) or
        ``LINEAR_EXACT``; anything else is treated as LINEAR.
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
    a, b = window_coefficients(window, function, invert)
    if out is None or out.shape != values.shape:
        out = np.empty(values.shape, dtype=np.float32)
    np.multiply(values, np.float32(a), out=out, casting="unsafe")
    out += np.float32(b)
    np.clip(out, 0.0, 255.0, out=out)
    return out.astype(np.uint8)


@dataclass
class PreparedFrame:
    """One decoded frame, ready to be windowed many times.

    Attributes
    ----------
    values : numpy.ndarray
        float32 modality values (grey) or uint8 RGB of shape (rows, cols, 3).
    photometric : str
        Photometric Interpretation of *values* after decoding.
    default_window : Window | None
        The file's first window, else the value range; None for colour.
    voi_function : str
        VOI LUT Function of the file (LINEAR when absent).
    """

    values: np.ndarray
    photometric: str
    default_window: Window | None
    voi_function: str = "LINEAR"
    _scratch: np.ndarray | None = field(default=None, repr=False)

    @property
    def is_color(self) -> bool:
        """Whether the frame is RGB rather than grey."""
        return self.values.ndim == 3

    @property
    def invert(self) -> bool:
        """Whether grey levels are inverted for display (MONOCHROME1)."""
        return self.photometric == "MONOCHROME1"

    def render(self, window: Window | None = None) -> np.ndarray:
        """Return display bytes: (rows, cols) uint8 grey or (rows, cols, 3) RGB.

        *window* defaults to :attr:`default_window`; colour ignores it.
        """
        if self.is_color:
            return self.values
        window = window or self.default_window or range_window(self.values)
        if self._scratch is None or self._scratch.shape != self.values.shape:
            self._scratch = np.empty(self.values.shape, dtype=np.float32)
        return apply_window(
            self.values, window, self.voi_function, self.invert, self._scratch
        )


def _to_rgb8(arr: np.ndarray, ds: Dataset) -> np.ndarray:
    """Scale an RGB array of more than 8 bits down to uint8."""
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    bits = int(ds.get("BitsStored", 8) or 8)
    if arr.dtype.kind == "f":
        peak = float(arr.max()) or 1.0
        return np.clip(arr / peak * 255.0 + 0.5, 0, 255).astype(np.uint8)
    shift = max(0, bits - 8)
    return np.clip(arr.astype(np.int64) >> shift, 0, 255).astype(np.uint8)


def prepare_frame(ds: Dataset, index: int = 0) -> PreparedFrame:
    """Decode frame *index* of *ds* and apply the modality LUT.

    Parameters
    ----------
    ds : pydicom.dataset.Dataset
        A data set with Pixel Data (or Float Pixel Data).
    index : int
        Frame number starting at 0.

    Returns
    -------
    PreparedFrame

    Raises
    ------
    RenderError
        When there is no pixel data, the frame does not exist, or no
        installed decoder handles the transfer syntax; the message says
        which.
    """
    if not any(
        k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
    ):
        raise RenderError("the object has no pixel data")
    frames = number_of_frames(ds)
    if not 0 <= index < frames:
        raise RenderError(f"frame {index} does not exist; the object has {frames}")
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip()

    # pydicom converts YBR_FULL / YBR_FULL_422 to RGB itself (raw=False), and
    # knows when a JPEG decoder has already done so; converting here again
    # would shift the colours.
    try:
        arr = pixel_array(ds, index=index if frames > 1 else None)
    except NotImplementedError as exc:
        file_meta = getattr(ds, "file_meta", None)
        ts = str(getattr(file_meta, "TransferSyntaxUID", "") or "unknown")
        raise RenderError(f"no decoder for transfer syntax {ts}: {exc}") from exc
    except Exception as exc:
        raise RenderError(f"the pixel data cannot be decoded: {exc}") from exc
    if (
        frames > 1
        and arr.ndim > 2
        and arr.shape[0] == frames
        and photometric in (MONOCHROME)
    ):
        arr = arr[index]

    if photometric in MONOCHROME:
        values = apply_modality_lut(arr, ds)
        values = np.ascontiguousarray(values, dtype=np.float32)
        window = file_window(ds) or range_window(values)
        function = str(ds.get("VOILUTFunction", "LINEAR") or "LINEAR").upper()
        return PreparedFrame(values, photometric, window, function)

    if photometric == "PALETTE COLOR":
        try:
            rgb = apply_color_lut(arr, ds)
        except Exception as exc:
            raise RenderError(f"the palette cannot be applied: {exc}") from exc
        return PreparedFrame(_to_rgb8(rgb, ds), "RGB", None)

    if arr.ndim == 3 and arr.shape[-1] == 3:
        if photometric not in ("RGB", "YBR_FULL", "YBR_FULL_422"):
            # YBR_ICT / YBR_RCT come out of JPEG 2000 decoders as RGB.
            logger.debug("Treating photometric '%s' as RGB after decoding", photometric)
        return PreparedFrame(_to_rgb8(arr, ds), "RGB", None)

    raise RenderError(
        f"photometric interpretation '{photometric}' with array shape "
        f"{arr.shape} is not supported"
    )


def render(ds: Dataset, index: int = 0, window: Window | None = None) -> np.ndarray:
    """Decode and render one frame in a single call (see :func:`prepare_frame`).

    Returns uint8 grey (rows, cols) or RGB (rows, cols, 3).
    """
    return prepare_frame(ds, index).render(window)
