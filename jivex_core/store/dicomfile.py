"""Reading and writing the DICOM File Format (PS3.10) around raw data sets.

The Storage SCP keeps every data set byte for byte as it arrived; only the
File Meta Information is ours. Building it with pydicom element by element
costs more than receiving a CT slice, so it is encoded here directly; the
data set itself is parsed with pydicom, only to index it and to refuse bytes
that are not DICOM.
"""

from __future__ import annotations

import logging
import re
import struct
import zlib
from collections.abc import Collection
from dataclasses import dataclass
from io import BytesIO
from typing import Any

from pydicom import dcmread
from pydicom.charset import convert_encodings, decode_bytes
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.filereader import read_dataset
from pydicom.tag import BaseTag
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)
from pydicom.valuerep import PN_DELIMS

from jivex_core.errors import CannotUnderstandError
from jivex_core.sopclasses import UNCOMPRESSED_BY_ENCODING, transfer_syntax_encoding
from jivex_core.uids import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME

logger = logging.getLogger(__name__)

_UID_RE = re.compile(r"^[0-9]+(\.[0-9]+)*$")
# VRs whose explicit encoding has a 2-byte reserved field and a 4-byte length.
_LONG_VRS = {
    b"OB",
    b"OD",
    b"OF",
    b"OL",
    b"OV",
    b"OW",
    b"SQ",
    b"SV",
    b"UC",
    b"UN",
    b"UR",
    b"UT",
    b"UV",
}
_PREAMBLE = b"\x00" * 128 + b"DICM"

MEDIA_DIRECTORY_SOP_CLASS = "1.2.840.10008.1.3.10"


def is_valid_uid(value: str) -> bool:
    """Whether *value* is a UID as PS3.5 9.1 defines it (syntax and length)."""
    return 0 < len(value) <= 64 and _UID_RE.match(value) is not None


def _element(group_elem: int, vr: bytes, value: bytes, pad: bytes) -> bytes:
    if len(value) % 2:
        value += pad
    head = struct.pack("<HH", 0x0002, group_elem) + vr
    if vr in _LONG_VRS:
        return head + struct.pack("<HI", 0, len(value)) + value
    return head + struct.pack("<H", len(value)) + value


def encode_file_meta(
    sop_class_uid: str,
    sop_instance_uid: str,
    transfer_syntax_uid: str,
    source_ae_title: str = "",
) -> bytes:
    """Return the preamble, prefix and File Meta Information (PS3.10 7.1)."""
    body = b"".join(
        (
            _element(0x0001, b"OB", b"\x00\x01", b"\x00"),
            _element(0x0002, b"UI", sop_class_uid.encode("ascii"), b"\x00"),
            _element(0x0003, b"UI", sop_instance_uid.encode("ascii"), b"\x00"),
            _element(0x0010, b"UI", transfer_syntax_uid.encode("ascii"), b"\x00"),
            _element(0x0012, b"UI", IMPLEMENTATION_CLASS_UID.encode(), b"\x00"),
            _element(0x0013, b"SH", IMPLEMENTATION_VERSION_NAME.encode(), b" "),
        )
    )
    if source_ae_title.strip():
        body += _element(0x0016, b"AE", source_ae_title.strip().encode(), b" ")
    length = (
        struct.pack("<HH", 0x0002, 0x0000) + b"UL" + struct.pack("<HI", 4, len(body))
    )
    return _PREAMBLE + length + body


@dataclass
class ParsedDataSet:
    """A received data set as :func:`parse_dataset` found it."""

    dataset: Dataset
    #: The transfer syntax its bytes are really in: the given one, or
    #: Implicit VR Little Endian when an Explicit VR Little Endian context
    #: carried implicit VR bytes.
    transfer_syntax: str
    #: The last element ends early (a sender cut the object short).
    truncated: bool = False


