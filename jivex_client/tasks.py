"""Running coroutines from Qt slots without losing their errors."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

logger = logging.getLogger(__name__)

_running: set[asyncio.Task[Any]] = set()


def spawn(coro: Coroutine[Any, Any, Any], what: str) -> asyncio.Task[Any]:
    """Schedule *coro* on the qasync loop; log its failure, naming *what*.

    asyncio keeps only weak references to tasks, so a task started from a
    slot could vanish mid-way; this module holds it until it ends.
    """
    task = asyncio.ensure_future(coro)
    _running.add(task)

    def done(task: asyncio.Task[Any]) -> None:
        _running.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("%s failed", what, exc_info=task.exception())

    task.add_done_callback(done)
    return task
