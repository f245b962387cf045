"""Where a received object came from: the remote AE to fetch it again from.

An object removed locally is reloaded from its origin, so the origin must
name a node of the remote AE table, whatever AE title the peer's storage
association calls with:

- objects of one of our C-MOVE retrieves arrive on an association the
  archive opens to our Storage SCP. Each C-STORE sub-operation carries the
  Move Originator AE Title and Message ID of the C-MOVE it serves (PS3.7
  9.1.1.1, PS3.4 C.4.2.2.2): with our AE title and the message ID of a
  running retrieve, the object is the retrieve's node's, even when the
  archive sends from another AE title than the one we query (Orthanc,
  dcm4chee and DCMTK's dcmqrscp all set both);
- objects of a C-GET come on the association we opened: the node is known
  (the C-GET handler names it);
- anything else sent to us is attributed by its calling AE title when that
  is a node of the remote AE table, and has no origin otherwise.
"""

from __future__ import annotations

import logging
import threading

from jivex_core.config import Settings

logger = logging.getLogger(__name__)

#: Message IDs are unsigned 16-bit values (PS3.7 E.1).
_MAX_MESSAGE_ID = 0xFFFF


class Origins:
    """The running C-MOVE retrieves, and the origin of each C-STORE."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._moves: dict[int, str] = {}
        self._last = 0

    def start_move(self, remote_ae: str) -> int:
        """A Message ID for a C-MOVE from *remote_ae*, unique among the
        running ones; give it back with :meth:`end_move`."""
        with self._lock:
            if len(self._moves) >= _MAX_MESSAGE_ID:
                raise RuntimeError("every C-MOVE Message ID is in use")
            while True:
                self._last = self._last % _MAX_MESSAGE_ID + 1
                if self._last not in self._moves:
                    break
            self._moves[self._last] = remote_ae
            return self._last

    def end_move(self, message_id: int) -> None:
        """The C-MOVE of *message_id* has ended (its final response came)."""
        with self._lock:
            self._moves.pop(message_id, None)

    def of_c_store(
        self,
        calling_ae: str,
        originator_ae: str | None = None,
        originator_id: int | None = None,
    ) -> str:
        """The remote AE title an object arriving in a C-STORE came from
        ('' when none of the remote AE table is known to have sent it)."""
        ours = self.settings.network.ae_title
        if originator_ae is not None and originator_ae.strip() == ours:
            with self._lock:
                node = self._moves.get(int(originator_id or 0))
            if node is not None:
                return node
        found = self.settings.remote_node(calling_ae)
        return found.ae_title if found is not None else ""
