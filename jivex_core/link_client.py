"""A blocking client of the core's link, for the command line.

Scripts run ``jivex send`` or ``jivex jobs`` next to a running core; they
reach it the way the workstation does (:mod:`jivex_core.protocol`), through
the link file in the data folder, and simply ignore its events.
"""

from __future__ import annotations

import json
import logging
import socket
from pathlib import Path
from typing import Any

from jivex_core import protocol

logger = logging.getLogger(__name__)


class LinkError(Exception):
    """The core answered a request with an error; the message is its own."""


class LinkClient:
    """One connection to a running core."""

    def __init__(self, info: protocol.LinkInfo, timeout: float = 30.0) -> None:
        self._sock = socket.create_connection((info.host, info.port), timeout=timeout)
        self._file = self._sock.makefile("rwb")
        self._next_id = 0
        self._send({"type": "hello", "token": info.token, "version": 1})
        welcome = self._read()
        if welcome.get("type") != "welcome":
            raise ConnectionError("the core refused the link")
        self.welcome = welcome
        # The timeout is for reaching the core. A request may take long (a
        # C-FIND to a slow archive, removing a large patient); a core that
        # dies closes the loopback connection, which ends the wait.
        self._sock.settimeout(None)

    @classmethod
    def connect(cls, data_dir: Path) -> LinkClient | None:
        """A client of the core serving *data_dir*, or None when none runs."""
        info = protocol.LinkInfo.read(data_dir)
        if info is None:
            return None
        try:
            return cls(info)
        except (OSError, ValueError, ConnectionError) as exc:
            logger.debug("No core answers on %s:%s: %s", info.host, info.port, exc)
            return None

    def _send(self, message: dict[str, Any]) -> None:
        self._file.write(protocol.encode(message))
        self._file.flush()

    def _read(self) -> dict[str, Any]:
        line = self._file.readline()
        if not line:
            raise ConnectionError("the core closed the link")
        return protocol.decode(line)

    def call(self, method: str, **params: Any) -> Any:
        """Call *method*; LinkError carries the core's error message.

        ConnectionError (or another OSError) when the link breaks: the core
        stopped or died in the middle of the request.
        """
        self._next_id += 1
        msg_id = self._next_id
        self._send(protocol.request(msg_id, method, params))
        while True:
            message = self._read()
            if message.get("type") == "reply" and message.get("id") == msg_id:
                if "error" in message:
                    raise LinkError(str(message["error"].get("message")))
                return message.get("result")

    def close(self) -> None:
        """Close the connection."""
        try:
            self._file.close()
        finally:
            self._sock.close()


def dumps(value: Any) -> str:
    """JSON for standard output, readable and in UTF-8."""
    return json.dumps(value, ensure_ascii=False, indent=1)
