"""The client's one proxy of the core (see :mod:`jivex_core.protocol`).

:class:`CoreLink` attaches to the core already serving a data folder, or
starts one as a child process, and keeps it alive: when the child dies it
says so and starts another after a bounded back-off. Everything goes
through asyncio streams on the qasync loop, so the GUI thread never blocks on
the network.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QProcess, Signal

from jivex_core import protocol

logger = logging.getLogger(__name__)

#: Seconds to wait before restart number n (the last value repeats).
RESTART_DELAYS = (1.0, 2.0, 5.0, 10.0, 30.0)
#: A core that ran this long is healthy again: the back-off starts over.
HEALTHY_AFTER = 60.0
#: Seconds a new core may take to write its link file.
START_TIMEOUT = 30.0
#: Seconds a request may take before it fails.
REQUEST_TIMEOUT = 60.0
LOG_FILE_NAME = "core.log"


class CoreError(Exception):
    """A request failed in the core, or the core cannot be reached."""

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.code = code


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


class CoreLink(QObject):
    """Connection to the core of one data folder, restarting it if it dies.

    Parameters
    ----------
    data_dir : Path
        The data folder; the link file and the core's log live there.
    config : Path, optional
        TOML settings file passed on to the core.
    attach : bool
        Use a core already running for *data_dir* when there is one.
    """

    connected_changed = Signal(bool)
    event_received = Signal(str, dict)
    instance_stored = Signal(dict)
    core_died = Signal(str)
    #: A short human-readable description of the link, for a status bar.
    state_changed = Signal(str)

    def __init__(
        self,
        data_dir: Path,
        config: Path | None = None,
        attach: bool = True,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.data_dir = Path(data_dir)
        self.config = config
        self.attach = attach
        self.log_path = self.data_dir / LOG_FILE_NAME
        self.welcome: dict[str, Any] = {}
        self._process: QProcess | None = None
        self._started_at = 0.0
        self._restarts = 0
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._next_id = 1
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopping = False
        self._recover_task: asyncio.Task[Any] | None = None
        self._connected = False
        self._state = ""

    # -- public ----------------------------------------------------------

    @property
    def connected(self) -> bool:
        """Whether requests can be sent now."""
        return self._connected

    @property
    def state(self) -> str:
        """The last text sent with :attr:`state_changed`."""
        return self._state

    @property
    def child_pid(self) -> int | None:
        """PID of the core this link started, None when attached or stopped."""
        if self._process is None:
            return None
        pid = int(self._process.processId())
        return pid or None

    async def start(self) -> None:
        """Attach to a running core or start one, then connect.

        Raises
        ------
        CoreError
            When the core does not come up within :data:`START_TIMEOUT`.
        """
        self._stopping = False
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.attach and await self._try_attach():
            return
        await self._start_child()

    async def request(self, method: str, params: dict[str, Any] | None = None) -> Any:
        """Send one request and return its result.

        Raises
        ------
        CoreError
            When the core answers with an error, is not connected, or does
            not answer within :data:`REQUEST_TIMEOUT`.
        """
        if not self._connected or self._writer is None:
            raise CoreError(self.tr("The core is not connected."), "not_connected")
        msg_id = self._next_id
        self._next_id += 1
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[msg_id] = future
        self._writer.write(protocol.encode(protocol.request(msg_id, method, params)))
        try:
            await self._writer.drain()
            return await asyncio.wait_for(future, REQUEST_TIMEOUT)
        except TimeoutError as exc:
            raise CoreError(
                f"the core did not answer '{method}' within {REQUEST_TIMEOUT:.0f} s",
                "timeout",
            ) from exc
        except ConnectionError as exc:
            raise CoreError(f"the link broke during '{method}': {exc}") from exc
        finally:
            self._pending.pop(msg_id, None)

    async def stop(self, timeout: float = 10.0) -> None:
        """Disconnect and stop the child core (never a core we attached to)."""
        self._stopping = True
        for task in [*self._tasks, self._recover_task]:
            if task is not None:
                task.cancel()
        self._disconnect("stopped")
        process = self._process
        if process is not None and process.state() != QProcess.ProcessState.NotRunning:
            logger.info("Stopping the core (pid %s)", process.processId())
            process.terminate()
            deadline = time.monotonic() + timeout
            while (
                process.state() != QProcess.ProcessState.NotRunning
                and time.monotonic() < deadline
            ):
                await asyncio.sleep(0.05)
            if process.state() != QProcess.ProcessState.NotRunning:
                logger.warning("The core did not stop in %.0f s; killing it", timeout)
                process.kill()
                process.waitForFinished(2000)
        self._process = None
        self._set_state(self.tr("Core stopped"))

    # -- starting and attaching -----------------------------------------

    async def _try_attach(self) -> bool:
        info = protocol.LinkInfo.read(self.data_dir)
        if info is None or not _pid_alive(info.pid):
            return False
        try:
            await self._connect(info)
        except (OSError, CoreError, ValueError) as exc:
            logger.info("Cannot attach to the core of pid %s: %s", info.pid, exc)
            return False
        logger.warning(
            "Attached to the running core (pid %s) of '%s'", info.pid, self.data_dir
        )
        return True

    def _command(self) -> list[str]:
        args = ["-m", "jivex_core", "server", "--data", str(self.data_dir)]
        if self.config is not None:
            args += ["--config", str(self.config)]
        return [*args, "--exit-with-parent"]

    async def _start_child(self) -> None:
        process = QProcess(self)
        process.setProgram(sys.executable)
        process.setArguments(self._command())
        process.setStandardOutputFile(str(self.log_path), QProcess.OpenModeFlag.Append)
        process.setStandardErrorFile(str(self.log_path), QProcess.OpenModeFlag.Append)
        process.finished.connect(self._on_process_finished)
        self._process = process
        self._set_state(self.tr("Starting the core…"))
        process.start()
        if not process.waitForStarted(5000):
            raise CoreError(f"cannot start the core: {process.errorString()}")
        pid = int(process.processId())
        self._started_at = time.monotonic()
        logger.info("Started the core (pid %s), log in '%s'", pid, self.log_path)

        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.state() == QProcess.ProcessState.NotRunning:
                raise CoreError(self._death_message(process))
            info = protocol.LinkInfo.read(self.data_dir)
            if info is not None and info.pid == pid:
                break
            if time.monotonic() > deadline:
                raise CoreError(
                    f"the core (pid {pid}) wrote no link file within "
                    f"{START_TIMEOUT:.0f} s; see '{self.log_path}'"
                )
            await asyncio.sleep(0.1)
        await self._connect(info)

    async def _connect(self, info: protocol.LinkInfo) -> None:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(info.host, info.port, limit=16 * 2**20), 5.0
        )
        writer.write(
            protocol.encode(
                {
                    "type": "hello",
                    "token": info.token,
                    "version": protocol.PROTOCOL_VERSION,
                }
            )
        )
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), 5.0)
        if not line:
            writer.close()
            raise CoreError("the core refused the link token")
        welcome = protocol.decode(line)
        if welcome.get("type") != "welcome":
            writer.close()
            raise CoreError(f"unexpected first message '{welcome.get('type')}'")
        self.welcome = welcome
        self._reader, self._writer = reader, writer
        self._connected = True
        self._spawn(self._read_loop(reader))
        self.connected_changed.emit(True)
        self._set_state(
            self.tr("Core running (pid {pid}, AE '{ae}')").format(
                pid=welcome.get("pid"), ae=welcome.get("ae_title", "")
            )
        )

    # -- receiving -------------------------------------------------------

    async def _read_loop(self, reader: asyncio.StreamReader) -> None:
        try:
            while line := await reader.readline():
                try:
                    message = protocol.decode(line)
                except ValueError as exc:
                    logger.error("Core link: dropped a malformed message: %s", exc)
                    continue
                self._dispatch(message)
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            logger.info("Core link closed: %s", exc)
        if self._reader is reader:
            self._disconnect("the link closed")
            if not self._stopping and self._process is None:
                # An attached core went away: look again, else start our own.
                self.recover_later("the attached core went away")

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "reply":
            future = self._pending.get(int(message.get("id", -1)))
            if future is None or future.done():
                return
            if "error" in message:
                error = message["error"] or {}
                future.set_exception(
                    CoreError(str(error.get("message")), str(error.get("code", "")))
                )
            else:
                future.set_result(message.get("result"))
        elif kind == "event":
            name = str(message.get("name", ""))
            data = message.get("data") or {}
            self.event_received.emit(name, data)
            if name == "instance_stored":
                self.instance_stored.emit(data)

    def _disconnect(self, reason: str) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ConnectionError(reason))
        self._pending.clear()
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None
        if self._connected:
            self._connected = False
            self.connected_changed.emit(False)

    # -- the core dying --------------------------------------------------

    def _death_message(self, process: QProcess) -> str:
        if process.exitStatus() == QProcess.ExitStatus.CrashExit:
            how = self.tr("crashed")
        else:
            how = self.tr("exited with code {code}").format(code=process.exitCode())
        tail = ""
        with contextlib.suppress(OSError):
            lines = self.log_path.read_text(encoding="utf-8", errors="replace")
            tail = "\n".join(lines.strip().splitlines()[-3:])
        message = self.tr("The core {how}.").format(how=how)
        return f"{message}\n{tail}" if tail else message

    def _on_process_finished(self, _code: int, _status: QProcess.ExitStatus) -> None:
        process = self.sender()
        if not isinstance(process, QProcess) or process is not self._process:
            return
        self._process = None
        self._disconnect("the core exited")
        if self._stopping:
            return
        process.deleteLater()
        if self._recover_task is not None and not self._recover_task.done():
            return  # died while being restarted; the restart loop reports it
        message = self._death_message(process)
        logger.error("Core died: %s", message)
        self.core_died.emit(message)
        if time.monotonic() - self._started_at > HEALTHY_AFTER:
            self._restarts = 0
        self.recover_later(message)

    def recover_later(self, message: str = "") -> None:
        """Start the core again after the back-off, unless that is under way."""
        if self._stopping:
            return
        if self._recover_task is not None and not self._recover_task.done():
            return
        if message:
            logger.info("Will restart the core: %s", message)
        self._recover_task = asyncio.ensure_future(self._recover())
        self._recover_task.add_done_callback(self._task_done)

    async def _recover(self) -> None:
        while not self._stopping:
            delay = RESTART_DELAYS[min(self._restarts, len(RESTART_DELAYS) - 1)]
            self._restarts += 1
            self._set_state(
                self.tr("Core not running; restarting in {s:.0f} s").format(s=delay)
            )
            await asyncio.sleep(delay)
            if self._stopping:
                return
            try:
                await self.start()
                return
            except (CoreError, OSError) as exc:
                logger.error("Restarting the core failed: %s", exc)
                self.core_died.emit(str(exc))

    # -- helpers ---------------------------------------------------------

    def _set_state(self, text: str) -> None:
        self._state = text
        self.state_changed.emit(text)

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("Core link task failed", exc_info=task.exception())
