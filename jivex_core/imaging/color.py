"""Colour: YCbCr to RGB, palette colour lookup, scaling to 8 bits.

YBR_FULL and YBR_FULL_422 use the full-range ITU-R BT.601 equations of
PS3.3 C.7.6.3.1.2; YBR_PARTIAL_* the partial-range ones (luma 16-235, chroma
16-240). Palette colour follows PS3.3 C.7.6.3.1.5 and C.7.9: a descriptor
whose first value is 0 means 65536 entries, the second is the first stored
value mapped, and segmented palettes (C.7.9.2) are expanded here.
"""

from __future__ import annotations

import logging

import numpy as np
from pydicom.dataset import Dataset

from jivex_core.imaging.common import RenderError, element_get, values_of
from jivex_core.imaging.frames import label
from jivex_core.imaging.luts import lut_entries, lut_words

logger = logging.getLogger(__name__)


def ybr_to_rgb(samples: np.ndarray, photometric: str, bits: int = 8) -> np.ndarray:
    """Convert (rows, columns, 3) YCbCr samples to RGB of the same dtype.

    Parameters
    ----------
    samples : numpy.ndarray
        Y, Cb, Cr planes last, unsigned integers of *bits* bits.
    photometric : str
        ``YBR_FULL``/``YBR_FULL_422`` (full range) or ``YBR_PARTIAL_422``/
        ``YBR_PARTIAL_420`` (partial range).
    bits : int
        Bits per sample; the chroma offset is ``2 ** (bits - 1)``.
    """
    top = float((1 << bits) - 1)
    half = float(1 << (bits - 1))
    ybr = samples.astype(np.float32)
    y, cb, cr = ybr[..., 0], ybr[..., 1] - half, ybr[..., 2] - half
    if photometric.startswith("YBR_PARTIAL"):
        scale = top / 255.0
        y = (y - 16.0 * scale) * (255.0 / 219.0)
        cb = cb * (255.0 / 224.0)
        cr = cr * (255.0 / 224.0)
    rgb = np.empty(ybr.shape, dtype=np.float32)
    rgb[..., 0] = y + 1.402 * cr
    rgb[..., 1] = y - 0.344136 * cb - 0.714136 * cr
    rgb[..., 2] = y + 1.772 * cb
    np.clip(rgb + 0.5, 0.0, top, out=rgb)
    dtype = samples.dtype if samples.dtype.kind == "u" else np.uint16
    return rgb.astype(dtype)


def to_rgb8(rgb: np.ndarray, bits: int) -> np.ndarray:
    """Scale unsigned RGB samples of *bits* bits to uint8 (keeping 8 bits)."""
    if rgb.dtype == np.uint8 and bits >= 8:
        return np.ascontiguousarray(rgb)
    if rgb.dtype.kind == "f":
        peak = float(rgb.max()) or 1.0
        return np.clip(rgb / peak * 255.0 + 0.5, 0, 255).astype(np.uint8)
    wide = rgb.astype(np.int64)
    if bits > 8:
        wide >>= bits - 8
    elif bits < 8:
        wide = wide * 255 // ((1 << bits) - 1)
    return np.clip(wide, 0, 255).astype(np.uint8)


# -- palette colour -------------------------------------------------------

_CHANNELS = ("Red", "Green", "Blue")


def _descriptor(ds: Dataset, channel: str) -> tuple[int, int, int]:
    keyword = f"{channel}PaletteColorLookupTableDescriptor"
    items = values_of(element_get(ds, keyword))
    if len(items) != 3:
        raise RenderError(f"{label(keyword)} is missing or has not 3 values")
    try:
        entries, first, bits = (int(v) for v in items)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        raise RenderError(f"{label(keyword)} is not three numbers") from None
    # PS3.3 C.7.6.3.1.5: 0 entries means 2^16; the first mapped value is
    # unsigned unless the pixels are signed, so 0xFFFF can mean -1.
    return entries or 65536, first, bits


