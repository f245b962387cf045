"""Fixtures of the client tests: a qasync loop and a real core process.

pytest collects only ``conftest.py`` by itself; the client tests import these
fixtures by name.
"""

from __future__ import annotations

import asyncio
import gc
import os
import socket
import subprocess
from collections.abc import Coroutine, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import qasync

from jivex_client.core_link import CoreLink

STORESCU = "/usr/bin/storescu"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def qloop(qapp: Any) -> Iterator[qasync.QEventLoop]:
    """An asyncio loop driven by Qt's, as the application runs it.

    Marked as already running, so that tasks advance whenever pytest-qt
    processes events (``qtbot.waitUntil``, ``qtbot.wait``). One loop serves
    the whole session: in our runs a second qasync loop created on the same
    QApplication after the first was closed never fired its timers.
    """
    loop = qasync.QEventLoop(qapp, already_running=True)
    asyncio.set_event_loop(loop)
    yield loop
    # Collect the tests' widgets and links while Qt and the loop still
    # exist, rather than in interpreter shutdown.
    for _ in range(3):
        qapp.processEvents()
        gc.collect()
    loop.stop()
    loop.close()
    asyncio.set_event_loop(None)


def run(qtbot: Any, coro: Coroutine[Any, Any, Any], timeout: int = 30000) -> Any:
    """Run *coro* on the Qt-driven loop and return its result."""
    task = asyncio.ensure_future(coro)
    qtbot.waitUntil(task.done, timeout=timeout)
    return task.result()


class CoreSetup:
    """A data folder and a settings file with free loopback ports."""

    def __init__(self, root: Path) -> None:
        self.data_dir = root / "data"
        self.storage_port = free_port()
        query_port = free_port()
        while query_port == self.storage_port:
            query_port = free_port()
        self.config = root / "jivex.toml"
        self.config.write_text(
            "[network]\n"
            'bind_address = "127.0.0.1"\n'
            f"storage_port = {self.storage_port}\n"
            f"query_port = {query_port}\n",
            encoding="utf-8",
        )

    def add_remote(
        self,
        ae_title: str,
        port: int,
        retry_minutes: Sequence[float] = (0.05,),
        max_query_results: int | None = None,
    ) -> None:
        """Add a remote AE on 127.0.0.1 to the settings (before the core
        starts). The short default retry schedule keeps retries in a test."""
        block = (
            "\n[[remote]]\n"
            f'ae_title = "{ae_title}"\n'
            'host = "127.0.0.1"\n'
            f"port = {port}\n"
            f"retry_minutes = [{', '.join(str(float(m)) for m in retry_minutes)}]\n"
        )
        if max_query_results is not None:
            block += f"max_query_results = {max_query_results}\n"
        with self.config.open("a", encoding="utf-8") as fh:
            fh.write(block)


@pytest.fixture
def core_setup(tmp_path: Path) -> CoreSetup:
    """Settings for one core of the test."""
    return CoreSetup(tmp_path)


@pytest.fixture
def link(qtbot: Any, qloop: Any, core_setup: CoreSetup) -> Iterator[CoreLink]:
    """A CoreLink connected to a core it started as its child."""
    core_link = CoreLink(core_setup.data_dir, core_setup.config, attach=False)
    run(qtbot, core_link.start(), timeout=40000)
    assert core_link.connected
    yield core_link
    run(qtbot, core_link.stop(), timeout=20000)


def storescu(qtbot: Any, port: int, files: Sequence[str | Path]) -> None:
    """Send *files* with DCMTK's storescu, keeping the GUI responsive."""
    env = {**os.environ, "TCP_NODELAY": "1"}
    proc = subprocess.Popen(
        [STORESCU, "-aec", "JIVEX", "127.0.0.1", str(port), *map(str, files)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        qtbot.waitUntil(lambda: proc.poll() is not None, timeout=60000)
    finally:
        if proc.poll() is None:
            proc.kill()
    output = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
    assert proc.returncode == 0, output


@pytest.fixture
def send(qtbot: Any, core_setup: CoreSetup) -> Any:
    """Send files to the test's core with storescu: ``send([path, ...])``."""

    def send_files(files: Sequence[str | Path]) -> None:
        storescu(qtbot, core_setup.storage_port, files)

    return send_files


@pytest.fixture
def run_async(qtbot: Any, qloop: Any) -> Any:
    """Run a coroutine to its end on the test loop: ``run_async(coro)``."""
    return lambda coro, timeout=30000: run(qtbot, coro, timeout)
