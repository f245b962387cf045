"""The reading viewer of one study: a grid of viewports, the series strip,
the toolbar, presentation states and key images.

The toolbar acts on the active viewport (framed in orange; a click or a
drop makes a viewport active). Reference lines show where the active
viewport's slice cuts the others of the same frame of reference;
synchronized scrolling moves parallel series of the same frame of
reference to the active one's slice position.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import pydicom
import shiboken6
from PySide6.QtCore import QMimeData, QRect, QSize, Qt, QTimer, Signal
from PySide6.QtGui import (
    QAction,
    QActionGroup,
    QColor,
    QFont,
    QFontMetrics,
    QIcon,
    QKeyEvent,
    QPainter,
    QPixmap,
)
from PySide6.QtWidgets import (
    QDoubleSpinBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QSplitter,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QToolBar,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from jivex_client.core_link import CoreError, CoreLink
from jivex_client.tasks import spawn
from jivex_client.text import format_date, format_person_name
from jivex_client.viewer import documents
from jivex_client.viewer.attributes import AttributesView, attribute_rows
from jivex_client.viewer.dialogs import SaveKeyImagesDialog, SavePresentationDialog
from jivex_client.viewer.geometry import nearest_slice, reference_line
from jivex_client.viewer.image_view import to_qimage
from jivex_client.viewer.loader import (
    FrameLoader,
    FrameRef,
    background,
    executor,
    read_dataset,
    series_thumbnail,
)
from jivex_client.viewer.overlay import OverlayTemplates
from jivex_client.viewer.presets import presets_for
from jivex_client.viewer.references import (
    ImageCheck,
    check_images,
    left_out_text,
    read_headers,
    restrict_state,
)
from jivex_client.viewer.state import GridLayout, KeyImages
from jivex_client.viewer.tools import ToolValues
from jivex_client.viewer.viewport import SERIES_MIME, SeriesViewer, frame_refs
from jivex_core.imaging.gsps import GSPS_SOP_CLASS, presentation_from_dataset
from jivex_core.imaging.ko import key_objects_from_dataset
from jivex_core.imaging.presentation import (
    Code,
    ImageRef,
    KeyObjectSelection,
    PresentationState,
    selection_to_dict,
    state_to_dict,
)

logger = logging.getLogger(__name__)

#: Role of list items holding their row.
RowRole = Qt.ItemDataRole.UserRole + 1
#: Role of a thumbnail's note under its caption ("cannot render", "PDF").
NoteRole = Qt.ItemDataRole.UserRole + 2

REFERENCE_COLOR = QColor(80, 200, 255)
THUMBNAIL_SIZE = 96
#: Width of the series strip and the document list beside the viewports.
SIDE_WIDTH = 200

#: Layouts offered in the menu, rows x columns.
LAYOUTS = [(r, c) for r in range(1, 5) for c in range(1, 5)]

#: Content Label of a presentation saved with key images.
KEY_IMAGES_LABEL = "KEY IMAGES"

#: Milliseconds between a GSPS or KO of the study stored and the list asked
#: again (several stored in a row are listed once).
DOCUMENTS_DELAY_MS = 300

#: Longest wait for the first image before thumbnails are rendered anyway.
FIRST_FRAME_WAIT = 5.0
#: Seconds between the first image shown and the work that can wait.
BACKGROUND_DELAY = 0.1


class DocumentList(QListWidget):
    """The presentation states and key object documents of the study; Enter
    applies the current one, as a click does."""

    #: The reader chose an item with the keyboard.
    item_chosen = Signal(QListWidgetItem)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            item = self.currentItem()
            if item is not None:
                self.item_chosen.emit(item)
                event.accept()
                return
        super().keyPressEvent(event)


class ThumbnailDelegate(QStyledItemDelegate):
    """Paints a thumbnail and its caption: each line elided to the width
    (the whole text is the tooltip), the note in a line of its own."""

    LINES = 4

    def sizeHint(self, option: QStyleOptionViewItem, index: Any) -> QSize:
        metrics = QFontMetrics(option.font)
        height = THUMBNAIL_SIZE + 10 + self.LINES * metrics.lineSpacing()
        return QSize(THUMBNAIL_SIZE + 24, height)

    def paint(
        self, painter: QPainter, option: QStyleOptionViewItem, index: Any
    ) -> None:
        painter.save()
        rect = option.rect
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        palette = option.palette
        if selected:
            painter.fillRect(rect, palette.highlight())
        icon = index.data(Qt.ItemDataRole.DecorationRole)
        if isinstance(icon, QIcon):
            pixmap = icon.pixmap(THUMBNAIL_SIZE, THUMBNAIL_SIZE)
            x = rect.x() + (rect.width() - pixmap.width()) // 2
            painter.drawPixmap(x, rect.y() + 4, pixmap)
        font = index.data(Qt.ItemDataRole.FontRole)
        font = QFont(font) if isinstance(font, QFont) else QFont(option.font)
        painter.setFont(font)
        metrics = QFontMetrics(font)
        width = rect.width() - 6
        lines = str(index.data(Qt.ItemDataRole.DisplayRole) or "").split("\n")
        note = index.data(NoteRole)
        y = rect.y() + THUMBNAIL_SIZE + 8
        text_color = palette.highlightedText() if selected else palette.text()
        for line in lines[: self.LINES - (1 if note else 0)]:
            painter.setPen(text_color.color())
            painter.drawText(
                QRect(rect.x() + 3, y, width, metrics.lineSpacing()),
                int(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignVCenter),
                metrics.elidedText(line, Qt.TextElideMode.ElideRight, width),
            )
            y += metrics.lineSpacing()
        if note:
            italic = QFont(font)
            italic.setItalic(True)
            italic.setBold(False)
            painter.setFont(italic)
            painter.setPen(QColor(200, 60, 60))
            text = f"({note})"
            painter.drawText(
                QRect(rect.x() + 3, y, width, metrics.lineSpacing()),
                int(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignVCenter),
                QFontMetrics(italic).elidedText(
                    text, Qt.TextElideMode.ElideRight, width
                ),
            )
        painter.restore()


class ThumbnailStrip(QListWidget):
    """The series of the study as thumbnails; drag one onto a viewport."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setItemDelegate(ThumbnailDelegate(self))
        self.setUniformItemSizes(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollMode(QListWidget.ScrollMode.ScrollPerPixel)
        self.setIconSize(QSize(THUMBNAIL_SIZE, THUMBNAIL_SIZE))
        self.setSpacing(2)
        self.setDragEnabled(True)
        self.setDragDropMode(QListWidget.DragDropMode.DragOnly)

    def mimeTypes(self) -> list[str]:
        return [SERIES_MIME]

    def mimeData(self, items: Any) -> QMimeData:
        data = QMimeData()
        if items:
            row = items[0].data(RowRole) or {}
            data.setData(SERIES_MIME, str(row.get("SeriesInstanceUID", "")).encode())
        return data

    def caption_lines(self, index: int) -> list[str]:
        """The lines painted under thumbnail *index*, as painted (elided)."""
        item = self.item(index)
        font = item.font()
        metrics = QFontMetrics(font)
        width = self.viewport().width() - 2 * self.spacing() - 6
        lines = item.text().split("\n")
        note = item.data(NoteRole)
        lines = lines[: ThumbnailDelegate.LINES - (1 if note else 0)]
        out = [metrics.elidedText(x, Qt.TextElideMode.ElideRight, width) for x in lines]
        if note:
            out.append(f"({note})")
        return out


def _series_text(row: dict[str, Any]) -> str:
    count = row.get("NumberOfSeriesRelatedInstances") or 0
    description = str(row.get("SeriesDescription") or "")
    head = f"{row.get('Modality') or ''} {row.get('SeriesNumber') or ''}".strip()
    return f"{head}\n{description}\n{count} obj"


def _series_tooltip(row: dict[str, Any]) -> str:
    count = row.get("NumberOfSeriesRelatedInstances") or 0
    head = f"{row.get('Modality') or ''} {row.get('SeriesNumber') or ''}".strip()
    description = str(row.get("SeriesDescription") or "")
    return f"{head}: {description} ({count} obj)" if description else head


class StudyViewer(QWidget):
    """Every series of one study in a layout of 1x1 to 4x4 viewports."""

    #: The active viewport changed.
    active_changed = Signal(object)
    #: The presentation states and key object documents were listed.
    documents_changed = Signal()
    #: A GSPS or KO was saved (its reply from the core).
    document_saved = Signal(dict)
    #: A short message for the user (errors of saving, applying…).
    message_changed = Signal(str)

    def __init__(
        self,
        link: CoreLink | None,
        study: dict[str, Any],
        loader: FrameLoader | None = None,
        templates: OverlayTemplates | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.link = link
        self.study = study
        self.loader = loader or FrameLoader()
        self.templates = templates or OverlayTemplates()
        self.key_images = KeyImages()
        #: For each flagged image: its viewport, what that viewport showed
        #: (generation) and the stored GSPS it was shown with, at flag time.
        self._key_sources: dict[
            str, tuple[SeriesViewer, int, tuple[ImageRef, frozenset[str]] | None]
        ] = {}
        self.series_rows: list[dict[str, Any]] = []
        self.instances: dict[str, list[dict[str, Any]]] = {}
        self.document_rows: list[dict[str, Any]] = []
        self.layout_grid = GridLayout(1, 1)
        self._viewports: list[SeriesViewer] = []
        self._active: SeriesViewer | None = None
        self.reference_lines = True
        self.sync_scrolling = False
        self.tool = ToolValues.POINTER
        # Set when the tab closes: background work for it stops.
        self._closing = threading.Event()

        self.thumbnails = ThumbnailStrip()
        self.document_list = DocumentList()
        self.document_list.setWordWrap(True)
        self.document_list.setHorizontalScrollBarPolicy(
            Qt.ScrollBarPolicy.ScrollBarAlwaysOff
        )
        self.document_list.setVerticalScrollMode(QListWidget.ScrollMode.ScrollPerPixel)
        self.document_list.setSpacing(2)
        self.document_list.setAlternatingRowColors(True)
        self.document_list.setMinimumHeight(60)
        self.document_list.setToolTip(
            self.tr("Presentation states and key images of the study")
        )
        self.attributes = AttributesView()
        self.attributes.setVisible(False)
        self.grid = QWidget()
        self.grid.setObjectName("viewportGrid")
        # By name: a plain rule would paint the documents' widgets black too.
        self.grid.setStyleSheet("#viewportGrid { background: #000; }")
        self.grid_layout = QGridLayout(self.grid)
        self.grid_layout.setContentsMargins(0, 0, 0, 0)
        self.grid_layout.setSpacing(2)
        self.message = QLabel()
        self.message.setStyleSheet("color: #c33;")
        self.toolbar = QToolBar()
        self.toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.toolbar2 = QToolBar()
        self.toolbar2.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self._build_toolbar()

        documents_box = QWidget()
        documents_layout = QVBoxLayout(documents_box)
        documents_layout.setContentsMargins(0, 0, 0, 0)
        documents_layout.setSpacing(2)
        documents_layout.addWidget(QLabel(self.tr("Presentations / key images")))
        documents_layout.addWidget(self.document_list, 1)
        # The reader shares the height between series and documents.
        self.side = QSplitter(Qt.Orientation.Vertical)
        self.side.addWidget(self.thumbnails)
        self.side.addWidget(documents_box)
        self.side.setChildrenCollapsible(False)
        self.side.setStretchFactor(0, 3)
        self.side.setStretchFactor(1, 2)
        # The side keeps its width (a splitter would hand it more than its
        # maximum); the attributes share the rest with the viewports.
        side_box = QWidget()
        side_box.setFixedWidth(SIDE_WIDTH)
        side_layout = QVBoxLayout(side_box)
        side_layout.setContentsMargins(0, 0, 0, 0)
        side_layout.addWidget(self.side)
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(self.grid)
        splitter.addWidget(self.attributes)
        splitter.setStretchFactor(0, 4)
        splitter.setStretchFactor(1, 2)
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(4)
        row.addWidget(side_box)
        row.addWidget(splitter, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.toolbar)
        layout.addWidget(self.toolbar2)
        layout.addLayout(row, 1)
        layout.addWidget(self.message)

        self.thumbnails.itemClicked.connect(self._on_thumbnails_item_clicked)
        self.document_list.itemClicked.connect(self._on_document_list_item_clicked)
        self.document_list.item_chosen.connect(self._on_document_list_item_clicked)
        # A GSPS or KO of this study stored from elsewhere (another viewer,
        # the command line, a modality) is listed as it arrives.
        self._documents_timer = QTimer(self)
        self._documents_timer.setSingleShot(True)
        self._documents_timer.setInterval(DOCUMENTS_DELAY_MS)
        self._documents_timer.timeout.connect(self._on_documents_timer_timeout)
        if link is not None:
            link.instance_stored.connect(self._on_link_instance_stored)
        self.set_layout(1, 1)

    # -- toolbar ---------------------------------------------------------

    def _action(
        self, text: str, slot: Any, shortcut: str = "", checkable: bool = False
    ) -> QAction:
        action = QAction(text, self)
        action.setCheckable(checkable)
        if shortcut:
            action.setToolTip(f"{text} ({shortcut})")
        action.triggered.connect(slot)
        return action

    def _build_toolbar(self) -> None:
        bar = self.toolbar
        layout_button = QToolButton()
        layout_button.setText(self.tr("Layout"))
        layout_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(layout_button)
        for rows, columns in LAYOUTS:
            act = menu.addAction(f"{rows} x {columns}")
            act.triggered.connect(
                lambda _checked=False, r=rows, c=columns: self.set_layout(r, c)
            )
        layout_button.setMenu(menu)
        bar.addWidget(layout_button)
        bar.addSeparator()

        self.tool_actions: dict[ToolValues, QAction] = {}
        group = QActionGroup(self)
        group.setExclusive(True)
        names = {
            ToolValues.POINTER: self.tr("Select"),
            ToolValues.WINDOW: self.tr("W/L"),
            ToolValues.PAN: self.tr("Pan"),
            ToolValues.ZOOM: self.tr("Zoom"),
            ToolValues.DISTANCE: self.tr("Distance"),
            ToolValues.ANGLE: self.tr("Angle"),
            ToolValues.RECTANGLE: self.tr("Rect ROI"),
            ToolValues.ELLIPSE: self.tr("Ellipse ROI"),
            ToolValues.POLYGON: self.tr("Polygon ROI"),
            ToolValues.ARROW: self.tr("Arrow"),
            ToolValues.TEXT: self.tr("Text"),
        }
        for tool, text in names.items():
            act = self._action(
                text, lambda _c=False, t=tool: self.set_tool(t), checkable=True
            )
            group.addAction(act)
            bar.addAction(act)
            self.tool_actions[tool] = act
        shutter_button = QToolButton()
        shutter_button.setText(self.tr("Shutter"))
        shutter_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        shutter_menu = QMenu(shutter_button)
        for tool, text in (
            (ToolValues.SHUTTER_RECTANGLE, self.tr("Rectangular shutter")),
            (ToolValues.SHUTTER_CIRCLE, self.tr("Circular shutter")),
            (ToolValues.SHUTTER_POLYGON, self.tr("Polygonal shutter")),
        ):
            act = self._action(
                text, lambda _c=False, t=tool: self.set_tool(t), checkable=True
            )
            group.addAction(act)
            shutter_menu.addAction(act)
            self.tool_actions[tool] = act
        shutter_menu.addSeparator()
        shutter_menu.addAction(self.tr("Remove shutter")).triggered.connect(
            lambda: self._on_active(lambda v: v.remove_shutter())
        )
        shutter_button.setMenu(shutter_menu)
        bar.addWidget(shutter_button)
        self.tool_actions[ToolValues.POINTER].setChecked(True)
        bar.addSeparator()

        self.preset_button = QToolButton()
        self.preset_button.setText(self.tr("Window"))
        self.preset_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.preset_menu = QMenu(self.preset_button)
        self.preset_menu.aboutToShow.connect(self._on_preset_menu_about_to_show)
        self.preset_button.setMenu(self.preset_menu)
        bar.addWidget(self.preset_button)
        self.invert_action = self._action(
            self.tr("Invert"), lambda: self._on_active(lambda v: v.invert()), "I"
        )
        bar.addAction(self.invert_action)
        for text, slot, key in (
            (
                self.tr("Rot ←"),
                lambda: self._on_active(lambda v: v.rotate(-90)),
                "Shift+R",
            ),
            (self.tr("Rot →"), lambda: self._on_active(lambda v: v.rotate(90)), "R"),
            (
                self.tr("Flip H"),
                lambda: self._on_active(lambda v: v.flip_horizontal()),
                "H",
            ),
            (
                self.tr("Flip V"),
                lambda: self._on_active(lambda v: v.flip_vertical()),
                "V",
            ),
            (self.tr("Fit"), lambda: self._on_active(lambda v: v.fit()), "F"),
            (self.tr("1:1"), lambda: self._on_active(lambda v: v.one_to_one()), "="),
            (
                self.tr("Reset"),
                lambda: self._on_active(lambda v: v.reset_view()),
                "Esc",
            ),
        ):
            bar.addAction(self._action(text, slot, key))
        bar = self.toolbar2

        self.cine_action = self._action(
            self.tr("Cine"), self._on_cine_action_triggered, "Space", checkable=True
        )
        bar.addAction(self.cine_action)
        self.fps_box = QDoubleSpinBox()
        self.fps_box.setRange(0.5, 120.0)
        self.fps_box.setDecimals(1)
        self.fps_box.setValue(15.0)
        self.fps_box.setSuffix(self.tr(" fps"))
        self.fps_box.setToolTip(self.tr("Cine frame rate"))
        self.fps_box.valueChanged.connect(self._on_fps_box_value_changed)
        bar.addWidget(self.fps_box)
        self.reference_action = self._action(
            self.tr("Ref lines"), self._on_reference_action_toggled, checkable=True
        )
        self.reference_action.setChecked(True)
        bar.addAction(self.reference_action)
        self.sync_action = self._action(
            self.tr("Sync"), self._on_sync_action_toggled, "S", checkable=True
        )
        bar.addAction(self.sync_action)
        bar.addSeparator()
        self.key_action = self._action(
            self.tr("Key image"), self._on_key_action_triggered, "K", checkable=True
        )
        bar.addAction(self.key_action)
        self.save_keys_action = self._action(
            self.tr("Save key images…"), self._on_save_keys_action_triggered
        )
        bar.addAction(self.save_keys_action)
        self.save_presentation_action = self._action(
            self.tr("Save presentation…"), self._on_save_presentation_action_triggered
        )
        bar.addAction(self.save_presentation_action)
        self.attributes_action = self._action(
            self.tr("Attributes"), self._on_attributes_action_toggled, checkable=True
        )
        bar.addAction(self.attributes_action)

    # -- viewports and layout --------------------------------------------

    def viewports(self) -> list[SeriesViewer]:
        """The viewports of the layout, row by row."""
        return list(self._viewports[: self.layout_grid.count])

    @property
    def active(self) -> SeriesViewer:
        """The viewport the toolbar acts on."""
        assert self._active is not None
        return self._active

    def set_active(self, viewport: SeriesViewer) -> None:
        """Make *viewport* the active one."""
        if viewport is self._active:
            return
        if self._active is not None:
            self._active.set_active(False)
        self._active = viewport
        viewport.set_active(True)
        self.cine_action.setChecked(viewport.playing)
        self._update_key_action()
        self.update_reference_lines()
        self.active_changed.emit(viewport)
        if self.attributes.isVisible():
            spawn(self._load_attributes(), "Reading the attributes")

    def set_layout(self, rows: int, columns: int) -> None:
        """Show *rows* x *columns* viewports; series shown stay where they are."""
        self.layout_grid = GridLayout(rows, columns)
        while len(self._viewports) < self.layout_grid.count:
            viewport = SeriesViewer(self.loader, self.templates, self.key_images)
            viewport.set_tool(self.tool)
            viewport.activated.connect(self._on_viewport_activated)
            viewport.series_dropped.connect(self._on_viewport_series_dropped)
            viewport.frame_shown.connect(self._on_viewport_frame_shown)
            viewport.slice_changed.connect(self._on_viewport_slice_changed)
            viewport.geometry_changed.connect(self._on_viewport_geometry_changed)
            viewport.cine_changed.connect(self._on_viewport_cine_changed)
            viewport.message_changed.connect(self._say)
            self._viewports.append(viewport)
        for i, viewport in enumerate(self._viewports):
            self.grid_layout.removeWidget(viewport)
            if i < self.layout_grid.count:
                row, column = self.layout_grid.position(i)
                self.grid_layout.addWidget(viewport, row, column)
                viewport.show()
            else:
                viewport.stop_cine()
                viewport.hide()
        for r in range(GridLayout.MAX):
            self.grid_layout.setRowStretch(r, 1 if r < rows else 0)
        for c in range(GridLayout.MAX):
            self.grid_layout.setColumnStretch(c, 1 if c < columns else 0)
        if self._active is None or self._active not in self.viewports():
            self._active = None
            self.set_active(self._viewports[0])
        self._fill_empty_viewports()

    def _fill_empty_viewports(self) -> None:
        """Give empty viewports the next series not shown yet."""
        shown = {v.series_uid for v in self.viewports() if v.series_uid}
        waiting = [
            row for row in self.image_series() if row["SeriesInstanceUID"] not in shown
        ]
        for viewport in self.viewports():
            if not viewport.refs and waiting and self.series_rows:
                row = waiting.pop(0)
                spawn(
                    self.show_series(row["SeriesInstanceUID"], viewport, False),
                    "Series",
                )

    def image_series(self) -> list[dict[str, Any]]:
        """Series rows that have something to show (not only GSPS/KO)."""
        return [
            row
            for row in self.series_rows
            if str(row.get("Modality") or "") not in ("PR", "KO")
        ]

    # -- loading -----------------------------------------------------------

    async def open(self, series_uid: str | None = None) -> None:
        """List the study's series, show *series_uid* (or the first) in the
        active viewport, and list presentation states and key images."""
        assert self.link is not None
        self.series_rows = await self.link.request(
            "list_series", {"StudyInstanceUID": self.study["StudyInstanceUID"]}
        )
        self._fill_thumbnails()
        target = series_uid
        if target is None:
            rows = self.image_series()
            target = rows[0]["SeriesInstanceUID"] if rows else None
        if target is not None:
            await self.show_series(target, self.active)
        self._fill_empty_viewports()
        spawn(self._after_first_frame(self.active), "Thumbnails and documents")

    async def _after_first_frame(self, viewport: SeriesViewer) -> None:
        """Thumbnails and the document list, once the first image is shown:
        they would slow it down (the interpreter lock, the link's replies)."""
        if viewport.refs and viewport.current is None:
            loop = asyncio.get_running_loop()
            shown: asyncio.Future[None] = loop.create_future()

            def on_shown(_index: int) -> None:
                if not shown.done():
                    shown.set_result(None)

            viewport.frame_shown.connect(on_shown)
            try:
                await asyncio.wait_for(shown, FIRST_FRAME_WAIT)
            except TimeoutError:
                pass
            finally:
                if shiboken6.isValid(viewport):
                    viewport.frame_shown.disconnect(on_shown)
        await asyncio.sleep(BACKGROUND_DELAY)
        if not shiboken6.isValid(self) or self._closing.is_set():
            return
        spawn(self.refresh_documents(), "Listing presentation states")
        await self._render_thumbnails()

    async def series_instances(self, uid: str) -> list[dict[str, Any]]:
        """The instance rows of a series (asked once)."""
        rows = self.instances.get(uid)
        if rows is None:
            assert self.link is not None
            rows = await self.link.request("list_instances", {"SeriesInstanceUID": uid})
            for row in rows:
                row.setdefault("SeriesInstanceUID", uid)
            self.instances[uid] = rows
        return rows

    def series_row(self, uid: str) -> dict[str, Any]:
        """The row of a series of the study (a minimal one when unknown)."""
        for row in self.series_rows:
            if row.get("SeriesInstanceUID") == uid:
                return row
        return {"SeriesInstanceUID": uid}

    async def show_series(
        self,
        uid: str,
        viewport: SeriesViewer | None = None,
        clear_message: bool = True,
    ) -> None:
        """Show series *uid* in *viewport* (default: the active one); the
        message line is cleared (the reader moved on) unless told not to."""
        viewport = viewport or self.active
        try:
            rows = await self.series_instances(uid)
        except CoreError as exc:
            self._say(self.tr("Cannot open the series: {error}").format(error=exc))
            return
        if not shiboken6.isValid(viewport):
            return
        viewport.load(self.study, self.series_row(uid), rows)
        if clear_message:
            self._say("")
        self._mark_shown_series()

    def _mark_shown_series(self) -> None:
        shown = {v.series_uid for v in self.viewports()}
        for i in range(self.thumbnails.count()):
            item = self.thumbnails.item(i)
            row = item.data(RowRole) or {}
            font = item.font()
            font.setBold(row.get("SeriesInstanceUID") in shown)
            item.setFont(font)

    def _fill_thumbnails(self) -> None:
        self.thumbnails.clear()
        for row in self.image_series():
            item = QListWidgetItem(_series_text(row))
            item.setData(RowRole, row)
            item.setToolTip(_series_tooltip(row))
            pixmap = QPixmap(THUMBNAIL_SIZE, THUMBNAIL_SIZE)
            pixmap.fill(QColor(30, 30, 34))
            item.setIcon(QIcon(pixmap))
            self.thumbnails.addItem(item)

    async def _render_thumbnails(self) -> None:
        """Render the thumbnails one after the other in the background
        worker, giving way to frame reads."""
        for i in range(self.thumbnails.count()):
            if not shiboken6.isValid(self) or self._closing.is_set():
                return
            item = self.thumbnails.item(i)
            if item is None:
                return
            await self._load_thumbnail(item, dict(item.data(RowRole) or {}))

    async def _load_thumbnail(self, item: QListWidgetItem, row: dict[str, Any]) -> None:
        uid = row["SeriesInstanceUID"]
        try:
            rows = await self.series_instances(uid)
        except CoreError as exc:
            logger.info("No thumbnail for series %s: %s", uid, exc)
            return
        refs = frame_refs(rows)
        if not refs or not shiboken6.isValid(self):
            return
        middle = refs[len(refs) // 2]
        kind = documents.object_kind(middle.SOPClassUID)
        if kind != documents.ObjectKindValues.IMAGE:
            item.setData(NoteRole, kind.value)
            return
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(
                background,
                series_thumbnail,
                refs,
                THUMBNAIL_SIZE,
                self._closing,
                self.loader.wait_idle,
            )
        except Exception as exc:
            logger.info("No thumbnail for series %s: %s", uid, exc)
            if not shiboken6.isValid(self):
                return
            try:
                item.setData(NoteRole, self.tr("cannot render"))
                item.setToolTip(f"{item.toolTip()}\n{exc}")
            except RuntimeError:
                pass  # the strip was cleared meanwhile
            return
        if result is None or not shiboken6.isValid(self):
            return
        pixels, _index = result
        try:
            item.setIcon(QIcon(QPixmap.fromImage(to_qimage(pixels))))
        except RuntimeError:
            pass  # the strip was cleared meanwhile

    # -- documents: GSPS and KO -----------------------------------------------

    async def refresh_documents(self) -> None:
        """List the presentation states and key object documents of the study
        (the core's ``study_documents``)."""
        if self.link is None:
            return
        try:
            rows = await self.link.request(
                "study_documents", {"StudyInstanceUID": self.study["StudyInstanceUID"]}
            )
        except CoreError as exc:
            logger.warning("Cannot list the study's presentation states: %s", exc)
            rows = []
        if not shiboken6.isValid(self):
            return
        self.document_rows = rows
        self.document_list.clear()
        for row in rows:
            kind = documents.object_kind(str(row.get("SOPClassUID") or ""))
            title = str(row.get("label") or "")
            text = str(row.get("description") or "")
            when = " ".join(
                part
                for part in (
                    format_date(str(row.get("date") or "")),
                    str(row.get("creator") or ""),
                )
                if part
            )
            if kind == documents.ObjectKindValues.KEY_OBJECTS:
                line = self.tr("Key images: {title}").format(title=title)
            else:
                line = self.tr("Presentation: {title}").format(title=title)
            refs = row.get("references") or []
            detail = "\n".join(
                part
                for part in (
                    text,
                    when,
                    self.tr("{n} image(s)").format(n=len(refs)) if refs else "",
                    self.tr("Cannot be read: {error}").format(error=row["error"])
                    if row.get("error")
                    else "",
                )
                if part
            )
            item = QListWidgetItem(f"{line}\n{detail}".strip())
            item.setData(RowRole, row)
            self.document_list.addItem(item)
        self.documents_changed.emit()

    async def apply_document(self, row: dict[str, Any]) -> None:
        """Apply a GSPS to the viewport of its series, or show the images of
        a KO; read from the stored file (read-only)."""
        self._say("")
        kind = documents.object_kind(str(row.get("SOPClassUID") or ""))
        what = (
            self.tr("The key object document")
            if kind == documents.ObjectKindValues.KEY_OBJECTS
            else self.tr("The presentation state")
        )
        loop = asyncio.get_running_loop()
        try:
            ds = await loop.run_in_executor(executor, read_dataset, str(row["path"]))
            if kind == documents.ObjectKindValues.KEY_OBJECTS:
                selection = await loop.run_in_executor(
                    executor, key_objects_from_dataset, ds
                )
                await self.show_key_images(selection, str(row.get("label") or ""))
            else:
                state = await loop.run_in_executor(
                    executor, presentation_from_dataset, ds
                )
                await self.show_presentation(state, _document_ref(row))
        except (CoreError, OSError, ValueError, KeyError) as exc:
            logger.warning("Cannot apply '%s': %s", row.get("path"), exc)
            self._say(
                self.tr("{what} cannot be shown: {error}").format(what=what, error=exc)
            )
        except pydicom.errors.InvalidDicomError as exc:
            self._say(
                self.tr("{what} cannot be read: {error}").format(what=what, error=exc)
            )

    async def _stored_paths(self, images: list[ImageRef]) -> dict[str, str]:
        """Where the stored ones of *images* are (SOP Instance UID to path),
        from their series' instance lists."""
        wanted = {r.SOPInstanceUID for r in images}
        series = []
        for ref in images:
            if ref.SeriesInstanceUID and ref.SeriesInstanceUID not in series:
                series.append(ref.SeriesInstanceUID)
        paths: dict[str, str] = {}
        for uid in series:
            try:
                rows = await self.series_instances(uid)
            except CoreError as exc:
                logger.info("Series %s: %s", uid, exc)
                continue
            for row in rows:
                if row.get("SOPInstanceUID") in wanted:
                    paths[str(row["SOPInstanceUID"])] = str(row["path"])
        if len(paths) < len(wanted):
            # References without their series: whatever this study lists.
            for rows in self.instances.values():
                for row in rows:
                    if row.get("SOPInstanceUID") in wanted:
                        paths.setdefault(str(row["SOPInstanceUID"]), str(row["path"]))
        return paths

    async def _check_images(
        self, images: list[ImageRef], viewport: SeriesViewer | None = None
    ) -> ImageCheck:
        """Which of *images* a grayscale state can apply to (stored, grey,
        readable; shown by *viewport* when one is given)."""
        if viewport is not None:
            paths = {r.SOPInstanceUID: r.path for r in viewport.refs}
            known = viewport.headers
        else:
            paths = await self._stored_paths(images)
            known = {}
        wanted = [paths[r.SOPInstanceUID] for r in images if r.SOPInstanceUID in paths]
        unread = [path for path in wanted if path not in known]
        headers = dict(known)
        if unread:
            loop = asyncio.get_running_loop()
            headers.update(
                await loop.run_in_executor(executor, read_headers, unread, None)
            )
        failures: dict[str, str] = {}
        if viewport is not None:
            for ref in viewport.refs:
                item = self.loader.cached(ref)
                if item is not None and item.frame is None and item.error:
                    failures.setdefault(ref.SOPInstanceUID, item.error)
        return check_images(images, paths, headers, failures)

    async def show_presentation(
        self, state: PresentationState, source: ImageRef | None = None
    ) -> bool:
        """Apply *state* to the viewport showing its images, else show the
        series of its first image in the active viewport and apply it there.

        Nothing changes when none of its images is stored here or all are
        colour (a grayscale state applies to grey images only, PS3.3
        A.33.1); images not stored are counted in the message. A state whose
        annotations lie on some images shows the first of them.
        """
        referenced = list(state.images)
        if not referenced:
            self._say(self.tr("The presentation state references no image."))
            return False
        check = await self._check_images(referenced)
        if not check.usable:
            if check.left_out:
                self._say(
                    self.tr(
                        "The presentation state was not applied: a grayscale "
                        "presentation state applies to grey images only, and the "
                        "images it references here are not: {which}."
                    ).format(which=left_out_text(check.left_out))
                )
            else:
                self._say(
                    self.tr(
                        "The presentation state was not applied: none of the {m} "
                        "images it references is stored here."
                    ).format(m=len(referenced))
                )
            return False
        usable = {r.SOPInstanceUID for r in check.usable}
        target = None
        for viewport in self.viewports():
            if any(ref.SOPInstanceUID in usable for ref in viewport.refs):
                target = viewport
                break
        if target is None:
            series = next(r.SeriesInstanceUID for r in check.usable)
            target = self.active
            await self.show_series(series, target, clear_message=False)
            if not any(ref.SOPInstanceUID in usable for ref in target.refs):
                self._say(
                    self.tr("The images of the presentation state are not shown.")
                )
                return False
        self.set_active(target)
        if len(check.usable) != len(referenced):
            state = restrict_state(state, check.usable)
        target.apply_presentation(state, source)
        self._go_to_presented(target, state, usable)
        notes = []
        if check.missing:
            notes.append(
                self.tr(
                    "{n} of the {m} images it references are not stored here"
                ).format(n=len(check.missing), m=len(referenced))
            )
        if check.left_out:
            notes.append(
                self.tr("{which} are not grey and are shown without it").format(
                    which=left_out_text(check.left_out)
                )
            )
        if notes:
            self._say(
                self.tr(
                    "The presentation state is shown on {n} image(s); {notes}."
                ).format(n=len(check.usable), notes="; ".join(notes))
            )
        return True

    def _go_to_presented(
        self, viewport: SeriesViewer, state: PresentationState, usable: set[str]
    ) -> None:
        """Show the first annotated frame of *state* when the one shown has
        no annotation, else the first frame it applies to when the one shown
        is not among them."""
        current = viewport.current_ref()
        if state.annotations and (
            current is None
            or not state.annotations_for(current.SOPInstanceUID, current.frame + 1)
        ):
            for index, ref in enumerate(viewport.refs):
                if ref.SOPInstanceUID in usable and state.annotations_for(
                    ref.SOPInstanceUID, ref.frame + 1
                ):
                    viewport.show_index(index)
                    return
        if current is None or current.SOPInstanceUID not in usable:
            for index, ref in enumerate(viewport.refs):
                if ref.SOPInstanceUID in usable:
                    viewport.show_index(index)
                    return

    async def show_key_images(self, selection: KeyObjectSelection, title: str) -> None:
        """Show exactly the images (and frames) of a key object selection in
        the active viewport, each with the presentation state the document
        names for it; say how many are not stored here."""
        refs: list[FrameRef] = []
        found: set[str] = set()
        by_series: dict[str, list[dict[str, Any]]] = {}
        for image in selection.images:
            uid = image.SeriesInstanceUID
            if uid and uid not in by_series:
                try:
                    by_series[uid] = await self.series_instances(uid)
                except CoreError as exc:
                    logger.warning("Key image series %s: %s", uid, exc)
                    by_series[uid] = []
        for image in selection.images:
            rows = by_series.get(image.SeriesInstanceUID) or [
                row for rows in self.instances.values() for row in rows
            ]
            for row in rows:
                if row.get("SOPInstanceUID") != image.SOPInstanceUID:
                    continue
                for ref in frame_refs([row]):
                    if image.covers(ref.SOPInstanceUID, ref.frame + 1):
                        refs.append(ref)
                        found.add(image.SOPInstanceUID)
                break
        total = len(selection.images)
        if not total:
            self._say(self.tr("The key object document flags no image."))
            return
        if not refs:
            self._say(
                self.tr("None of the {m} key images is stored here.").format(m=total)
            )
            return
        states = await self._key_image_states(selection, found)
        series = {
            "SeriesInstanceUID": "",
            "Modality": "KO",
            "SeriesDescription": title or selection.title.meaning,
        }
        self.active.load_refs(self.study, series, refs)
        if states:
            self.active.apply_image_states(states)
        missing = total - len({r.SOPInstanceUID for r in selection.images} & found)
        if missing:
            self._say(
                self.tr("{n} of {m} key images are not stored here.").format(
                    n=missing, m=total
                )
            )
        else:
            self._say("")

    async def _key_image_states(
        self, selection: KeyObjectSelection, found: set[str]
    ) -> dict[str, PresentationState]:
        """The presentation state each stored key image is to be shown with
        (the document's reference, read from its stored file)."""
        wanted: dict[str, ImageRef] = {}
        for image, state in zip(
            selection.images, selection.presentation_states, strict=False
        ):
            if state is not None and image.SOPInstanceUID in found:
                wanted[image.SOPInstanceUID] = state
        if not wanted:
            return {}
        paths = await self._stored_paths(list(wanted.values()))
        for row in self.document_rows:
            paths.setdefault(str(row.get("SOPInstanceUID")), str(row.get("path")))
        loop = asyncio.get_running_loop()
        read: dict[str, PresentationState | None] = {}
        out: dict[str, PresentationState] = {}
        for image_uid, ref in wanted.items():
            uid = ref.SOPInstanceUID
            if uid not in read:
                read[uid] = None
                path = paths.get(uid)
                if path is not None:
                    try:
                        ds = await loop.run_in_executor(executor, read_dataset, path)
                        read[uid] = await loop.run_in_executor(
                            executor, presentation_from_dataset, ds
                        )
                    except (
                        OSError,
                        ValueError,
                        pydicom.errors.InvalidDicomError,
                    ) as exc:
                        logger.warning(
                            "Presentation state %s of key images: %s", uid, exc
                        )
            state = read[uid]
            if state is not None:
                out[image_uid] = state
        return out

    def state_to_save(
        self, viewport: SeriesViewer, images: list[ImageRef] | None = None
    ) -> PresentationState:
        """The state of *viewport* ready to send: its images (or *images*)
        referenced, settings naming other images left out.

        Images without a VOI setting get their own window from the core when
        it writes the GSPS (a GSPS without one would show no window at all).
        """
        chosen = viewport.image_refs() if images is None else images
        return restrict_state(viewport.display.state, chosen)

    async def save_presentation(
        self,
        label: str,
        description: str = "",
        viewport: SeriesViewer | None = None,
    ) -> dict | None:
        """Write the active viewport's (or *viewport*'s) state as a GSPS
        (``save_presentation``), for its grey images that can be read; the
        others are left out, and the message line says which."""
        viewport = viewport or self.active
        if not viewport.image_refs():
            self._say(self.tr("A presentation state is saved for grey images only."))
            return None
        check = await self._check_images(viewport.image_refs(), viewport)
        if not check.usable:
            self._say(
                self.tr(
                    "The presentation was not saved: a presentation state applies to "
                    "grey images only, and none of these is one: {which}."
                ).format(which=left_out_text(check.left_out))
            )
            return None
        state = self.state_to_save(viewport, check.usable)
        state.label = label
        state.description = description
        assert self.link is not None
        try:
            reply = await self.link.request(
                "save_presentation", {"state": state_to_dict(state)}
            )
        except CoreError as exc:
            self._say(
                self.tr("The presentation was not saved: {error}").format(error=exc)
            )
            return None
        if shiboken6.isValid(viewport):
            viewport.mark_saved(
                ImageRef(
                    GSPS_SOP_CLASS,
                    str(reply["SOPInstanceUID"]),
                    str(reply.get("SeriesInstanceUID") or ""),
                ),
                check.usable,
            )
        if check.left_out:
            self._say(
                self.tr(
                    "The presentation was saved for {n} of {m} images; left out: "
                    "{which}."
                ).format(
                    n=len(check.usable),
                    m=check.total,
                    which=left_out_text(check.left_out),
                )
            )
        else:
            self._say("")
        self.document_saved.emit(reply)
        await self.refresh_documents()
        return reply

    def toggle_key_image(self) -> bool:
        """Flag or unflag the frame of the active viewport; True when flagged.

        The viewport is remembered with the flag: the presentation the image
        is shown with is saved with the key images.
        """
        viewport = self.active
        image = viewport.current_image_ref()
        if image is None:
            return False
        frame = image.frames[0] if image.frames else None
        flagged = self.key_images.toggle(image, frame)
        if flagged:
            self._key_sources[image.SOPInstanceUID] = (
                viewport,
                viewport.generation,
                viewport.saved_state,
            )
        for v in self.viewports():
            v.paint_current()
        self._update_key_action()
        return flagged

    async def _key_presentations(self, title: Code) -> list[ImageRef | None]:
        """The presentation state of each flagged image, in flag order.

        An image is referenced with the stored GSPS its viewport showed it
        with (applied from the list or saved), when the reader changed
        nothing since. A viewport whose presentation was changed and not
        saved gets it saved now (label ``KEY IMAGES``), so that the document
        shows the images as the reader saw them; an image shown as it comes
        (nothing changed) or no longer in its viewport is referenced alone.
        """
        out: list[ImageRef | None] = []
        saved: dict[int, tuple[ImageRef, frozenset[str]] | None] = {}
        for image in self.key_images.images:
            uid = image.SOPInstanceUID
            viewport, generation, at_flag = self._key_sources.get(uid, (None, -1, None))
            state = None
            alive = viewport is not None and shiboken6.isValid(viewport)
            if alive and viewport.generation == generation:
                if id(viewport) not in saved:
                    if viewport.saved_state is not None:
                        saved[id(viewport)] = viewport.saved_state
                    elif viewport.edited:
                        reply = await self.save_presentation(
                            KEY_IMAGES_LABEL, title.meaning, viewport
                        )
                        saved[id(viewport)] = viewport.saved_state if reply else None
                    else:
                        saved[id(viewport)] = None
                state = saved[id(viewport)]
            elif at_flag is not None:
                state = at_flag
            if state is not None and uid in state[1]:
                out.append(state[0])
            else:
                out.append(None)
        return out

    async def save_key_images(self, title: Code, text: str = "") -> dict | None:
        """Write the flagged images as a Key Object Selection document, each
        with the presentation state it is shown with."""
        if not self.key_images.images:
            self._say(self.tr("No image is flagged as a key image."))
            return None
        states = await self._key_presentations(title)
        selection = KeyObjectSelection(
            list(self.key_images.images), title, text, presentation_states=states
        )
        assert self.link is not None
        try:
            reply = await self.link.request(
                "save_key_objects", {"selection": selection_to_dict(selection)}
            )
        except CoreError as exc:
            self._say(
                self.tr("The key images were not saved: {error}").format(error=exc)
            )
            return None
        self.key_images.clear()
        self._key_sources.clear()
        for v in self.viewports():
            v.paint_current()
        self._update_key_action()
        with_state = sum(1 for s in states if s is not None)
        if with_state:
            self._say(
                self.tr(
                    "Key images saved; {n} of them with the presentation they are "
                    "shown with."
                ).format(n=with_state)
            )
        else:
            self._say("")
        self.document_saved.emit(reply)
        await self.refresh_documents()
        return reply

    # -- tools and commands --------------------------------------------------

    def set_tool(self, tool: ToolValues) -> None:
        """What the left button does in every viewport."""
        self.tool = ToolValues(tool)
        for viewport in self._viewports:
            viewport.set_tool(self.tool)
        action = self.tool_actions.get(self.tool)
        if action is not None and not action.isChecked():
            action.setChecked(True)

    def _on_active(self, command: Any) -> None:
        if self._active is not None:
            command(self._active)

    def _say(self, text: str) -> None:
        self.message.setText(text)
        if text:
            self.message_changed.emit(text)

    def _update_key_action(self) -> None:
        image = self.active.current_image_ref() if self._active else None
        flagged = image is not None and self.key_images.contains(
            image.SOPInstanceUID, image.frames[0] if image.frames else 1
        )
        self.key_action.setChecked(flagged)
        self.save_keys_action.setText(
            self.tr("Save key images ({n})…").format(n=len(self.key_images.images))
        )

    def update_reference_lines(self) -> None:
        """Draw where the active viewport's slice cuts the others."""
        source = self._active
        plane = source.current_plane() if source is not None else None
        for viewport in self.viewports():
            lines = []
            if self.reference_lines and plane is not None and viewport is not source:
                target = viewport.current_plane()
                if target is not None:
                    line = reference_line(target, plane)
                    if line is not None:
                        lines.append((line, REFERENCE_COLOR))
            viewport.set_reference_lines(lines)

    def synchronize(self) -> None:
        """Move parallel series of the same frame of reference to the active
        viewport's slice position."""
        source = self._active
        plane = source.current_plane() if source is not None else None
        if plane is None:
            return
        for viewport in self.viewports():
            if viewport is source or not viewport.planes:
                continue
            index = nearest_slice(plane, viewport.planes)
            if index is not None and index != viewport.stack.index:
                viewport.show_index(index)

    async def _load_attributes(self) -> None:
        ref = self.active.current_ref() if self._active else None
        if ref is None:
            return
        loop = asyncio.get_running_loop()
        try:
            rows = await loop.run_in_executor(
                executor,
                lambda: attribute_rows(
                    pydicom.dcmread(ref.path, stop_before_pixels=True)
                ),
            )
        except Exception as exc:
            logger.warning("Cannot read the attributes of '%s': %s", ref.path, exc)
            return
        self.attributes.show_rows(rows)

    # -- slots -----------------------------------------------------------

    def _on_viewport_activated(self) -> None:
        viewport = self.sender()
        if isinstance(viewport, SeriesViewer):
            self.set_active(viewport)

    def _on_viewport_series_dropped(self, uid: str) -> None:
        viewport = self.sender()
        if isinstance(viewport, SeriesViewer):
            spawn(self.show_series(uid, viewport), "Showing a dropped series")

    def _on_viewport_frame_shown(self, _index: int) -> None:
        viewport = self.sender()
        if viewport is self._active:
            self._update_key_action()
            if self.attributes.isVisible():
                spawn(self._load_attributes(), "Reading the attributes")
        self.update_reference_lines()

    def _on_viewport_slice_changed(self, _index: int) -> None:
        if self.sender() is self._active and self.sync_scrolling:
            self.synchronize()

    def _on_viewport_geometry_changed(self) -> None:
        self.update_reference_lines()
        if self.sync_scrolling:
            self.synchronize()

    def _on_viewport_cine_changed(self, playing: bool) -> None:
        if self.sender() is self._active:
            self.cine_action.setChecked(playing)

    def _on_thumbnails_item_clicked(self, item: QListWidgetItem) -> None:
        row = item.data(RowRole)
        if row:
            spawn(self.show_series(row["SeriesInstanceUID"]), "Showing a series")

    def _on_link_instance_stored(self, data: dict) -> None:
        if not shiboken6.isValid(self) or self._closing.is_set():
            return
        if data.get("StudyInstanceUID") != self.study.get("StudyInstanceUID"):
            return
        if str(data.get("Modality") or "") in ("PR", "KO"):
            self._documents_timer.start()  # several in a row: listed once

    def _on_documents_timer_timeout(self) -> None:
        spawn(self.refresh_documents(), "Listing presentation states")

    def _on_document_list_item_clicked(self, item: QListWidgetItem) -> None:
        row = item.data(RowRole)
        if row:
            spawn(self.apply_document(row), "Applying a presentation state")

    def _on_preset_menu_about_to_show(self) -> None:
        menu = self.preset_menu
        menu.clear()
        viewport = self._active
        item = viewport.current if viewport is not None else None
        modality = str(viewport.series.get("Modality") or "") if viewport else ""
        if item is not None and item.header is not None:
            modality = str(item.header.get("Modality") or modality)
        for preset in presets_for(modality):
            act = menu.addAction(f"{preset.name}\t{preset.shortcut}")
            act.triggered.connect(
                lambda _c=False, p=preset: self._on_active(
                    lambda v: v.set_window(p.window, p.name.upper())
                )
            )
        if item is not None and item.windows:
            menu.addSeparator()
            for preset in item.windows:
                act = menu.addAction(
                    f"{preset.name} ({preset.window.width:g}/{preset.window.center:g})"
                )
                act.triggered.connect(
                    lambda _c=False, p=preset: self._on_active(
                        lambda v: v.set_window(p.window, p.name.upper())
                    )
                )
        menu.addSeparator()
        menu.addAction(self.tr("Auto window\tA")).triggered.connect(
            lambda: self._on_active(lambda v: v.auto_window())
        )
        menu.addAction(self.tr("Image's own window\t0")).triggered.connect(
            lambda: self._on_active(lambda v: v.reset_window())
        )

    def _on_cine_action_triggered(self, checked: bool) -> None:
        viewport = self.active
        if checked:
            if self.fps_box.value() == 15.0:
                self.fps_box.setValue(viewport.default_fps())
            viewport.start_cine(self.fps_box.value())
        else:
            viewport.stop_cine()
        self.cine_action.setChecked(viewport.playing)

    def _on_fps_box_value_changed(self, value: float) -> None:
        viewport = self._active
        if viewport is not None and viewport.playing:
            viewport.start_cine(value)

    def _on_reference_action_toggled(self, checked: bool) -> None:
        self.reference_lines = checked
        self.update_reference_lines()

    def _on_sync_action_toggled(self, checked: bool) -> None:
        self.sync_scrolling = checked
        if checked:
            self.synchronize()

    def _on_key_action_triggered(self, _checked: bool) -> None:
        self.toggle_key_image()

    def _on_save_keys_action_triggered(self) -> None:
        if not self.key_images.images:
            self._say(self.tr("Flag key images first (K)."))
            return
        dialog = SaveKeyImagesDialog(len(self.key_images.images), self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)

        def accepted() -> None:
            title, text = dialog.values()
            spawn(self.save_key_images(title, text), "Saving key images")

        dialog.accepted.connect(accepted)
        dialog.open()

    def _on_save_presentation_action_triggered(self) -> None:
        dialog = SavePresentationDialog(self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)

        def accepted() -> None:
            label, description = dialog.values()
            spawn(self.save_presentation(label, description), "Saving a presentation")

        dialog.accepted.connect(accepted)
        dialog.open()

    def _on_attributes_action_toggled(self, checked: bool) -> None:
        self.attributes.setVisible(checked)
        if checked:
            spawn(self._load_attributes(), "Reading the attributes")

    def keyPressEvent(self, event: QKeyEvent) -> None:
        """Keys the viewports leave: presets, tools, display commands."""
        viewport = self._active
        if viewport is None:
            event.ignore()
            return
        key = event.key()
        text = event.text()
        shift = bool(event.modifiers() & Qt.KeyboardModifier.ShiftModifier)
        modality = str(viewport.series.get("Modality") or "")
        if viewport.current is not None and viewport.current.header is not None:
            modality = str(viewport.current.header.get("Modality") or modality)
        presets = {p.shortcut: p for p in presets_for(modality)}
        if text in presets:
            viewport.set_window(presets[text].window, presets[text].name.upper())
        elif text == "0":
            viewport.reset_window()
        elif key == Qt.Key.Key_A:
            viewport.auto_window()
        elif key == Qt.Key.Key_I:
            viewport.invert()
        elif key == Qt.Key.Key_R:
            viewport.rotate(-90 if shift else 90)
        elif key == Qt.Key.Key_H:
            viewport.flip_horizontal()
        elif key == Qt.Key.Key_V:
            viewport.flip_vertical()
        elif key == Qt.Key.Key_F:
            viewport.fit()
        elif key == Qt.Key.Key_Equal:
            viewport.one_to_one()
        elif key == Qt.Key.Key_K:
            self.toggle_key_image()
        elif key == Qt.Key.Key_S:
            self.sync_action.trigger()
        elif key == Qt.Key.Key_Space:
            self.cine_action.trigger()
        elif key == Qt.Key.Key_Escape:
            self.set_tool(ToolValues.POINTER)
        else:
            event.ignore()
            return
        event.accept()

    def close_viewer(self) -> None:
        """Stop cine and forget the frames (the tab is closing)."""
        self._closing.set()
        for viewport in self._viewports:
            viewport.stop_cine()
            viewport.clear()


def _document_ref(row: dict[str, Any]) -> ImageRef:
    """The object of a row of ``study_documents``."""
    return ImageRef(
        str(row.get("SOPClassUID") or ""),
        str(row.get("SOPInstanceUID") or ""),
        str(row.get("SeriesInstanceUID") or ""),
    )


def study_title(study: dict[str, Any]) -> str:
    """The tab title of a study: patient name and study date."""
    name = format_person_name(str(study.get("PatientName") or ""))
    date = format_date(str(study.get("StudyDate") or ""))
    return f"{name} – {date}".strip(" –")
