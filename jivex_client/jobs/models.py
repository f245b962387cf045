"""How jobs read in the workstation, and the table model of the job monitor.

A job is the dict the core sends (``jobs``, ``job`` and the ``job`` event of
:mod:`jivex_core.protocol`). The functions here turn it into text without a
window; :class:`JobTableModel` keeps one row per job and updates rows in
place, so that a selection survives the progress of a running job.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any

from PySide6.QtCore import (
    QCoreApplication,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
)

from jivex_client.tables import ColumnsModel
from jivex_client.text import count_text

Job = dict[str, Any]
Index = QModelIndex | QPersistentModelIndex

#: The states the core ends a job in.
FINISHED = ("done", "failed", "cancelled")

#: Role holding the whole job dict.
JobRole = Qt.ItemDataRole.UserRole + 1
#: Role holding (objects handled, objects in all) for a progress bar.
ProgressRole = Qt.ItemDataRole.UserRole + 2
#: Role holding (objects stored, objects failed, objects in all): the bar
#: shows the stored ones in its usual colour and the failed ones apart.
ProgressPartsRole = Qt.ItemDataRole.UserRole + 3


def _tr(text: str) -> str:
    return QCoreApplication.translate("JobMonitor", text)


def is_finished(job: Job) -> bool:
    """Whether the core will do nothing more with the job unless retried."""
    return str(job.get("state")) in FINISHED


def can_cancel(job: Job) -> bool:
    """Whether the core accepts a cancel: jobs not finished yet."""
    return not is_finished(job)


def can_retry(job: Job) -> bool:
    """Whether the core accepts a retry: queued jobs (run now), failed jobs
    and done jobs with failed objects (the failed ones again)."""
    state = job.get("state")
    return state in ("queued", "failed") or (
        state == "done" and int(job.get("failed") or 0) > 0
    )


def kind_text(job: Job) -> str:
    """What the job does, in the user's words."""
    kind = str(job.get("kind", ""))
    if kind == "move" and (job.get("request") or {}).get("reload"):
        return _tr("Reload")
    return {
        "send": _tr("Send"),
        "forward": _tr("Forward"),
        "move": _tr("Retrieve"),
    }.get(kind, kind)


def state_text(job: Job) -> str:
    """The job's state; a queued job that already failed waits for a retry."""
    state = str(job.get("state", ""))
    if state == "queued" and int(job.get("attempts") or 0) > 0:
        return _tr("Waiting to retry")
    if state == "done" and int(job.get("failed") or 0) > 0:
        return _tr("Done, with failures")
    return {
        "queued": _tr("Queued"),
        "running": _tr("Running"),
        "done": _tr("Done"),
        "failed": _tr("Failed"),
        "cancelled": _tr("Cancelled"),
    }.get(state, state)


def progress(job: Job) -> tuple[int, int]:
    """(objects handled, objects in all); (0, 0) while the total is unknown.

    A retrieve learns its total from the archive's first C-MOVE response;
    a send knows it when queued.
    """
    total = int(job.get("total") or 0)
    handled = sum(int(job.get(key) or 0) for key in ("completed", "failed", "warning"))
    return min(handled, total) if total else handled, total


def progress_parts(job: Job) -> tuple[int, int, int]:
    """(objects stored, with or without warnings; objects failed; objects in
    all), the stored and failed ones within the total."""
    total = int(job.get("total") or 0)
    stored = int(job.get("completed") or 0) + int(job.get("warning") or 0)
    failed = int(job.get("failed") or 0)
    if total:
        stored = min(stored, total)
        failed = min(failed, total - stored)
    return stored, failed, total


def progress_text(job: Job) -> str:
    """``7 / 9``, with the failures when there are any."""
    handled, total = progress(job)
    if not total:
        # A retrieve that failed before its first response learnt nothing:
        # its last error says why, not "nothing to transfer".
        return _tr("nothing to transfer") if job.get("state") == "done" else "–"
    text = f"{handled} / {total}"
    failed = int(job.get("failed") or 0)
    if failed:
        text += " " + _tr("({failed} failed)").format(failed=failed)
    return text


def format_moment(value: str | None, now: dt.datetime) -> str:
    """An ISO time of the core as a reader wants it: the time alone today,
    the date too otherwise; empty for None."""
    if not value:
        return ""
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        return value
    if moment.date() == now.date():
        return moment.strftime("%H:%M:%S")
    return moment.strftime("%Y-%m-%d %H:%M")


def subject_text(job: Job) -> str:
    """What the job moves: the studies of a retrieve, the objects of a send."""
    request = job.get("request") or {}
    if job.get("kind") == "move":
        keys = request.get("keys") or {}
        level = str(request.get("level", "STUDY")).upper()
        key = {"PATIENT": "PatientID", "SERIES": "SeriesInstanceUID"}.get(
            level, "StudyInstanceUID"
        )
        values = [v for v in str(keys.get(key, "")).split("\\") if v]
        if len(values) == 1:
            return values[0]
        many = {
            "PATIENT": _tr("{n} patients"),
            "SERIES": _tr("{n} series"),
        }.get(level, _tr("{n} studies"))
        return many.format(n=len(values))
    total = int(job.get("total") or 0)
    return count_text(total, _tr("{n} object"), _tr("{n} objects"))


class JobColumn:
    """One column of the job table: header, text, and a value to sort by."""

    def __init__(
        self,
        key: str,
        title: str,
        show: Callable[[Job], str],
        sort: Callable[[Job], Any] | None = None,
    ) -> None:
        self.key = key
        self.title = title
        self.show = show
        self.sort = sort or (lambda job: show(job).casefold())