def parse_dataset(
    data: bytes, transfer_syntax: str, keep: Collection[int] | None = None
) -> ParsedDataSet:
    """Parse a received data set; raise CannotUnderstandError if it is not one.

    Every element, nested items included, is walked and its header checked,
    so garbled bytes are refused before anything is written. An element with
    VR UN and undefined length is walked as the implicit VR sequence it is
    (PS3.5 6.2.2), and what follows it stays in step. The data set holds the
    raw top-level elements below 64 KiB, or only those of *keep* (tags),
    whatever their size (the references of a presentation state to a long
    series pass 64 KiB). Values stay undecoded until read.
    """
    implicit, little = transfer_syntax_encoding(transfer_syntax)
    if transfer_syntax == DeflatedExplicitVRLittleEndian:
        try:
            data = zlib.decompress(data, -zlib.MAX_WBITS)
        except zlib.error as exc:
            raise CannotUnderstandError(
                f"the Deflated data set does not inflate: {exc}"
            ) from exc
    if not implicit and little and _starts_implicit(data):
        # Senders that mislabel implicit VR bytes exist; the bytes are kept,
        # so they are filed under the syntax they are really in, or refused
        # where none describes them (compressed pixel data needs explicit VR).
        if transfer_syntax != ExplicitVRLittleEndian:
            raise CannotUnderstandError(
                f"the data set is encoded in Implicit VR, which transfer syntax "
                f"{transfer_syntax} does not allow"
            )
        logger.warning(
            "The data set is in Implicit VR although the transfer syntax is "
            "Explicit VR Little Endian; stored as Implicit VR Little Endian"
        )
        implicit, transfer_syntax = True, ImplicitVRLittleEndian
    walker = _Walker(data, implicit, little, keep)
    try:
        ds = walker.scan()
    except _Malformed as exc:
        # The strict walk failed: let pydicom's tolerant reader decide, as
        # it reads what many real modalities write (odd lengths, VR quirks).
        logger.warning("The data set is not well-formed (%s); read tolerantly", exc)
        ds, truncated = _read_tolerantly(data, implicit, little)
        walker.truncated = truncated
    _check_identity(ds)
    ds.set_original_encoding(implicit, little)
    return ParsedDataSet(ds, transfer_syntax, walker.truncated)


def _starts_implicit(data: bytes) -> bool:
    """Whether the first element has no VR where explicit VR needs one."""
    if len(data) < 8:
        return False
    vr = data[4:6]
    return not (vr[0] in _VR_CHARS and vr[1] in _VR_CHARS)


def _read_tolerantly(data: bytes, implicit: bool, little: bool) -> tuple[Dataset, bool]:
    """pydicom's lenient reader; also returns whether the data ended early."""
    truncated = False
    try:
        ds = read_dataset(BytesIO(data), implicit, little)
        if not len(ds) and data:
            ds = _read_truncated(data, implicit, little)
            truncated = bool(len(ds))
        _open_sequences(ds)
    except Exception as exc:  # any parser failure means "cannot understand"
        raise CannotUnderstandError(
            f"the data set cannot be parsed ({type(exc).__name__}: {exc})"
        ) from exc
    return ds, truncated


def _check_identity(ds: Dataset) -> None:
    for keyword in ("SOPClassUID", "SOPInstanceUID"):
        try:
            value = str(ds.get(keyword, "") or "").strip("\x00 ")
        except Exception as exc:
            raise CannotUnderstandError(
                f"the data set's {keyword} cannot be read: {exc}"
            ) from exc
        if not value:
            raise CannotUnderstandError(f"the data set has no {keyword}")
        printable = value.isascii() and value.isprintable()
        if len(value) > 64 or not printable or "\\" in value:
            raise CannotUnderstandError(
                f"the data set's {keyword} {value[:80]!r} is not a UID"
            )
        if not is_valid_uid(value):
            # Tolerated (warn and store): some systems write hashes or names
            # as UIDs; the object stays retrievable by exactly that value.
            logger.warning("The data set's %s '%s' is not a valid UID", keyword, value)


