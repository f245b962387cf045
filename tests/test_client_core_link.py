"""CoreLink against a real core process: requests, attach and restart."""

from __future__ import annotations

import os
import signal
from typing import Any

from jivex_client import core_link as core_link_module
from jivex_client.core_link import CoreError, CoreLink

#: The fixtures (qloop, core_setup, link, run_async) live in conftest_client.
pytest_plugins = ["tests.conftest_client"]


def test_requests_reach_the_core(link: CoreLink, run_async: Any) -> None:
    status = run_async(link.request("status", {}))
    assert status["storage_port"] > 0
    assert status["instances"] == 0
    assert link.welcome["pid"] == link.child_pid


def test_unknown_method_is_an_error_with_its_code(
    link: CoreLink, run_async: Any
) -> None:
    try:
        run_async(link.request("no_such_method", {}))
    except CoreError as exc:
        assert exc.code == "unknown_method"
        assert "no_such_method" in str(exc)
    else:
        raise AssertionError("the core accepted an unknown method")


def test_second_link_attaches_to_the_running_core(
    qtbot: Any, link: CoreLink, core_setup: Any, run_async: Any
) -> None:
    other = CoreLink(core_setup.data_dir, core_setup.config)
    run_async(other.start())
    try:
        assert other.connected
        assert other.child_pid is None
        assert other.welcome["pid"] == link.child_pid
    finally:
        run_async(other.stop())
    # Stopping an attached link leaves the core running.
    assert run_async(link.request("ping", {}))["pid"] == link.child_pid


def test_core_that_dies_is_reported_and_restarted(
    qtbot: Any, link: CoreLink, run_async: Any, monkeypatch: Any
) -> None:
    monkeypatch.setattr(core_link_module, "RESTART_DELAYS", (0.2,))
    first = link.child_pid
    assert first is not None
    died: list[str] = []
    link.core_died.connect(died.append)
    os.kill(first, signal.SIGKILL)  # our own child, by its PID
    qtbot.waitUntil(lambda: bool(died), timeout=10000)
    assert "crashed" in died[0] or "exited" in died[0]
    qtbot.waitUntil(
        lambda: link.connected and link.child_pid not in (None, first),
        timeout=40000,
    )
    assert run_async(link.request("ping", {}))["pid"] == link.child_pid
