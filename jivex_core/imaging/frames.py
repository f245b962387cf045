"""Stored pixel values of one frame: the Image Pixel module read defensively.

This module turns the Pixel Data of a data set into the *stored values* of
one frame, before any LUT: integers with the sign of Pixel Representation,
Bits Stored wide, taken from the bits Bits Allocated/High Bit say
(PS3.5 8.1.1, PS3.3 C.7.6.3). Colour frames come out as RGB.

Native (uncompressed) Pixel Data is read here rather than by pydicom because
the field needs more tolerance than a strict reader gives:

- Pixel Data longer than needed, or one byte short (a writer that cut the
  value to an even length instead of padding it), displays as it is, with
  no warning; the missing byte reads as zero. When more is missing, the
  pixels the data does not hold are marked in :attr:`DecodedFrame.missing`
  (the pipeline shows them black) and the frame carries a warning saying
  how much is missing;
- the bits above High Bit (and below the lowest stored bit) are masked out,
  so that overlays stored in unused high bits (retired, PS3.3 C.9.2 of 2004)
  do not show as grey values; :mod:`~jivex_core.imaging.overlays` reads them
  from the unmasked words this module keeps;
- signed values are sign-extended from Bits Stored, whatever High Bit is.

Encapsulated Pixel Data goes through pydicom's decoders (pylibjpeg for JPEG,
JPEG-LS, JPEG 2000, RLE), which also convert YCbCr JPEG to RGB exactly once.

Multi-frame functional groups (PS3.3 C.7.6.16) are looked up per frame with
:func:`frame_group`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
from pydicom.datadict import dictionary_description, tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.pixels import get_decoder
from pydicom.uid import UID

from jivex_core.imaging.common import (
    RenderError,
    as_text,
    element_get,
    number_of_frames,
    values_of,
)

logger = logging.getLogger(__name__)

#: Photometric interpretations shown as grey levels.
MONOCHROME = ("MONOCHROME1", "MONOCHROME2")
#: Photometric interpretations of three samples per pixel (PS3.3 C.7.6.3.1.2).
COLOR = (
    "RGB",
    "YBR_FULL",
    "YBR_FULL_422",
    "YBR_PARTIAL_422",
    "YBR_PARTIAL_420",
    "YBR_ICT",
    "YBR_RCT",
)
PALETTE = "PALETTE COLOR"

#: Frames larger than this many samples are refused: the arrays would not
#: fit a workstation's memory, and no real single frame is that big.
MAX_FRAME_SAMPLES = 2**28

_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


def label(keyword: str) -> str:
    """An attribute's name and tag for messages: ``Rows (0028,0010)``."""
    tag = tag_for_keyword(keyword)
    if tag is None:
        return keyword
    return f"{dictionary_description(tag)} ({tag >> 16:04X},{tag & 0xFFFF:04X})"


@dataclass(frozen=True)
class PixelFormat:
    """The Image Pixel module attributes of a data set, checked.

    Attributes
    ----------
    rows, columns : int
    samples : int
        Samples per Pixel.
    bits_allocated, bits_stored, high_bit : int
    signed : bool
        Pixel Representation is 1 (two's complement).
    photometric : str
        Photometric Interpretation as stored.
    planar : int
        Planar Configuration (0: R1G1B1R2..., 1: RRR...GGG...BBB...).
    frames : int
        Number of Frames (1 when absent).
    keyword : str
        Which pixel data element holds the pixels.
    transfer_syntax : str
        Transfer Syntax UID ('' when the data set has no File Meta).
    encapsulated : bool
        Whether Pixel Data is encapsulated (compressed).
    little_endian : bool
        Byte order of native Pixel Data.
    """

    rows: int
    columns: int
    samples: int
    bits_allocated: int
    bits_stored: int
    high_bit: int
    signed: bool
    photometric: str
    planar: int
    frames: int
    keyword: str
    transfer_syntax: str
    encapsulated: bool
    little_endian: bool

    @property
    def is_float(self) -> bool:
        """Whether the pixels are Float or Double Float Pixel Data."""
        return self.keyword != "PixelData"

    @property
    def frame_samples(self) -> int:
        """Samples stored per native frame (YBR_FULL_422 shares chroma)."""
        per_pixel = 2 if self.photometric in _SUBSAMPLED else self.samples
        return self.rows * self.columns * per_pixel