class _Malformed(Exception):
    """The strict walk found bytes that are not a well-formed data set."""


_ITEM, _ITEM_END, _SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_MAX_DEPTH = 32
_MAX_KEPT_VALUE = 64 * 1024
_VR_CHARS = frozenset(range(0x41, 0x5B))
#: The VRs of PS3.5 table 6.2-1: a strict walk refuses any other.
_VRS = frozenset(
    b"AE AS AT CS DA DS DT FD FL IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV "
    b"TM UC UI UL UN UR US UT UV".split()
)
#: What a delimiter standing where an element should is called.
_DELIMITER_NAMES = {
    _ITEM: "an item outside a sequence",
    _ITEM_END: "an item delimiter outside an item",
    _SEQUENCE_END: "a sequence delimiter outside a sequence",
}


class _Walker:
    """Walks the element structure of one data set (PS3.5 7.1 and 7.5).

    Written here rather than taken from pydicom because pydicom's reader
    builds an object per element and silently accepts truncated values;
    the receive path needs a walk that is fast and strict.

    With :attr:`strict` set (DIMSE identifiers) a cut-short last element is
    malformed rather than tolerated, and so are elements out of ascending
    tag order or given twice (PS3.5 7.1) and VRs PS3.5 table 6.2-1 does not
    define. The messages name the element and stay short: they end up in
    an Error Comment of 64 characters.
    """

    def __init__(
        self,
        buf: bytes,
        implicit: bool,
        little: bool,
        keep: Collection[int] | None = None,
    ) -> None:
        self.buf = buf
        self.keep = keep
        # Strict: a cut-short last element is malformed, not tolerated.
        self.strict = False
        self.truncated = False
        self.implicit = implicit
        self.little = little
        self.u16 = struct.Struct("<H" if little else ">H").unpack_from
        self.u32 = struct.Struct("<I" if little else ">I").unpack_from
        self.tag = struct.Struct("<HH" if little else ">HH").unpack_from

    def elements(
        self,
        pos: int,
        end: int,
        implicit: bool,
        depth: int,
        until: int | None = None,
        out: dict[int, Any] | None = None,
    ) -> int:
        """Walk elements in [pos, end) or up to the *until* delimiter."""
        buf, u16, u32, keep = self.buf, self.u16, self.u32, self.keep
        strict = self.strict
        last = -1
        if depth > _MAX_DEPTH:
            raise _Malformed(f"sequences nested deeper than {_MAX_DEPTH} levels")
        while pos < end:
            if pos + 8 > end:
                if strict and depth == 0 and until is None:
                    raise _Malformed(f"{end - pos} stray bytes after the last element")
                raise _Malformed(f"element header cut at offset {pos}")
            group, elem = self.tag(buf, pos)
            tag = group << 16 | elem
            if group == 0xFFFE:
                if tag == until:
                    return pos + 8
                if strict and until is None and tag in _DELIMITER_NAMES:
                    raise _Malformed(_DELIMITER_NAMES[tag])
                raise _Malformed(f"unexpected item tag {tag:08X} at offset {pos}")
            if strict and tag <= last:
                if tag == last:
                    raise _Malformed(f"({group:04X},{elem:04X}) appears twice")
                raise _Malformed(
                    f"({group:04X},{elem:04X}) out of order after "
                    f"({last >> 16:04X},{last & 0xFFFF:04X})"
                )
            last = tag
            if implicit:
                vr: bytes | None = None
                (length,) = u32(buf, pos + 4)
                vpos = pos + 8
            else:
                vr = buf[pos + 4 : pos + 6]
                if vr[0] not in _VR_CHARS or vr[1] not in _VR_CHARS:
                    raise _Malformed(f"no VR for ({group:04X},{elem:04X})")
                if strict and vr not in _VRS:
                    raise _Malformed(
                        f"({group:04X},{elem:04X}) has an unknown VR '{vr.decode()}'"
                    )
                if vr in _LONG_VRS:
                    if pos + 12 > end:
                        raise _Malformed(f"element header cut at offset {pos}")
                    (length,) = u32(buf, pos + 8)
                    vpos = pos + 12
                else:
                    (length,) = u16(buf, pos + 6)
                    vpos = pos + 8
            if length == _UNDEFINED:
                if vr is None or vr == b"SQ" or vr == b"UN":
                    # UN of undefined length is an implicit VR sequence.
                    vend = self.items(vpos, end, implicit or vr == b"UN", depth + 1)
                    value_end = vend - 8
                elif tag == _PIXEL_DATA or vr in (b"OB", b"OW"):
                    vend = self.fragments(vpos, end, depth == 0)
                    value_end = vend - 8 if vend - 8 >= vpos else vend
                else:
                    raise _Malformed(f"undefined length for VR {vr!r}")
            else:
                vend = value_end = vpos + length
                if vend > end:
                    if depth == 0 and until is None and not self.strict:
                        # Only the last element can end early; tolerated.
                        logger.warning(
                            "The data set ends inside (%04X,%04X); stored as "
                            "received, marked incomplete",
                            group,
                            elem,
                        )
                        self.truncated = True
                        vend = value_end = end
                    elif strict and depth == 0 and until is None:
                        raise _Malformed(
                            f"({group:04X},{elem:04X}) needs {length} bytes, "
                            f"{end - vpos} left"
                        )
                    else:
                        raise _Malformed(
                            f"({group:04X},{elem:04X}) runs past its container"
                        )
                elif length and (vr == b"SQ" or (vr is None and _is_sq(tag))):
                    self.items(vpos, vend, implicit, depth + 1, defined=True)
            if out is not None and (
                tag in keep
                if keep is not None
                else tag != _PIXEL_DATA and value_end - vpos <= _MAX_KEPT_VALUE
            ):
                out[tag] = RawDataElement(
                    BaseTag(tag),
                    None if vr is None else vr.decode(),
                    value_end - vpos,
                    buf[vpos:value_end],
                    vpos,
                    implicit,
                    self.little,
                )
            pos = vend
        if until is not None:
            raise _Malformed("an item ends without its delimiter")
        return pos

    def scan(self) -> Dataset:
        """Walk the whole data set; return its kept top-level elements."""
        elements: dict[int, Any] = {}
        self.elements(0, len(self.buf), self.implicit, 0, out=elements)
        if not elements:
            raise _Malformed("no elements at all")
        return Dataset(elements)

    def items(
        self, pos: int, end: int, implicit: bool, depth: int, defined: bool = False
    ) -> int:
        """Walk sequence items; return the offset after the sequence."""
        u32 = self.u32
        while pos + 8 <= end:
            group, elem = self.tag(self.buf, pos)
            tag = group << 16 | elem
            (length,) = u32(self.buf, pos + 4)
            if tag == _SEQUENCE_END and not defined:
                return pos + 8
            if tag != _ITEM:
                raise _Malformed(f"expected an item, found {tag:08X} at {pos}")
            if length == _UNDEFINED:
                pos = self.elements(pos + 8, end, implicit, depth, until=_ITEM_END)
            else:
                if pos + 8 + length > end:
                    raise _Malformed(f"item at offset {pos} runs past its sequence")
                self.elements(pos + 8, pos + 8 + length, implicit, depth)
                pos += 8 + length
        if defined and pos == end:
            return pos
        raise _Malformed("a sequence ends without its delimiter")

    def fragments(self, pos: int, end: int, top: bool) -> int:
        """Walk encapsulated Pixel Data items (PS3.5 A.4)."""
        u32 = self.u32
        while pos + 8 <= end:
            group, elem = self.tag(self.buf, pos)
            tag = group << 16 | elem
            (length,) = u32(self.buf, pos + 4)
            if tag == _SEQUENCE_END:
                return pos + 8
            if tag != _ITEM or length == _UNDEFINED:
                raise _Malformed(f"bad fragment item {tag:08X} at offset {pos}")
            pos += 8 + length
        if top:
            logger.warning(
                "Encapsulated Pixel Data ends early; stored as received, "
                "marked incomplete"
            )
            self.truncated = True
            return end
        raise _Malformed("encapsulated data ends without its delimiter")


