"""One viewport of the reading viewer: a series (or a set of key images).

Frames load in workers (:mod:`jivex_client.viewer.loader`); what the
viewport shows (window, zoom, rotation, annotations, shutter) is its
:class:`~jivex_client.viewer.display.DisplayState`, a presentation state.
Objects that are not images (PDF, reports, waveforms) are shown by the
widgets of :mod:`jivex_client.viewer.document_view` in the same place.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
from typing import Any

import numpy as np
import shiboken6
from PySide6.QtCore import QMimeData, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QDragEnterEvent, QDropEvent, QImage, QKeyEvent
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QScrollBar,
    QStackedWidget,
    QWidget,
)

from jivex_client.tasks import spawn
from jivex_client.text import format_date, format_person_name
from jivex_client.viewer import documents
from jivex_client.viewer.dialogs import AnnotationTextDialog, text_problem
from jivex_client.viewer.display import DisplayState, render_grey
from jivex_client.viewer.document_view import PdfView, ReportView, WaveformView
from jivex_client.viewer.geometry import ImagePlane, slice_location
from jivex_client.viewer.image_view import ImageView, to_qimage
from jivex_client.viewer.loader import (
    FrameLoader,
    FrameRef,
    LoadedFrame,
    Prefetcher,
    ahead,
    background,
    executor,
    read_dataset,
    read_planes,
)
from jivex_client.viewer.measure import (
    RoiShapeValues,
    Spacing,
    angle_annotation,
    arrow_annotation,
    distance_annotation,
    region_annotation,
    text_annotation,
)
from jivex_client.viewer.overlay import (
    OverlayTemplates,
    corner_texts,
)
from jivex_client.viewer.presets import auto_window
from jivex_client.viewer.state import (
    KeyImages,
    StackState,
    drag_sensitivity,
    window_drag,
    window_label,
)
from jivex_client.viewer.tools import SHUTTER_TOOLS, ToolValues, shutter_from
from jivex_core.imaging.luts import Lut, VoiPreset
from jivex_core.imaging.presentation import ImageRef, PresentationState
from jivex_core.imaging.render import Window

logger = logging.getLogger(__name__)

#: MIME type of a series dragged from the thumbnail strip.
SERIES_MIME = "application/x-jivex-series"

#: Frames read ahead in the scroll direction, and behind.
PREFETCH_AHEAD = 8
PREFETCH_BEHIND = 2

#: Default cine speed, frames per second.
CINE_FPS = 15.0

#: Seconds between the first image painted and the series' headers read
#: (the paint goes first).
GEOMETRY_DELAY = 0.1

_CORNER_KEYS = {
    "top_left": "tl",
    "top_right": "tr",
    "bottom_left": "bl",
    "bottom_right": "br",
}


def frame_refs(instances: list[dict[str, Any]]) -> list[FrameRef]:
    """Every frame of a series, in the order of the index's instance rows.

    Documents (PDF, reports, waveforms) count as one each; presentation
    states and key object documents are not shown as images.
    """
    refs: list[FrameRef] = []
    for row in instances:
        sop_class = str(row.get("SOPClassUID") or "")
        kind = documents.object_kind(sop_class)
        if kind in (
            documents.ObjectKindValues.PRESENTATION,
            documents.ObjectKindValues.KEY_OBJECTS,
            documents.ObjectKindValues.OTHER,
        ):
            continue
        try:
            frames = int(row.get("NumberOfFrames") or 1)
        except (TypeError, ValueError):
            frames = 1
        if kind != documents.ObjectKindValues.IMAGE:
            frames = 1
        for frame in range(max(frames, 1)):
            refs.append(
                FrameRef(
                    str(row["path"]),
                    frame,
                    str(row["SOPInstanceUID"]),
                    sop_class,
                    str(row.get("SeriesInstanceUID") or ""),
                    max(frames, 1),
                )
            )
    return refs


def overlay_images(frame: Any) -> list[tuple[QImage, int, int]]:
    """The frame's overlay planes (60xx) as translucent images with their
    0-based (column, row) origin, drawn over the pixels (PS3.3 C.9.2)."""
    out = []
    for overlay in getattr(frame, "overlays", None) or []:
        bitmap = np.asarray(overlay.bitmap, dtype=bool)
        if bitmap.ndim != 2 or not bitmap.any():
            continue
        rgba = np.zeros((*bitmap.shape, 4), dtype=np.uint8)
        rgba[bitmap] = (255, 255, 255, 255)
        rows, columns = bitmap.shape
        image = QImage(
            rgba.data, columns, rows, columns * 4, QImage.Format.Format_RGBA8888
        ).copy()
        row, column = overlay.origin
        out.append((image, column - 1, row - 1))
    return out


class SeriesViewer(QWidget):
    """One viewport: the frames of a series, a scroll bar, cine.

    Parameters
    ----------
    loader : FrameLoader
        Shared by the viewports of the window (one cache).
    templates : OverlayTemplates
        The corner texts per modality.
    key_images : KeyImages
        The flags of the study viewer, shown as a marker on flagged frames.
    """

    #: Index of the image shown changed (0-based).
    slice_changed = Signal(int)
    #: The image shown was loaded (or failed to load) and painted.
    frame_shown = Signal(int)
    #: The user clicked into the viewport.
    activated = Signal()
    #: A series (its UID) was dropped on the viewport.
    series_dropped = Signal(str)
    #: The planes of every frame are known (reference lines, sync).
    geometry_changed = Signal()
    #: Annotations, shutter or window changed (the state differs from a file).
    presentation_changed = Signal()
    #: Cine started or stopped.
    cine_changed = Signal(bool)
    #: Something to tell the reader (a text refused, a document not shown).
    message_changed = Signal(str)

    def __init__(
        self,
        loader: FrameLoader | None = None,
        templates: OverlayTemplates | None = None,
        key_images: KeyImages | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.loader = loader or FrameLoader()
        self.templates = templates or OverlayTemplates()
        self.key_images = key_images if key_images is not None else KeyImages()
        self.study: dict[str, Any] = {}
        self.series: dict[str, Any] = {}
        self.refs: list[FrameRef] = []
        self.stack = StackState(0)
        self.current: LoadedFrame | None = None
        self.display = DisplayState()
        self.planes: list[ImagePlane | None] = []
        self.cine_fps = CINE_FPS
        self._direction = 1
        self._showing: int | None = None
        self._drag_window: Window | None = None
        self._drag_sensitivity = 1.0
        self._scratch: np.ndarray | None = None
        self._modality_cache: tuple[Any, np.ndarray] | None = None
        #: Headers of the series' files (geometry, windows, photometric),
        #: by path, once read in the background.
        self.headers: dict[str, Any] = {}
        #: The stored GSPS the display state is (applied from the list or
        #: just saved) and the images it references; None once edited.
        self.saved_state: tuple[ImageRef, frozenset[str]] | None = None
        #: Whether the reader changed the presentation since the series (or
        #: a state) was loaded.
        self.edited = False
        #: Key images shown with the presentation state their document names:
        #: the display state of each, by SOP Instance UID.
        self._image_displays: dict[str, DisplayState] = {}
        self._plain_display: DisplayState | None = None
        self._geometry_stop = threading.Event()
        self._geometry_for = -1
        self._text_dialog: AnnotationTextDialog | None = None
        self._generation = 0

        self.view = ImageView()
        self.view.display = self.display
        self.scrollbar = QScrollBar(Qt.Orientation.Vertical)
        self.scrollbar.setRange(0, 0)
        self.scrollbar.setVisible(False)  # until a stack is shown
        self.pdf_view = PdfView()
        self.report_view = ReportView()
        self.waveform_view = WaveformView()
        self.empty = QLabel(self.tr("Drop a series here"))
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty.setStyleSheet("color: #888; background: #111;")
        self.pages = QStackedWidget()
        for widget in (
            self.empty,
            self.view,
            self.pdf_view,
            self.report_view,
            self.waveform_view,
        ):
            self.pages.addWidget(widget)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(1, 1, 1, 1)
        layout.setSpacing(0)
        layout.addWidget(self.pages, 1)
        layout.addWidget(self.scrollbar)
        self.setAcceptDrops(True)
        self.prefetcher = Prefetcher(self.loader)
        self.cine_timer = QTimer(self)
        self.cine_timer.setTimerType(Qt.TimerType.PreciseTimer)

        self.view.slice_step_requested.connect(self._on_view_slice_step_requested)
        self.view.window_dragged.connect(self._on_view_window_dragged)
        self.view.transform_changed.connect(self._on_view_transform_changed)
        self.view.drawing_finished.connect(self._on_view_drawing_finished)
        self.view.annotations_changed.connect(self._on_view_annotations_changed)
        self.view.pressed.connect(self.activated)
        self.view.resized.connect(self._update_corners)
        self.presentation_changed.connect(self._on_presentation_changed)
        self.scrollbar.valueChanged.connect(self._on_scrollbar_value_changed)
        self.cine_timer.timeout.connect(self._on_cine_timer_timeout)

    # -- content ---------------------------------------------------------

    def load(
        self,
        study: dict[str, Any],
        series: dict[str, Any],
        instances: list[dict[str, Any]],
    ) -> None:
        """Show *series* from its first image, with a fresh display state."""
        self.load_refs(study, series, frame_refs(instances))

    def load_refs(
        self, study: dict[str, Any], series: dict[str, Any], refs: list[FrameRef]
    ) -> None:
        """Show the frames *refs* (a series, or the images of a key object
        document) under the title of *series*."""
        self.stop_cine()
        self._new_generation()
        self.study = study
        self.series = series
        self.refs = refs
        self.stack = StackState(len(refs))
        self.current = None
        self.planes = []
        self.display = DisplayState()
        self.view.display = self.display
        self.view.selected = None
        self.display.set_images(self.image_refs())
        self.saved_state = None
        self.edited = False
        self._image_displays = {}
        self._plain_display = None
        self.scrollbar.blockSignals(True)
        self.scrollbar.setRange(0, max(len(refs) - 1, 0))
        self.scrollbar.setValue(0)
        self.scrollbar.setPageStep(max(1, len(refs) // 10))
        self.scrollbar.blockSignals(False)
        self.scrollbar.setVisible(len(refs) > 1)
        if refs:
            self.show_index(0)
        else:
            self.pages.setCurrentWidget(self.view)
            self.view.set_frame(
                None, placeholder=self.tr("This series holds no images.")
            )
            self.view.set_warnings([])
            self._update_corners()  # the series' own, not the last image's

    def clear(self) -> None:
        """Show nothing (an empty viewport of the layout)."""
        self.stop_cine()
        self._new_generation()
        self.refs = []
        self.series = {}
        self.stack = StackState(0)
        self.current = None
        self.planes = []
        self.scrollbar.setVisible(False)
        self.pages.setCurrentWidget(self.empty)

    def _new_generation(self) -> None:
        # What was read for the frames shown before stops.
        self._generation += 1
        self._geometry_stop.set()
        self._geometry_stop = threading.Event()
        self.headers = {}

    @property
    def generation(self) -> int:
        """Counts what the viewport showed: it changes with each series or
        set of key images loaded."""
        return self._generation

    @property
    def series_uid(self) -> str:
        """The Series Instance UID shown, empty when none."""
        return str(self.series.get("SeriesInstanceUID") or "")

    def image_refs(self) -> list[ImageRef]:
        """The images shown, one reference per object (for a GSPS)."""
        seen: dict[str, ImageRef] = {}
        for ref in self.refs:
            if (
                documents.object_kind(ref.SOPClassUID)
                != documents.ObjectKindValues.IMAGE
            ):
                continue
            if ref.SOPInstanceUID not in seen:
                seen[ref.SOPInstanceUID] = ImageRef(
                    ref.SOPClassUID, ref.SOPInstanceUID, ref.SeriesInstanceUID
                )
        return list(seen.values())

    def current_ref(self) -> FrameRef | None:
        """The frame shown (or being loaded)."""
        if not self.refs:
            return None
        return self.refs[self.stack.index]

    def current_image_ref(self) -> ImageRef | None:
        """The image shown, with its frame number for multi-frame objects."""
        ref = self.current_ref()
        if ref is None:
            return None
        frames = (ref.frame + 1,) if ref.frames > 1 else ()
        return ImageRef(
            ref.SOPClassUID, ref.SOPInstanceUID, ref.SeriesInstanceUID, frames
        )

    def current_plane(self) -> ImagePlane | None:
        """Where the frame shown lies in the patient, when known."""
        if self.current is not None and self.current.ref == self.current_ref():
            if self.current.plane is not None:
                return self.current.plane
        if self.planes and self.stack.index < len(self.planes):
            return self.planes[self.stack.index]
        return None

    def is_grayscale(self) -> bool:
        """Whether the image shown is grey (a GSPS applies to it)."""
        item = self.current
        return item is not None and item.frame is not None and not item.frame.is_color

    # -- navigation ------------------------------------------------------

    def show_index(self, index: int) -> None:
        """Show image *index* (clamped), loading it in a worker if needed."""
        if not self.refs:
            return
        old = self.stack.index
        self.stack.index = min(max(index, 0), max(self.stack.count - 1, 0))
        if self.stack.index != old:
            self._direction = 1 if self.stack.index > old else -1
        self.scrollbar.blockSignals(True)
        self.scrollbar.setValue(self.stack.index)
        self.scrollbar.blockSignals(False)
        ref = self.refs[self.stack.index]
        self._display_for(ref)
        self._update_corners()
        self.slice_changed.emit(self.stack.index)
        cached = self.loader.cached(ref)
        if cached is not None:
            # Shown at once: scrolling a cached stack costs no event loop turn.
            self._present(self.stack.index, cached)
        else:
            self._showing = self.stack.index
            spawn(self._show(self.stack.index, self._generation), "Showing an image")

    def step(self, delta: int) -> None:
        """Move *delta* images forward (negative: backward)."""
        if self.stack.step(delta) or not self.refs:
            self.show_index(self.stack.index)

    async def _show(self, index: int, generation: int) -> None:
        item = await self.loader.load(self.refs[index])
        if not shiboken6.isValid(self):
            return  # the viewer was closed meanwhile
        if generation != self._generation or index != self.stack.index:
            return  # the user scrolled on (or loaded another series) meanwhile
        self._present(index, item)

    def _present(self, index: int, item: LoadedFrame) -> None:
        self._showing = None
        kind = documents.object_kind(item.ref.SOPClassUID)
        if kind != documents.ObjectKindValues.IMAGE and item.frame is None:
            self.current = item
            spawn(self._show_document(item.ref, kind, self._generation), "Document")
        else:
            self.current = item
            self.pages.setCurrentWidget(self.view)
            self.paint_current()
        self.frame_shown.emit(index)
        self._prefetch(index)
        if self._geometry_for != self._generation:
            # The headers of the whole series are read once the first image
            # is on screen, in the background, giving way to frame reads.
            self._geometry_for = self._generation
            spawn(
                self._read_geometry(self._generation, self._geometry_stop),
                "Reading slice positions",
            )

    def _prefetch(self, index: int) -> None:
        wanted = ahead(
            index, len(self.refs), self._direction, PREFETCH_AHEAD, PREFETCH_BEHIND
        )
        self.prefetcher.want([self.refs[i] for i in wanted])

    async def _read_geometry(self, generation: int, stop: threading.Event) -> None:
        await asyncio.sleep(GEOMETRY_DELAY)
        if stop.is_set():
            return
        refs = list(self.refs)
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(
            background, read_planes, refs, stop, self.loader.wait_idle
        )
        if result is None or not shiboken6.isValid(self):
            return
        if generation != self._generation:
            return
        self.planes, self.headers = result
        self.geometry_changed.emit()

    async def _show_document(
        self, ref: FrameRef, kind: documents.ObjectKindValues, generation: int
    ) -> None:
        loop = asyncio.get_running_loop()

        def work() -> Any:
            ds = read_dataset(ref.path)
            if kind == documents.ObjectKindValues.PDF:
                return documents.render_pdf(documents.pdf_bytes(ds))
            if kind == documents.ObjectKindValues.REPORT:
                return documents.report_lines(ds)
            return documents.waveforms(ds)

        try:
            result = await loop.run_in_executor(executor, work)
        except Exception as exc:
            logger.warning("Cannot show the document '%s': %s", ref.path, exc)
            if shiboken6.isValid(self) and generation == self._generation:
                self.pages.setCurrentWidget(self.view)
                self.view.set_frame(
                    None,
                    placeholder=self.tr(
                        "Cannot display this document:\n{reason}"
                    ).format(reason=str(exc)),
                )
            return
        if not shiboken6.isValid(self):
            return
        if generation != self._generation or self.current_ref() != ref:
            return
        if kind == documents.ObjectKindValues.PDF:
            self.pdf_view.set_pages(result)
            self.pages.setCurrentWidget(self.pdf_view)
        elif kind == documents.ObjectKindValues.REPORT:
            self.report_view.set_lines(result)
            self.pages.setCurrentWidget(self.report_view)
        else:
            self.waveform_view.set_groups(result)
            self.pages.setCurrentWidget(self.waveform_view)

    # -- painting --------------------------------------------------------

    def _aspect(self, item: LoadedFrame) -> float:
        spacing = item.spacing
        if spacing.calibrated and spacing.column > 0:
            return spacing.row / spacing.column
        ratio = item.header.get("PixelAspectRatio") if item.header else None
        try:
            if ratio is not None and float(ratio[1]) > 0:
                return float(ratio[0]) / float(ratio[1])
        except (TypeError, ValueError, IndexError):
            pass
        return 1.0

    def effective_window(self) -> Window | None:
        """The window the frame shown is rendered with (None for colour)."""
        item = self.current
        if item is None or item.frame is None or item.frame.is_color:
            return None
        ref = item.ref
        return self.display.window_for(
            ref.SOPInstanceUID, ref.frame + 1, item.frame.default_window
        )

    def paint_current(self) -> None:
        """Render the frame shown with the display state and paint it."""
        item = self.current
        if item is None:
            return
        ref = item.ref
        self.view.set_warnings(item.warnings)
        if item.frame is None:
            self.view.orientation = None
            self.view.set_frame(
                None,
                ref.SOPInstanceUID,
                ref.frame + 1,
                placeholder=self.tr("Cannot display this image:\n{reason}").format(
                    reason=item.error
                ),
            )
            self._update_corners()
            return
        frame = item.frame
        self.display.follow_photometric(frame.photometric, frame.inverse)
        if frame.is_color:
            pixels = frame.values
        else:
            voi = self.display.voi_for(ref.SOPInstanceUID, ref.frame + 1)
            window = self.effective_window() or frame.default_window
            transformed = self._state_modality_values(item)
            plut = self.display.state.presentation_lut
            table = None if plut is None else Lut.from_model(plut)
            if transformed is None and voi is None and table is None:
                if self.display.inverse == frame.inverse and item.image is not None:
                    pixels = item.image  # the worker rendered it so already
                else:
                    # The file's own VOI (window or LUT), the state's shape.
                    pixels = frame.render(inverse=self.display.inverse)
            elif transformed is None and (voi is None or voi.lut is None):
                # The frame's own modality values: its table of the stored
                # range serves any window (one numpy.take per frame, the
                # path of scrolling after a window change).
                function = frame.voi_function
                if voi is not None and voi.window is not None and voi.function:
                    function = voi.function
                pixels = frame.render(
                    None if window is None else VoiPreset("", window, function),
                    inverse=self.display.inverse,
                    presentation_lut=table,
                )
            else:
                values = frame.values if transformed is None else transformed
                if self._scratch is None or self._scratch.shape != values.shape:
                    self._scratch = np.empty(values.shape, dtype=np.float32)
                pixels = render_grey(
                    values,
                    window or Window(0.5, 1.0),
                    voi,
                    self.display.inverse,
                    frame.voi_function,
                    self._scratch,
                )
        self.view.orientation = item.orientation
        self.view.overlays = overlay_images(frame)
        self.view.key_image = self.key_images.contains(
            ref.SOPInstanceUID, ref.frame + 1
        )
        self.view.set_frame(
            to_qimage(pixels), ref.SOPInstanceUID, ref.frame + 1, self._aspect(item)
        )
        self._update_corners()

    def modality_values(self, item: LoadedFrame) -> np.ndarray:
        """The frame's modality values, through the state's Modality LUT when
        a presentation state brings one (PS3.3 C.11.1).

        The image's own rescale is undone first; an image with a Modality
        LUT Sequence of its own cannot be undone, and keeps its values.
        """
        frame = item.frame
        assert frame is not None
        values = self._state_modality_values(item)
        return frame.values if values is None else values

    def _state_modality_values(self, item: LoadedFrame) -> np.ndarray | None:
        """:meth:`modality_values` when the state's Modality LUT replaces the
        image's; None when the frame's own values apply."""
        transform = self.display.state.modality
        if transform is None or item.header is None:
            return None
        frame = item.frame
        assert frame is not None
        key = (item.ref, id(transform))
        if self._modality_cache is not None and self._modality_cache[0] == key:
            return self._modality_cache[1]
        header = item.header
        if "ModalityLUTSequence" in header:
            logger.info("The image's own Modality LUT is kept under the GSPS")
            return None
        try:
            slope = float(header.get("RescaleSlope", 1) or 1)
            intercept = float(header.get("RescaleIntercept", 0) or 0)
        except (TypeError, ValueError):
            slope, intercept = 1.0, 0.0
        stored = (frame.values - np.float32(intercept)) / np.float32(slope)
        if transform.lut is not None:
            values = transform.lut.apply(np.rint(stored))
        else:
            values = stored * np.float32(transform.slope) + np.float32(
                transform.intercept
            )
        values = np.ascontiguousarray(values, dtype=np.float32)
        self._modality_cache = (key, values)
        return values

    def overlay_values(self) -> dict[str, str]:
        """The fields of the corner templates for the frame shown."""
        item = self.current
        values: dict[str, str] = {}
        if item is not None and item.ref == self.current_ref() and item.fields:
            # Read in the worker, once per image: the corners are redrawn on
            # every step of a window drag.
            values.update(item.fields)
        else:
            values["PatientName"] = format_person_name(
                str(self.study.get("PatientName") or "")
            )
            values["PatientID"] = str(self.study.get("PatientID") or "")
            values["StudyDate"] = format_date(str(self.study.get("StudyDate") or ""))
            values["SeriesNumber"] = str(self.series.get("SeriesNumber") or "")
            values["SeriesDescription"] = str(
                self.series.get("SeriesDescription") or ""
            )
        values["image"] = self.stack.label()
        ref = self.current_ref()
        if ref is not None and ref.frames > 1:
            values["image"] += f"  Fr: {ref.frame + 1}/{ref.frames}"
        if item is not None and item.frame is not None:
            values["window"] = window_label(self.effective_window())
            spacing: Spacing = item.spacing
            values["spacing"] = spacing.note
            if self.view.image_size()[0]:
                t = self.view.transform()
                # Non-square pixels: the finer axis says how large it is.
                scale = min(t.scale, math.hypot(t.c, t.d))
                values["zoom"] = f"Zoom: {scale * 100:.0f}%"
            plane = self.current_plane()
            if plane is not None:
                values["location"] = f"Loc: {slice_location(plane):.1f} mm"
            thickness = values.get("SliceThickness", "")
            if thickness:
                values["thickness"] = f"Thk: {thickness} mm"
            state = self.display.state
            turned = []
            if state.rotation:
                turned.append(f"Rot: {state.rotation}°")
            if state.flip:
                turned.append("Flip")
            values["rotation"] = " ".join(turned)
        return values

    def _update_corners(self) -> None:
        modality = str(self.series.get("Modality") or "")
        item = self.current
        if item is not None and item.header is not None:
            modality = str(item.header.get("Modality") or modality)
        texts = corner_texts(self.templates.template(modality), self.overlay_values())
        for corner, key in _CORNER_KEYS.items():
            self.view.set_corner_text(key, texts[corner])

    # -- display commands ------------------------------------------------

    def set_window(self, window: Window, explanation: str = "") -> None:
        """Show every image of the viewport with *window*."""
        self.display.set_window(window, explanation)
        self.paint_current()
        self.presentation_changed.emit()

    def reset_window(self) -> None:
        """Back to each image's own window."""
        self.display.reset_window()
        self.paint_current()
        self.presentation_changed.emit()

    def auto_window(self) -> Window | None:
        """Window from the values of the frame shown (1st to 99th percentile)."""
        item = self.current
        if item is None or item.frame is None or item.frame.is_color:
            return None
        window = auto_window(item.frame.values)
        self.set_window(window, "AUTO")
        return window

    def invert(self) -> None:
        """Invert the grey levels."""
        self.display.toggle_invert()
        self.paint_current()
        self.presentation_changed.emit()

    def rotate(self, degrees: int) -> None:
        """Rotate by *degrees* (90 or -90), clockwise when positive."""
        self.display.rotate(degrees)
        self._after_spatial()

    def flip_horizontal(self) -> None:
        """Mirror left to right."""
        self.display.flip_horizontal()
        self._after_spatial()

    def flip_vertical(self) -> None:
        """Mirror top to bottom."""
        self.display.flip_vertical()
        self._after_spatial()

    def fit(self) -> None:
        """Show the whole image."""
        self.display.fit()
        self._after_spatial()

    def one_to_one(self) -> None:
        """One image pixel per screen pixel."""
        if self.view.image_size()[0]:
            self.display.one_to_one(self.view.transform(), self.view.view_size())
        self._after_spatial()

    def reset_view(self) -> None:
        """Fit, no rotation or flip, the images' own windows and shape."""
        self.display.fit()
        self.display.state.rotation = 0
        self.display.state.flip = False
        self.display.reset_window()
        self.display.shape_from_images = True
        if self.current is not None and self.current.frame is not None:
            self.display.follow_photometric(self.current.frame.photometric)
        self.paint_current()
        self.presentation_changed.emit()

    def _after_spatial(self) -> None:
        self.view.update()
        self._update_corners()
        self.presentation_changed.emit()

    def apply_presentation(
        self, state: PresentationState, source: ImageRef | None = None
    ) -> None:
        """Show the images with *state* (a GSPS read from a file; *source*
        is that file's object, for key images saved later)."""
        state.images = state.images or self.image_refs()
        self._image_displays = {}
        self._plain_display = None
        self.display.adopt(state)
        self.view.display = self.display
        self.view.selected = None
        self.paint_current()
        self.presentation_changed.emit()
        self.mark_saved(source, state.images)

    def mark_saved(self, source: ImageRef | None, images: list[ImageRef]) -> None:
        """The display state is now the stored GSPS *source*, which applies
        to *images* (after applying or saving it)."""
        if source is None:
            self.saved_state = None
            return
        self.saved_state = (source, frozenset(r.SOPInstanceUID for r in images))
        self.edited = False

    def apply_image_states(self, states: dict[str, PresentationState]) -> None:
        """Show each image of *states* (by SOP Instance UID) with its own
        presentation state, the others plain: the key images of a document
        that names one per image (TID 2010)."""
        displays: dict[int, DisplayState] = {}
        self._image_displays = {}
        for uid, state in states.items():
            display = displays.get(id(state))
            if display is None:
                state.images = state.images or [
                    r for r in self.image_refs() if r.SOPInstanceUID == uid
                ]
                display = displays[id(state)] = DisplayState()
                display.adopt(state)
            self._image_displays[uid] = display
        self._plain_display = self.display
        ref = self.current_ref()
        if ref is not None:
            self._display_for(ref)
            self.paint_current()

    def _display_for(self, ref: FrameRef) -> None:
        if not self._image_displays:
            return
        display = self._image_displays.get(ref.SOPInstanceUID, self._plain_display)
        if display is not None and display is not self.display:
            self.display = display
            self.view.display = display
            self.view.selected = None

    def state_of(self, sop_instance_uid: str) -> PresentationState:
        """The presentation state an image of the viewport is shown with."""
        display = self._image_displays.get(sop_instance_uid, self.display)
        return display.state

    def set_tool(self, tool: ToolValues) -> None:
        """What the left button does in this viewport."""
        self.view.set_tool(tool)

    def remove_shutter(self) -> None:
        """Show the whole image again."""
        self.display.set_shutter(None)
        self.view.update()
        self.presentation_changed.emit()

    # -- cine ------------------------------------------------------------

    def default_fps(self) -> float:
        """The object's own rate (Cine Rate, Recommended Display Frame Rate,
        Frame Time; PS3.3 C.7.6.5), else :attr:`cine_fps`."""
        header = self.current.header if self.current is not None else None
        if header is not None:
            for keyword in ("CineRate", "RecommendedDisplayFrameRate"):
                try:
                    value = float(header.get(keyword) or 0)
                except (TypeError, ValueError):
                    value = 0.0
                if value > 0:
                    return value
            try:
                frame_time = float(header.get("FrameTime") or 0)
            except (TypeError, ValueError):
                frame_time = 0.0
            if frame_time > 0:
                return 1000.0 / frame_time
        return self.cine_fps

    def start_cine(self, fps: float | None = None) -> None:
        """Play the frames in a loop at *fps* frames per second."""
        if len(self.refs) < 2:
            return
        self.cine_fps = max(0.5, min(fps or self.cine_fps, 120.0))
        self.cine_timer.start(max(1, round(1000 / self.cine_fps)))
        self.cine_changed.emit(True)

    def stop_cine(self) -> None:
        """Stop playing."""
        if self.cine_timer.isActive():
            self.cine_timer.stop()
            self.cine_changed.emit(False)

    @property
    def playing(self) -> bool:
        """Whether cine runs."""
        return self.cine_timer.isActive()

    def _on_cine_timer_timeout(self) -> None:
        if self._showing is not None:
            return  # the last frame is still loading: wait for it
        self._direction = 1
        self.show_index(self.stack.advance())

    # -- tools -----------------------------------------------------------

    def _on_view_drawing_finished(self, tool: str, points: list) -> None:
        item = self.current
        image = self.current_image_ref()
        if item is None or image is None or item.frame is None:
            return
        kind = ToolValues(tool)
        pts = [tuple(p) for p in points]
        spacing = item.spacing
        if kind in SHUTTER_TOOLS:
            shutter = shutter_from(
                kind, pts, self.view.image_size(), self.display.state.shutter
            )
            self.display.set_shutter(shutter)
        elif kind == ToolValues.TEXT:
            self._ask_text(pts[0], image)
            return
        else:
            values = None if item.frame.is_color else self.modality_values(item)
            if kind == ToolValues.DISTANCE:
                note = distance_annotation(pts[0], pts[1], spacing, image)
            elif kind == ToolValues.ANGLE:
                note = angle_annotation(pts[0], pts[1], pts[2], spacing, image)
            elif kind == ToolValues.ARROW:
                head = 10.0 / max(self.view.transform().scale, 1e-6)
                note = arrow_annotation(pts[0], pts[1], image, head)
            else:
                shape = {
                    ToolValues.RECTANGLE: RoiShapeValues.RECTANGLE,
                    ToolValues.ELLIPSE: RoiShapeValues.ELLIPSE,
                    ToolValues.POLYGON: RoiShapeValues.POLYGON,
                }[kind]
                note = region_annotation(
                    shape, tuple(pts), values, spacing, item.units, image
                )
            self.display.add_annotation(note)
        self.view.update()
        self.presentation_changed.emit()

    def _ask_text(self, point: tuple[float, float], image: ImageRef) -> None:
        dialog = AnnotationTextDialog(self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self._text_dialog = dialog

        def accepted() -> None:
            self._text_dialog = None
            self.add_text(dialog.text(), point, image)

        dialog.accepted.connect(accepted)
        dialog.rejected.connect(lambda: setattr(self, "_text_dialog", None))
        dialog.open()

    def add_text(
        self, text: str, point: tuple[float, float], image: ImageRef | None = None
    ) -> bool:
        """Put a free text on the frame shown (or on *image*); False (and a
        message) when a GSPS could not hold it."""
        text = text.strip()
        image = image or self.current_image_ref()
        if not text or image is None:
            return False
        problem = text_problem(text)
        if problem:
            self.message_changed.emit(
                self.tr("The text was not added: {problem}.").format(problem=problem)
            )
            return False
        self.display.add_annotation(text_annotation(text, point, image))
        self.view.update()
        self.presentation_changed.emit()
        return True

    # -- slots -----------------------------------------------------------

    def _on_view_slice_step_requested(self, delta: int) -> None:
        self.step(delta)

    def _on_view_window_dragged(self, dx: float, dy: float, started: bool) -> None:
        if started:
            self._drag_window = self.effective_window()
            self._drag_sensitivity = drag_sensitivity(self._drag_window)
            return
        if self._drag_window is None:
            return
        # Re-windowing a cached frame is a few numpy passes (well under a
        # millisecond at 512x512), cheap enough to do while dragging.
        self.set_window(window_drag(self._drag_window, dx, dy, self._drag_sensitivity))

    def _on_presentation_changed(self) -> None:
        self.edited = True
        self.saved_state = None

    def _on_view_transform_changed(self) -> None:
        self._update_corners()
        self.presentation_changed.emit()

    def _on_view_annotations_changed(self) -> None:
        self.presentation_changed.emit()

    def _on_scrollbar_value_changed(self, value: int) -> None:
        if value != self.stack.index:
            self.show_index(value)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        key = event.key()
        page = max(1, len(self.refs) // 10)
        moves = {
            Qt.Key.Key_Down: 1,
            Qt.Key.Key_Right: 1,
            Qt.Key.Key_Up: -1,
            Qt.Key.Key_Left: -1,
            Qt.Key.Key_PageDown: page,
            Qt.Key.Key_PageUp: -page,
        }
        if key in moves:
            self.step(moves[key])
        elif key == Qt.Key.Key_Home:
            self.show_index(0)
        elif key == Qt.Key.Key_End:
            self.show_index(len(self.refs) - 1)
        else:
            event.ignore()
            return
        event.accept()

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasFormat(SERIES_MIME):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:
        data: QMimeData = event.mimeData()
        if not data.hasFormat(SERIES_MIME):
            event.ignore()
            return
        uid = bytes(data.data(SERIES_MIME).data()).decode("ascii", "replace")
        event.acceptProposedAction()
        self.activated.emit()
        self.series_dropped.emit(uid)

    def set_reference_lines(self, lines: list[tuple[Any, QColor]]) -> None:
        """Lines to draw over the image (image coordinates, colour)."""
        self.view.reference_lines = lines
        self.view.update()

    def set_active(self, active: bool) -> None:
        """Mark the viewport as the one the toolbar acts on."""
        self.view.active = active
        self.view.update()