#: Native photometric interpretations with horizontally shared chroma: each
#: pair of pixels is stored as Y1 Y2 Cb Cr (PS3.3 C.7.6.3.1.2).
_SUBSAMPLED = ("YBR_FULL_422", "YBR_PARTIAL_422")


def _single_int(ds: Dataset, keyword: str, default: int | None) -> int | None:
    """An integer attribute with one value; *default* when absent or empty.

    A None *default* makes the attribute required.
    """
    raw = element_get(ds, keyword)
    items = values_of(raw)
    if not items:
        if keyword in ds and default is None:
            raise RenderError(f"{label(keyword)} is empty")
        if default is None:
            raise RenderError(f"{label(keyword)} is missing")
        return default
    if len(items) > 1:
        raise RenderError(f"{label(keyword)} has {len(items)} values, not one")
    try:
        return int(items[0])  # type: ignore[call-overload]
    except (TypeError, ValueError):
        raise RenderError(f"{label(keyword)} is not a number: {items[0]!r}") from None


def _transfer_syntax(ds: Dataset) -> tuple[str, bool, bool]:
    """(UID, encapsulated, little endian) of the data set's pixels."""
    meta = getattr(ds, "file_meta", None)
    uid = as_text(meta.get("TransferSyntaxUID")) if meta is not None else ""
    if uid:
        syntax = UID(uid)
        if syntax.is_transfer_syntax:
            return uid, bool(syntax.is_encapsulated), bool(syntax.is_little_endian)
        # Unknown UIDs (private or newer syntaxes) are compressed ones in
        # practice; the decoder lookup below reports them by UID.
        return uid, True, True
    encoding = getattr(ds, "original_encoding", (None, None))
    little = True if encoding[1] is None else bool(encoding[1])
    return "", False, little


