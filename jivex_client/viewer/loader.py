"""Reading and rendering images in worker threads, with a bounded cache.

Decoding is the slow step of showing an image, so it never runs on the GUI
thread: :class:`FrameLoader` reads a frame in a worker, keeps it (decoded
modality values, the image rendered with its default window, and its
header) in a least-recently-used cache bounded in bytes, and
:class:`Prefetcher` reads ahead in the direction the reader scrolls with a
bounded number of reads in flight, so that fast scrolling never queues
hundreds of stale reads.

What can wait (the headers of a whole series for its geometry, thumbnails)
runs in one :data:`background` worker of its own, started once the first
image is painted, and gives way to frame reads
(:meth:`FrameLoader.wait_idle`): Python threads share one interpreter lock,
so a header parser running flat out slows the decoding of the frame the
reader waits for.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset

from jivex_client.viewer.geometry import (
    ImagePlane,
    Orientation,
    frame_orientation,
    frame_plane,
)
from jivex_client.viewer.measure import Spacing, modality_units, pixel_spacing
from jivex_client.viewer.overlay import header_values
from jivex_client.viewer.presets import WindowPreset, file_windows
from jivex_core.imaging.render import (
    PreparedFrame,
    RenderError,
    number_of_frames,
    prepare_frame,
)

logger = logging.getLogger(__name__)

#: Default bound of the frame cache, in bytes (``viewer.cache_mb``).
CACHE_BYTES = 768 * 2**20
#: What a header costs in memory, roughly (pydicom objects of ~200 elements).
HEADER_BYTES = 48 * 1024

executor = ThreadPoolExecutor(max_workers=3, thread_name_prefix="jivex-image")
#: One worker for what can wait (series geometry, thumbnails): it never holds
#: a frame worker, and runs one job at a time.
background = ThreadPoolExecutor(max_workers=1, thread_name_prefix="jivex-background")
#: Longest a background job waits for frame reads to finish before each file.
PACE_SECONDS = 0.05


@dataclass(frozen=True)
class FrameRef:
    """One displayable frame of a series: a file and a frame number (0-based).

    Documents (PDF, reports, waveforms) have one ref each, frame 0.
    """

    path: str
    frame: int
    SOPInstanceUID: str
    SOPClassUID: str = field(default="", compare=False)
    SeriesInstanceUID: str = field(default="", compare=False)
    frames: int = field(default=1, compare=False)


@dataclass
class LoadedFrame:
    """What a worker returns: a prepared frame or the reason there is none.

    Attributes
    ----------
    header : Dataset or None
        The object's attributes without its pixel data (overlay text,
        presets, GSPS references).
    plane : ImagePlane or None
        Where the frame lies in the patient (reference lines, sync).
    orientation : Orientation or None
        What the edge letters say: from the plane, else from Patient
        Orientation (projection images).
    spacing : Spacing
        What lengths are measured with.
    units : str
        Units of the modality values (``HU`` for CT).
    windows : list of WindowPreset
        The windows the file gives.
    fields : dict of str
        Readable text of the header's attributes by keyword, for the corner
        texts (:func:`~jivex_client.viewer.overlay.header_values`), worked
        out in the worker so that showing an image costs the GUI thread
        nothing of the sort.
    """

    ref: FrameRef
    frame: PreparedFrame | None
    image: np.ndarray | None
    error: str = ""
    header: Dataset | None = None
    plane: ImagePlane | None = None
    orientation: Orientation | None = None
    spacing: Spacing = field(default_factory=Spacing)
    units: str = ""
    windows: list[WindowPreset] = field(default_factory=list)
    fields: dict[str, str] = field(default_factory=dict)

    @property
    def warnings(self) -> list[str]:
        """What the pipeline tolerated in this frame (Pixel Data short, a
        rescale or window that cannot be right): the viewport shows it."""
        return list(self.frame.warnings) if self.frame is not None else []


class _DatasetCache:
    """The last few multi-frame data sets read, so that their frames are not
    each read from disk again (a 100-frame file is read once, not 100 times).
    """

    def __init__(self, size: int = 2) -> None:
        self._items: OrderedDict[str, Dataset] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def read(self, path: str) -> Dataset:
        with self._lock:
            ds = self._items.get(path)
            if ds is not None:
                self._items.move_to_end(path)
                return ds
        ds = pydicom.dcmread(path)
        if number_of_frames(ds) > 1:
            with self._lock:
                self._items[path] = ds
                while len(self._items) > self._size:
                    self._items.popitem(last=False)
        return ds


_datasets = _DatasetCache()


def _header_of(ds: Dataset) -> Dataset:
    # The elements as read, not converted: values are decoded when asked for
    # (a tenth of a millisecond instead of three for a CT header).
    header = Dataset(
        {tag: ds.get_item(tag) for tag in ds.keys() if tag.group != 0x7FE0}
    )
    header.file_meta = getattr(ds, "file_meta", Dataset())
    return header


def load_frame(ref: FrameRef) -> LoadedFrame:
    """Read, decode and render one frame with its default window.

    Runs in a worker thread. Never raises: a file that cannot be read or
    decoded comes back with :attr:`LoadedFrame.error` set (and its header
    when that could be read), so that one bad object does not stop the rest
    of the series.
    """
    header: Dataset | None = None
    try:
        ds = _datasets.read(ref.path)
        header = _header_of(ds)
        frame = prepare_frame(ds, ref.frame)
        plane = frame_plane(ds, ref.frame)
        return LoadedFrame(
            ref,
            frame,
            frame.render(),
            header=header,
            plane=plane,
            orientation=frame_orientation(ds, ref.frame, plane),
            spacing=pixel_spacing(ds, ref.frame),
            units=modality_units(ds),
            windows=file_windows(ds),
            fields=_fields(header),
        )
    except RenderError as exc:
        return LoadedFrame(
            ref, None, None, str(exc), header=header, fields=_fields(header)
        )
    except (OSError, pydicom.errors.InvalidDicomError) as exc:
        return LoadedFrame(
            ref,
            None,
            None,
            f"cannot read '{Path(ref.path).name}': {exc}",
            header,
            fields=_fields(header),
        )
    except Exception as exc:
        logger.warning("Cannot show '%s': %s: %s", ref.path, type(exc).__name__, exc)
        return LoadedFrame(
            ref,
            None,
            None,
            f"{type(exc).__name__}: {exc}",
            header=header,
            fields=_fields(header),
        )


def _fields(header: Dataset | None) -> dict[str, str]:
    if header is None:
        return {}
    try:
        return header_values(header)
    except Exception as exc:  # a header pydicom cannot walk: no corner fields
        logger.info("No corner fields: %s", exc)
        return {}


class FrameCache:
    """Least recently used prepared frames, bounded by memory."""

    def __init__(self, max_bytes: int = CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[FrameRef, LoadedFrame] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def used_bytes(self) -> int:
        """Bytes held now (never above :attr:`max_bytes` but for one item)."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)

    def get(self, ref: FrameRef) -> LoadedFrame | None:
        """The cached frame, marked as recently used; None when absent."""
        with self._lock:
            item = self._items.get(ref)
            if item is not None:
                self._items.move_to_end(ref)
            return item

    def __contains__(self, ref: FrameRef) -> bool:
        with self._lock:
            return ref in self._items

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
        size = HEADER_BYTES if item.header is not None else 0
        if item.frame is not None:
            # The pipeline's frames count every array they keep (stored
            # values, lookup indexes) in ``nbytes``; older ones only values.
            size += int(getattr(item.frame, "nbytes", item.frame.values.nbytes))
        if item.image is not None:
            size += item.image.nbytes
        return size


