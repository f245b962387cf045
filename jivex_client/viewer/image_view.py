"""The image canvas of a viewport: paints a frame as its display state says
and turns mouse gestures into tool drawings.

Painting order: the image through the state's spatial transform (rotation,
flip, displayed area), the shutter, the annotations of the frame, the
drawing in progress, reference lines, then the corner texts and
orientation letters, which stay put whatever the image does.
"""

from __future__ import annotations

import logging
import math

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import (
    QBrush,
    QColor,
    QFont,
    QFontMetricsF,
    QImage,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPainterPath,
    QPaintEvent,
    QPen,
    QPolygonF,
    QResizeEvent,
    QTransform,
    QWheelEvent,
)
from PySide6.QtWidgets import QSizePolicy, QWidget

from jivex_client.viewer.display import Affine, DisplayState
from jivex_client.viewer.geometry import Orientation
from jivex_client.viewer.measure import pick
from jivex_client.viewer.tools import (
    DRAWING_TOOLS,
    Drawing,
    ToolValues,
)
from jivex_core.imaging.presentation import (
    Annotation,
    Graphic,
    GraphicTypeValues,
    Point,
    Shutter,
    TextLabel,
)

logger = logging.getLogger(__name__)

#: Screen pixels within which a click selects an annotation.
PICK_PIXELS = 6.0

#: The key image star: its size and the height of its centre, under the
#: top orientation letter (which takes the first 24 pixels).
KEY_STAR_SIZE = 18.0
KEY_STAR_Y = 34.0

#: Frame warnings: their colour, how many lines at most, and how far below
#: the top edge (under the top letter and the star).
WARNING_COLOR = QColor(255, 90, 90)
WARNING_LINES = 3
TOP_BAND = 46.0


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


def qtransform(affine: Affine) -> QTransform:
    """The QTransform of an :class:`Affine`."""
    return QTransform(affine.a, affine.b, affine.c, affine.d, affine.e, affine.f)


def _ellipse_path(points: tuple[Point, ...]) -> QPainterPath:
    (x0, y0), (x1, y1), (x2, y2), (x3, y3) = points[:4]
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    a = math.hypot(x1 - x0, y1 - y0) / 2
    b = math.hypot(x3 - x2, y3 - y2) / 2
    path = QPainterPath()
    path.addEllipse(QPointF(0, 0), a, b)
    turn = QTransform()
    turn.translate(cx, cy)
    turn.rotateRadians(math.atan2(y1 - y0, x1 - x0))
    return turn.map(path)


def graphic_path(graphic: Graphic) -> QPainterPath:
    """The outline of a GSPS graphic in image coordinates."""
    pts = graphic.points
    path = QPainterPath()
    if not pts:
        return path
    if graphic.type == GraphicTypeValues.POINT:
        for x, y in pts:
            path.addEllipse(QPointF(x, y), 1.0, 1.0)
    elif graphic.type == GraphicTypeValues.CIRCLE and len(pts) >= 2:
        r = math.hypot(pts[1][0] - pts[0][0], pts[1][1] - pts[0][1])
        path.addEllipse(QPointF(*pts[0]), r, r)
    elif graphic.type == GraphicTypeValues.ELLIPSE and len(pts) >= 4:
        path = _ellipse_path(pts)
    else:
        # INTERPOLATED is drawn as a polyline through its points.
        path.moveTo(QPointF(*pts[0]))
        for p in pts[1:]:
            path.lineTo(QPointF(*p))
    return path


def shutter_path(shutter: Shutter, size: tuple[int, int]) -> QPainterPath:
    """The part of the image a shutter leaves visible (its shapes' overlap),
    in image coordinates; 1-based pixel positions become pixel edges."""
    columns, rows = size
    visible = QPainterPath()
    visible.addRect(QRectF(0, 0, columns, rows))
    if shutter.rectangle is not None:
        left, right, upper, lower = shutter.rectangle
        shape = QPainterPath()
        shape.addRect(QRectF(left - 1, upper - 1, right - left + 1, lower - upper + 1))
        visible = visible.intersected(shape)
    if shutter.circle is not None:
        (column, row), radius = shutter.circle
        shape = QPainterPath()
        shape.addEllipse(QPointF(column - 0.5, row - 0.5), radius, radius)
        visible = visible.intersected(shape)
    if shutter.polygon is not None and len(shutter.polygon) >= 3:
        shape = QPainterPath()
        shape.addPolygon(
            QPolygonF([QPointF(c - 0.5, r - 0.5) for c, r in shutter.polygon])
        )
        shape.closeSubpath()
        visible = visible.intersected(shape)
    return visible