def pixel_format(ds: Dataset) -> PixelFormat:
    """Read and check the Image Pixel module of *ds*.

    Raises
    ------
    RenderError
        When there is no pixel data, or an attribute is missing, empty or
        inconsistent (Bits Stored above Bits Allocated, High Bit outside the
        allocated bits, a photometric interpretation that is not one of
        PS3.3 C.7.6.3.1.2, samples that do not fit it, a frame too large);
        the message names the attribute and its value.
    """
    keyword = next((k for k in _PIXEL_KEYWORDS if k in ds), None)
    if keyword is None:
        raise RenderError("the object has no pixel data")
    rows = _single_int(ds, "Rows", None)
    columns = _single_int(ds, "Columns", None)
    assert rows is not None and columns is not None
    if rows < 1 or columns < 1:
        raise RenderError(f"the image is {rows} x {columns} pixels (Rows x Columns)")
    samples = _single_int(ds, "SamplesPerPixel", 1)
    assert samples is not None
    photometric = as_text(element_get(ds, "PhotometricInterpretation")).upper()
    if not photometric:
        if samples != 1:
            raise RenderError(f"{label('PhotometricInterpretation')} is missing")
        # ACR-NEMA 1.0/2.0 files have no Photometric Interpretation; their
        # pixels are grey with the lowest value black.
        logger.debug("No Photometric Interpretation: reading it as MONOCHROME2")
        photometric = "MONOCHROME2"
    if photometric not in (*MONOCHROME, PALETTE, *COLOR):
        raise RenderError(
            f"{label('PhotometricInterpretation')} '{photometric}' is not supported"
        )
    wanted = 3 if photometric in COLOR else 1
    if samples != wanted:
        raise RenderError(
            f"{label('SamplesPerPixel')} is {samples}, but {photometric} needs {wanted}"
        )

    if keyword == "PixelData":
        bits_allocated = _single_int(ds, "BitsAllocated", None)
        assert bits_allocated is not None
        if bits_allocated not in (1, 8, 16, 32) and not 1 < bits_allocated < 16:
            raise RenderError(
                f"{label('BitsAllocated')} {bits_allocated} is not 1, 8, 16 or 32"
            )
    else:
        bits_allocated = 32 if keyword == "FloatPixelData" else 64
    bits_stored = _single_int(ds, "BitsStored", bits_allocated)
    assert bits_stored is not None
    if bits_stored < 1:
        raise RenderError(f"{label('BitsStored')} is {bits_stored}")
    if bits_stored > bits_allocated:
        raise RenderError(
            f"{label('BitsStored')} {bits_stored} is greater than "
            f"{label('BitsAllocated')} {bits_allocated}"
        )
    high_bit = _single_int(ds, "HighBit", bits_stored - 1)
    assert high_bit is not None
    if not bits_stored - 1 <= high_bit < bits_allocated:
        raise RenderError(
            f"{label('HighBit')} {high_bit} does not fit {bits_stored} bits stored "
            f"in {bits_allocated} bits allocated"
        )
    representation = _single_int(ds, "PixelRepresentation", 0)
    if representation not in (0, 1):
        raise RenderError(
            f"{label('PixelRepresentation')} {representation} is not 0 or 1"
        )
    planar = _single_int(ds, "PlanarConfiguration", 0) if samples > 1 else 0
    if planar not in (0, 1):
        raise RenderError(f"{label('PlanarConfiguration')} {planar} is not 0 or 1")
    if rows * columns * samples > MAX_FRAME_SAMPLES:
        raise RenderError(
            f"the image is {rows} x {columns} pixels (Rows x Columns), too large "
            "to render"
        )
    syntax, encapsulated, little = _transfer_syntax(ds)
    if keyword == "PixelData" and not encapsulated and _undefined_length(ds):
        # Encapsulated Pixel Data under a native transfer syntax (files
        # rewritten with the wrong File Meta): the codestream names its codec.
        found = _sniff_syntax(ds)
        if found is None:
            raise RenderError(
                f"Pixel Data is encapsulated, but transfer syntax {syntax or '(none)'} "
                "is not a compressed one and the data is of no known codec"
            )
        logger.info(
            "Pixel Data is encapsulated under %s; decoding it as %s", syntax, found
        )
        syntax, encapsulated, little = found, True, True
    if photometric in _SUBSAMPLED and not encapsulated and columns % 2:
        raise RenderError(
            f"{photometric} needs an even number of columns, not {columns}"
        )
    return PixelFormat(
        rows=rows,
        columns=columns,
        samples=samples,
        bits_allocated=bits_allocated,
        bits_stored=bits_stored,
        high_bit=high_bit,
        signed=representation == 1,
        photometric=photometric,
        planar=planar or 0,
        frames=number_of_frames(ds),
        keyword=keyword,
        transfer_syntax=syntax,
        encapsulated=encapsulated and keyword == "PixelData",
        little_endian=little,
    )


def _undefined_length(ds: Dataset) -> bool:
    try:
        return bool(ds["PixelData"].is_undefined_length)
    except Exception:
        return False


#: Start of a codestream -> the transfer syntax that decodes it.
_JPEG_PROCESSES = {
    0xC0: "1.2.840.10008.1.2.4.50",  # baseline
    0xC1: "1.2.840.10008.1.2.4.51",  # extended
    0xC3: "1.2.840.10008.1.2.4.70",  # lossless
    0xF7: "1.2.840.10008.1.2.4.80",  # JPEG-LS
}


def _sniff_syntax(ds: Dataset) -> str | None:
    """The transfer syntax of encapsulated data, from its first fragment."""
    from pydicom.encaps import generate_fragments

    try:
        fragments = generate_fragments(ds.PixelData)
        next(fragments)  # the Basic Offset Table
        first = next(fragments)
    except Exception:
        return None
    if first[:2] == b"\xff\xd8":
        position = 2
        while position + 4 <= len(first):
            if first[position] != 0xFF:
                return None
            marker = first[position + 1]
            if marker in _JPEG_PROCESSES:
                return _JPEG_PROCESSES[marker]
            length = int.from_bytes(first[position + 2 : position + 4], "big")
            position += 2 + length
        return None
    if first[:2] == b"\xff\x4f" or first[4:8] == b"jP  ":
        return "1.2.840.10008.1.2.4.90"
    return None