def _scan(
    data: bytes, implicit: bool, little: bool, keep: Collection[int] | None = None
) -> Dataset:
    return _Walker(data, implicit, little, keep).scan()


def _read_truncated(data: bytes, implicit: bool, little: bool) -> Dataset:
    """Read a data set whose Pixel Data ends early, up to the Pixel Data.

    pydicom gives up on the whole data set when encapsulated Pixel Data lacks
    its delimiter. Such objects come from real modalities; they are kept as
    received (the header is sound, so they can be found and reported).
    """

    def at_pixels(tag: Any, _vr: Any, _length: Any) -> bool:
        return int(tag) == _PIXEL_DATA

    ds = read_dataset(BytesIO(data), implicit, little, stop_when=at_pixels)
    if len(ds):
        logger.warning(
            "The data set ends inside Pixel Data; stored as received, marked incomplete"
        )
    return ds


_UNDEFINED = 0xFFFFFFFF
_PIXEL_DATA = 0x7FE00010


def _open_sequences(ds: Dataset) -> None:
    """Decode every sequence, recursively, leaving other values raw.

    Garbled nested items only show when a sequence is decoded; other values
    are cheap to leave undecoded until the index reads the few it needs.
    """
    for tag in list(ds.keys()):
        raw = ds.get_item(tag)
        vr = getattr(raw, "VR", None)
        length = getattr(raw, "length", 0)
        if tag == _PIXEL_DATA:
            continue
        if vr == "SQ" or length == _UNDEFINED or (vr is None and _is_sq(tag)):
            elem = ds[tag]
            if elem.VR == "SQ":
                for item in elem.value:
                    _open_sequences(item)