class ImageView(QWidget):
    """Shows one frame of a viewport with its annotations.

    Mouse: wheel = next/previous image, Ctrl+wheel = zoom, right-drag =
    window/level, middle-drag = pan; the left button does what the current
    :class:`ToolValues` says. The widget keeps no image logic of its own:
    the display state, the frame and the reference lines are given to it.
    """

    #: Wheel steps, +1 = next image.
    slice_step_requested = Signal(int)
    #: A window/level drag: (dx, dy) in screen pixels since the press, and
    #: whether the drag just started.
    window_dragged = Signal(float, float, bool)
    #: Zoom, pan, rotation or flip changed.
    transform_changed = Signal()
    #: A tool finished an outline: (tool, points in image coordinates).
    drawing_finished = Signal(str, list)
    #: An annotation was selected or deleted.
    selection_changed = Signal()
    annotations_changed = Signal()
    #: The user pressed a button in the view (it becomes the active one).
    pressed = Signal()
    #: The widget changed size (a fitted image changed scale with it).
    resized = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(80, 80)
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.display = DisplayState()
        self.tool = ToolValues.POINTER
        self.drawing: Drawing | None = None
        self.selected: Annotation | None = None
        self.active = False
        self.key_image = False
        #: What the edge letters say (from Image Orientation (Patient) or
        #: Patient Orientation); None shows no letters.
        self.orientation: Orientation | None = None
        self.reference_lines: list[tuple[tuple[Point, Point], QColor]] = []
        #: Overlay planes: (image, column, row of its top left pixel, 0-based).
        self.overlays: list[tuple[QImage, int, int]] = []
        self._image: QImage | None = None
        self._sop = ""
        self._frame = 1
        self._size = (0, 0)
        self._aspect = 1.0
        self._placeholder = ""
        self._warnings: list[str] = []
        self._corners = {"tl": "", "tr": "", "bl": "", "br": ""}
        self._drag_button: Qt.MouseButton | None = None
        self._drag_start = QPointF()
        self._last = QPointF()
        self._wheel_rest = 0

    # -- content ---------------------------------------------------------

    def set_frame(
        self,
        image: QImage | None,
        sop_instance_uid: str = "",
        frame: int = 1,
        aspect: float = 1.0,
        placeholder: str = "",
    ) -> None:
        """Show *image* (frame *frame*, 1-based, of an image), or a
        placeholder text when it is None."""
        self._image = image
        self._sop = sop_instance_uid
        self._frame = frame
        self._aspect = aspect if aspect > 0 else 1.0
        if image is not None:
            self._size = (image.width(), image.height())
        self._placeholder = placeholder
        if self.selected is not None and self.selected not in self.annotations():
            self.selected = None
        self.update()

    def set_image(self, image: QImage | None, placeholder: str = "") -> None:
        """Replace the pixels only (same frame, new window)."""
        self._image = image
        self._placeholder = placeholder
        self.update()

    @property
    def placeholder(self) -> str:
        """The text shown instead of an image, empty when there is one."""
        return self._placeholder if self._image is None else ""

    def set_warnings(self, warnings: list[str]) -> None:
        """What the pipeline tolerated in the frame shown (Pixel Data short,
        a rescale or window that cannot be right), shown in red over the
        image so that missing or doubtful pixels never pass for real ones."""
        if warnings != self._warnings:
            self._warnings = list(warnings)
            self.setToolTip("\n".join(self._warnings))
            self.update()

    @property
    def warnings(self) -> list[str]:
        """The warnings painted over the frame shown."""
        return list(self._warnings) if self._image is not None else []

    def set_corner_text(self, corner: str, text: str) -> None:
        """Set the overlay of a corner: ``tl``, ``tr``, ``bl`` or ``br``."""
        if self._corners.get(corner) != text:
            self._corners[corner] = text
            self.update()

    def corner_text(self, corner: str) -> str:
        """The overlay text of a corner, as painted."""
        return self._corners[corner]

    def image_size(self) -> tuple[int, int]:
        """(columns, rows) of the frame shown, (0, 0) without one."""
        return self._size if self._image is not None else (0, 0)

    def view_size(self) -> tuple[int, int]:
        """(width, height) of the widget."""
        return (self.width(), self.height())

    def transform(self) -> Affine:
        """Image-to-screen mapping in force."""
        screen = self.screen()
        dpi = screen.physicalDotsPerInchX() if screen is not None else 0.0
        return self.display.transform(
            self._sop,
            self._frame,
            self._size,
            self.view_size(),
            self._aspect,
            25.4 / dpi if dpi > 0 else None,
        )

    def to_image(self, pos: QPointF) -> Point:
        """Image coordinates of a widget position."""
        return self.transform().inverse().map(pos.x(), pos.y())

    def to_screen(self, point: Point) -> QPointF:
        """Widget position of an image point."""
        return QPointF(*self.transform().map(*point))

    def annotations(self) -> list[Annotation]:
        """The annotations of the frame shown."""
        if not self._sop:
            return []
        return self.display.annotations_for(self._sop, self._frame)

    def set_tool(self, tool: ToolValues) -> None:
        """Choose what the left button does; a drawing in progress is dropped."""
        self.tool = ToolValues(tool)
        self.drawing = None
        cursor = (
            Qt.CursorShape.CrossCursor
            if self.tool in DRAWING_TOOLS
            else Qt.CursorShape.ArrowCursor
        )
        self.setCursor(cursor)
        self.update()

    # -- painting --------------------------------------------------------

    def paintEvent(self, _event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor(0, 0, 0))
        if self._image is not None and self._size[0] > 0:
            t = qtransform(self.transform())
            painter.save()
            painter.setTransform(t)
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
            painter.drawImage(QRectF(0, 0, *self._size), self._image)
            for overlay, column, row in self.overlays:
                painter.drawImage(
                    QRectF(column, row, overlay.width(), overlay.height()), overlay
                )
            self._paint_shutter(painter)
            painter.restore()
            painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
            self._paint_annotations(painter, t)
            self._paint_drawing(painter, t)
            self._paint_reference_lines(painter, t)
            self._paint_orientation(painter)
            self._paint_warnings(painter)
        elif self._placeholder:
            painter.fillRect(self.rect().adjusted(8, 8, -8, -8), QColor(40, 40, 44))
            painter.setPen(QColor(230, 200, 120))
            painter.drawText(
                self.rect().adjusted(24, 24, -24, -24),
                Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                self._placeholder,
            )
        self._paint_overlays(painter)
        if self.key_image:
            self._paint_key_marker(painter)
        if self.active:
            painter.setPen(QPen(QColor(255, 170, 0), 2))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRect(self.rect().adjusted(1, 1, -1, -1))
        painter.end()

    def _paint_shutter(self, painter: QPainter) -> None:
        shutter = self.display.state.shutter
        if shutter is None or not shutter.shapes:
            return
        outside = QPainterPath()
        # Cover well beyond the image so that the whole viewport is shut.
        outside.addRect(QRectF(-1e5, -1e5, 2e5, 2e5))
        outside = outside.subtracted(shutter_path(shutter, self._size))
        grey = round(shutter.value / 65535 * 255)
        painter.fillPath(outside, QColor(grey, grey, grey))

    def _pen(self, color: QColor, width: float = 1.6) -> QPen:
        pen = QPen(color, width)
        pen.setCosmetic(True)
        return pen

    def label_boxes(self) -> list[tuple[Annotation, TextLabel, QRectF]]:
        """Every text of the frame's annotations with the screen box it is
        painted in (what a click on the text hits), in painting order."""
        if self._image is None or self._size[0] <= 0:
            return []
        t = qtransform(self.transform())
        metrics = QFontMetricsF(self._overlay_font())
        out = []
        for annotation in self.annotations():
            for label in annotation.texts:
                if label.box is not None:
                    top_left = t.map(QPointF(*label.box[0]))
                elif label.anchor is not None:
                    top_left = t.map(QPointF(*label.anchor))
                else:
                    continue
                lines = label.text.splitlines() or [""]
                box = QRectF(
                    top_left.x(),
                    top_left.y(),
                    max(metrics.horizontalAdvance(s) for s in lines) + 4,
                    metrics.height() * len(lines) + 2,
                )
                out.append((annotation, label, box))
        return out

    def annotation_at(self, pos: QPointF) -> Annotation | None:
        """The annotation a click at widget position *pos* selects: the one
        whose text it falls on (the topmost), else the one whose outline is
        within :data:`PICK_PIXELS` of it."""
        margin = PICK_PIXELS / 2
        for annotation, _label, box in reversed(self.label_boxes()):
            if box.adjusted(-margin, -margin, margin, margin).contains(pos):
                return annotation
        return pick(self.to_image(pos), self.annotations(), self._tolerance())

    def _paint_annotations(self, painter: QPainter, t: QTransform) -> None:
        painter.setFont(self._overlay_font())
        boxes: dict[int, list[tuple[TextLabel, QRectF]]] = {}
        for annotation, label, box in self.label_boxes():
            boxes.setdefault(id(annotation), []).append((label, box))
        for annotation in self.annotations():
            r, g, b = self.display.layer_color(annotation.layer)
            color = QColor(r, g, b)
            width = 2.6 if annotation is self.selected else 1.6
            if annotation is self.selected:
                color = color.lighter(140)
            for graphic in annotation.graphics:
                path = t.map(graphic_path(graphic))
                painter.setPen(self._pen(QColor(0, 0, 0, 160), width + 1.5))
                painter.setBrush(Qt.BrushStyle.NoBrush)
                painter.drawPath(path)
                painter.setPen(self._pen(color, width))
                if graphic.filled:
                    painter.setBrush(QBrush(color))
                painter.drawPath(path)
            painter.setBrush(Qt.BrushStyle.NoBrush)
            for label, box in boxes.get(id(annotation), []):
                if label.box is not None and label.anchor is not None:
                    if label.anchor_visible:
                        painter.setPen(self._pen(color))
                        painter.drawLine(box.center(), t.map(QPointF(*label.anchor)))
                painter.fillRect(box, QColor(0, 0, 0, 140))
                if annotation is self.selected:
                    painter.setPen(self._pen(color, 1.0))
                    painter.drawRect(box)
                painter.setPen(color)
                painter.drawText(
                    box.adjusted(2, 1, 0, 0),
                    Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop,
                    label.text,
                )

    def _paint_drawing(self, painter: QPainter, t: QTransform) -> None:
        if self.drawing is None:
            return
        points = self.drawing.preview()
        if len(points) < 2:
            return
        painter.setPen(self._pen(QColor(255, 120, 0), 1.4))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        tool = self.drawing.tool
        a, b = points[0], points[-1]
        if tool in (ToolValues.RECTANGLE, ToolValues.SHUTTER_RECTANGLE):
            rect = QRectF(QPointF(*a), QPointF(*b)).normalized()
            painter.drawPolygon(t.map(QPolygonF(rect)))
        elif tool == ToolValues.ELLIPSE:
            path = QPainterPath()
            path.addEllipse(QRectF(QPointF(*a), QPointF(*b)).normalized())
            painter.drawPath(t.map(path))
        elif tool == ToolValues.SHUTTER_CIRCLE:
            path = QPainterPath()
            path.addEllipse(QPointF(*a), math.dist(a, b), math.dist(a, b))
            painter.drawPath(t.map(path))
        else:
            painter.drawPolyline(t.map(QPolygonF([QPointF(*p) for p in points])))

    def _paint_reference_lines(self, painter: QPainter, t: QTransform) -> None:
        for (p, q), color in self.reference_lines:
            pen = self._pen(color, 1.2)
            pen.setStyle(Qt.PenStyle.DashLine)
            painter.setPen(pen)
            painter.drawLine(t.map(QPointF(*p)), t.map(QPointF(*q)))

    def orientation_labels(self) -> dict[str, str]:
        """The letters shown at the ``left``, ``right``, ``top`` and
        ``bottom`` edges: the patient directions the screen points to there,
        after zoom, rotation and flip; empty without an orientation."""
        orientation = self.orientation
        if orientation is None or self._image is None:
            return {}
        inverse = self.transform().inverse()
        labels = {}
        for name, (dx, dy) in {
            "left": (-1, 0),
            "right": (1, 0),
            "top": (0, -1),
            "bottom": (0, 1),
        }.items():
            ix = inverse.a * dx + inverse.c * dy
            iy = inverse.b * dx + inverse.d * dy
            labels[name] = orientation.label(ix, iy)
        return labels

    def _orientation_boxes(self) -> dict[str, tuple[QRectF, Qt.AlignmentFlag]]:
        w, h = float(self.width()), float(self.height())
        return {
            "left": (QRectF(6, 0, 40, h), Qt.AlignmentFlag.AlignVCenter),
            "right": (
                QRectF(w - 46, 0, 40, h),
                Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight,
            ),
            "top": (QRectF(0, 4, w, 20), Qt.AlignmentFlag.AlignHCenter),
            "bottom": (QRectF(0, h - 24, w, 20), Qt.AlignmentFlag.AlignHCenter),
        }

    def orientation_rects(self) -> dict[str, QRectF]:
        """Where each edge letter is painted (its text's bounding box)."""
        metrics = QFontMetricsF(self._overlay_font())
        labels = self.orientation_labels()
        return {
            name: metrics.boundingRect(rect, flags, labels.get(name, ""))
            for name, (rect, flags) in self._orientation_boxes().items()
        }

    def _paint_orientation(self, painter: QPainter) -> None:
        labels = self.orientation_labels()
        if not labels:
            return
        painter.setFont(self._overlay_font())
        painter.setPen(QColor(255, 255, 160))
        for name, (rect, flags) in self._orientation_boxes().items():
            painter.drawText(rect, flags, labels[name])

    def _overlay_font(self) -> QFont:
        font = QFont(self.font())
        font.setPointSizeF(max(8.0, font.pointSizeF()))
        return font

    def warning_rect(self) -> QRectF:
        """Where the warnings are painted: a band under the top letter."""
        font = self._overlay_font()
        font.setBold(True)
        metrics = QFontMetricsF(font)
        lines = min(len(self._warnings), WARNING_LINES)
        width = min(self.width() - 16.0, max(200.0, self.width() * 0.6))
        height = lines * metrics.lineSpacing() + 6
        return QRectF((self.width() - width) / 2, TOP_BAND, width, height)

    def _paint_warnings(self, painter: QPainter) -> None:
        if not self._warnings:
            return
        font = self._overlay_font()
        font.setBold(True)
        painter.setFont(font)
        metrics = QFontMetricsF(font)
        box = self.warning_rect()
        painter.fillRect(box, QColor(0, 0, 0, 190))
        painter.setPen(WARNING_COLOR)
        y = box.top() + 3
        for text in self._warnings[:WARNING_LINES]:
            line = metrics.elidedText(
                f"\u26a0 {text}", Qt.TextElideMode.ElideRight, box.width() - 8
            )
            painter.drawText(
                QRectF(box.left() + 4, y, box.width() - 8, metrics.lineSpacing()),
                Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignVCenter,
                line,
            )
            y += metrics.lineSpacing()

    def key_marker_polygon(self) -> QPolygonF:
        """The star of a key image: centred under the top orientation
        letter, so that it covers neither the letter nor the corners."""
        size = KEY_STAR_SIZE
        cx, cy = self.width() / 2, KEY_STAR_Y
        return QPolygonF(
            [
                QPointF(
                    cx
                    + (size if i % 2 == 0 else size / 2.4)
                    / 2
                    * math.sin(i * math.pi / 5),
                    cy
                    - (size if i % 2 == 0 else size / 2.4)
                    / 2
                    * math.cos(i * math.pi / 5),
                )
                for i in range(10)
            ]
        )

    def _paint_key_marker(self, painter: QPainter) -> None:
        painter.setPen(QPen(QColor(0, 0, 0), 1))
        painter.setBrush(QColor(255, 200, 0))
        painter.drawPolygon(self.key_marker_polygon())
        painter.setBrush(Qt.BrushStyle.NoBrush)

    def _paint_overlays(self, painter: QPainter) -> None:
        font = QFont(self.font())
        font.setPointSizeF(max(8.0, font.pointSizeF()))
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

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self.resized.emit()

    # -- mouse -----------------------------------------------------------

    def _tolerance(self) -> float:
        scale = self.transform().scale if self._image is not None else 1.0
        return PICK_PIXELS / max(scale, 1e-6)

    def wheelEvent(self, event: QWheelEvent) -> None:
        delta = event.angleDelta().y()
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            if self._image is not None and delta:
                pos = event.position()
                self.zoom_at(1.15 ** (delta / 120), (pos.x(), pos.y()))
            event.accept()
            return
        # High-resolution wheels send small deltas; one image per 120.
        self._wheel_rest += delta
        steps = int(self._wheel_rest / 120)
        if steps:
            self._wheel_rest -= steps * 120
            self.slice_step_requested.emit(-steps)
        event.accept()

    def zoom_at(self, factor: float, point: tuple[float, float]) -> None:
        """Zoom by *factor* around a widget position."""
        self.display.zoom_at(factor, point, self.transform(), self.view_size())
        self.transform_changed.emit()
        self.update()

    def pan_by(self, dx: float, dy: float) -> None:
        """Move the image by widget pixels."""
        self.display.pan_by(dx, dy, self.transform(), self.view_size())
        self.transform_changed.emit()
        self.update()

    def mousePressEvent(self, event: QMouseEvent) -> None:
        self.pressed.emit()
        self.setFocus(Qt.FocusReason.MouseFocusReason)
        button = event.button()
        pos = event.position()
        if self._image is None:
            event.accept()
            return
        if button == Qt.MouseButton.LeftButton and self.tool in DRAWING_TOOLS:
            if self.drawing is None or self.drawing.tool != self.tool:
                self.drawing = Drawing(self.tool, self._tolerance())
            self.drawing.press(self.to_image(pos))
            self._finish_if_done()
            self.update()
            event.accept()
            return
        if button == Qt.MouseButton.LeftButton and self.tool == ToolValues.POINTER:
            hit = self.annotation_at(pos)
            if hit is not self.selected:
                self.selected = hit
                self.selection_changed.emit()
                self.update()
            if hit is not None:
                event.accept()
                return
        self._drag_button = button
        self._drag_start = pos
        self._last = pos
        if self._left_role(button) == ToolValues.WINDOW:
            self.window_dragged.emit(0.0, 0.0, True)
        event.accept()

    def _left_role(self, button: Qt.MouseButton) -> ToolValues | None:
        if button == Qt.MouseButton.RightButton:
            return ToolValues.WINDOW
        if button == Qt.MouseButton.MiddleButton:
            return ToolValues.PAN
        if button == Qt.MouseButton.LeftButton:
            if self.tool == ToolValues.POINTER:
                return ToolValues.PAN
            if self.tool in (ToolValues.WINDOW, ToolValues.PAN, ToolValues.ZOOM):
                return self.tool
        return None

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        pos = event.position()
        if self.drawing is not None and self._image is not None:
            self.drawing.move(self.to_image(pos))
            self.update()
        if self._drag_button is None:
            event.accept()
            return
        role = self._left_role(self._drag_button)
        if role == ToolValues.WINDOW:
            self.window_dragged.emit(
                pos.x() - self._drag_start.x(), pos.y() - self._drag_start.y(), False
            )
        elif role == ToolValues.PAN:
            self.pan_by(pos.x() - self._last.x(), pos.y() - self._last.y())
        elif role == ToolValues.ZOOM:
            dy = pos.y() - self._last.y()
            self.zoom_at(1.01 ** (-dy), (self._drag_start.x(), self._drag_start.y()))
        self._last = pos
        event.accept()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if (
            event.button() == Qt.MouseButton.LeftButton
            and self.drawing is not None
            and self._image is not None
        ):
            self.drawing.release(self.to_image(event.position()))
            self._finish_if_done()
            self.update()
            event.accept()
            return
        if event.button() == self._drag_button:
            self._drag_button = None
        event.accept()

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:
        if event.button() != Qt.MouseButton.LeftButton:
            event.accept()
            return
        if self.drawing is not None:
            if self.drawing.close():
                self._finish_if_done()
            self.update()
            event.accept()
            return
        if self.tool == ToolValues.POINTER and self.selected is None:
            # Double-click fits the image again; a common gesture in viewers.
            self.display.fit()
            self.transform_changed.emit()
            self.update()
        event.accept()

    def _finish_if_done(self) -> None:
        drawing = self.drawing
        if drawing is None or not drawing.finished:
            return
        self.drawing = None
        if drawing.points:
            self.drawing_finished.emit(drawing.tool.value, list(drawing.points))

    def keyPressEvent(self, event: QKeyEvent) -> None:
        key = event.key()
        if key in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace) and self.selected:
            if self.display.remove_annotation(self.selected):
                self.selected = None
                self.annotations_changed.emit()
                self.update()
            event.accept()
            return
        if key == Qt.Key.Key_Escape and (self.drawing or self.selected):
            self.drawing = None
            self.selected = None
            self.update()
            event.accept()
            return
        if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and self.drawing is not None:
            if self.drawing.close():
                self._finish_if_done()
            self.update()
            event.accept()
            return
        event.ignore()  # the viewport and the study viewer take the rest
