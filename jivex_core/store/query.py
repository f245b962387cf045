"""DICOM attribute matching (PS3.4 C.2.2.2) translated to SQL, once.

Single value, universal, wild card, range and list-of-UID matching become
``WHERE`` clauses on the index columns, so a query never loads rows it does
not return. Person names match case-insensitively on their upper-cased
``*_norm`` columns, on every component group at once, as PS3.4 C.2.2.2.1
allows. Used by the Query/Retrieve SCP, and later by the worklist, QIDO and
the client.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from jivex_core.store import schema

logger = logging.getLogger(__name__)

LEVELS = ("PATIENT", "STUDY", "SERIES", "IMAGE")


class QueryError(ValueError):
    """The identifier breaks the rules of the query model (names the key)."""


@dataclass(frozen=True)
class Key:
    """An attribute the archive can match or return."""

    level: str
    column: sa.Column | None  # None: computed
    kind: str  # text, pn, date, time, uid, int, computed


_P, _ST, _SE, _I = schema.patient, schema.study, schema.series, schema.instance

#: Table 11 of the statement (and the few more the index holds).
KEYS: dict[str, Key] = {
    "PatientName": Key("PATIENT", _P.c.PatientName, "pn"),
    "PatientID": Key("PATIENT", _P.c.PatientID, "text"),
    "IssuerOfPatientID": Key("PATIENT", _P.c.IssuerOfPatientID, "text"),
    "PatientBirthDate": Key("PATIENT", _P.c.PatientBirthDate, "date"),
    "PatientBirthTime": Key("PATIENT", _P.c.PatientBirthTime, "time"),
    "PatientSex": Key("PATIENT", _P.c.PatientSex, "text"),
    "OtherPatientIDs": Key("PATIENT", _P.c.OtherPatientIDs, "text"),
    "OtherPatientNames": Key("PATIENT", _P.c.OtherPatientNames, "text"),
    "NumberOfPatientRelatedStudies": Key("PATIENT", None, "computed"),
    "NumberOfPatientRelatedSeries": Key("PATIENT", None, "computed"),
    "NumberOfPatientRelatedInstances": Key("PATIENT", None, "computed"),
    "StudyDate": Key("STUDY", _ST.c.StudyDate, "date"),
    "StudyTime": Key("STUDY", _ST.c.StudyTime, "time"),
    "AccessionNumber": Key("STUDY", _ST.c.AccessionNumber, "text"),
    "StudyID": Key("STUDY", _ST.c.StudyID, "text"),
    "StudyInstanceUID": Key("STUDY", _ST.c.StudyInstanceUID, "uid"),
    "ReferringPhysicianName": Key("STUDY", _ST.c.ReferringPhysicianName, "pn"),
    "StudyDescription": Key("STUDY", _ST.c.StudyDescription, "text"),
    "NumberOfStudyRelatedSeries": Key("STUDY", None, "computed"),
    "NumberOfStudyRelatedInstances": Key("STUDY", None, "computed"),
    "ModalitiesInStudy": Key("STUDY", None, "computed"),
    "SOPClassesInStudy": Key("STUDY", None, "computed"),
    "Modality": Key("SERIES", _SE.c.Modality, "text"),
    "SeriesNumber": Key("SERIES", _SE.c.SeriesNumber, "int"),
    "SeriesInstanceUID": Key("SERIES", _SE.c.SeriesInstanceUID, "uid"),
    "SeriesDescription": Key("SERIES", _SE.c.SeriesDescription, "text"),
    "BodyPartExamined": Key("SERIES", _SE.c.BodyPartExamined, "text"),
    "PerformedProcedureStepStartDate": Key(
        "SERIES", _SE.c.PerformedProcedureStepStartDate, "date"
    ),
    "PerformedProcedureStepStartTime": Key(
        "SERIES", _SE.c.PerformedProcedureStepStartTime, "time"
    ),
    "NumberOfSeriesRelatedInstances": Key("SERIES", None, "computed"),
    "InstanceNumber": Key("IMAGE", _I.c.InstanceNumber, "int"),
    "SOPInstanceUID": Key("IMAGE", _I.c.SOPInstanceUID, "uid"),
    "SOPClassUID": Key("IMAGE", _I.c.SOPClassUID, "uid"),
    "Rows": Key("IMAGE", _I.c.Rows, "int"),
    "Columns": Key("IMAGE", _I.c.Columns, "int"),
    "BitsAllocated": Key("IMAGE", _I.c.BitsAllocated, "int"),
    "NumberOfFrames": Key("IMAGE", _I.c.NumberOfFrames, "int"),
    "ContentDate": Key("IMAGE", _I.c.ContentDate, "date"),
    "ContentTime": Key("IMAGE", _I.c.ContentTime, "time"),
}

#: The unique key of each level (PS3.4 C.2.2.1).
UNIQUE = {
    "PATIENT": "PatientID",
    "STUDY": "StudyInstanceUID",
    "SERIES": "SeriesInstanceUID",
    "IMAGE": "SOPInstanceUID",
}

_NORM = {
    "PatientName": _P.c.PatientName_norm,
    "ReferringPhysicianName": _ST.c.ReferringPhysicianName_norm,
}


def _like(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


def condition(keyword: str, value: str) -> sa.ColumnElement[bool] | None:
    """The SQL condition for one matching key; None for universal matching.

    Raises QueryError for a value its matching type cannot use.
    """
    key = KEYS[keyword]
    column = key.column
    value = value.strip() if key.kind != "pn" else value.rstrip()
    if value == "" or value == "*":
        return None
    if column is None:
        return None  # computed keys are matched by the caller
    if key.kind == "uid":
        uids = [u.strip() for u in value.split("\\") if u.strip()]
        return column.in_(uids) if len(uids) > 1 else column == uids[0]
    if key.kind in ("date", "time") and "-" in value:
        low, _, high = value.partition("-")
        low, high = low.strip(), high.strip()
        if key.kind == "time":
            # A time's upper bound covers all of that minute or second.
            high = high + "\uffff" if high else high
        # An object with no value for the key matches no range.
        parts = [column != ""]
        if low:
            parts.append(column >= low)
        if high:
            parts.append(column <= high)
        if not (low or high):
            raise QueryError(f"{keyword}: '{value}' is not a range")
        return sa.and_(*parts)
    if key.kind == "int":
        try:
            return column == int(value)
        except ValueError:
            raise QueryError(f"{keyword}: '{value}' is not an integer") from None
    if key.kind == "pn":
        norm = _NORM.get(keyword)
        target = norm if norm is not None else column
        wanted = value.upper() if norm is not None else value
        if "*" in wanted or "?" in wanted:
            return target.like(_like(wanted), escape="\\")
        return target == wanted
    if "*" in value or "?" in value:
        return column.like(_like(value), escape="\\")
    return column == value


# The computed keys are correlated subqueries of the one SELECT, on aliases so
# that they never correlate to the outer query's own study or series.
_CST, _CSE, _CI = _ST.alias("c_study"), _SE.alias("c_series"), _I.alias("c_instance")
_SEPARATOR = "\\"  # the value delimiter: no single CS or UI value holds one


def _count(source: Any, where: sa.ColumnElement[bool]) -> sa.ScalarSelect[Any]:
    return sa.select(sa.func.count()).select_from(source).where(where).scalar_subquery()


def _patient_series() -> Any:
    return _CSE.join(_CST, _CSE.c.study_pk == _CST.c.pk)


def _study_instances() -> Any:
    return _CI.join(_CSE, _CI.c.series_pk == _CSE.c.pk)


def _sop_classes_in_study() -> sa.ScalarSelect[Any]:
    distinct = (
        sa.select(_CI.c.SOPClassUID.label("uid"))
        .distinct()
        .select_from(_study_instances())
        .where(_CSE.c.study_pk == _ST.c.pk)
        .correlate(_ST)
        .subquery()
    )
    return sa.select(sa.func.group_concat(distinct.c.uid, _SEPARATOR)).scalar_subquery()


#: Keyword -> (lowest level it is computed at, its subquery).
_COMPUTED: dict[str, tuple[int, Any]] = {
    "NumberOfPatientRelatedStudies": (
        0,
        lambda: _count(_CST, _CST.c.patient_pk == _P.c.pk),
    ),
    "NumberOfPatientRelatedSeries": (
        0,
        lambda: _count(_patient_series(), _CST.c.patient_pk == _P.c.pk),
    ),
    "NumberOfPatientRelatedInstances": (
        0,
        lambda: _count(
            _CI.join(_patient_series(), _CI.c.series_pk == _CSE.c.pk),
            _CST.c.patient_pk == _P.c.pk,
        ),
    ),
    "NumberOfStudyRelatedSeries": (
        1,
        lambda: _count(_CSE, _CSE.c.study_pk == _ST.c.pk),
    ),
    "NumberOfStudyRelatedInstances": (
        1,
        lambda: _count(_study_instances(), _CSE.c.study_pk == _ST.c.pk),
    ),
    "ModalitiesInStudy": (
        1,
        lambda: (
            sa.select(sa.func.group_concat(_CSE.c.Modality, _SEPARATOR))
            .where(_CSE.c.study_pk == _ST.c.pk)
            .scalar_subquery()
        ),
    ),
    "SOPClassesInStudy": (1, _sop_classes_in_study),
    "NumberOfSeriesRelatedInstances": (
        2,
        lambda: _count(_CI, _CI.c.series_pk == _SE.c.pk),
    ),
}
#: Computed keys whose value is a list: sorted, distinct, empty ones left out.
_LISTS = ("ModalitiesInStudy", "SOPClassesInStudy")


def find(
    engine: sa.Engine,
    level: str,
    matching: dict[str, str],
    wanted: set[str],
) -> Iterator[dict[str, Any]]:
    """Rows of a hierarchical C-FIND at *level*, keyed by keyword.

    *matching* holds the keys with a value; *wanted* every requested key.
    Patient attributes are returned at every level, as the Study Root model
    treats them as study attributes (statement, table 11). One statement
    answers the query, the computed keys included: a query that returns
    hundreds of studies costs one round trip to the database, not one per
    study and key.
    """
    depth = LEVELS.index(level)
    levels = LEVELS[: depth + 1]
    source: Any = _P
    if depth >= 1:
        source = source.join(_ST, _ST.c.patient_pk == _P.c.pk)
    if depth >= 2:
        source = source.join(_SE, _SE.c.study_pk == _ST.c.pk)
    if depth >= 3:
        source = source.join(_I, _I.c.series_pk == _SE.c.pk)
    columns = [
        KEYS[k].column.label(k)
        for k in KEYS
        if KEYS[k].column is not None
        and KEYS[k].level in levels
        and (k in wanted or k in matching)
    ]
    computed = [
        subquery().label(k)
        for k, (lowest, subquery) in _COMPUTED.items()
        if k in wanted and depth >= lowest
    ]
    extra = [_P.c.pk.label("_patient_pk")]
    if depth >= 1:
        extra.append(_ST.c.pk.label("_study_pk"))
    if depth >= 2:
        extra.append(_SE.c.pk.label("_series_pk"))
    query = sa.select(*columns, *computed, *extra).select_from(source)
    for keyword, value in matching.items():
        clause = condition(keyword, value)
        if clause is not None:
            query = query.where(clause)
    modalities = matching.get("ModalitiesInStudy", "").strip()
    if modalities and depth >= 1:
        wanted_modalities = [m for m in modalities.split("\\") if m]
        query = query.where(
            sa.exists().where(
                _SE.c.study_pk == _ST.c.pk, _SE.c.Modality.in_(wanted_modalities)
            )
        )
    lists = [k for k in _LISTS if k in wanted and depth >= _COMPUTED[k][0]]
    with engine.connect() as conn:
        for row in conn.execute(query).mappings():
            item = dict(row)
            for key in lists:
                item[key] = sorted(
                    {v for v in (item[key] or "").split(_SEPARATOR) if v}
                )
            yield item