@dataclass
class DecodedFrame:
    """The pixels of one frame before any LUT.

    Attributes
    ----------
    pixels : numpy.ndarray
        Grey or palette: stored values (rows, columns), integers with the
        sign of Pixel Representation (floats for Float Pixel Data). Colour:
        (rows, columns, 3) RGB samples, unsigned.
    photometric : str
        The photometric interpretation of *pixels* (colour comes out as RGB).
    words : numpy.ndarray or None
        The unmasked native words of a grey frame when they hold bits outside
        the stored ones (where overlays may live); None otherwise.
    warnings : list of str
        What the reader should know about the frame (missing pixels).
    missing : numpy.ndarray or None
        (rows, columns) bool, True where Pixel Data ends before the pixel:
        those pixels are not in the file and are shown black. None when
        every pixel is there.
    """

    pixels: np.ndarray
    photometric: str
    words: np.ndarray | None = None
    warnings: list[str] = field(default_factory=list)
    missing: np.ndarray | None = None


def decode_frame(ds: Dataset, fmt: PixelFormat, index: int) -> DecodedFrame:
    """Decode frame *index* (0-based) of *ds*.

    Raises
    ------
    RenderError
        When the frame does not exist, the pixel data cannot be decoded, a
        compressed frame is cut short, or no installed decoder handles the
        transfer syntax.
    """
    if not 0 <= index < fmt.frames:
        raise RenderError(f"frame {index} does not exist; the object has {fmt.frames}")
    if fmt.encapsulated:
        return _decode_encapsulated(ds, fmt, index)
    return _decode_native(ds, fmt, index)


# -- native ---------------------------------------------------------------


def _raw_bytes(ds: Dataset, keyword: str) -> bytes:
    try:
        value = ds[keyword].value
    except Exception as exc:
        raise RenderError(f"{label(keyword)} cannot be read: {exc}") from exc
    if value is None:
        raise RenderError(f"{label(keyword)} is empty")
    if not isinstance(value, bytes | bytearray | memoryview):
        raise RenderError(f"{label(keyword)} is not a byte string")
    return bytes(value)


def _frame_bytes(data: bytes, start: int, length: int, index: int) -> tuple[bytes, int]:
    """Bytes [start, start+length) of *data*, zero-padded when it ends early,
    and how many of them the data holds."""
    if start >= len(data):
        raise RenderError(
            f"Pixel Data holds {len(data)} bytes: frame {index + 1} (from byte "
            f"{start}) is missing"
        )
    chunk = data[start : start + length]
    present = len(chunk)
    if present < length:
        chunk = chunk + bytes(length - present)
    return chunk, present


