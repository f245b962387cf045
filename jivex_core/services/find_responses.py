"""C-FIND answers written straight to bytes when they are plain text.

A C-FIND answer is usually a dozen short ASCII strings. Building a pydicom
Dataset for it, letting pynetdicom encode it with ``write_dataset``, and
building and encoding (twice, for its group length) the C-FIND-RSP command
set cost nearly all of a query's time on the server: about half a
millisecond an answer on the development machine, against microseconds for
the bytes themselves, and an archive query can return hundreds of answers.

:class:`FlatAnswers` writes the identifier of such an answer directly and
:func:`pending_find_response` its command set. Whatever they do not cover
(sequences, binary VRs, characters outside ASCII, a value too long for its
length field, a deflated syntax) they decline, and the answer goes the usual
way through pydicom and pynetdicom, so every other case keeps their encoding.
Tests compare the bytes of both ways.

Two pynetdicom functions are wrapped so that the bytes get through: the
service classes' ``encode`` hands an :class:`EncodedIdentifier` on untouched,
and ``DIMSEServiceProvider.send_msg`` sends a pending C-FIND-RSP as built
here while nothing but pynetdicom's own disabled debug log listens to the
message being sent.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable, Iterator, Sequence
from io import BytesIO
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import _handlers, dimse, evt, service_class
from pynetdicom.dimse_primitives import C_FIND
from pynetdicom.pdu_primitives import P_DATA

logger = logging.getLogger(__name__)

#: Value representations whose value is text in the data set's character set.
TEXT_VRS = frozenset("AE AS CS DA DS DT IS LO LT PN SH ST TM UC UI UR UT".split())
#: Text VRs with a 4-byte length in Explicit VR (PS3.5 table 7.1-1).
_LONG_LENGTH_VRS = frozenset(("UC", "UR", "UT"))
#: (implicit VR, little endian) of the syntaxes written here.
SYNTAXES = {
    "1.2.840.10008.1.2": (True, True),
    "1.2.840.10008.1.2.1": (False, True),
    "1.2.840.10008.1.2.2": (False, False),
}
_PENDING = (0xFF00, 0xFF01)
_C_FIND_RSP = 0x8020
_DATA_SET_PRESENT = 0x0001


def _text(vr: str, value: Any) -> bytes | None:
    """The padded value bytes of one text element; None if not plain."""
    if value is None:
        return b""
    if isinstance(value, str):
        if not value.isascii():
            return None
        data = value.encode("ascii")
    elif type(value) is int and vr == "IS":
        data = str(value).encode("ascii")
    elif isinstance(value, list) and all(
        isinstance(v, str) and v.isascii() for v in value
    ):
        data = "\\".join(value).encode("ascii")
    else:
        return None
    if len(data) % 2:
        data += b"\x00" if vr == "UI" else b" "
    return data


class FlatAnswers:
    """Writes the identifiers answering one request, in one transfer syntax.

    *elements* are the (tag, VR, row key) of the answer's elements; *fixed*
    (tag -> (VR, value)) the elements every answer carries the same.
    """

    def __init__(
        self,
        elements: Sequence[tuple[int, str, str]],
        fixed: dict[int, tuple[str, Any]],
        transfer_syntax: str,
    ) -> None:
        self.syntax = SYNTAXES[str(transfer_syntax)]
        implicit, little = self.syntax
        order = "<" if little else ">"
        short = struct.Struct(order + ("HHI" if implicit else "HH2sH"))
        long = struct.Struct(order + ("HHI" if implicit else "HH2s2xI"))

        def header(tag: int, vr: str) -> Callable[[int], bytes]:
            group, element = tag >> 16, tag & 0xFFFF
            if implicit:
                return lambda n: short.pack(group, element, n)
            if vr in _LONG_LENGTH_VRS:
                return lambda n: long.pack(group, element, vr.encode(), n)
            return lambda n: short.pack(group, element, vr.encode(), n)

        by_tag: dict[int, tuple[str, str | None, Any]] = {
            tag: (vr, key, None) for tag, vr, key in elements
        }
        by_tag.update({tag: (vr, None, value) for tag, (vr, value) in fixed.items()})
        self.plain = all(vr in TEXT_VRS for vr, _, _ in by_tag.values())
        self._plan = [
            (vr, key, value, header(tag, vr))
            for tag, (vr, key, value) in sorted(by_tag.items())
        ]

    def encode(self, row: dict[str, Any]) -> bytes | None:
        """The identifier for *row*, or None when pydicom must write it."""
        if not self.plain:
            return None
        out = []
        for vr, key, value, header in self._plan:
            data = _text(vr, row.get(key) if key is not None else value)
            if data is None:
                return None
            if len(data) > 0xFFFF and not (self.syntax[0] or vr in _LONG_LENGTH_VRS):
                return None  # pydicom would write it as UN
            out.append(header(len(data)))
            out.append(data)
        return b"".join(out)


class EncodedIdentifier(Dataset):
    """An identifier already in the bytes of one transfer syntax.

    The Dataset itself is empty: *build* makes the real one should anything
    ask for another encoding.
    """

    def __init__(
        self, encoded: bytes, syntax: tuple[bool, bool], build: Callable[[], Dataset]
    ) -> None:
        super().__init__()
        self.encoded = encoded
        self.syntax = syntax
        self.build = build


def pending_find_response(
    primitive: Any, context_id: int, max_pdu: int
) -> list[P_DATA] | None:
    """The P-DATA of a pending C-FIND-RSP with its identifier, or None.

    The command set is the one pynetdicom writes (PS3.7 9.3.2.2, Implicit VR
    Little Endian, elements in tag order, group length first), fragmented as
    it does (PS3.8 annex E.2). None for anything but a pending response that
    carries an identifier and no optional status elements.
    """
    if (
        type(primitive) is not C_FIND
        or primitive.MessageIDBeingRespondedTo is None
        or primitive.Status not in _PENDING
        or primitive.AffectedSOPClassUID is None
        or primitive.ErrorComment is not None
        or primitive.OffendingElement is not None
        or not isinstance(primitive.Identifier, BytesIO)
    ):
        return None
    data_set = primitive.Identifier.getvalue()
    if not data_set:
        return None
    command = command_group(
        [
            command_uid(0x0002, str(primitive.AffectedSOPClassUID)),
            command_us(0x0100, _C_FIND_RSP),
            command_us(0x0120, primitive.MessageIDBeingRespondedTo),
            command_us(0x0800, _DATA_SET_PRESENT),
            command_us(0x0900, primitive.Status),
        ]
    )
    return [
        p_data(context_id, control, fragment)
        for control, fragment in message_pdvs(command, data_set, max_pdu)
    ]


def command_uid(tag: int, value: str) -> bytes:
    """A UI element of group 0000 (Implicit VR Little Endian, padded)."""
    raw = value.encode("ascii")
    if len(raw) % 2:
        raw += b"\x00"
    return struct.pack("<HHI", 0x0000, tag, len(raw)) + raw


def command_us(tag: int, value: int) -> bytes:
    """A US element of group 0000."""
    return struct.pack("<HHIH", 0x0000, tag, 2, value)


def command_group(elements: list[bytes]) -> bytes:
    """A command set: its group length, then *elements* (in tag order)."""
    body = b"".join(elements)
    return struct.pack("<HHII", 0x0000, 0x0000, 4, len(body)) + body


def message_pdvs(
    command: bytes | memoryview, data_set: bytes | memoryview, max_pdu: int
) -> list[tuple[int, Any]]:
    """(message control header, fragment) of each PDV of a DIMSE message
    with a data set (PS3.8 annex E.2): the command's, then the data set's,
    the last of each flagged. Fragments are slices of what is given, so
    memoryviews give views, not copies."""
    out = []
    for payload, last, more in ((command, 0x03, 0x01), (data_set, 0x02, 0x00)):
        pieces = list(fragments(payload, max_pdu))
        for index, fragment in enumerate(pieces):
            out.append((last if index == len(pieces) - 1 else more, fragment))
    return out


def p_data(context_id: int, control: int, fragment: Any) -> P_DATA:
    """A P-DATA primitive of one PDV, for pynetdicom's DUL."""
    pdata = P_DATA()
    pdata.presentation_data_value_list.append(
        (context_id, bytes([control]) + bytes(fragment))
    )
    return pdata