def _is_sq(tag: int) -> bool:
    try:
        return dictionary_VR(tag) == "SQ"
    except KeyError:
        return False


@dataclass(frozen=True)
class SplitFile:
    """A DICOM file split into its data set bytes and their transfer syntax."""

    data: bytes
    transfer_syntax: str
    had_meta: bool
    media_sop_class: str = ""

    @property
    def is_dicomdir(self) -> bool:
        """Whether the data set is a media directory, whatever its File Meta
        says: only a DICOMDIR starts with group 0004 (PS3.10 7.3)."""
        return self.data[:2] == b"\x04\x00"


def _meta_end(raw: bytes, start: int) -> int:
    """Return the offset after the group 0002 elements that begin at *start*.

    Written by hand because broken files encode group 2 in implicit VR or
    give a wrong group length; both are tolerated here, as DCMTK does.
    """
    pos = start
    while pos + 8 <= len(raw):
        group, _elem = struct.unpack_from("<HH", raw, pos)
        if group != 0x0002:
            break
        vr = raw[pos + 4 : pos + 6]
        if vr.isalpha() and vr.isupper():
            if vr in _LONG_VRS:
                (length,) = struct.unpack_from("<I", raw, pos + 8)
                pos += 12 + length
            else:
                (length,) = struct.unpack_from("<H", raw, pos + 6)
                pos += 8 + length
        else:
            (length,) = struct.unpack_from("<I", raw, pos + 4)
            pos += 8 + length
    return min(pos, len(raw))


def split_file(raw: bytes) -> SplitFile:
    """Split a file's bytes as ``jivex import`` needs them.

    A file without File Meta Information (no preamble, no group 0002) is
    accepted: its encoding is inferred from its first elements, implicit VR
    little endian first, as DCMTK does for such files.
    """
    if raw[128:132] == b"DICM":
        start = 132
    elif raw[:4] == b"DICM":
        start = 4
    elif raw[:2] == b"\x02\x00":
        start = 0
    else:
        start = -1
    if start >= 0:
        end = _meta_end(raw, start)
        try:
            meta = read_dataset(BytesIO(raw[start:end]), False, True)
            ts = str(meta.get("TransferSyntaxUID", "") or "").strip("\x00 ")
            media = str(meta.get("MediaStorageSOPClassUID", "") or "").strip("\x00 ")
        except Exception:
            ts = media = ""
        if not (ts and UID(ts).is_transfer_syntax):
            ts = _sniff_syntax(raw[end:])
        return SplitFile(raw[end:], ts, True, media)
    return SplitFile(raw, _sniff_syntax(raw), False)