class FrameLoader:
    """Loads frames off the GUI thread; each frame is read at most once."""

    def __init__(self, cache: FrameCache | None = None) -> None:
        self.cache = cache or FrameCache()
        self._inflight: dict[FrameRef, asyncio.Future[LoadedFrame]] = {}
        # Set while no frame is being read; background jobs wait for it.
        self._idle = threading.Event()
        self._idle.set()

    def wait_idle(self, timeout: float = PACE_SECONDS) -> bool:
        """Wait (in a background worker) until no frame is being read, at
        most *timeout* seconds; True when idle."""
        return self._idle.wait(timeout)

    def _finished(self, ref: FrameRef) -> None:
        self._inflight.pop(ref, None)
        if not self._inflight:
            self._idle.set()

    def cached(self, ref: FrameRef) -> LoadedFrame | None:
        """The frame when it is in memory already (no read)."""
        return self.cache.get(ref)

    def loading(self, ref: FrameRef) -> bool:
        """Whether a worker is reading *ref* now."""
        return ref in self._inflight

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
            self._idle.clear()
            future.add_done_callback(lambda _f: self._finished(ref))
        item = await asyncio.shield(future)
        self.cache.put(item)
        return item


class Prefetcher:
    """Reads ahead of the reader with at most *parallel* reads in flight.

    :meth:`want` replaces the list of frames wanted (nearest first); frames
    no longer wanted are not started, so scrolling fast through a long stack
    does not pile up reads of slices already passed.
    """

    def __init__(
        self,
        loader: FrameLoader,
        parallel: int = 2,
        spawn: Callable[..., object] | None = None,
    ) -> None:
        self.loader = loader
        self.parallel = parallel
        self._wanted: list[FrameRef] = []
        self._running = 0
        self._spawn = spawn

    def want(self, refs: list[FrameRef]) -> None:
        """Read these frames, in this order, unless cached already."""
        self._wanted = [r for r in refs if r not in self.loader.cache]
        self._pump()

    def _pump(self) -> None:
        while self._running < self.parallel and self._wanted:
            ref = self._wanted.pop(0)
            if ref in self.loader.cache or self.loader.loading(ref):
                continue
            self._running += 1
            task = asyncio.ensure_future(self.loader.load(ref))
            task.add_done_callback(self._done)

    def _done(self, task: asyncio.Future[LoadedFrame]) -> None:
        self._running -= 1
        if not task.cancelled() and task.exception() is not None:
            logger.warning("Reading ahead failed: %s", task.exception())
        self._pump()


