"""C-STORE requests of stored files, written straight to P-DATA.

When the Storage SCU sends an object as stored, pynetdicom streams the file
but still builds the C-STORE-RQ command set with pydicom (twice, for its
group length) and wraps every PDV fragment through its message encoder: on
a 512x512 CT that is more time than the transfer itself. :func:`request_pdvs`
writes the command set (PS3.7 9.3.1.1: Implicit VR Little Endian, elements
in tag order, group length first) and cuts the command and the file's data
set into PDVs (PS3.8 annex E.2) directly. Only requests pynetdicom would
stream from a file are taken, and only while nothing but its own disabled
debug log listens to the messages sent; tests compare the bytes with
pynetdicom's own.

``DIMSEServiceProvider.send_msg`` is wrapped for this, on top of the C-FIND
wrapper of :mod:`jivex_core.services.find_responses`.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Any

from pynetdicom import dimse
from pynetdicom.dimse_primitives import C_STORE

from jivex_core.services import find_responses
from jivex_core.services.find_responses import (
    command_group,
    command_uid,
    command_us,
    message_pdvs,
    p_data,
)

_C_STORE_RQ = 0x0001
_DATA_SET_PRESENT = 0x0001
#: Larger files are left to pynetdicom, which reads them piece by piece.
MAX_IN_MEMORY = 64 * 1024 * 1024


def dataset_offset(path: Path) -> int | None:
    """Where the data set starts in a file with a File Meta group that
    opens with its group length, as ours all do; None for anything else."""
    with open(path, "rb") as fh:
        head = fh.read(144)
    if len(head) < 144 or head[128:132] != b"DICM":
        return None
    if head[132:140] != b"\x02\x00\x00\x00UL\x04\x00":
        return None
    return 144 + struct.unpack("<I", head[140:144])[0]


def command_set(primitive: C_STORE) -> bytes:
    """The encoded command set of a C-STORE-RQ primitive."""
    elements = [
        command_uid(0x0002, str(primitive.AffectedSOPClassUID)),
        command_us(0x0100, _C_STORE_RQ),
        command_us(0x0110, int(primitive.MessageID)),
        command_us(0x0700, int(primitive.Priority)),
        command_us(0x0800, _DATA_SET_PRESENT),
        command_uid(0x1000, str(primitive.AffectedSOPInstanceUID)),
    ]
    originator = primitive.MoveOriginatorApplicationEntityTitle
    if originator:
        title = str(originator).strip().encode("ascii")
        title += b" " * (len(title) % 2)
        elements.append(struct.pack("<HHI", 0x0000, 0x1030, len(title)) + title)
    if primitive.MoveOriginatorMessageID is not None:
        elements.append(command_us(0x1031, int(primitive.MoveOriginatorMessageID)))
    return command_group(elements)


def _pieces(primitive: Any, max_pdu: int) -> list[tuple[int, memoryview]] | None:
    """(message control header, fragment) of each PDV of a C-STORE-RQ
    streamed from a file, the fragments views of one read; or None."""
    path = getattr(primitive, "_dataset_path", None)
    if type(primitive) is not C_STORE or not isinstance(path, tuple):
        return None
    if primitive.MessageID is None or primitive.AffectedSOPInstanceUID is None:
        return None
    file_path, offset = path
    if os.path.getsize(file_path) > MAX_IN_MEMORY:
        return None
    with open(file_path, "rb") as fh:
        fh.seek(offset)
        data_set = fh.read()
    return message_pdvs(
        memoryview(command_set(primitive)), memoryview(data_set), max_pdu
    )


def request_pdvs(
    primitive: Any, context_id: int, max_pdu: int
) -> list[tuple[int, bytes]] | None:
    """The PDVs (context ID, header and fragment) of a C-STORE-RQ streamed
    from a file, or None when it is not one."""
    pieces = _pieces(primitive, max_pdu)
    if pieces is None:
        return None
    return [(context_id, bytes([control]) + bytes(view)) for control, view in pieces]


def pdus(context_id: int, pieces: list[tuple[int, memoryview]]) -> list[Any]:
    """P-DATA-TF PDUs (PS3.8 9.3.5), one PDV each as DCMTK and pynetdicom
    send them, as buffers: each PDU's header, then its fragment."""
    out: list[Any] = []
    for control, fragment in pieces:
        size = len(fragment)
        out.append(
            struct.pack(">BBIIBB", 0x04, 0x00, size + 6, size + 2, context_id, control)
        )
        out.append(fragment)
    return out


def _write(association_socket: Any, buffers: list[bytes]) -> None:
    """Write *buffers* in order; a failure reaches the DUL as a closed
    connection (Evt17), as one of its own writes would."""
    sock = association_socket.socket
    views = [memoryview(b) for b in buffers]  # views of views: no copies
    try:
        while views:
            sent = sock.sendmsg(views[:512])
            while views and sent >= len(views[0]):
                sent -= len(views[0])
                views.pop(0)
            if sent:
                views[0] = views[0][sent:]
    except OSError:
        association_socket.event_queue.put("Evt17")


_send_msg_before = dimse.DIMSEServiceProvider.send_msg


def _send_msg(
    self: dimse.DIMSEServiceProvider, primitive: Any, context_id: int
) -> None:
    """``send_msg``, with C-STORE requests of stored files built here."""
    assoc = self.assoc
    if type(primitive) is C_STORE and find_responses.only_quiet_listeners(assoc):
        pieces = _pieces(primitive, self.maximum_pdu_size)
        if pieces is not None:
            if assoc.is_requestor and self.dul.to_provider_queue.empty():
                # Our own association, idle while the request goes out:
                # nothing else writes to the socket, so the PDUs are written
                # at once instead of one per turn of the DUL's loop.
                _write(self.dul.socket, pdus(context_id, pieces))
                return
            for control, fragment in pieces:
                self.dul.send_pdu(p_data(context_id, control, fragment))
            return
    _send_msg_before(self, primitive, context_id)


dimse.DIMSEServiceProvider.send_msg = _send_msg  # type: ignore[method-assign]