def _sniff_syntax(data: bytes) -> str:
    # A data set without File Meta starts with a group 0008 (or 0002) tag in
    # either byte order; anything else is not DICOM, whatever a forced read
    # of it would make of it.
    if len(data) < 8 or data[:2] not in (b"\x08\x00", b"\x00\x08"):
        raise CannotUnderstandError(
            "not a DICOM file (no DICM prefix and no DICOM elements at the start)"
        )
    try:
        ds = dcmread(BytesIO(data), force=True, stop_before_pixels=True)
    except (InvalidDicomError, Exception) as exc:
        raise CannotUnderstandError(f"not a DICOM file ({exc})") from exc
    encoding = ds.original_encoding
    if encoding[0] is None:
        raise CannotUnderstandError("not a DICOM file (no recognisable elements)")
    return UNCOMPRESSED_BY_ENCODING.get(
        (bool(encoding[0]), bool(encoding[1])), UNCOMPRESSED_BY_ENCODING[(True, True)]
    )


#: VRs whose values are single-byte ASCII whatever the character set.
_ASCII_VRS = frozenset({"AE", "AS", "CS", "DA", "DS", "DT", "IS", "TM", "UI"})
#: VRs that may use the data set's character set (PS3.5 6.1.2.3).
_TEXT_VRS = frozenset({"LO", "LT", "PN", "SH", "ST", "UC", "UT"})
_SINGLE_VALUED = frozenset({"LT", "ST", "UT"})
#: Printable ASCII and NUL padding: bytes that read the same in every
#: character set. ESC is excluded, since ISO 2022 switches with 7-bit bytes.
_PLAIN_BYTES = bytes([0, *range(0x20, 0x7F)])


def _raw_text(ds: Dataset, keyword: str) -> str | None:
    """Decode a still-raw ASCII value directly; None: ask pydicom.

    Nearly every indexed value is plain ASCII; decoding those bytes here
    costs a fraction of pydicom's conversion, which stays in charge of
    anything that needs the Specific Character Set.
    """
    tag = tag_for_keyword(keyword)
    if tag is None:
        return None
    raw = ds.get_item(tag)
    if raw is None:
        return ""
    if not isinstance(raw, RawDataElement) or not isinstance(raw.value, bytes):
        return None
    vr = raw.VR or dictionary_VR(tag)
    value = raw.value
    if not (vr in _ASCII_VRS or vr in _TEXT_VRS) or value.translate(None, _PLAIN_BYTES):
        return None
    decoded = value.decode("ascii")
    if vr in _SINGLE_VALUED:
        return decoded.rstrip("\x00 ")
    return "\\".join(part.strip("\x00 ") for part in decoded.split("\\")).strip()


#: Escape sequences that put a multi-byte set into G0 (PS3.3 C.12.1.1.2):
#: while one is in G0, bytes 05/14 and 03/13 are halves of characters.
_MULTI_BYTE_G0 = (b"\x1b$B", b"\x1b$@", b"\x1b$A", b"\x1b$(")
_SINGLE_BYTE_G0 = (b"\x1b(B", b"\x1b(J")


