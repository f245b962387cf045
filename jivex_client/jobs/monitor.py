"""The job monitor window: every send, forward and retrieve of the core,
live, with Retry and Cancel for the selected job."""

from __future__ import annotations

import logging
from typing import Any

from PySide6.QtCore import (
    QItemSelection,
    QModelIndex,
    QPersistentModelIndex,
    QRectF,
    Qt,
)
from PySide6.QtGui import QColor, QPainter
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QCheckBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionProgressBar,
    QStyleOptionViewItem,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from jivex_client.browser.tables import row_table
from jivex_client.core_link import CoreError
from jivex_client.jobs.models import (
    Job,
    JobFilterProxy,
    JobRole,
    ProgressPartsRole,
    can_cancel,
    can_retry,
)
from jivex_client.jobs.tracker import JobTracker
from jivex_client.tasks import spawn

logger = logging.getLogger(__name__)

ERROR_STYLE = "color: #b00020;"


#: The share of a progress bar of the objects that failed.
FAILED_COLOR = QColor("#c62828")


class ProgressDelegate(QStyledItemDelegate):
    """Draws a cell as a progress bar with its text: the objects stored in
    the style's colour, those that failed after them in red, so that a job
    that failed throughout does not look complete."""

    def paint(
        self,
        painter: QPainter,
        option: QStyleOptionViewItem,
        index: QModelIndex | QPersistentModelIndex,
    ) -> None:
        stored, failed, total = index.data(ProgressPartsRole) or (0, 0, 0)
        widget = option.widget
        style = widget.style() if widget is not None else QApplication.style()
        # The row's selection and alternate background first.
        background = QStyleOptionViewItem(option)
        self.initStyleOption(background, index)
        background.text = ""
        style.drawControl(
            QStyle.ControlElement.CE_ItemViewItem, background, painter, widget
        )
        bar = QStyleOptionProgressBar()
        if widget is not None:
            bar.initFrom(widget)
        bar.rect = option.rect.adjusted(2, 2, -2, -2)
        bar.minimum = 0
        bar.maximum = max(total, 1)
        bar.progress = stored if total else 0
        bar.text = str(index.data(Qt.ItemDataRole.DisplayRole) or "")
        bar.textVisible = True
        bar.textAlignment = Qt.AlignmentFlag.AlignCenter
        bar.state |= QStyle.StateFlag.State_Horizontal
        control = QStyle.ControlElement
        style.drawControl(control.CE_ProgressBarGroove, bar, painter, widget)
        style.drawControl(control.CE_ProgressBarContents, bar, painter, widget)
        if failed and total:
            inner = style.subElementRect(
                QStyle.SubElement.SE_ProgressBarContents, bar, widget
            )
            left = inner.left() + inner.width() * stored / total
            width = inner.width() * failed / total
            painter.fillRect(
                QRectF(left, inner.top(), width, inner.height()), FAILED_COLOR
            )
        style.drawControl(control.CE_ProgressBarLabel, bar, painter, widget)


def job_table(tracker: JobTracker, proxy: JobFilterProxy) -> QTableView:
    """A view of the tracker's jobs with progress bars, newest first."""
    proxy.setSourceModel(tracker.model)
    view = row_table(proxy)
    model = tracker.model
    view.setItemDelegateForColumn(model.column("progress"), ProgressDelegate(view))
    view.sortByColumn(model.column("id"), Qt.SortOrder.DescendingOrder)
    header = view.horizontalHeader()
    header.setSectionResizeMode(
        model.column("last_error"), QHeaderView.ResizeMode.Stretch
    )
    view.setColumnWidth(model.column("progress"), 160)
    return view


