"""The viewer panel: one series in an :class:`ImageView`, with its header."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pydicom
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from jivex_client.tasks import spawn
from jivex_client.text import format_date, format_person_name
from jivex_client.viewer.attributes import AttributesView, attribute_rows
from jivex_client.viewer.image_view import ImageView, to_qimage
from jivex_client.viewer.loader import FrameLoader, FrameRef, LoadedFrame, executor
from jivex_client.viewer.state import StackState, WindowLevelState

logger = logging.getLogger(__name__)

#: Images read ahead on each side of the one shown.
PREFETCH = 3


def frame_refs(instances: list[dict[str, Any]]) -> list[FrameRef]:
    """Every frame of a series, in the order of the index's instance rows."""
    refs: list[FrameRef] = []
    for row in instances:
        frames = int(row.get("NumberOfFrames") or 1)
        for frame in range(max(frames, 1)):
            refs.append(FrameRef(str(row["path"]), frame, str(row["SOPInstanceUID"])))
    return refs


def _read_attributes(path: str) -> list[Any]:
    return attribute_rows(pydicom.dcmread(path, stop_before_pixels=True))


class SeriesViewer(QWidget):
    """Shows the frames of one series; loads and renders them in workers."""

    #: Index of the image shown changed (0-based).
    slice_changed = Signal(int)
    #: The image shown was loaded (or failed to load) and painted.
    frame_shown = Signal(int)

    def __init__(
        self,
        study: dict[str, Any],
        series: dict[str, Any],
        instances: list[dict[str, Any]],
        loader: FrameLoader | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.study = study
        self.series = series
        self.refs = frame_refs(instances)
        self.loader = loader or FrameLoader()
        self.stack = StackState(len(self.refs))
        self.current: LoadedFrame | None = None

        self.view = ImageView()
        self.window_level: WindowLevelState = self.view.window_level
        self.attributes = AttributesView()
        self.attributes.setVisible(False)
        self.attributes_button = QPushButton(self.tr("Attributes"))
        self.attributes_button.setCheckable(True)
        self.reset_button = QPushButton(self.tr("Reset view"))
        self.title = QLabel(
            self.tr("Series {number} {modality} {description}").format(
                number=series.get("SeriesNumber") or "",
                modality=series.get("Modality") or "",
                description=series.get("SeriesDescription") or "",
            )
        )

        bar = QHBoxLayout()
        bar.addWidget(self.title, 1)
        bar.addWidget(self.reset_button)
        bar.addWidget(self.attributes_button)
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(self.view)
        splitter.addWidget(self.attributes)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(bar)
        layout.addWidget(splitter, 1)

        self.view.set_corner_text(
            "tl", format_person_name(str(study.get("PatientName") or ""))
        )
        self.view.set_corner_text("tr", format_date(str(study.get("StudyDate") or "")))
        self.view.slice_step_requested.connect(self._on_view_slice_step_requested)
        self.view.window_changed.connect(self._on_view_window_changed)
        self.attributes_button.toggled.connect(self._on_attributes_button_toggled)
        self.reset_button.clicked.connect(self._on_reset_button_clicked)
        self._update_slice_label()
        if self.refs:
            self.show_index(0)
        else:
            self.view.set_image(None, self.tr("This series holds no images."))

    # -- navigation ------------------------------------------------------

    def show_index(self, index: int) -> None:
        """Show image *index* (clamped), loading it in a worker if needed."""
        self.stack.index = min(max(index, 0), max(self.stack.count - 1, 0))
        self._update_slice_label()
        self.slice_changed.emit(self.stack.index)
        spawn(self._show(self.stack.index), "Showing an image")

    def step(self, delta: int) -> None:
        """Move *delta* images forward (negative: backward)."""
        if self.stack.step(delta):
            self.show_index(self.stack.index)

    async def _show(self, index: int) -> None:
        item = await self.loader.load(self.refs[index])
        if index != self.stack.index:
            return  # the user scrolled on while this one loaded
        self.current = item
        self._paint_current()
        self.frame_shown.emit(index)
        if self.attributes.isVisible():
            await self._load_attributes()
        self._prefetch(index)

    def _prefetch(self, index: int) -> None:
        for offset in range(1, PREFETCH + 1):
            for near in (index + offset, index - offset):
                if 0 <= near < len(self.refs):
                    spawn(self.loader.load(self.refs[near]), "Reading ahead")

    def _paint_current(self) -> None:
        item = self.current
        if item is None:
            return
        if item.frame is None:
            self.view.set_default_window(None)
            self.view.set_image(
                None,
                self.tr("Cannot display this image:\n{reason}").format(
                    reason=item.error
                ),
            )
            self.view.set_corner_text("br", "")
            return
        frame = item.frame
        self.view.set_default_window(frame.default_window)
        if frame.default_window is not None:
            # About a quarter of the window per 100 pixels of drag feels
            # right for CT and MR alike.
            self.window_level.sensitivity = max(frame.default_window.width / 400, 0.1)
        window = self.window_level.effective(frame.default_window)
        if self.window_level.user is None and item.image is not None:
            pixels = item.image  # rendered by the worker with the default window
        else:
            pixels = frame.render(window)
        self.view.set_image(to_qimage(pixels))
        self.view.set_corner_text(
            "br", "" if frame.is_color else self.window_level.label(window)
        )

    def _update_slice_label(self) -> None:
        self.view.set_corner_text("bl", self.stack.label())

    async def _load_attributes(self) -> None:
        if not self.refs:
            return
        path = self.refs[self.stack.index].path
        loop = asyncio.get_running_loop()
        try:
            rows = await loop.run_in_executor(executor, _read_attributes, path)
        except Exception as exc:
            logger.warning("Cannot read the attributes of '%s': %s", path, exc)
            return
        self.attributes.show_rows(rows)

    # -- slots -----------------------------------------------------------

    def _on_view_slice_step_requested(self, delta: int) -> None:
        self.step(delta)

    def _on_view_window_changed(self, _window: object) -> None:
        # Re-windowing a cached frame is a few numpy passes (well under a
        # millisecond at 512x512), cheap enough to do while dragging.
        self._paint_current()

    def _on_attributes_button_toggled(self, checked: bool) -> None:
        self.attributes.setVisible(checked)
        if checked:
            spawn(self._load_attributes(), "Reading the attributes")

    def _on_reset_button_clicked(self) -> None:
        self.window_level.reset()
        self.view.transform.reset()
        self._paint_current()