def fragments(payload: Any, max_pdu: int) -> Iterator[Any]:
    """PDV values of at most *max_pdu* - 6 bytes (0: no limit)."""
    if max_pdu == 0:
        yield payload
        return
    size = max_pdu - 6
    for offset in range(0, len(payload), size):
        yield payload[offset : offset + size]


_pynetdicom_encode = service_class.encode


def _encode_passing_encoded(
    ds: Dataset, is_implicit_vr: bool, is_little_endian: bool, deflated: bool = False
) -> bytes | None:
    """pynetdicom's ``encode``, but an :class:`EncodedIdentifier` goes through."""
    if isinstance(ds, EncodedIdentifier):
        if ds.syntax == (is_implicit_vr, is_little_endian) and not deflated:
            return ds.encoded
        ds = ds.build()
    return _pynetdicom_encode(ds, is_implicit_vr, is_little_endian, deflated)


def only_quiet_listeners(assoc: Any) -> bool:
    """Whether nothing would see the DIMSE message pynetdicom builds to send."""
    for handler, _args in assoc.get_handlers(evt.EVT_DIMSE_SENT):
        if handler is not _handlers.standard_dimse_sent_handler:
            return False
        if _handlers.LOGGER.isEnabledFor(logging.DEBUG):
            return False
    return True


_pynetdicom_send_msg = dimse.DIMSEServiceProvider.send_msg


def _send_msg(
    self: dimse.DIMSEServiceProvider, primitive: Any, context_id: int
) -> None:
    """pynetdicom's ``send_msg``, with pending C-FIND answers built here."""
    if type(primitive) is C_FIND and only_quiet_listeners(self.assoc):
        pdata = pending_find_response(primitive, context_id, self.maximum_pdu_size)
        if pdata is not None:
            for item in pdata:
                self.dul.send_pdu(item)
            return
    _pynetdicom_send_msg(self, primitive, context_id)


service_class.encode = _encode_passing_encoded
dimse.DIMSEServiceProvider.send_msg = _send_msg  # type: ignore[method-assign]
