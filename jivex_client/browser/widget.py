"""The study browser: studies of the archive and the series of one study."""

from __future__ import annotations

import logging
import time
from typing import Any

from PySide6.QtCore import (
    QItemSelection,
    QItemSelectionModel,
    QModelIndex,
    QPoint,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenu,
    QMessageBox,
    QPushButton,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from jivex_client.browser.models import (
    DESCRIPTION_COLUMN,
    REMOVED_COLUMN,
    QuickFilterProxy,
    RowRole,
    RowTableModel,
    series_columns,
    study_columns,
)
from jivex_client.browser.remote import RemotePanel
from jivex_client.browser.removal import (
    deletable,
    delete_details,
    delete_question,
    deleted_text,
    is_removed,
    origins_text,
    reload_text,
    reloadable,
)
from jivex_client.browser.send import SendDialog
from jivex_client.browser.tables import row_table
from jivex_client.core_link import CoreError, CoreLink
from jivex_client.jobs.monitor import ERROR_STYLE
from jivex_client.jobs.tracker import JobTracker
from jivex_client.tasks import spawn
from jivex_client.text import count_text

logger = logging.getLogger(__name__)

#: Stores arrive in bursts (one event per object); the study list is read
#: again once a burst pauses for this many milliseconds.
REFRESH_DELAY_MS = 200
#: ...or at the latest this long after the first event of a burst that does
#: not pause (a retrieve, a reload): the rows' counts keep pace with it.
REFRESH_MAX_WAIT_S = 1.0


class StudyBrowser(QWidget):
    """The Local tab (the archive's studies with a quick filter, the series
    of the selected study, "Send to…", "Delete…", and with "Show removed"
    the studies removed locally, greyed, with "Reload") and the Remote tab
    (:class:`RemotePanel`).

    Double-clicking a series, or a study (its first series), emits
    :attr:`series_activated` with the study row and the series row.
    """

    series_activated = Signal(dict, dict)
    #: Emitted after each completed read of the study list (row count).
    studies_changed = Signal(int)
    #: The remote AE table was read (the core's ``remotes``).
    remotes_changed = Signal(list)
    #: The user asked for the job monitor.
    jobs_requested = Signal()

    def __init__(
        self,
        link: CoreLink,
        tracker: JobTracker | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.link = link
        self.tracker = tracker if tracker is not None else JobTracker(link, self)
        self.remotes: list[dict[str, Any]] = []
        self._send_dialog: SendDialog | None = None
        self._delete_box: QMessageBox | None = None
        self._delete_uids: list[str] = []
        self._refreshing = False
        self._refresh_again = False
        self._refresh_pending_since = 0.0
        self._selected_study = ""
        self._sized = False
        self._size_removed = False

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
        self.study_view = row_table(
            self.study_proxy, QAbstractItemView.SelectionMode.ExtendedSelection
        )
        self.study_view.sortByColumn(3, Qt.SortOrder.DescendingOrder)
        self.series_view = row_table(self.series_proxy)
        self.series_view.sortByColumn(0, Qt.SortOrder.AscendingOrder)
        self.series_label = QLabel(self.tr("Series"))
        self.count_label = QLabel()
        self.send_button = QPushButton(self.tr("Send to…"))
        self.send_button.setToolTip(
            self.tr("Send the selected studies to a configured remote AE")
        )
        self.show_removed_box = QCheckBox(self.tr("Show removed"))
        self.show_removed_box.setToolTip(
            self.tr("Also list the studies removed from this workstation")
        )
        self.reload_button = QPushButton(self.tr("Reload"))
        self.reload_button.setToolTip(
            self.tr("Fetch the removed images of the selected studies again")
        )
        self.delete_button = QPushButton(self.tr("Delete…"))
        self.delete_button.setToolTip(
            self.tr(
                "Remove the selected studies from this workstation; those "
                "retrieved from an archive can be reloaded"
            )
        )
        self.study_view.setColumnHidden(REMOVED_COLUMN, True)
        self.message_label = QLabel()
        self.message_label.setWordWrap(True)
        self.study_view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)

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
        local = QWidget()
        local_layout = QVBoxLayout(local)
        top = QHBoxLayout()
        top.addWidget(self.filter_edit, 1)
        top.addWidget(self.show_removed_box)
        top.addWidget(self.send_button)
        top.addWidget(self.reload_button)
        top.addWidget(self.delete_button)
        local_layout.addLayout(top)
        local_layout.addWidget(splitter)
        bottom = QHBoxLayout()
        bottom.addWidget(self.count_label)
        bottom.addWidget(self.message_label, 1)
        local_layout.addLayout(bottom)

        self.remote_panel = RemotePanel(link, self.tracker)
        self.tabs = QTabWidget()
        self.tabs.addTab(local, self.tr("Local"))
        self.tabs.addTab(self.remote_panel, self.tr("Remote"))
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.tabs)

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
        self.study_view.customContextMenuRequested.connect(
            self._on_study_view_custom_context_menu_requested
        )
        self.send_button.clicked.connect(self._on_send_button_clicked)
        self.show_removed_box.toggled.connect(self._on_show_removed_box_toggled)
        self.reload_button.clicked.connect(self._on_reload_button_clicked)
        self.delete_button.clicked.connect(self._on_delete_button_clicked)
        self.remote_panel.jobs_requested.connect(self.jobs_requested)
        link.instance_stored.connect(self._on_link_instance_stored)
        link.event_received.connect(self._on_link_event_received)
        link.connected_changed.connect(self._on_link_connected_changed)
        self._update_send_button()
        if link.connected:
            self.refresh_later()
            spawn(self.load_remotes(), "Reading the remote AE table")

    # -- refreshing ------------------------------------------------------

    def refresh_later(self) -> None:
        """Read the study list again once events stop arriving for a moment,
        or a second after the first of them if they keep coming."""
        now = time.monotonic()
        if not self._refresh_timer.isActive():
            self._refresh_pending_since = now
        elif now - self._refresh_pending_since >= REFRESH_MAX_WAIT_S:
            return  # the timer runs out: no more postponing
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
                rows = await self.link.request(
                    "list_studies", {"removed": self.show_removed}
                )
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
        # A reset loses the selection; the same studies are selected again
        # (a retrieve or a modality refreshes the list while one works).
        selected = [str(r.get("StudyInstanceUID")) for r in self.selected_studies()]
        current = self._selected_study
        self.study_model.set_rows(rows)
        if rows and not self._sized:
            # Fit the columns once; afterwards the user's widths are kept.
            self._sized = True
            self.study_view.resizeColumnsToContents()
            if not self.show_removed:
                header = self.study_view.horizontalHeader()
                header.setSectionResizeMode(
                    DESCRIPTION_COLUMN, QHeaderView.ResizeMode.Stretch
                )
        if rows and self._size_removed and self.show_removed:
            self._size_removed = False
            self.study_view.resizeColumnToContents(REMOVED_COLUMN)
        selection = QItemSelection()
        current_index = QModelIndex()
        for uid in selected or ([current] if current else []):
            row = self.study_model.row_for_key(uid)
            if row < 0:
                continue
            index = self.study_proxy.mapFromSource(self.study_model.index(row, 0))
            if not index.isValid():
                continue
            selection.select(index, index)
            if uid == current:
                current_index = index
        if not selection.isEmpty():
            model = self.study_view.selectionModel()
            model.blockSignals(True)
            flags = (
                QItemSelectionModel.SelectionFlag.ClearAndSelect
                | QItemSelectionModel.SelectionFlag.Rows
            )
            model.select(selection, flags)
            if current_index.isValid():
                model.setCurrentIndex(
                    current_index, QItemSelectionModel.SelectionFlag.NoUpdate
                )
            model.blockSignals(False)
        self.count_label.setText(
            self.tr("{shown} of {total} studies").format(
                shown=self.study_proxy.rowCount(), total=len(rows)
            )
        )
        self._update_send_button()
        self.studies_changed.emit(len(rows))

    @property
    def show_removed(self) -> bool:
        """Whether the studies removed locally are listed too."""
        return self.show_removed_box.isChecked()

    async def _load_series(self, study_uid: str) -> list[dict[str, Any]]:
        rows = await self.link.request(
            "list_series",
            {"StudyInstanceUID": study_uid, "removed": self.show_removed},
        )
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

    def _on_link_event_received(self, name: str, _data: dict) -> None:
        if name == "removed":
            self.refresh_later()

    def _on_show_removed_box_toggled(self, checked: bool) -> None:
        header = self.study_view.horizontalHeader()
        if checked and self._sized:
            # The Removed column comes on top of the others: the description
            # keeps its width (the table scrolls) rather than shrink to a
            # few letters, as a stretched column would.
            width = header.sectionSize(DESCRIPTION_COLUMN)
            header.setSectionResizeMode(
                DESCRIPTION_COLUMN, QHeaderView.ResizeMode.Interactive
            )
            header.resizeSection(DESCRIPTION_COLUMN, width)
        elif self._sized:
            header.setSectionResizeMode(
                DESCRIPTION_COLUMN, QHeaderView.ResizeMode.Stretch
            )
        self.study_view.setColumnHidden(REMOVED_COLUMN, not checked)
        self._size_removed = checked
        spawn(self.refresh(), "Refreshing the study list")

    def _on_link_connected_changed(self, connected: bool) -> None:
        if connected:
            self.refresh_later()
            spawn(self.load_remotes(), "Reading the remote AE table")

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
        self._update_send_button()
        row = self._selected_row()
        if row is None:
            self._selected_study = ""
            self.series_model.set_rows([])
            return
        if str(row["StudyInstanceUID"]) == self._selected_study:
            return
        self._selected_study = str(row["StudyInstanceUID"])
        self.series_label.setText(
            self.tr("Series of {description}").format(
                description=row.get("StudyDescription") or row["StudyInstanceUID"]
            )
        )
        spawn(self._load_series(self._selected_study), "Reading the series")

    def _on_study_view_double_clicked(self, index: QModelIndex) -> None:
        study = index.data(RowRole)
        if is_removed(study):
            self._show_message(
                self.tr(
                    "This study was removed from this workstation; Reload "
                    "fetches it again from {origins}."
                ).format(origins=origins_text(study, self.tr))
            )
            return
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
        """The study whose series are shown: the current row when it is
        selected, else the first selected one."""
        model = self.study_view.selectionModel()
        current = model.currentIndex()
        if current.isValid() and model.isRowSelected(current.row(), QModelIndex()):
            return current.siblingAtColumn(0).data(RowRole)
        indexes = model.selectedRows()
        return indexes[0].data(RowRole) if indexes else None

    def selected_studies(self) -> list[dict[str, Any]]:
        """The rows of the selected studies, in table order."""
        indexes = sorted(
            self.study_view.selectionModel().selectedRows(), key=lambda i: i.row()
        )
        return [index.data(RowRole) for index in indexes]

    # -- remotes and sending ---------------------------------------------

    async def load_remotes(self) -> None:
        """Read the remote AE table for the Remote tab and "Send to…"."""
        try:
            remotes = await self.link.request("remotes", {})
        except CoreError as exc:
            logger.warning("Cannot read the remote AE table: %s", exc)
            self._show_message(
                self.tr("Cannot read the remote AE table: {error}").format(error=exc),
                error=True,
            )
            return
        self.remotes = list(remotes)
        self.remote_panel.set_remotes(self.remotes)
        self._update_send_button()
        self.remotes_changed.emit(self.remotes)

    def send_selected(self) -> SendDialog | None:
        """Open the "Send to…" dialog for the selected studies (not modal:
        the browser keeps updating); None when nothing can be sent."""
        studies = deletable(self.selected_studies())
        if not studies or not self.remotes:
            return None
        if self._send_dialog is not None:
            self._send_dialog.close()
        dialog = SendDialog(self.remotes, studies, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.accepted.connect(self._on_send_dialog_accepted)
        dialog.destroyed.connect(self._on_send_dialog_destroyed)
        self._send_dialog = dialog
        dialog.open()
        return dialog

    async def send_studies(self, ae_title: str, uids: list[str]) -> dict | None:
        """Queue a send of studies to *ae_title*; returns the core's job."""
        try:
            job = await self.link.request("send", {"to": ae_title, "uids": uids})
        except CoreError as exc:
            self._show_message(
                self.tr("The send to {ae} was not queued: {error}").format(
                    ae=ae_title, error=exc
                ),
                error=True,
            )
            return None
        self.tracker.update(job)
        self._show_message(
            self.tr("Sending {studies} to {ae} (job {id}); see Jobs.").format(
                studies=count_text(
                    len(uids), self.tr("{n} study"), self.tr("{n} studies")
                ),
                ae=ae_title,
                id=job["id"],
            )
        )
        return job

    def _show_message(self, text: str, error: bool = False) -> None:
        self.message_label.setStyleSheet(ERROR_STYLE if error else "")
        self.message_label.setText(text)

    def _update_send_button(self) -> None:
        has_remotes = bool(self.remotes)
        selected = self.selected_studies()
        self.reload_button.setEnabled(bool(reloadable(selected)))
        self.delete_button.setEnabled(bool(deletable(selected)))
        self.send_button.setEnabled(has_remotes and bool(deletable(selected)))
        self.send_button.setToolTip(
            self.tr("Send the selected studies to a configured remote AE")
            if has_remotes
            else self.tr("No remote AE is configured")
        )

    def _on_send_button_clicked(self) -> None:
        self.send_selected()

    def _on_send_dialog_accepted(self) -> None:
        dialog = self.sender()
        if isinstance(dialog, SendDialog) and dialog.destination():
            spawn(
                self.send_studies(dialog.destination(), dialog.uids()),
                "Queueing a send",
            )

    def _on_send_dialog_destroyed(self, *_args: Any) -> None:
        self._send_dialog = None

    def _on_study_view_custom_context_menu_requested(self, pos: QPoint) -> None:
        index = self.study_view.indexAt(pos)
        if not index.isValid():
            return
        selected = self.selected_studies()
        menu = QMenu(self)
        open_action = menu.addAction(self.tr("Open"))
        open_action.setEnabled(not is_removed(index.data(RowRole)))
        send_action = menu.addAction(self.tr("Send to…"))
        send_action.setEnabled(bool(self.remotes) and bool(deletable(selected)))
        reload_action = menu.addAction(self.tr("Reload"))
        reload_action.setEnabled(bool(reloadable(selected)))
        delete_action = menu.addAction(self.tr("Delete…"))
        delete_action.setEnabled(bool(deletable(selected)))
        chosen = menu.exec(self.study_view.viewport().mapToGlobal(pos))
        if chosen is open_action:
            spawn(self._open_study(index.data(RowRole)), "Opening a study")
        elif chosen is send_action:
            self.send_selected()
        elif chosen is reload_action:
            spawn(self.reload_selected(), "Queueing a reload")
        elif chosen is delete_action:
            spawn(self.delete_selected(), "Asking to delete")

    # -- removing and reloading ------------------------------------------

    async def delete_selected(self) -> QMessageBox | None:
        """Ask to confirm the removal of the selected studies, naming what
        the core says it would remove (a dry run); the box is not modal and
        is returned (None when nothing can be removed)."""
        uids = [str(s["StudyInstanceUID"]) for s in deletable(self.selected_studies())]
        if not uids:
            return None
        try:
            preview = await self.link.request("delete", {"uids": uids, "dry_run": True})
        except CoreError as exc:
            self._show_message(
                self.tr("Cannot delete: {error}").format(error=exc), error=True
            )
            return None
        if self._delete_box is not None:
            self._delete_box.close()
        box = QMessageBox(self)
        box.setIcon(QMessageBox.Icon.Warning)
        box.setWindowTitle(self.tr("Delete from this workstation"))
        box.setText(delete_question(preview, self.tr))
        box.setInformativeText(delete_details(preview, self.tr))
        box.setStandardButtons(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        confirm = box.addButton(self.tr("Delete"), QMessageBox.ButtonRole.AcceptRole)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self._delete_uids = uids
        confirm.clicked.connect(self._on_delete_confirmed)
        box.destroyed.connect(self._on_delete_box_destroyed)
        self._delete_box = box
        box.open()
        return box

    @property
    def delete_box(self) -> QMessageBox | None:
        """The open delete confirmation, if any."""
        return self._delete_box

    def delete_confirm_button(self) -> QPushButton | None:
        """The button of the open confirmation that deletes."""
        box = self._delete_box
        if box is None:
            return None
        for button in box.buttons():
            if box.buttonRole(button) == QMessageBox.ButtonRole.AcceptRole:
                return button  # type: ignore[return-value]
        return None

    def _on_delete_confirmed(self) -> None:
        uids, self._delete_uids = self._delete_uids, []
        if uids:
            spawn(self.delete_studies(uids), "Deleting studies")

    def _on_delete_box_destroyed(self, *_args: Any) -> None:
        self._delete_box = None

    async def delete_studies(self, uids: list[str]) -> dict | None:
        """Remove studies from this workstation; returns the core's report."""
        try:
            result = await self.link.request("delete", {"uids": uids})
        except CoreError as exc:
            self._show_message(
                self.tr("Nothing was deleted: {error}").format(error=exc), error=True
            )
            return None
        self._show_message(deleted_text(result, self.tr))
        await self.refresh()
        return result

    async def reload_selected(self) -> dict | None:
        """Fetch the removed images of the selected studies again from where
        they came from; returns the core's answer (its jobs)."""
        uids = [str(s["StudyInstanceUID"]) for s in reloadable(self.selected_studies())]
        if not uids:
            return None
        try:
            result = await self.link.request("reload", {"uids": uids})
        except CoreError as exc:
            self._show_message(
                self.tr("Nothing can be reloaded: {error}").format(error=exc),
                error=True,
            )
            return None
        for job in result.get("jobs") or []:
            self.tracker.update(job)
        errors = [str(e.get("error")) for e in result.get("errors") or []]
        text = reload_text(result, self.tr)
        self._show_message(" ".join([text, *errors]), error=bool(errors))
        return result

    def _on_reload_button_clicked(self) -> None:
        spawn(self.reload_selected(), "Queueing a reload")

    def _on_delete_button_clicked(self) -> None:
        spawn(self.delete_selected(), "Asking to delete")
