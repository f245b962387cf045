"""The remote query form's rules, without Qt: from what a user types to the
matching keys of a study-level C-FIND, and from the answers to study rows.

Kept apart from the widgets so that the dates a preset stands for, and the
keys a form sends, can be checked without a window.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass
from typing import Any

#: Modalities offered in the form's list; any other can be typed.
MODALITIES = ("CT", "MR", "CR", "DX", "US", "MG", "NM", "PT", "XA", "RF", "SR")


class DatePreset(enum.Enum):
    """The study date choices of the form."""

    ANY = "any"
    TODAY = "today"
    YESTERDAY = "yesterday"
    LAST_7_DAYS = "last7"
    CUSTOM = "custom"


class QueryFormError(ValueError):
    """What the user typed cannot make a query; the message says why."""


def dicom_date(day: dt.date) -> str:
    """A date as a DICOM DA value (``YYYYMMDD``)."""
    return day.strftime("%Y%m%d")


def date_range(
    preset: DatePreset,
    today: dt.date,
    start: dt.date | None = None,
    end: dt.date | None = None,
) -> str:
    """The Study Date matching value a preset stands for (PS3.4 C.2.2.2.5).

    "Last 7 days" is today and the six days before it, both ends included
    as DICOM ranges are. A custom range may leave either end open.

    Raises
    ------
    QueryFormError
        When a custom range starts after it ends.
    """
    if preset is DatePreset.ANY:
        return ""
    if preset is DatePreset.TODAY:
        return dicom_date(today)
    if preset is DatePreset.YESTERDAY:
        return dicom_date(today - dt.timedelta(days=1))
    if preset is DatePreset.LAST_7_DAYS:
        return f"{dicom_date(today - dt.timedelta(days=6))}-{dicom_date(today)}"
    if start is not None and end is not None:
        if start > end:
            raise QueryFormError(
                f"the date range starts ({start.isoformat()}) after it ends "
                f"({end.isoformat()})"
            )
        if start == end:
            return dicom_date(start)
    if start is None and end is None:
        return ""
    return f"{dicom_date(start) if start else ''}-{dicom_date(end) if end else ''}"


def name_pattern(text: str) -> str:
    """The Patient Name matching value for what was typed.

    Receptionists type the start of a family name, so a name without a wild
    card finds every name that begins with it (``doe`` finds ``DOE^JOHN``);
    with ``*`` or ``?`` it is sent as typed. Whether case is ignored is the
    archive's choice (JiveX-Py and Orthanc ignore it for person names).
    """
    value = text.strip()
    if not value or "*" in value or "?" in value:
        return value
    return value + "*"


@dataclass(frozen=True)
class RemoteQuery:
    """The fields of the remote query form."""

    patient_name: str = ""
    patient_id: str = ""
    date_preset: DatePreset = DatePreset.ANY
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    modality: str = ""
    accession_number: str = ""

    def keys(self, today: dt.date) -> dict[str, str]:
        """The matching keys of the study-level C-FIND (empty ones left out:
        the core asks for the return keys itself).

        Raises
        ------
        QueryFormError
            When a value cannot be sent (a bad date range, a backslash, which
            would make a list of values).
        """
        keys = {
            "PatientName": name_pattern(self.patient_name),
            "PatientID": self.patient_id.strip(),
            "StudyDate": date_range(
                self.date_preset, today, self.date_from, self.date_to
            ),
            "ModalitiesInStudy": self.modality.strip().upper(),
            "AccessionNumber": self.accession_number.strip(),
        }
        for keyword, value in keys.items():
            if "\\" in value:
                raise QueryFormError(f"{keyword} cannot contain a backslash")
        return {keyword: value for keyword, value in keys.items() if value}


def _number(value: Any) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def study_row(answer: dict[str, str]) -> dict[str, Any]:
    """A C-FIND answer (values as strings) in the shape of the core's local
    study rows, so that one table model shows both."""
    row: dict[str, Any] = dict(answer)
    modalities = str(answer.get("ModalitiesInStudy") or "")
    row["ModalitiesInStudy"] = [m for m in modalities.split("\\") if m.strip()]
    for key in ("NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances"):
        row[key] = _number(answer.get(key))
    return row
