"""Table models of the study browser, fed with rows of the core's replies."""

from __future__ import annotations

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
from PySide6.QtGui import QFont, QPalette
from PySide6.QtWidgets import QApplication

from jivex_client.browser.removal import is_removed, origins_text, removed_text
from jivex_client.tables import ColumnsModel
from jivex_client.text import format_date, format_person_name

Row = dict[str, Any]
Index = QModelIndex | QPersistentModelIndex

#: Role holding the whole row dict.
RowRole = Qt.ItemDataRole.UserRole + 1
#: Role holding a value that sorts correctly (numbers as numbers).
SortRole = Qt.ItemDataRole.UserRole + 2


def _text(row: Row, key: str) -> str:
    value = row.get(key)
    return "" if value is None else str(value)


def _count(row: Row, key: str) -> str:
    value = row.get(key)
    return "" if value is None else str(int(value))


class Column:
    """One column: header, row key, how to show it and how to sort it."""

    def __init__(
        self,
        key: str,
        title: str,
        show: Callable[[Row, str], str] = _text,
        numeric: bool = False,
    ) -> None:
        self.key = key
        self.title = title
        self.show = show
        self.numeric = numeric

    def sort_value(self, row: Row) -> Any:
        """A value that orders rows as a reader expects."""
        value = row.get(self.key)
        if self.numeric:
            try:
                return int(value) if value is not None else -1
            except (TypeError, ValueError):
                return -1
        return self.show(row, self.key).casefold()


def _tr(text: str) -> str:
    return QCoreApplication.translate("StudyBrowser", text)


def study_columns() -> list[Column]:
    """The columns of the study table."""
    return [
        Column(
            "PatientName",
            _tr("Patient name"),
            lambda r, k: format_person_name(_text(r, k)),
        ),
        Column("PatientID", _tr("Patient ID")),
        Column(
            "PatientBirthDate", _tr("Birth date"), lambda r, k: format_date(_text(r, k))
        ),
        Column("StudyDate", _tr("Study date"), lambda r, k: format_date(_text(r, k))),
        Column(
            "ModalitiesInStudy",
            _tr("Modalities"),
            lambda r, k: ", ".join(r.get(k) or []),
        ),
        Column("StudyDescription", _tr("Description")),
        Column("AccessionNumber", _tr("Accession")),
        Column("NumberOfStudyRelatedSeries", _tr("Series"), _count, numeric=True),
        Column("NumberOfStudyRelatedInstances", _tr("Images"), _count, numeric=True),
        # Shown with "Show removed" in the Local tab only.
        Column("RemovedInstances", _tr("Removed"), lambda r, _k: removed_text(r, _tr)),
    ]


#: The column of :func:`study_columns` that marks removed studies.
REMOVED_COLUMN = 9
#: The column of :func:`study_columns` that takes the room left.
DESCRIPTION_COLUMN = 5


def series_columns() -> list[Column]:
    """The columns of the series table."""
    return [
        Column("SeriesNumber", _tr("No."), _text, numeric=True),
        Column("Modality", _tr("Modality")),
        Column("SeriesDescription", _tr("Description")),
        Column("NumberOfSeriesRelatedInstances", _tr("Images"), _count, numeric=True),
    ]


class RowTableModel(ColumnsModel):
    """A read-only table of protocol rows (dicts keyed by DICOM keywords)."""

    def __init__(
        self, columns: Sequence[Column], key: str, parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self.columns = list(columns)
        self.key = key
        self._rows: list[Row] = []

    @property
    def rows(self) -> list[Row]:
        """The rows shown, in model order."""
        return list(self._rows)

    def set_rows(self, rows: Sequence[Row]) -> None:
        """Replace the content; views keep no stale index."""
        self.beginResetModel()
        self._rows = list(rows)
        self.endResetModel()

    def row_for_key(self, value: str) -> int:
        """Model row of the entry whose key column equals *value*, else -1."""
        for number, row in enumerate(self._rows):
            if row.get(self.key) == value:
                return number
        return -1

    def rowCount(self, parent: Index | None = None) -> int:
        return 0 if parent is not None and parent.isValid() else len(self._rows)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        row = self._rows[index.row()]
        column = self.columns[index.column()]
        if role == Qt.ItemDataRole.DisplayRole:
            return column.show(row, column.key)
        if role == Qt.ItemDataRole.ToolTipRole:
            if column.key == "RemovedInstances" and row.get("RemovedInstances"):
                return _tr("Removed locally; Reload fetches it from {origins}").format(
                    origins=origins_text(row, _tr)
                )
            return _text(row, column.key)
        if is_removed(row):
            # Removed whole: greyed and slanted, nothing of it to open.
            if role == Qt.ItemDataRole.ForegroundRole:
                return QApplication.palette().brush(
                    QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text
                )
            if role == Qt.ItemDataRole.FontRole:
                font = QFont()
                font.setItalic(True)
                return font
        if role == SortRole:
            return column.sort_value(row)
        if role == RowRole:
            return row
        if role == Qt.ItemDataRole.TextAlignmentRole and column.numeric:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None


class QuickFilterProxy(QSortFilterProxyModel):
    """Sorts by :data:`SortRole`; filters on any column, case-insensitively."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.setSortRole(SortRole)
        self.setFilterKeyColumn(-1)
        self.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.setFilterRole(Qt.ItemDataRole.DisplayRole)

    def lessThan(self, left: Index, right: Index) -> bool:
        a = left.data(SortRole)
        b = right.data(SortRole)
        try:
            return bool(a < b)
        except TypeError:
            return str(a) < str(b)