def _segmented(words: np.ndarray, keyword: str) -> np.ndarray:
    """Expand a segmented palette (PS3.3 C.7.9.2): discrete (0), linear (1)
    and indirect (2) segments; an indirect segment's offset counts bytes
    from the start of the data."""

    def broken(what: str) -> RenderError:
        return RenderError(f"{label(keyword)} {what}")

    def expand(
        position: int, limit: int | None, last: float | None, depth: int
    ) -> list[float]:
        if depth > 8:
            raise broken("has indirect segments nested too deep")
        out: list[float] = []
        count = 0
        while position + 1 < len(words) and (limit is None or count < limit):
            opcode, length = int(words[position]), int(words[position + 1])
            previous = out[-1] if out else last
            if opcode == 0:
                block = words[position + 2 : position + 2 + length]
                if len(block) < length:
                    raise broken("ends inside a discrete segment")
                out.extend(float(v) for v in block)
                position += 2 + length
            elif opcode == 1:
                if previous is None or position + 2 >= len(words):
                    raise broken("has a linear segment without a start value")
                end = float(words[position + 2])
                steps = np.arange(1, length + 1, dtype=np.float64) / max(length, 1)
                out.extend((previous + (end - previous) * steps).tolist())
                position += 3
            elif opcode == 2:
                if position + 3 >= len(words):
                    raise broken("ends inside an indirect segment")
                offset = int(words[position + 2]) | (int(words[position + 3]) << 16)
                out.extend(expand(offset // 2, length, previous, depth + 1))
                position += 4
            else:
                raise broken(f"has unknown segment type {opcode}")
            count += 1
        return out

    values = np.asarray(expand(0, None, None, 0), dtype=np.float64)
    return np.rint(values).astype(np.int64)


def palette_tables(ds: Dataset) -> tuple[np.ndarray, int]:
    """The palette as a (entries, 3) uint8 table and its first mapped value.

    Raises
    ------
    RenderError
        When a descriptor or data element is missing or malformed.
    """
    channels = []
    first_mapped = 0
    for channel in _CHANNELS:
        entries, first, bits = _descriptor(ds, channel)
        first_mapped = first
        segmented = f"Segmented{channel}PaletteColorLookupTableData"
        plain = f"{channel}PaletteColorLookupTableData"
        if plain not in ds and segmented not in ds:
            raise RenderError(f"{label(plain)} is missing")
        try:
            if plain in ds:
                words = lut_entries(lut_words(ds, plain), entries, bits)
            else:
                words = _segmented(lut_words(ds, segmented), segmented)
        except RenderError:
            raise
        except Exception as exc:
            raise RenderError(
                f"the {channel.lower()} palette cannot be read: {exc}"
            ) from exc
        if len(words) == 0:
            raise RenderError(f"the {channel.lower()} palette is empty")
        if len(words) < entries:
            words = np.concatenate([words, np.full(entries - len(words), words[-1])])
        table = words[:entries]
        # Entries are 8 or 16 bits as the descriptor says; 8-bit entries
        # written in the high byte of their words are found by their range.
        if bits > 8 or table.max(initial=0) > 255:
            table = table >> 8
        channels.append(np.clip(table, 0, 255).astype(np.uint8))
    length = min(len(c) for c in channels)
    return np.stack([c[:length] for c in channels], axis=1), first_mapped


def apply_palette(stored: np.ndarray, ds: Dataset, signed: bool) -> np.ndarray:
    """RGB uint8 (rows, columns, 3) of palette indices *stored*.

    Values below the first mapped value take the first entry, above the
    last the last one (PS3.3 C.7.6.3.1.5).
    """
    table, first = palette_tables(ds)
    if signed and first >= 0x8000:
        first -= 0x10000
    index = stored.astype(np.int64) - first
    np.clip(index, 0, len(table) - 1, out=index)
    return table[index]
