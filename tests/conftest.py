"""Fixtures shared by the test modules."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers import JivexServer


@pytest.fixture
def jivex_server(tmp_path) -> Iterator[JivexServer]:
    """A running `jivex server` on free loopback ports with an empty archive."""
    server = JivexServer(tmp_path / "data").start()
    yield server
    server.stop()
