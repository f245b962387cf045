"""The core's end of the client link (see :mod:`jivex_core.protocol`).

Requests run in a worker thread, so a slow database read never holds up
events or other clients; events from service threads are handed to the
event loop with ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jivex_core import protocol

logger = logging.getLogger(__name__)

Method = Callable[[dict[str, Any]], Any]

_MAX_LINE = 16 * 2**20


class LinkServer:
    """Accepts clients on a loopback port and serves :attr:`methods`."""

    def __init__(self, data_dir: Path, methods: dict[str, Method], hello: dict) -> None:
        self.data_dir = data_dir
        self.methods = methods
        self.hello = hello
        self.token = protocol.LinkInfo.new_token()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task] = set()
        self._pending: list[tuple[str, dict[str, Any]]] = []
        self._pending_lock = threading.Lock()
        self._flush_scheduled = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self.info: protocol.LinkInfo | None = None

    async def start(self) -> protocol.LinkInfo:
        """Listen on 127.0.0.1 and write the link file."""
        self._loop = asyncio.get_running_loop()
        self._server = await asyncio.start_server(
            self._serve, "127.0.0.1", 0, limit=_MAX_LINE
        )
        port = self._server.sockets[0].getsockname()[1]
        self.info = protocol.LinkInfo("127.0.0.1", port, self.token, os.getpid())
        self.info.write(self.data_dir)
        logger.info("Client link listening on 127.0.0.1:%s", port)
        return self.info

    async def stop(self) -> None:
        """Tell clients the core stops, close them and remove the link file."""
        self.broadcast("core_stopping", {})
        await asyncio.sleep(0)
        for writer in list(self._writers):
            writer.close()
        if self._server is not None:
            self._server.close()
        current = protocol.LinkInfo.read(self.data_dir)
        if current is not None and current.token == self.token:
            (self.data_dir / protocol.LINK_FILE_NAME).unlink(missing_ok=True)

    def publish(self, name: str, data: dict[str, Any]) -> None:
        """Send an event to every client; callable from any thread.

        Events are queued and sent in one batch per turn of the event loop:
        a CT series arriving at hundreds of objects a second would otherwise
        wake the loop (and take the GIL from the receiving thread) each time.
        """
        if not self._writers or self._loop is None or self._loop.is_closed():
            return
        with self._pending_lock:
            self._pending.append((name, data))
            if self._flush_scheduled:
                return
            self._flush_scheduled = True
        self._loop.call_soon_threadsafe(self._flush)

    def _flush(self) -> None:
        with self._pending_lock:
            batch, self._pending = self._pending, []
            self._flush_scheduled = False
        for name, data in batch:
            self.broadcast(name, data)

    def broadcast(self, name: str, data: dict[str, Any]) -> None:
        """Send an event to every client; call on the event loop."""
        if not self._writers:
            return
        line = protocol.encode(protocol.event(name, data))
        for writer in list(self._writers):
            if writer.is_closing():
                self._writers.discard(writer)
                continue
            writer.write(line)

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            first = protocol.decode(await reader.readline())
            token = str(first.get("token", ""))
            if first.get("type") != "hello" or not hmac.compare_digest(
                token, self.token
            ):
                logger.warning("Client link: refused a client with a wrong token")
                writer.close()
                return
            writer.write(protocol.encode({"type": "welcome", **self.hello}))
            self._writers.add(writer)
            while line := await reader.readline():
                message = protocol.decode(line)
                if message.get("type") == "request":
                    task = asyncio.create_task(self._answer(writer, message))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
        except (ValueError, ConnectionError, asyncio.IncompleteReadError) as exc:
            logger.info("Client link: a client left (%s)", exc)
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _answer(self, writer: asyncio.StreamWriter, message: dict) -> None:
        msg_id = message.get("id")
        method = self.methods.get(str(message.get("method")))
        if method is None:
            reply = {
                "type": "reply",
                "id": msg_id,
                "error": {
                    "code": protocol.ERR_UNKNOWN_METHOD,
                    "message": f"unknown method '{message.get('method')}'",
                },
            }
        else:
            try:
                params = message.get("params") or {}
                result = await asyncio.to_thread(method, params)
                reply = {"type": "reply", "id": msg_id, "result": result}
            except (KeyError, TypeError, ValueError) as exc:
                reply = {
                    "type": "reply",
                    "id": msg_id,
                    "error": {"code": protocol.ERR_BAD_PARAMS, "message": str(exc)},
                }
            except Exception as exc:
                logger.exception("Client link: method '%s' failed", message["method"])
                reply = {
                    "type": "reply",
                    "id": msg_id,
                    "error": {"code": protocol.ERR_INTERNAL, "message": str(exc)},
                }
        if not writer.is_closing():
            writer.write(protocol.encode(reply))
