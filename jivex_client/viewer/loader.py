"""Reading and rendering images in worker threads, with a frame cache."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom

from jivex_core.imaging.render import PreparedFrame, RenderError, prepare_frame

logger = logging.getLogger(__name__)

#: Prepared frames kept in memory, in bytes of their arrays.
CACHE_BYTES = 768 * 2**20

executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="jivex-image")


@dataclass(frozen=True)
class FrameRef:
    """One displayable frame of a series: a file and a frame number."""

    path: str
    frame: int
    SOPInstanceUID: str


@dataclass
class LoadedFrame:
    """What a worker returns: a prepared frame or the reason there is none."""

    ref: FrameRef
    frame: PreparedFrame | None
    image: np.ndarray | None
    error: str = ""


def load_frame(ref: FrameRef) -> LoadedFrame:
    """Read, decode and render one frame with its default window.

    Runs in a worker thread. Never raises: a file that cannot be read or
    decoded comes back with :attr:`LoadedFrame.error` set, so that one bad
    object does not stop the rest of the series.
    """
    try:
        ds = pydicom.dcmread(ref.path)
        frame = prepare_frame(ds, ref.frame)
        return LoadedFrame(ref, frame, frame.render())
    except RenderError as exc:
        return LoadedFrame(ref, None, None, str(exc))
    except (OSError, pydicom.errors.InvalidDicomError) as exc:
        return LoadedFrame(
            ref, None, None, f"cannot read '{Path(ref.path).name}': {exc}"
        )
    except Exception as exc:
        logger.exception("Unexpected failure reading '%s'", ref.path)
        return LoadedFrame(ref, None, None, f"{type(exc).__name__}: {exc}")


class FrameCache:
    """Least recently used prepared frames, bounded by memory."""

    def __init__(self, max_bytes: int = CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[FrameRef, LoadedFrame] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, ref: FrameRef) -> LoadedFrame | None:
        """The cached frame, marked as recently used; None when absent."""
        with self._lock:
            item = self._items.get(ref)
            if item is not None:
                self._items.move_to_end(ref)
            return item

    def put(self, item: LoadedFrame) -> None:
        """Keep *item*, dropping the least recently used beyond the limit."""
        with self._lock:
            if item.ref in self._items:
                return
            self._items[item.ref] = item
            self._bytes += self._size(item)
            while self._bytes > self.max_bytes and len(self._items) > 1:
                _ref, old = self._items.popitem(last=False)
                self._bytes -= self._size(old)

    @staticmethod
    def _size(item: LoadedFrame) -> int:
        size = 0
        if item.frame is not None:
            size += item.frame.nbytes
        if item.image is not None:
            size += item.image.nbytes
        return size


class FrameLoader:
    """Loads frames off the GUI thread; each frame is read at most once."""

    def __init__(self, cache: FrameCache | None = None) -> None:
        self.cache = cache or FrameCache()
        self._inflight: dict[FrameRef, asyncio.Future[LoadedFrame]] = {}

    async def load(self, ref: FrameRef) -> LoadedFrame:
        """The frame of *ref*, from the cache or a worker thread."""
        cached = self.cache.get(ref)
        if cached is not None:
            return cached
        future = self._inflight.get(ref)
        if future is None:
            loop = asyncio.get_running_loop()
            future = asyncio.ensure_future(
                loop.run_in_executor(executor, load_frame, ref)
            )
            self._inflight[ref] = future
            future.add_done_callback(lambda _f: self._inflight.pop(ref, None))
        item = await asyncio.shield(future)
        self.cache.put(item)
        return item