def job_columns(now: Callable[[], dt.datetime] = dt.datetime.now) -> list[JobColumn]:
    """The columns of the job monitor, in order."""
    return [
        JobColumn("id", _tr("Job"), lambda j: str(j.get("id", "")), lambda j: j["id"]),
        JobColumn("kind", _tr("Kind"), kind_text),
        JobColumn("remote_ae", _tr("Remote AE"), lambda j: str(j.get("remote_ae"))),
        JobColumn("subject", _tr("What"), subject_text),
        JobColumn("state", _tr("State"), state_text),
        JobColumn(
            "progress",
            _tr("Progress"),
            progress_text,
            lambda j: progress(j)[0] / progress(j)[1] if progress(j)[1] else -1.0,
        ),
        JobColumn(
            "attempts",
            _tr("Attempts"),
            lambda j: str(j.get("attempts", 0)),
            lambda j: int(j.get("attempts") or 0),
        ),
        JobColumn(
            "next_attempt_at",
            _tr("Next attempt"),
            lambda j: format_moment(j.get("next_attempt_at"), now()),
            lambda j: str(j.get("next_attempt_at") or ""),
        ),
        JobColumn(
            "created_at",
            _tr("Created"),
            lambda j: format_moment(j.get("created_at"), now()),
            lambda j: str(j.get("created_at") or ""),
        ),
        JobColumn(
            "last_error", _tr("Last error"), lambda j: str(j.get("last_error") or "")
        ),
    ]


class JobTableModel(ColumnsModel):
    """One row per job, newest first; :meth:`upsert` changes rows in place."""

    def __init__(
        self, columns: Sequence[JobColumn] | None = None, parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self.columns = list(columns) if columns is not None else job_columns()
        self._jobs: list[Job] = []

    @property
    def jobs(self) -> list[Job]:
        """The jobs shown, newest first."""
        return list(self._jobs)

    def column(self, key: str) -> int:
        """The number of the column showing *key*."""
        return next(n for n, c in enumerate(self.columns) if c.key == key)

    def job(self, job_id: int) -> Job | None:
        """The job of that id, if shown."""
        row = self.row_of(job_id)
        return self._jobs[row] if row >= 0 else None

    def row_of(self, job_id: int) -> int:
        """The model row of a job, -1 when it is not shown."""
        for number, job in enumerate(self._jobs):
            if job.get("id") == job_id:
                return number
        return -1

    def upsert(self, job: Job) -> None:
        """Show a job's new state: its row is updated, or a new row inserted
        in id order."""
        job_id = int(job["id"])
        row = self.row_of(job_id)
        if row >= 0:
            self._jobs[row] = dict(job)
            self.dataChanged.emit(
                self.index(row, 0), self.index(row, len(self.columns) - 1)
            )
            return
        row = 0
        while row < len(self._jobs) and int(self._jobs[row]["id"]) > job_id:
            row += 1
        self.beginInsertRows(QModelIndex(), row, row)
        self._jobs.insert(row, dict(job))
        self.endInsertRows()

    def rowCount(self, parent: Index | None = None) -> int:
        return 0 if parent is not None and parent.isValid() else len(self._jobs)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        job = self._jobs[index.row()]
        column = self.columns[index.column()]
        if role == Qt.ItemDataRole.DisplayRole:
            return column.show(job)
        if role == Qt.ItemDataRole.ToolTipRole:
            if column.key == "last_error":
                return str(job.get("last_error") or "") or None
            if column.key == "subject":
                return (
                    "\n".join(
                        f"{k}: {v}"
                        for k, v in (
                            (job.get("request") or {}).get("keys") or {}
                        ).items()
                    )
                    or None
                )
            return None
        if role == Qt.ItemDataRole.UserRole:
            return column.sort(job)
        if role == JobRole:
            return job
        if role == ProgressRole:
            return progress(job)
        if role == ProgressPartsRole:
            return progress_parts(job)
        return None


class JobFilterProxy(QSortFilterProxyModel):
    """The jobs a view shows: all, only unfinished ones, or a set of ids."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.setSortRole(Qt.ItemDataRole.UserRole)
        self._hide_finished = False
        self._ids: set[int] | None = None

    def set_hide_finished(self, hide: bool) -> None:
        """Show only jobs still queued or running."""
        self._change_filter(lambda: setattr(self, "_hide_finished", hide))

    def set_ids(self, ids: set[int] | None) -> None:
        """Show only these jobs (None: every job)."""
        self._change_filter(
            lambda: setattr(self, "_ids", None if ids is None else set(ids))
        )

    def _change_filter(self, change: Callable[[], None]) -> None:
        # Qt 6.10 replaced invalidateFilter() by this pair; older ones lack it.
        if hasattr(self, "endFilterChange"):
            self.beginFilterChange()
            change()
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)
        else:
            change()
            self.invalidateFilter()

    def filterAcceptsRow(self, source_row: int, source_parent: Index) -> bool:
        model = self.sourceModel()
        job = model.index(source_row, 0, source_parent).data(JobRole)
        if job is None:
            return False
        if self._ids is not None and int(job["id"]) not in self._ids:
            return False
        return not (self._hide_finished and is_finished(job))

    def lessThan(self, left: Index, right: Index) -> bool:
        a, b = left.data(self.sortRole()), right.data(self.sortRole())
        try:
            return bool(a < b)
        except TypeError:
            return str(a) < str(b)
