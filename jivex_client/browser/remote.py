"""The browser's Remote tab: query a configured archive, retrieve studies.

The core runs the C-FIND and the C-MOVE; this panel only asks for them over
the link (``find``, ``move``) and shows the answers and the jobs' progress.
Retrieved objects reach the local archive and, through the core's
``instance_stored`` events, the Local tab.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from typing import Any

from PySide6.QtCore import QDate, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDateEdit,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from jivex_client.browser.models import (
    REMOVED_COLUMN,
    QuickFilterProxy,
    RowRole,
    RowTableModel,
    study_columns,
)
from jivex_client.browser.query import (
    MODALITIES,
    DatePreset,
    QueryFormError,
    RemoteQuery,
    study_row,
)
from jivex_client.browser.tables import row_table
from jivex_client.core_link import CoreError, CoreLink
from jivex_client.jobs.models import JobFilterProxy
from jivex_client.jobs.monitor import ERROR_STYLE, job_table
from jivex_client.jobs.tracker import JobTracker
from jivex_client.tasks import spawn
from jivex_client.text import count_text

logger = logging.getLogger(__name__)


def _date(value: QDate) -> dt.date:
    return dt.date(value.year(), value.month(), value.day())


class RemotePanel(QWidget):
    """Query form, the archive's answers and the retrieves started here."""

    #: The user asked for the job monitor.
    jobs_requested = Signal()
    #: A search ended: the number of studies shown, -1 when it failed.
    search_finished = Signal(int)

    def __init__(
        self, link: CoreLink, tracker: JobTracker, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.link = link
        self.tracker = tracker
        self._searching = False
        self._results_ae = ""
        self._retrieve_ids: set[int] = set()
        self._sized = False
        self._no_archive_shown = False

        # The form.
        self.archive_combo = QComboBox()
        self.archive_combo.setMinimumContentsLength(16)
        self.name_edit = QLineEdit()
        self.name_edit.setPlaceholderText(self.tr("e.g. doe or doe^j*"))
        self.name_edit.setToolTip(
            self.tr(
                "Family^Given. * and ? are wild cards; a name without them "
                "finds every name that starts with it."
            )
        )
        self.id_edit = QLineEdit()
        self.accession_edit = QLineEdit()
        self.date_combo = QComboBox()
        for preset, text in (
            (DatePreset.ANY, self.tr("Any date")),
            (DatePreset.TODAY, self.tr("Today")),
            (DatePreset.YESTERDAY, self.tr("Yesterday")),
            (DatePreset.LAST_7_DAYS, self.tr("Last 7 days")),
            (DatePreset.CUSTOM, self.tr("From – to")),
        ):
            self.date_combo.addItem(text, preset.value)
        today = QDate.currentDate()
        self.date_from = QDateEdit(today.addDays(-30))
        self.date_to = QDateEdit(today)
        for edit in (self.date_from, self.date_to):
            edit.setCalendarPopup(True)
            edit.setDisplayFormat("yyyy-MM-dd")
        self.modality_combo = QComboBox()
        self.modality_combo.setEditable(True)
        self.modality_combo.addItems(["", *MODALITIES])
        self.modality_combo.lineEdit().setPlaceholderText(self.tr("Any"))
        self.search_button = QPushButton(self.tr("Search"))
        self.search_button.setDefault(True)
        self.clear_button = QPushButton(self.tr("Clear"))
        # Stops a running search: the core sends the archive a C-FIND-CANCEL.
        self.stop_button = QPushButton(self.tr("Stop"))
        self.stop_button.setEnabled(False)
        self._query_id = ""
        self.message_label = QLabel()
        self.message_label.setWordWrap(True)
        self.message_label.setTextInteractionFlags(
            Qt.TextInteractionFlag.TextSelectableByMouse
        )

        form = QGridLayout()
        form.addWidget(QLabel(self.tr("Archive")), 0, 0)
        form.addWidget(self.archive_combo, 0, 1)
        form.addWidget(QLabel(self.tr("Patient name")), 0, 2)
        form.addWidget(self.name_edit, 0, 3)
        form.addWidget(QLabel(self.tr("Patient ID")), 0, 4)
        form.addWidget(self.id_edit, 0, 5)
        form.addWidget(QLabel(self.tr("Accession")), 0, 6)
        form.addWidget(self.accession_edit, 0, 7)
        form.addWidget(QLabel(self.tr("Study date")), 1, 0)
        form.addWidget(self.date_combo, 1, 1)
        dates = QHBoxLayout()
        dates.addWidget(self.date_from)
        dates.addWidget(QLabel("–"))
        dates.addWidget(self.date_to)
        form.addLayout(dates, 1, 2, 1, 2)
        form.addWidget(QLabel(self.tr("Modality")), 1, 4)
        form.addWidget(self.modality_combo, 1, 5)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.clear_button)
        buttons.addWidget(self.stop_button)
        buttons.addWidget(self.search_button)
        form.addLayout(buttons, 1, 6, 1, 2)
        for column in (3, 5, 7):
            form.setColumnStretch(column, 1)

        # The answers.
        self.result_model = RowTableModel(study_columns(), "StudyInstanceUID", self)
        self.result_proxy = QuickFilterProxy(self)
        self.result_proxy.setSourceModel(self.result_model)
        self.result_view = row_table(
            self.result_proxy, QAbstractItemView.SelectionMode.ExtendedSelection
        )
        self.result_view.sortByColumn(3, Qt.SortOrder.DescendingOrder)
        self.result_view.setColumnHidden(REMOVED_COLUMN, True)
        self.retrieve_button = QPushButton(self.tr("Retrieve"))
        self.retrieve_button.setToolTip(
            self.tr("Copy the selected studies from the archive to this workstation")
        )
        self.jobs_button = QPushButton(self.tr("Jobs…"))

        # The retrieves started here, with a progress bar each.
        self.retrieve_proxy = JobFilterProxy(self)
        self.retrieve_proxy.set_ids(set())
        self.retrieve_view = job_table(tracker, self.retrieve_proxy)
        model = tracker.model
        for key in ("kind", "attempts", "next_attempt_at"):
            self.retrieve_view.setColumnHidden(model.column(key), True)
        self.retrieve_view.setColumnWidth(model.column("subject"), 260)
        self.retrieve_view.setColumnWidth(model.column("state"), 130)

        results = QWidget()
        results_layout = QVBoxLayout(results)
        results_layout.setContentsMargins(0, 0, 0, 0)
        results_layout.addWidget(self.result_view)
        actions = QHBoxLayout()
        actions.addWidget(self.message_label, 1)
        actions.addWidget(self.retrieve_button)
        results_layout.addLayout(actions)
        retrieves = QWidget()
        retrieves_layout = QVBoxLayout(retrieves)
        retrieves_layout.setContentsMargins(0, 0, 0, 0)
        header = QHBoxLayout()
        header.addWidget(QLabel(self.tr("Retrieves")), 1)
        header.addWidget(self.jobs_button)
        retrieves_layout.addLayout(header)
        retrieves_layout.addWidget(self.retrieve_view)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(results)
        splitter.addWidget(retrieves)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(splitter, 1)

        self.search_button.clicked.connect(self._on_search_button_clicked)
        self.clear_button.clicked.connect(self._on_clear_button_clicked)
        self.stop_button.clicked.connect(self._on_stop_button_clicked)
        self.retrieve_button.clicked.connect(self._on_retrieve_button_clicked)
        self.jobs_button.clicked.connect(self.jobs_requested)
        self.date_combo.currentIndexChanged.connect(
            self._on_date_combo_current_index_changed
        )
        for edit in (self.name_edit, self.id_edit, self.accession_edit):
            edit.returnPressed.connect(self._on_search_button_clicked)
        self.modality_combo.lineEdit().returnPressed.connect(
            self._on_search_button_clicked
        )
        self.result_view.selectionModel().selectionChanged.connect(
            self._on_result_view_selection_changed
        )
        # Until the core has said which archives there are.
        self.archive_combo.setEnabled(False)
        self._update_buttons()
        self._on_date_combo_current_index_changed(0)

    # -- the archives ----------------------------------------------------

    def set_remotes(self, remotes: list[dict[str, Any]]) -> None:
        """Offer these archives (the core's ``remotes``), keeping the choice."""
        current = self.archive_combo.currentData()
        self.archive_combo.clear()
        for remote in remotes:
            self.archive_combo.addItem(
                f"{remote['ae_title']} ({remote['host']}:{remote['port']})",
                remote["ae_title"],
            )
        index = self.archive_combo.findData(current)
        if index >= 0:
            self.archive_combo.setCurrentIndex(index)
        has_remotes = bool(remotes)
        self.archive_combo.setEnabled(has_remotes)
        self._update_buttons()
        if not has_remotes:
            self._show_message(
                self.tr(
                    "No archive is configured: add a [[remote]] entry to the "
                    "settings file (or start with --remote AET@HOST:PORT)."
                )
            )
            self._no_archive_shown = True
        elif self._no_archive_shown:
            self._show_message("")

    def archive(self) -> str:
        """The AE title of the chosen archive, empty when there is none."""
        return str(self.archive_combo.currentData() or "")

    def set_archive(self, ae_title: str) -> bool:
        """Choose an archive by AE title; False when it is not offered."""
        index = self.archive_combo.findData(ae_title)
        if index >= 0:
            self.archive_combo.setCurrentIndex(index)
        return index >= 0

    # -- the form --------------------------------------------------------

    def date_preset(self) -> DatePreset:
        """The study date choice."""
        return DatePreset(self.date_combo.currentData())

    def set_date_preset(self, preset: DatePreset) -> None:
        """Choose a study date preset."""
        self.date_combo.setCurrentIndex(self.date_combo.findData(preset.value))

    def query(self) -> RemoteQuery:
        """What the form holds."""
        return RemoteQuery(
            patient_name=self.name_edit.text(),
            patient_id=self.id_edit.text(),
            date_preset=self.date_preset(),
            date_from=_date(self.date_from.date()),
            date_to=_date(self.date_to.date()),
            modality=self.modality_combo.currentText(),
            accession_number=self.accession_edit.text(),
        )

    def clear_form(self) -> None:
        """Empty every field and choose any date."""
        for edit in (self.name_edit, self.id_edit, self.accession_edit):
            edit.clear()
        self.modality_combo.setCurrentIndex(0)
        self.modality_combo.setEditText("")
        self.set_date_preset(DatePreset.ANY)

    # -- searching -------------------------------------------------------

    @property
    def searching(self) -> bool:
        """Whether a search is under way."""
        return self._searching

    async def search(self) -> None:
        """Query the chosen archive with the form's keys and show the studies.

        Errors (no archive, a bad date range, an archive that cannot be
        reached or refuses) are shown in the panel's message line.
        """
        if self._searching:
            return
        ae = self.archive()
        if not ae:
            self._show_message(self.tr("Choose an archive first."), error=True)
            self.search_finished.emit(-1)
            return
        try:
            keys = self.query().keys(dt.date.today())
        except QueryFormError as exc:
            self._show_message(
                self.tr("Cannot search: {error}").format(error=exc), error=True
            )
            self.search_finished.emit(-1)
            return
        self._query_id = uuid.uuid4().hex
        self._set_searching(True)
        self._show_message(self.tr("Searching {ae}…").format(ae=ae))
        try:
            result = await self.link.request(
                "find",
                {
                    "from": ae,
                    "level": "STUDY",
                    "keys": keys,
                    "query_id": self._query_id,
                },
            )
        except CoreError as exc:
            logger.info("Search on '%s' failed: %s", ae, exc)
            self.result_model.set_rows([])
            self._results_ae = ""
            self._show_message(
                self.tr("The search on {ae} failed: {error}").format(ae=ae, error=exc),
                error=True,
            )
            self.search_finished.emit(-1)
            return
        finally:
            self._set_searching(False)
        rows = [study_row(answer) for answer in result.get("rows") or []]
        self._results_ae = ae
        self._set_results(rows)
        self._show_message(self._summary(ae, len(rows), result))
        self.search_finished.emit(len(rows))

    async def stop_search(self) -> None:
        """Ask the core to stop the running search."""
        if not self._searching or not self._query_id:
            return
        self.stop_button.setEnabled(False)
        try:
            await self.link.request("cancel_find", {"query_id": self._query_id})
        except CoreError as exc:
            self._show_message(
                self.tr("The search could not be stopped: {error}").format(error=exc),
                error=True,
            )

    def _summary(self, ae: str, count: int, result: dict[str, Any]) -> str:
        if result.get("cancelled"):
            text = self.tr("Search stopped: {studies} so far on {ae}.").format(
                studies=count_text(count, self.tr("{n} study"), self.tr("{n} studies")),
                ae=ae,
            )
        elif result.get("truncated"):
            text = self.tr(
                "{ae} has more matching studies than the {count} shown (the "
                "search stops at the archive's limit): narrow the search."
            ).format(ae=ae, count=count)
        elif count:
            text = self.tr("{studies} found on {ae}.").format(
                studies=count_text(count, self.tr("{n} study"), self.tr("{n} studies")),
                ae=ae,
            )
        else:
            text = self.tr("No study on {ae} matches.").format(ae=ae)
        errors = result.get("errors") or []
        if errors:
            text += " " + self.tr("Answers left out: {errors}").format(
                errors="; ".join(str(e) for e in errors)
            )
        return text

    def _set_results(self, rows: list[dict[str, Any]]) -> None:
        self.result_model.set_rows(rows)
        if rows and not self._sized:
            self._sized = True
            self.result_view.resizeColumnsToContents()
            self.result_view.horizontalHeader().setSectionResizeMode(
                5, QHeaderView.ResizeMode.Stretch
            )
        self._update_buttons()

    def _set_searching(self, searching: bool) -> None:
        self._searching = searching
        self.stop_button.setEnabled(searching)
        self._update_buttons()
        self.search_button.setText(
            self.tr("Searching…") if searching else self.tr("Search")
        )

    # -- retrieving ------------------------------------------------------

    def selected_studies(self) -> list[dict[str, Any]]:
        """The rows of the selected answers."""
        return [
            index.data(RowRole)
            for index in self.result_view.selectionModel().selectedRows()
        ]

    @property
    def retrieve_ids(self) -> set[int]:
        """The jobs of the retrieves started from this panel."""
        return set(self._retrieve_ids)

    async def retrieve_selected(self) -> list[dict[str, Any]]:
        """Queue a retrieve of the selected studies; returns the core's jobs."""
        studies = self.selected_studies()
        ae = self._results_ae
        uids = [str(s.get("StudyInstanceUID") or "") for s in studies]
        uids = [uid for uid in uids if uid]
        if not uids or not ae:
            return []
        self.retrieve_button.setEnabled(False)
        try:
            jobs = await self.link.request(
                "move", {"from": ae, "level": "STUDY", "uids": uids}
            )
        except CoreError as exc:
            self._show_message(
                self.tr("The retrieve from {ae} was not queued: {error}").format(
                    ae=ae, error=exc
                ),
                error=True,
            )
            return []
        finally:
            self._update_buttons()
        for job in jobs:
            self._retrieve_ids.add(int(job["id"]))
            self.tracker.update(job)
        self.retrieve_proxy.set_ids(self._retrieve_ids)
        self._show_message(
            self.tr(
                "Retrieving {studies} from {ae}: the images appear in the Local "
                "tab as they arrive."
            ).format(
                studies=count_text(
                    len(uids), self.tr("{n} study"), self.tr("{n} studies")
                ),
                ae=ae,
            )
        )
        return list(jobs)

    # -- helpers ---------------------------------------------------------

    def _show_message(self, text: str, error: bool = False) -> None:
        self._no_archive_shown = False
        self.message_label.setStyleSheet(ERROR_STYLE if error else "")
        self.message_label.setText(text)

    def _update_buttons(self) -> None:
        self.search_button.setEnabled(not self._searching and bool(self.archive()))
        self.retrieve_button.setEnabled(
            bool(self._results_ae) and bool(self.selected_studies())
        )

    # -- slots -----------------------------------------------------------

    def _on_search_button_clicked(self) -> None:
        spawn(self.search(), "Searching an archive")

    def _on_clear_button_clicked(self) -> None:
        self.clear_form()

    def _on_stop_button_clicked(self) -> None:
        spawn(self.stop_search(), "Stopping a search")

    def _on_retrieve_button_clicked(self) -> None:
        spawn(self.retrieve_selected(), "Retrieving studies")

    def _on_date_combo_current_index_changed(self, _index: int) -> None:
        custom = self.date_preset() is DatePreset.CUSTOM
        self.date_from.setEnabled(custom)
        self.date_to.setEnabled(custom)

    def _on_result_view_selection_changed(self, *_args: Any) -> None:
        self._update_buttons()
