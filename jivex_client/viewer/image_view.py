"""The image widget: paints one frame with its four corner overlays."""

from __future__ import annotations

import logging

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QFont,
    QImage,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QWheelEvent,
)
from PySide6.QtWidgets import QSizePolicy, QWidget

from jivex_client.viewer.state import ViewTransform, WindowLevelState
from jivex_core.imaging.render import Window

logger = logging.getLogger(__name__)


def to_qimage(pixels: np.ndarray) -> QImage:
    """Wrap uint8 grey (rows, cols) or RGB (rows, cols, 3) in a QImage copy."""
    data = np.ascontiguousarray(pixels)
    rows, cols = data.shape[:2]
    if data.ndim == 2:
        image = QImage(data.data, cols, rows, cols, QImage.Format.Format_Grayscale8)
    else:
        image = QImage(data.data, cols, rows, cols * 3, QImage.Format.Format_RGB888)
    # The numpy buffer may be freed or reused; the copy owns its pixels.
    return image.copy()


class ImageView(QWidget):
    """Shows an image, scaled to fit, with zoom, pan and window/level by mouse.

    The widget keeps no image logic of its own: slices, window and transform
    live in the state objects, so that tests can check them without a
    window. Mouse: wheel = next/previous image, Ctrl+wheel = zoom,
    right-drag = window/level, middle-drag = pan.
    """

    #: Wheel steps, +1 = next image.
    slice_step_requested = Signal(int)
    #: The user dragged a new window.
    window_changed = Signal(object)
    #: Zoom or pan changed.
    transform_changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(200, 200)
        self.setMouseTracking(False)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.transform = ViewTransform()
        self.window_level = WindowLevelState()
        self._image: QImage | None = None
        self._placeholder = ""
        self._default_window: Window | None = None
        self._corners = {"tl": "", "tr": "", "bl": "", "br": ""}
        self._drag_button: Qt.MouseButton | None = None
        self._drag_start = QPointF()
        self._drag_window: Window | None = None
        self._wheel_rest = 0

    # -- content ---------------------------------------------------------

    def set_image(self, image: QImage | None, placeholder: str = "") -> None:
        """Show *image*, or a placeholder text when it is None."""
        self._image = image
        self._placeholder = placeholder
        self.update()

    def set_default_window(self, window: Window | None) -> None:
        """The window of the image shown, used when the user set none."""
        self._default_window = window

    def set_corner_text(self, corner: str, text: str) -> None:
        """Set the overlay of a corner: ``tl``, ``tr``, ``bl`` or ``br``."""
        self._corners[corner] = text
        self.update()

    def corner_text(self, corner: str) -> str:
        """The overlay text of a corner, as painted."""
        return self._corners[corner]

    def image_size(self) -> tuple[int, int]:
        """(width, height) of the image shown, (0, 0) without one."""
        if self._image is None:
            return (0, 0)
        return (self._image.width(), self._image.height())

    def view_size(self) -> tuple[int, int]:
        """(width, height) of the widget."""
        return (self.width(), self.height())

    # -- painting --------------------------------------------------------

    def paintEvent(self, _event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor(0, 0, 0))
        if self._image is not None:
            x, y, w, h = self.transform.rect(self.image_size(), self.view_size())
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
            painter.drawImage(QRectF(x, y, w, h), self._image)
        elif self._placeholder:
            painter.fillRect(self.rect().adjusted(8, 8, -8, -8), QColor(40, 40, 44))
            painter.setPen(QColor(230, 200, 120))
            painter.drawText(
                self.rect().adjusted(24, 24, -24, -24),
                Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                self._placeholder,
            )
        self._paint_overlays(painter)
        painter.end()

    def _paint_overlays(self, painter: QPainter) -> None:
        font = QFont(self.font())
        font.setPointSizeF(max(9.0, font.pointSizeF() * 1.1))
        painter.setFont(font)
        margin = 8
        area = self.rect().adjusted(margin, margin, -margin, -margin)
        flags = {
            "tl": Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop,
            "tr": Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignTop,
            "bl": Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignBottom,
            "br": Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignBottom,
        }
        for corner, text in self._corners.items():
            if not text:
                continue
            # A dark outline keeps the text legible on white (MONOCHROME1,
            # bone windows) as well as on black.
            painter.setPen(QColor(0, 0, 0))
            for dx, dy in ((1, 1), (-1, 1), (1, -1), (-1, -1)):
                painter.drawText(area.translated(dx, dy), flags[corner], text)
            painter.setPen(QColor(255, 255, 160))
            painter.drawText(area, flags[corner], text)

    # -- mouse -----------------------------------------------------------

    def wheelEvent(self, event: QWheelEvent) -> None:
        delta = event.angleDelta().y()
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            if self._image is not None and delta:
                factor = 1.15 ** (delta / 120)
                pos = event.position()
                self.transform.zoom_at(
                    factor, (pos.x(), pos.y()), self.image_size(), self.view_size()
                )
                self.transform_changed.emit()
                self.update()
            event.accept()
            return
        # High-resolution wheels send small deltas; one image per 120.
        self._wheel_rest += delta
        steps = int(self._wheel_rest / 120)
        if steps:
            self._wheel_rest -= steps * 120
            self.slice_step_requested.emit(-steps)
        event.accept()

    def mousePressEvent(self, event: QMouseEvent) -> None:
        button = event.button()
        if button in (Qt.MouseButton.RightButton, Qt.MouseButton.MiddleButton):
            self._drag_button = button
            self._drag_start = event.position()
            self._drag_window = self.window_level.effective(self._default_window)
            event.accept()
            return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if self._drag_button is None:
            super().mouseMoveEvent(event)
            return
        pos = event.position()
        if self._drag_button == Qt.MouseButton.RightButton:
            if self._drag_window is not None:
                dx = pos.x() - self._drag_start.x()
                dy = pos.y() - self._drag_start.y()
                window = self.window_level.drag(dx, dy, self._drag_window)
                self.window_changed.emit(window)
        else:
            self.transform.pan_by(
                pos.x() - self._drag_start.x(), pos.y() - self._drag_start.y()
            )
            self._drag_start = pos
            self.transform_changed.emit()
            self.update()
        event.accept()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if event.button() == self._drag_button:
            self._drag_button = None
            event.accept()
            return
        super().mouseReleaseEvent(event)

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:
        # Double-click resets zoom and pan; a common gesture in viewers.
        if event.button() == Qt.MouseButton.LeftButton:
            self.transform.reset()
            self.transform_changed.emit()
            self.update()
            event.accept()
            return
        super().mouseDoubleClickEvent(event)
