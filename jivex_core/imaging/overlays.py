"""Overlay planes of repeating groups 60xx (PS3.3 C.9.2, C.9.3).

An overlay is a one-bit plane drawn over the image: graphics (type G) or a
region of interest (type R). Its bits live either in Overlay Data
(60xx,3000), packed from the least significant bit of each byte on, one
plane after the other for multi-frame overlays, or (retired, still found in
older MR and CR) in unused high bits of the Pixel Data words, at Overlay Bit
Position (60xx,0102). The pipeline extracts both kinds as bitmaps with their
origin, so the viewer can draw them in a colour of its choice, and masks the
embedded bits out of the grey values (:mod:`~jivex_core.imaging.frames`
keeps only the stored bits).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset

from jivex_core.imaging.common import as_text, values_of

logger = logging.getLogger(__name__)

#: The even groups that may hold overlays (PS3.5 7.6).
OVERLAY_GROUPS = tuple(range(0x6000, 0x6020, 2))


@dataclass(eq=False)
class Overlay:
    """One overlay plane as it applies to one frame.

    Attributes
    ----------
    group : int
        The repeating group, 0x6000 to 0x601E.
    bitmap : numpy.ndarray
        bool (Overlay Rows, Overlay Columns); True where the overlay is drawn.
    origin : (int, int)
        Overlay Origin (60xx,0050): 1-based (row, column) of the bitmap's
        top left pixel in the image; may lie outside the image.
    type : str
        Overlay Type: ``G`` (graphics) or ``R`` (region of interest).
    label : str
        Overlay Label (60xx,1500).
    description : str
        Overlay Description (60xx,0022).
    embedded : bool
        Whether the bits came from unused bits of Pixel Data.
    """

    group: int
    bitmap: np.ndarray
    origin: tuple[int, int] = (1, 1)
    type: str = "G"
    label: str = ""
    description: str = ""
    embedded: bool = False

    def mask(self, rows: int, columns: int) -> np.ndarray:
        """The overlay as a bool mask of an image of *rows* x *columns*,
        placed at its origin and cut to the image."""
        out = np.zeros((rows, columns), dtype=bool)
        top, left = self.origin[0] - 1, self.origin[1] - 1
        height, width = self.bitmap.shape
        r0, c0 = max(top, 0), max(left, 0)
        r1, c1 = min(top + height, rows), min(left + width, columns)
        if r0 < r1 and c0 < c1:
            out[r0:r1, c0:c1] = self.bitmap[r0 - top : r1 - top, c0 - left : c1 - left]
        return out


def _value(ds: Dataset, group: int, element: int) -> object:
    try:
        found = ds.get((group, element))
    except Exception:
        return None
    return None if found is None else found.value


def _int(ds: Dataset, group: int, element: int, default: int | None) -> int | None:
    items = values_of(_value(ds, group, element))
    if not items:
        return default
    try:
        return int(items[0])  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return default


def _origin(ds: Dataset, group: int) -> tuple[int, int]:
    items = values_of(_value(ds, group, 0x0050))
    try:
        return (int(items[0]), int(items[1]))  # type: ignore[call-overload]
    except (IndexError, TypeError, ValueError):
        return (1, 1)


def read_overlays(
    ds: Dataset,
    frame_index: int,
    words: np.ndarray | None,
    image_shape: tuple[int, int],
) -> list[Overlay]:
    """The overlays of 0-based frame *frame_index*.

    Parameters
    ----------
    ds : pydicom.dataset.Dataset
    frame_index : int
        0-based frame of the image.
    words : numpy.ndarray or None
        The frame's unmasked Pixel Data words, for overlays embedded in
        unused bits; None when the words hold only stored bits.
    image_shape : (rows, columns)

    Overlays that cannot be read are left out with a warning in the log;
    they never stop the image from showing.
    """
    found: list[Overlay] = []
    for group in OVERLAY_GROUPS:
        if _value(ds, group, 0x0010) is None and _value(ds, group, 0x3000) is None:
            continue
        try:
            overlay = _read_one(ds, group, frame_index, words, image_shape)
        except Exception as exc:
            logger.warning("Ignoring overlay group %04X: %s", group, exc)
            continue
        if overlay is not None:
            found.append(overlay)
    return found


def _read_one(
    ds: Dataset,
    group: int,
    frame_index: int,
    words: np.ndarray | None,
    image_shape: tuple[int, int],
) -> Overlay | None:
    rows = _int(ds, group, 0x0010, None)
    columns = _int(ds, group, 0x0011, None)
    if not rows or not columns or rows < 1 or columns < 1:
        raise ValueError("Overlay Rows/Columns missing or zero")
    kind = (as_text(_value(ds, group, 0x0040)) or "G").upper()[:1]
    common = {
        "origin": _origin(ds, group),
        "type": kind if kind in ("G", "R") else "G",
        "label": as_text(_value(ds, group, 0x1500)),
        "description": as_text(_value(ds, group, 0x0022)),
    }
    data = _value(ds, group, 0x3000)
    if isinstance(data, bytes | bytearray) and len(data):
        frames = _int(ds, group, 0x0015, None)
        first = _int(ds, group, 0x0051, 1) or 1
        if frames is None:
            plane = 0  # one plane for every frame of the image
        else:
            plane = frame_index + 1 - first
            if not 0 <= plane < frames:
                return None
        count = rows * columns
        start = plane * count
        bits = np.unpackbits(
            np.frombuffer(bytes(data), dtype=np.uint8), bitorder="little"
        )
        if start >= len(bits):
            raise ValueError(f"Overlay Data holds no plane {plane + 1}")
        chunk = bits[start : start + count]
        if len(chunk) < count:
            chunk = np.concatenate([chunk, np.zeros(count - len(chunk), np.uint8)])
        bitmap = chunk.reshape(rows, columns).astype(bool)
        return Overlay(group, bitmap, **common)  # type: ignore[arg-type]
    position = _int(ds, group, 0x0102, None)
    allocated = _int(ds, group, 0x0100, 1)
    if position is None or allocated is None or allocated <= 1:
        return None
    if words is None:
        return None  # the frame has no bits outside the stored ones
    if (rows, columns) != image_shape:
        raise ValueError(
            f"an overlay in Pixel Data must be {image_shape[0]} x {image_shape[1]}, "
            f"not {rows} x {columns}"
        )
    if not 0 <= position < words.dtype.itemsize * 8:
        raise ValueError(f"Overlay Bit Position {position} is outside the words")
    bitmap = ((words >> position) & 1).astype(bool)
    return Overlay(group, bitmap, embedded=True, **common)  # type: ignore[arg-type]


def burn_in(image: np.ndarray, overlays: list[Overlay], value: int = 255) -> np.ndarray:
    """Draw *overlays* into an 8-bit image (grey or RGB) with *value*.

    Graphics and regions of interest alike replace the pixels they cover,
    as DCMTK's default overlay mode does for graphics.
    """
    if not overlays:
        return image
    out = image.copy()
    rows, columns = image.shape[:2]
    for overlay in overlays:
        out[overlay.mask(rows, columns)] = value
    return out