def ahead(index: int, count: int, direction: int, forward: int, back: int) -> list[int]:
    """Indexes to read ahead: *forward* in the scroll *direction* first, then
    *back* the other way, nearest first."""
    step = 1 if direction >= 0 else -1
    out = [index + step * k for k in range(1, forward + 1)]
    out += [index - step * k for k in range(1, back + 1)]
    return [i for i in out if 0 <= i < count]


# -- geometry of a whole series, documents, thumbnails ---------------------------

_GEOMETRY_TAGS = [
    "ImagePositionPatient",
    "ImageOrientationPatient",
    "PixelSpacing",
    "Rows",
    "Columns",
    "FrameOfReferenceUID",
    "NumberOfFrames",
    "SharedFunctionalGroupsSequence",
    "PerFrameFunctionalGroupsSequence",
    "WindowCenter",
    "WindowWidth",
    "WindowCenterWidthExplanation",
    "PhotometricInterpretation",
    "SamplesPerPixel",
    "BitsAllocated",
    "BitsStored",
    "Modality",
    "PatientOrientation",
]


def read_planes(
    refs: list[FrameRef],
    stop: threading.Event | None = None,
    pace: Callable[[], object] | None = None,
) -> tuple[list[ImagePlane | None], dict[str, Dataset]] | None:
    """The plane of every frame of *refs* and the header of every file.

    Reads only the attributes geometry, windows and presentation states
    need, each file once; runs in the :data:`background` worker. A file that
    cannot be read has no plane (and an empty header). *pace* is called
    before each file (to give way to frame reads); None comes back when
    *stop* was set meanwhile (the viewport shows something else).
    """
    headers: dict[str, Dataset] = {}
    planes: list[ImagePlane | None] = []
    for ref in refs:
        ds = headers.get(ref.path)
        if ds is None:
            if stop is not None and stop.is_set():
                return None
            if pace is not None:
                pace()
            try:
                ds = pydicom.dcmread(
                    ref.path, stop_before_pixels=True, specific_tags=_GEOMETRY_TAGS
                )
            except Exception as exc:
                logger.info("No geometry for '%s': %s", ref.path, exc)
                ds = Dataset()
            headers[ref.path] = ds
        try:
            planes.append(frame_plane(ds, ref.frame))
        except Exception as exc:  # malformed values: no plane for that frame
            logger.info("No plane for '%s': %s", ref.path, exc)
            planes.append(None)
    return planes, headers


def read_dataset(path: str) -> Dataset:
    """A whole object, for documents (PDF, SR, waveform, GSPS, KO)."""
    return pydicom.dcmread(path)


def thumbnail(ref: FrameRef, size: int = 96) -> np.ndarray:
    """A small rendering of *ref* (uint8 grey or RGB, longest side *size*).

    Decimation by striding then box averaging keeps it cheap; runs in a
    worker. Raises the loader's error text as :class:`RenderError`.
    """
    item = load_frame(ref)
    if item.image is None:
        raise RenderError(item.error)
    image = item.image
    spacing = item.spacing
    if spacing.calibrated and abs(spacing.row / spacing.column - 1) > 0.05:
        # Non-square pixels: resample the rows so the thumbnail keeps the
        # true proportions, as the viewport does.
        count = max(1, round(image.shape[0] * spacing.row / spacing.column))
        image = image[np.linspace(0, image.shape[0] - 1, count).astype(int)]
    rows, columns = image.shape[:2]
    step = max(1, max(rows, columns) // size)
    if step > 1:
        r, c = (rows // step) * step, (columns // step) * step
        cut = image[:r, :c].astype(np.float32)
        if image.ndim == 2:
            image = cut.reshape(r // step, step, c // step, step).mean(axis=(1, 3))
        else:
            image = cut.reshape(r // step, step, c // step, step, 3).mean(axis=(1, 3))
        image = np.clip(image + 0.5, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(image)


#: Frames tried for a series' thumbnail before it is said to have none.
THUMBNAIL_TRIES = 8


def thumbnail_order(count: int, tries: int = THUMBNAIL_TRIES) -> list[int]:
    """Indexes to try for a series thumbnail: the middle frame, then the
    ones after it, then those before, at most *tries*."""
    if count <= 0:
        return []
    middle = count // 2
    order = list(range(middle, count)) + list(range(middle - 1, -1, -1))
    return order[:tries]


def series_thumbnail(
    refs: list[FrameRef],
    size: int = 96,
    stop: threading.Event | None = None,
    pace: Callable[[], object] | None = None,
) -> tuple[np.ndarray, int] | None:
    """The thumbnail of a series: its middle frame, else the next one that
    renders (one bad image does not leave the series without a picture).

    Returns the pixels and the index of the frame shown; None when *stop*
    was set. Raises :class:`RenderError` with the first frame's reason when
    none of those tried renders. Runs in the :data:`background` worker.
    """
    first_error = ""
    for index in thumbnail_order(len(refs)):
        if stop is not None and stop.is_set():
            return None
        if pace is not None:
            pace()
        try:
            return thumbnail(refs[index], size), index
        except RenderError as exc:
            first_error = first_error or str(exc)
    raise RenderError(first_error or "the series holds no image")
