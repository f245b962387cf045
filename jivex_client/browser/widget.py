"""The study browser: studies of the archive and the series of one study."""

from __future__ import annotations

import logging
from typing import Any

from PySide6.QtCore import QItemSelection, QModelIndex, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QLineEdit,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from jivex_client.browser.models import (
    QuickFilterProxy,
    RowRole,
    RowTableModel,
    series_columns,
    study_columns,
)
from jivex_client.core_link import CoreError, CoreLink
from jivex_client.tasks import spawn

logger = logging.getLogger(__name__)

#: Stores arrive in bursts (one event per object); the study list is read
#: again once a burst pauses for this many milliseconds.
REFRESH_DELAY_MS = 200


def _table(model: Any) -> QTableView:
    view = QTableView()
    view.setModel(model)
    view.setSortingEnabled(True)
    view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    view.setAlternatingRowColors(True)
    view.verticalHeader().setVisible(False)
    view.horizontalHeader().setStretchLastSection(False)
    view.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
    view.setWordWrap(False)
    return view


class StudyBrowser(QWidget):
    """Study table with a quick filter, and the series of the selected study.

    Double-clicking a series, or a study (its first series), emits
    :attr:`series_activated` with the study row and the series row.
    """

    series_activated = Signal(dict, dict)
    #: Emitted after each completed read of the study list (row count).
    studies_changed = Signal(int)

    def __init__(self, link: CoreLink, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.link = link
        self._refreshing = False
        self._refresh_again = False
        self._selected_study = ""
        self._sized = False

        self.study_model = RowTableModel(study_columns(), "StudyInstanceUID", self)
        self.study_proxy = QuickFilterProxy(self)
        self.study_proxy.setSourceModel(self.study_model)
        self.series_model = RowTableModel(series_columns(), "SeriesInstanceUID", self)
        self.series_proxy = QuickFilterProxy(self)
        self.series_proxy.setFilterKeyColumn(0)
        self.series_proxy.setSourceModel(self.series_model)

        self.filter_edit = QLineEdit()
        self.filter_edit.setClearButtonEnabled(True)
        self.filter_edit.setPlaceholderText(
            self.tr("Quick filter: name, ID, date, modality, description…")
        )
        self.study_view = _table(self.study_proxy)
        self.study_view.sortByColumn(3, Qt.SortOrder.DescendingOrder)
        self.series_view = _table(self.series_proxy)
        self.series_view.sortByColumn(0, Qt.SortOrder.AscendingOrder)
        self.series_label = QLabel(self.tr("Series"))
        self.count_label = QLabel()

        lower = QWidget()
        lower_layout = QVBoxLayout(lower)
        lower_layout.setContentsMargins(0, 0, 0, 0)
        lower_layout.addWidget(self.series_label)
        lower_layout.addWidget(self.series_view)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.study_view)
        splitter.addWidget(lower)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.filter_edit)
        layout.addWidget(splitter)
        layout.addWidget(self.count_label)

        self._refresh_timer = QTimer(self)
        self._refresh_timer.setSingleShot(True)
        self._refresh_timer.setInterval(REFRESH_DELAY_MS)
        self._refresh_timer.timeout.connect(self._on_refresh_timer_timeout)

        self.filter_edit.textChanged.connect(self._on_filter_edit_text_changed)
        self.study_view.selectionModel().selectionChanged.connect(
            self._on_study_view_selection_changed
        )
        self.study_view.doubleClicked.connect(self._on_study_view_double_clicked)
        self.series_view.doubleClicked.connect(self._on_series_view_double_clicked)
        link.instance_stored.connect(self._on_link_instance_stored)
        link.connected_changed.connect(self._on_link_connected_changed)
        if link.connected:
            self.refresh_later()

    # -- refreshing ------------------------------------------------------

    def refresh_later(self) -> None:
        """Read the study list again once events stop arriving for a moment."""
        self._refresh_timer.start()

    async def refresh(self) -> None:
        """Read the study list now (and the series of the selected study)."""
        if self._refreshing:
            self._refresh_again = True
            return
        self._refreshing = True
        try:
            while True:
                self._refresh_again = False
                rows = await self.link.request("list_studies", {})
                self._set_studies(rows)
                if self._selected_study:
                    await self._load_series(self._selected_study)
                if not self._refresh_again:
                    break
        except CoreError as exc:
            logger.warning("Cannot read the study list: %s", exc)
        finally:
            self._refreshing = False

    def _set_studies(self, rows: list[dict[str, Any]]) -> None:
        selected = self._selected_study
        self.study_model.set_rows(rows)
        if rows and not self._sized:
            # Fit the columns once; afterwards the user's widths are kept.
            self._sized = True
            self.study_view.resizeColumnsToContents()
            header = self.study_view.horizontalHeader()
            header.setSectionResizeMode(5, QHeaderView.ResizeMode.Stretch)
        if selected:
            row = self.study_model.row_for_key(selected)
            if row >= 0:
                index = self.study_proxy.mapFromSource(self.study_model.index(row, 0))
                self.study_view.selectionModel().blockSignals(True)
                self.study_view.selectRow(index.row())
                self.study_view.selectionModel().blockSignals(False)
        self.count_label.setText(
            self.tr("{shown} of {total} studies").format(
                shown=self.study_proxy.rowCount(), total=len(rows)
            )
        )
        self.studies_changed.emit(len(rows))

    async def _load_series(self, study_uid: str) -> list[dict[str, Any]]:
        rows = await self.link.request("list_series", {"StudyInstanceUID": study_uid})
        if study_uid == self._selected_study:
            self.series_model.set_rows(rows)
            self.series_view.resizeColumnsToContents()
            self.series_view.horizontalHeader().setSectionResizeMode(
                2, QHeaderView.ResizeMode.Stretch
            )
        return list(rows)

    # -- slots -----------------------------------------------------------

    def _on_refresh_timer_timeout(self) -> None:
        spawn(self.refresh(), "Refreshing the study list")

    def _on_link_instance_stored(self, _data: dict) -> None:
        self.refresh_later()

    def _on_link_connected_changed(self, connected: bool) -> None:
        if connected:
            self.refresh_later()

    def _on_filter_edit_text_changed(self, text: str) -> None:
        self.study_proxy.setFilterFixedString(text.strip())
        self.count_label.setText(
            self.tr("{shown} of {total} studies").format(
                shown=self.study_proxy.rowCount(),
                total=self.study_model.rowCount(),
            )
        )

    def _on_study_view_selection_changed(
        self, _selected: QItemSelection, _deselected: QItemSelection
    ) -> None:
        indexes = self.study_view.selectionModel().selectedRows()
        if not indexes:
            self._selected_study = ""
            self.series_model.set_rows([])
            return
        row = indexes[0].data(RowRole)
        self._selected_study = str(row["StudyInstanceUID"])
        self.series_label.setText(
            self.tr("Series of {description}").format(
                description=row.get("StudyDescription") or row["StudyInstanceUID"]
            )
        )
        spawn(self._load_series(self._selected_study), "Reading the series")

    def _on_study_view_double_clicked(self, index: QModelIndex) -> None:
        study = index.data(RowRole)
        spawn(self._open_study(study), "Opening a study")

    def _on_series_view_double_clicked(self, index: QModelIndex) -> None:
        series = index.data(RowRole)
        study = self._selected_row()
        if study is not None:
            self.series_activated.emit(study, series)

    async def _open_study(self, study: dict[str, Any]) -> None:
        series = await self.link.request(
            "list_series", {"StudyInstanceUID": study["StudyInstanceUID"]}
        )
        with_images = [s for s in series if s.get("NumberOfSeriesRelatedInstances")]
        if with_images:
            self.series_activated.emit(study, with_images[0])

    def _selected_row(self) -> dict[str, Any] | None:
        indexes = self.study_view.selectionModel().selectedRows()
        return indexes[0].data(RowRole) if indexes else None