def _extended_name(ds: Dataset, keyword: str) -> str | None:
    """Decode a still-raw PN value that uses code extensions; None otherwise.

    PS3.5 6.2.1.2 makes the first character set active again at each '^' and
    '=' of a name. pydicom decodes a name as one run, so a set invoked by an
    escape sequence stays active past them when the writer left the switch
    back to the reader, as many do (and DCMTK reads it so): "Иванов^Jürgen"
    in ISO 2022 IR 100 and 144 would read "Иванов^Jќrgen". Each component is
    decoded on its own here, from the first set.
    """
    tag = tag_for_keyword(keyword)
    raw = ds.get_item(tag) if tag is not None else None
    if not isinstance(raw, RawDataElement) or not isinstance(raw.value, bytes):
        return None
    if b"\x1b" not in raw.value or (raw.VR or dictionary_VR(tag)) != "PN":
        return None
    declared = ds.get("SpecificCharacterSet")
    terms = [declared] if isinstance(declared, str) else list(declared or [])
    if len(terms) < 2:
        return None
    encodings = convert_encodings(terms)
    value = raw.value.rstrip(b"\x00 ")
    out: list[str] = []
    start = pos = 0
    multi_byte = False
    while pos < len(value):
        if value[pos] == 0x1B:
            if value.startswith(_MULTI_BYTE_G0, pos):
                multi_byte = True
            elif value.startswith(_SINGLE_BYTE_G0, pos):
                multi_byte = False
        elif not multi_byte and value[pos] in b"^=\\":
            out.append(decode_bytes(value[start:pos], encodings, PN_DELIMS))
            out.append(chr(value[pos]))
            start = pos + 1
        pos += 1
    out.append(decode_bytes(value[start:], encodings, PN_DELIMS))
    names = "".join(out).split("\\")
    return "\\".join(name.strip("\x00 ").rstrip("=") for name in names)


def text(ds: Dataset, keyword: str) -> str:
    """Return an attribute as one string ('' when absent or unreadable).

    Multi-valued attributes are joined with a backslash as on the wire.
    """
    fast = _raw_text(ds, keyword)
    if fast is not None:
        return fast
    try:
        name = _extended_name(ds, keyword)
    except Exception as exc:
        logger.warning("Attribute %s cannot be decoded: %s", keyword, exc)
        return ""
    if name is not None:
        return name
    try:
        value: Any = ds.get(keyword)
    except Exception as exc:
        logger.warning("Attribute %s cannot be decoded: %s", keyword, exc)
        return ""
    if value is None:
        return ""
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    return str(value).strip("\x00 ")


def integer(ds: Dataset, keyword: str) -> int | None:
    """Return an IS/US attribute as int, None when absent or malformed."""
    try:
        tag = tag_for_keyword(keyword)
        raw = ds.get_item(tag) if tag is not None else None
        if isinstance(raw, RawDataElement) and isinstance(raw.value, bytes):
            vr = raw.VR or dictionary_VR(tag)
            if vr == "US" and len(raw.value) >= 2:
                order = "little" if raw.is_little_endian else "big"
                return int.from_bytes(raw.value[:2], order)
            if vr == "IS":
                first = raw.value.split(b"\\")[0].strip(b"\x00 ")
                return int(first) if first else None
        value = ds.get(keyword)
        if value is None or value == "":
            return None
        if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
            value = value[0]
        return int(value)
    except Exception:
        logger.warning("Attribute %s is not an integer; not indexed", keyword)
        return None


class _EveryTag:
    """A *keep* set holding every tag: identifiers are kept whole, however
    long a value (a list of 5,000 UIDs is 300 KiB)."""

    def __contains__(self, _tag: object) -> bool:
        return True


_EVERY_TAG: Any = _EveryTag()


def decode_identifier(data: bytes, implicit: bool, little: bool) -> Dataset:
    """A DIMSE identifier, decoded strictly.

    pydicom reads a cut-short value as if it were whole; a request whose
    identifier is not well formed must be refused instead (C000), so this
    raises ValueError naming what is wrong.
    """
    walker = _Walker(data, implicit, little, keep=_EVERY_TAG)
    walker.strict = True
    try:
        return walker.scan()
    except _Malformed as exc:
        raise ValueError(f"malformed identifier: {exc}") from None