class JobMonitor(QWidget):
    """A window listing the core's jobs; Retry and Cancel act on the
    selected one and show the core's answer when it refuses."""

    def __init__(self, tracker: JobTracker, parent: QWidget | None = None) -> None:
        super().__init__(parent, Qt.WindowType.Window)
        self.tracker = tracker
        self.setWindowTitle(self.tr("Jobs"))
        self.proxy = JobFilterProxy(self)
        self.view = job_table(tracker, self.proxy)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        model = tracker.model
        for key, width in (
            ("id", 45),
            ("kind", 70),
            ("remote_ae", 90),
            ("subject", 170),
            ("state", 125),
            ("progress", 150),
            ("attempts", 65),
            ("next_attempt_at", 100),
            ("created_at", 80),
        ):
            self.view.setColumnWidth(model.column(key), width)

        self.hide_finished = QCheckBox(self.tr("Hide finished jobs"))
        self.refresh_button = QPushButton(self.tr("Refresh"))
        self.retry_button = QPushButton(self.tr("Retry"))
        self.retry_button.setToolTip(
            self.tr("Run the job now; a failed job tries its failed objects again")
        )
        self.cancel_button = QPushButton(self.tr("Cancel job"))
        self.cancel_button.setToolTip(
            self.tr("Stop the job: at once when queued, after the current object")
        )
        self.close_button = QPushButton(self.tr("Close"))
        self.detail_label = QLabel()
        self.detail_label.setWordWrap(True)
        self.detail_label.setTextInteractionFlags(
            Qt.TextInteractionFlag.TextSelectableByMouse
        )
        self.message_label = QLabel()
        self.message_label.setWordWrap(True)
        self.count_label = QLabel()

        top = QHBoxLayout()
        top.addWidget(self.hide_finished)
        top.addStretch(1)
        top.addWidget(self.count_label)
        top.addWidget(self.refresh_button)
        buttons = QHBoxLayout()
        buttons.addWidget(self.message_label, 1)
        buttons.addWidget(self.retry_button)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.close_button)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.detail_label)
        layout.addLayout(buttons)
        self.resize(1180, 440)

        self.hide_finished.toggled.connect(self._on_hide_finished_toggled)
        self.refresh_button.clicked.connect(self._on_refresh_button_clicked)
        self.retry_button.clicked.connect(self._on_retry_button_clicked)
        self.cancel_button.clicked.connect(self._on_cancel_button_clicked)
        self.close_button.clicked.connect(self.close)
        self.view.selectionModel().selectionChanged.connect(
            self._on_view_selection_changed
        )
        tracker.job_changed.connect(self._on_tracker_job_changed)
        self.proxy.rowsInserted.connect(self._update_count)
        self.proxy.rowsRemoved.connect(self._update_count)
        self.proxy.modelReset.connect(self._update_count)
        self._update_buttons()
        self._update_count()

    def selected_job(self) -> Job | None:
        """The selected job as last reported."""
        indexes = self.view.selectionModel().selectedRows()
        return indexes[0].data(JobRole) if indexes else None

    def select_job(self, job_id: int) -> bool:
        """Select a job's row; False when it is not shown."""
        row = self.tracker.model.row_of(job_id)
        if row < 0:
            return False
        index = self.proxy.mapFromSource(self.tracker.model.index(row, 0))
        if not index.isValid():
            return False
        self.view.selectRow(index.row())
        self.view.scrollTo(index)
        return True

    async def cancel_job(self, job_id: int) -> None:
        """Cancel a job, saying what the core answered."""
        await self._act(
            job_id, self.tracker.cancel, self.tr("Job {id}: cancel requested.")
        )

    async def retry_job(self, job_id: int) -> None:
        """Run a job again, saying what the core answered."""
        await self._act(
            job_id, self.tracker.retry, self.tr("Job {id}: queued to run now.")
        )

    async def _act(self, job_id: int, action: Any, done: str) -> None:
        self.retry_button.setEnabled(False)
        self.cancel_button.setEnabled(False)
        try:
            await action(job_id)
        except CoreError as exc:
            self._show_message(
                self.tr("Job {id}: the core refused: {error}").format(
                    id=job_id, error=exc
                ),
                error=True,
            )
        else:
            self._show_message(done.format(id=job_id))
        finally:
            self._update_buttons()

    def _show_message(self, text: str, error: bool = False) -> None:
        self.message_label.setStyleSheet(ERROR_STYLE if error else "")
        self.message_label.setText(text)

    def _update_buttons(self) -> None:
        job = self.selected_job()
        self.retry_button.setEnabled(job is not None and can_retry(job))
        self.cancel_button.setEnabled(job is not None and can_cancel(job))
        if job is None:
            self.detail_label.setText("")
            return
        error = str(job.get("last_error") or "")
        self.detail_label.setText(
            self.tr("Job {id}: {error}").format(id=job["id"], error=error)
            if error
            else ""
        )

    def _update_count(self, *_args: Any) -> None:
        self.count_label.setText(
            self.tr("{shown} of {total} jobs").format(
                shown=self.proxy.rowCount(), total=self.tracker.model.rowCount()
            )
        )

    # -- slots -----------------------------------------------------------

    def _on_view_selection_changed(
        self, _selected: QItemSelection, _deselected: QItemSelection
    ) -> None:
        self.message_label.setText("")
        self._update_buttons()

    def _on_tracker_job_changed(self, job: dict) -> None:
        selected = self.selected_job()
        if selected is not None and selected.get("id") == job.get("id"):
            self._update_buttons()

    def _on_hide_finished_toggled(self, checked: bool) -> None:
        self.proxy.set_hide_finished(checked)
        self._update_count()

    def _on_refresh_button_clicked(self) -> None:
        spawn(self.tracker.refresh(), "Reading the job list")

    def _on_retry_button_clicked(self) -> None:
        job = self.selected_job()
        if job is not None:
            spawn(self.retry_job(int(job["id"])), "Retrying a job")

    def _on_cancel_button_clicked(self) -> None:
        job = self.selected_job()
        if job is not None:
            spawn(self.cancel_job(int(job["id"])), "Cancelling a job")