def _shortfall(
    fmt: PixelFormat, index: int, present: int, length: int, complete: int
) -> tuple[np.ndarray | None, list[str]]:
    """The missing-pixel mask and warning of a frame whose data ends early.

    *present* of the frame's *length* bytes are in Pixel Data, holding
    *complete* whole samples. One byte short is a value cut to an even
    length (a writer that dropped the pad byte instead of adding one): that
    displays as it is, without a warning (the byte reads as zero). More
    missing is said, and the pixels whose samples are not all there are
    marked, so that they show black rather than as made-up values.
    """
    short = length - present
    if short <= 0:
        return None, []
    if short == 1:
        logger.debug("Pixel Data is one byte short; the last byte reads as 0")
        return None, []
    frame = "" if fmt.frames == 1 else f" of frame {index + 1}"
    if complete <= 0:
        raise RenderError(
            f"Pixel Data holds {present} of the {length} bytes{frame}: not one "
            "pixel of it"
        )
    valid = np.zeros(fmt.frame_samples, dtype=bool)
    valid[:complete] = True
    rows, cols = fmt.rows, fmt.columns
    if fmt.samples == 1:
        whole = valid.reshape(rows, cols)
    elif fmt.photometric in _SUBSAMPLED:
        whole = np.repeat(valid.reshape(rows, cols // 2, 4).all(axis=-1), 2, axis=1)
    elif fmt.planar == 1:
        whole = valid.reshape(3, rows, cols).all(axis=0)
    else:
        whole = valid.reshape(rows, cols, 3).all(axis=-1)
    the = "of" if fmt.frames == 1 else "of the"
    warning = (
        f"Pixel Data holds {present} {the} {length} bytes{frame}: the rest shows black"
    )
    return ~whole, [warning]


def _decode_native(ds: Dataset, fmt: PixelFormat, index: int) -> DecodedFrame:
    data = _raw_bytes(ds, fmt.keyword)
    count = fmt.frame_samples
    if fmt.bits_allocated == 8 and not fmt.little_endian and _is_ow(ds, fmt.keyword):
        # 8-bit samples in an OW value under Big Endian are byte-swapped in
        # pairs (PS3.5 8.2 and A.3); undo it before cutting frames out.
        data = _swap_byte_pairs(data)
    if fmt.is_float:
        size = fmt.bits_allocated // 8
        dtype = np.dtype(f"{'<' if fmt.little_endian else '>'}f{size}")
        length = count * size
        chunk, present = _frame_bytes(data, index * length, length, index)
        values = np.frombuffer(chunk, dtype=dtype).astype(np.float64)
        pixels = values.reshape(fmt.rows, fmt.columns)
        if fmt.samples != 1:
            raise RenderError("colour Float Pixel Data is not supported")
        missing, warnings = _shortfall(fmt, index, present, length, present // size)
        return DecodedFrame(pixels, fmt.photometric, None, warnings, missing)

    expected_total = _expected_length(fmt)
    if len(data) > expected_total + 1:
        logger.debug(
            "Pixel Data holds %d bytes, %d expected; the rest is ignored",
            len(data),
            expected_total,
        )
    if fmt.bits_allocated % 8:
        # 1-bit (PS3.5 8.1.1), or ACR-NEMA cells of 12 bits and the like:
        # cells follow each other in the bit stream, frames not aligned.
        if not fmt.little_endian and fmt.bits_allocated > 1:
            raise RenderError(
                f"{label('BitsAllocated')} {fmt.bits_allocated} is not supported "
                "in Big Endian"
            )
        width = fmt.bits_allocated
        start, skip = divmod(index * count * width, 8)
        length = (skip + count * width + 7) // 8
        chunk, present = _frame_bytes(data, start, length, index)
        words = _unpack_bits(chunk, skip, count, width)
        complete = max(present * 8 - skip, 0) // width
    else:
        size = fmt.bits_allocated // 8
        length = count * size
        chunk, present = _frame_bytes(data, index * length, length, index)
        complete = present // size
        order = "<" if fmt.little_endian else ">"
        if size == 4 and not fmt.little_endian and _is_ow(ds, fmt.keyword):
            # OW is a stream of 16-bit words, each byte-swapped in Big
            # Endian; a 32-bit cell is two of them, low word first (PS3.5
            # 8.1.1). DCMTK and GDCM read it so.
            halves = np.frombuffer(chunk, dtype=">u2").astype(np.uint32)
            words = halves[0::2] | (halves[1::2] << np.uint32(16))
        else:
            words = np.frombuffer(chunk, dtype=np.dtype(f"{order}u{size}"))
            words = words.astype(words.dtype.newbyteorder("="), copy=False)
    missing, warnings = _shortfall(fmt, index, present, length, complete)

    if fmt.samples == 1:
        words = words.reshape(fmt.rows, fmt.columns)
        stored, has_other_bits = _stored_values(words, fmt)
        return DecodedFrame(
            stored,
            fmt.photometric,
            words if has_other_bits else None,
            warnings,
            missing,
        )
    return DecodedFrame(_native_color(words, fmt), "RGB", None, warnings, missing)


def _expected_length(fmt: PixelFormat) -> int:
    bits = fmt.frame_samples * fmt.frames * fmt.bits_allocated
    return (bits + 7) // 8


def _is_ow(ds: Dataset, keyword: str) -> bool:
    try:
        return ds[keyword].VR == "OW"
    except Exception:
        return False


def _swap_byte_pairs(data: bytes) -> bytes:
    raw = np.frombuffer(data + bytes(len(data) % 2), dtype=np.uint8)
    return raw.reshape(-1, 2)[:, ::-1].tobytes()[: len(data)]


def _unpack_bits(chunk: bytes, skip: int, count: int, width: int) -> np.ndarray:
    """*count* cells of *width* bits from bit *skip* of *chunk* on: cells
    packed from the least significant bit of each byte on, not aligned to
    bytes (PS3.5 8.1.1 for one bit; ACR-NEMA packs 12-bit cells the same
    way)."""
    bits = np.unpackbits(np.frombuffer(chunk, dtype=np.uint8), bitorder="little")
    bits = bits[skip : skip + count * width]
    if width == 1:
        return bits
    weights = (1 << np.arange(width, dtype=np.uint32)).astype(np.uint32)
    cells = bits.reshape(count, width).astype(np.uint32) @ weights
    return cells.astype(np.uint16)


def _stored_values(words: np.ndarray, fmt: PixelFormat) -> tuple[np.ndarray, bool]:
    """Stored values from native words, and whether other bits were set.

    The stored bits are High Bit - Bits Stored + 1 .. High Bit (PS3.5 8.1.1);
    signed values are sign-extended from Bits Stored.
    """
    if fmt.bits_allocated == 1:
        return words.astype(np.uint8), False
    low = fmt.high_bit - fmt.bits_stored + 1
    full = fmt.bits_stored == words.dtype.itemsize * 8
    mask = (1 << fmt.bits_stored) - 1
    has_other_bits = False
    if full:
        values = words
    else:
        values = words >> low if low else words
        values = values & values.dtype.type(mask)
        has_other_bits = bool(np.any(words != (values << low if low else values)))
    if fmt.signed:
        if full:
            values = values.view(f"i{words.dtype.itemsize}")
        else:
            wide = np.int32 if fmt.bits_stored <= 16 else np.int64
            values = values.astype(wide)
            sign = 1 << (fmt.bits_stored - 1)
            values = (values ^ sign) - sign
            if fmt.bits_stored <= 8:
                values = values.astype(np.int8)
            elif fmt.bits_stored <= 16:
                values = values.astype(np.int16)
    elif not full and fmt.bits_stored <= 8 and values.dtype.itemsize > 1:
        values = values.astype(np.uint8)
    elif not full and fmt.bits_stored <= 16 and values.dtype.itemsize > 2:
        values = values.astype(np.uint16)
    return np.ascontiguousarray(values), has_other_bits


def _native_color(words: np.ndarray, fmt: PixelFormat) -> np.ndarray:
    """RGB (rows, columns, 3) from native colour samples of any layout."""
    rows, cols = fmt.rows, fmt.columns
    if fmt.photometric in _SUBSAMPLED:
        # Y1 Y2 Cb Cr for each pair of pixels, whatever Planar Configuration
        # says (PS3.3 C.7.6.3.1.2 requires 0).
        quads = words.reshape(rows, cols // 2, 4)
        ybr = np.empty((rows, cols, 3), dtype=words.dtype)
        ybr[:, 0::2, 0] = quads[..., 0]
        ybr[:, 1::2, 0] = quads[..., 1]
        ybr[:, :, 1] = np.repeat(quads[..., 2], 2, axis=1)
        ybr[:, :, 2] = np.repeat(quads[..., 3], 2, axis=1)
        samples = ybr
    elif fmt.planar == 1:
        samples = words.reshape(3, rows, cols).transpose(1, 2, 0)
    else:
        samples = words.reshape(rows, cols, 3)
    if fmt.bits_stored < fmt.bits_allocated:
        low = fmt.high_bit - fmt.bits_stored + 1
        mask = samples.dtype.type((1 << fmt.bits_stored) - 1)
        samples = (samples >> low) & mask if low else samples & mask
    if fmt.photometric.startswith("YBR_"):
        from jivex_core.imaging.color import ybr_to_rgb

        return ybr_to_rgb(samples, fmt.photometric, fmt.bits_stored)
    return np.ascontiguousarray(samples)


# -- encapsulated ---------------------------------------------------------


def _decode_encapsulated(ds: Dataset, fmt: PixelFormat, index: int) -> DecodedFrame:
    try:
        decoder = get_decoder(fmt.transfer_syntax)
    except NotImplementedError:
        raise RenderError(
            f"no decoder for transfer syntax {fmt.transfer_syntax} "
            f"({_syntax_name(fmt.transfer_syntax)})"
        ) from None
    if not decoder.is_available:
        raise RenderError(
            f"no decoder installed for transfer syntax {fmt.transfer_syntax} "
            f"({_syntax_name(fmt.transfer_syntax)})"
        )
    options = {
        "rows": fmt.rows,
        "columns": fmt.columns,
        "samples_per_pixel": fmt.samples,
        "bits_allocated": fmt.bits_allocated,
        "bits_stored": fmt.bits_stored,
        "pixel_representation": int(fmt.signed),
        "photometric_interpretation": fmt.photometric,
        "number_of_frames": fmt.frames,
        "pixel_keyword": "PixelData",
    }
    if fmt.samples > 1:
        options["planar_configuration"] = fmt.planar
    data = _raw_bytes(ds, "PixelData")
    _check_end_marker(data, fmt, index)
    try:
        arr, props = decoder.as_array(data, index=index, **options)
    except NotImplementedError as exc:
        raise RenderError(
            f"no decoder for transfer syntax {fmt.transfer_syntax}: {exc}"
        ) from exc
    except (KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except BaseException as exc:
        # BaseException: decoders written in Rust (pylibjpeg-rle) raise
        # pyo3's PanicException, which is not an Exception, on bad data.
        raise RenderError(
            f"the pixel data cannot be decoded ({_syntax_name(fmt.transfer_syntax)})"
            f": {decoder_reason(exc, fmt)}"
        ) from exc
    photometric = str(props.get("photometric_interpretation", fmt.photometric))
    if fmt.samples == 1:
        if arr.ndim != 2:
            raise RenderError(f"the decoder returned an array of shape {arr.shape}")
        pixels = _clean_decoded(arr, fmt)
        return DecodedFrame(pixels, fmt.photometric)
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise RenderError(f"the decoder returned an array of shape {arr.shape}")
    if photometric in ("YBR_FULL", "YBR_FULL_422"):
        # Only reached when the decoder left the samples in YCbCr.
        from jivex_core.imaging.color import ybr_to_rgb

        arr = ybr_to_rgb(arr, photometric, fmt.bits_stored)
    elif photometric not in ("RGB", "YBR_ICT", "YBR_RCT"):
        logger.debug("Treating decoded '%s' samples as RGB", photometric)
    return DecodedFrame(np.ascontiguousarray(arr), "RGB")


#: Transfer syntaxes whose codestreams end with the marker FF D9: JPEG's
#: End of Image (ISO/IEC 10918-1 B.2.1), JPEG-LS's (ISO/IEC 14495-1 C.1.1)
#: and JPEG 2000's End of Codestream (ISO/IEC 15444-1 A.4.4).
_END_MARKER_SYNTAXES = frozenset(
    {
        *(f"1.2.840.10008.1.2.4.{n}" for n in range(50, 67)),  # JPEG 1-29
        "1.2.840.10008.1.2.4.70",  # JPEG lossless SV1
        "1.2.840.10008.1.2.4.80",  # JPEG-LS
        "1.2.840.10008.1.2.4.81",
        *(f"1.2.840.10008.1.2.4.{n}" for n in range(90, 94)),  # JPEG 2000
        *(f"1.2.840.10008.1.2.4.{n}" for n in range(201, 204)),  # HTJ2K
    }
)

#: Bytes allowed after the end marker of a frame: encoders pad to an even
#: length and some add a few bytes more (the corpus has up to 7).
_END_SLACK = 16


def _check_end_marker(data: bytes, fmt: PixelFormat, index: int) -> None:
    """Refuse a JPEG, JPEG-LS or JPEG 2000 frame cut short.

    A codestream ends with FF D9, which its entropy-coded data cannot
    contain (those formats stuff or escape such bytes), so a frame without
    it near its end was cut. libjpeg decodes such a stream without
    complaint, inventing the rows it did not get; which rows are real
    cannot be told, so the frame is refused rather than shown in part.
    """
    if fmt.transfer_syntax not in _END_MARKER_SYNTAXES:
        return
    from pydicom.encaps import get_frame

    try:
        frame = get_frame(data, index, number_of_frames=fmt.frames)
    except Exception as exc:  # the decoder will say what is wrong
        logger.debug("Frame %d not located before decoding: %s", index + 1, exc)
        return
    if b"\xff\xd9" not in frame[-_END_SLACK:]:
        raise RenderError(
            f"the compressed data of frame {index + 1} is cut short "
            f"({_syntax_name(fmt.transfer_syntax)}): its {len(frame)} bytes end "
            "without the end marker FF D9, so part of the image is missing"
        )


def decoder_reason(exc: BaseException, fmt: PixelFormat | None = None) -> str:
    """A decoder's complaint as one line.

    pydicom joins the exceptions of all the plugins it tried under a first
    line that says only that they failed; the plugins' own lines are the
    reason. A decoded frame of the wrong size surfaces as numpy's failure
    to broadcast it into the frame.
    """
    text = str(exc).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].startswith("Unable to decode"):
        lines = lines[1:]
    if lines and lines[0].endswith("plugins:"):
        lines = lines[1:]
    reason = "; ".join(lines) if lines else type(exc).__name__
    if isinstance(exc, ValueError) and "broadcast" in reason and fmt is not None:
        reason = (
            f"the decoded frame is not the {fmt.rows} x {fmt.columns} pixels that "
            f"Rows and Columns say ({reason})"
        )
    return reason


def _clean_decoded(arr: np.ndarray, fmt: PixelFormat) -> np.ndarray:
    """Decoded grey values with the stored sign and width."""
    if fmt.signed and arr.dtype.kind == "u":
        arr = arr.view(f"i{arr.dtype.itemsize}")
        if fmt.bits_stored < arr.dtype.itemsize * 8:
            sign = 1 << (fmt.bits_stored - 1)
            mask = (1 << fmt.bits_stored) - 1
            wide = arr.astype(np.int64) & mask
            arr = ((wide ^ sign) - sign).astype(arr.dtype)
    elif not fmt.signed and fmt.bits_stored < arr.dtype.itemsize * 8:
        arr = arr & arr.dtype.type((1 << fmt.bits_stored) - 1)
    return np.ascontiguousarray(arr)


def _syntax_name(uid: str) -> str:
    name = UID(uid).name if uid else ""
    return name if name and name != uid else "unknown transfer syntax"


# -- functional groups ----------------------------------------------------


def frame_group(ds: Dataset, index: int, sequence: str) -> Dataset | None:
    """The first item of *sequence* for frame *index* (0-based).

    Enhanced multi-frame objects put per-frame attributes in the Per-frame
    Functional Groups Sequence, item *index*, and common ones in the Shared
    Functional Groups Sequence (PS3.3 C.7.6.16); a macro in the per-frame
    item wins. None when neither holds *sequence*.
    """
    for container, position in (
        ("PerFrameFunctionalGroupsSequence", index),
        ("SharedFunctionalGroupsSequence", 0),
    ):
        groups = element_get(ds, container)
        if not groups or position >= len(groups):  # type: ignore[arg-type]
            continue
        item = groups[position]  # type: ignore[index]
        found = element_get(item, sequence)
        if found:
            return found[0]  # type: ignore[index,no-any-return]
    return None
