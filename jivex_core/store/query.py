"""DICOM attribute matching (PS3.4 C.2.2.2) translated to SQL, once.

Single value, universal, wild card, range and list-of-UID matching become
``WHERE`` clauses on the index columns, so a query never loads rows it does
not return. Person names match on their folded ``*_norm`` columns
(:func:`jivex_core.charsets.fold`: case, width and composition do not count,
as PS3.4 C.2.2.2.1 allows), component group by component group. Sequence
keys (PS3.4 C.2.2.2.6) match on columns holding their first item's
attributes and are returned from the index as well (:data:`SEQUENCES`).
Used by the Query/Retrieve SCP, and later by the worklist, QIDO and the
client.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from jivex_core.charsets import fold
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
    kind: str  # text, pn, date, time, datetime, uid, int, computed, sequence


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
    # Table 11's Request Attribute Sequence; its item's keys follow below.
    "RequestAttributesSequence": Key("SERIES", None, "sequence"),
    # Tables 12 and 13: presentation states and key object documents. The
    # statement's "Presentation Description" and "Presentation Creator's
    # Name" are ContentDescription and ContentCreatorName in today's standard.
    "ContentDescription": Key("IMAGE", _I.c.ContentDescription, "text"),
    "PresentationCreationDate": Key("IMAGE", _I.c.PresentationCreationDate, "date"),
    "PresentationCreationTime": Key("IMAGE", _I.c.PresentationCreationTime, "time"),
    "ContentCreatorName": Key("IMAGE", _I.c.ContentCreatorName, "pn"),
    "ObservationDateTime": Key("IMAGE", _I.c.ObservationDateTime, "datetime"),
    "ReferencedSeriesSequence": Key("IMAGE", _I.c.sequences, "sequence"),
    "ReferencedRequestSequence": Key("IMAGE", _I.c.sequences, "sequence"),
    "ConceptNameCodeSequence": Key("IMAGE", _I.c.sequences, "sequence"),
    # Matching keys inside a sequence's item, named "<sequence>.<attribute>".
    "RequestAttributesSequence.RequestedProcedureID": Key(
        "SERIES", _SE.c.RequestedProcedureID, "text"
    ),
    "RequestAttributesSequence.ScheduledProcedureStepID": Key(
        "SERIES", _SE.c.ScheduledProcedureStepID, "text"
    ),
    "ConceptNameCodeSequence.CodeValue": Key(
        "IMAGE", _I.c.ConceptNameCodeSequence_CodeValue, "text"
    ),
    "ConceptNameCodeSequence.CodingSchemeDesignator": Key(
        "IMAGE", _I.c.ConceptNameCodeSequence_CodingSchemeDesignator, "text"
    ),
    "ConceptNameCodeSequence.CodeMeaning": Key(
        "IMAGE", _I.c.ConceptNameCodeSequence_CodeMeaning, "text"
    ),
}


@dataclass(frozen=True)
class SequenceKey:
    """A sequence attribute the archive matches or returns (PS3.4 C.2.2.2.6)."""

    #: The sub-attributes returned: keyword -> None, or a nested dict for a
    #: nested sequence.
    items: dict[str, Any]
    #: Sub-attributes matched (on the first stored item); each has a KEYS
    #: entry "<sequence>.<attribute>".
    matching: tuple[str, ...] = ()
    #: Items come from ``instance.sequences``; else they are the one item
    #: that the matching keys' columns make up.
    stored: bool = True

    def columns(self, keyword: str) -> list[str]:
        """The KEYS a query must select for :func:`sequence_items`."""
        if self.stored:
            return [keyword]
        return [f"{keyword}.{sub}" for sub in self.matching]


_REQUEST_ITEM = ("RequestedProcedureID", "ScheduledProcedureStepID")

#: Every sequence of tables 11 to 13 by keyword; its level is that of KEYS.
SEQUENCES: dict[str, SequenceKey] = {
    "RequestAttributesSequence": SequenceKey(
        dict.fromkeys(_REQUEST_ITEM), _REQUEST_ITEM, stored=False
    ),
    "ReferencedSeriesSequence": SequenceKey(
        schema.STORED_SEQUENCES["ReferencedSeriesSequence"]
    ),
    "ReferencedRequestSequence": SequenceKey(
        schema.STORED_SEQUENCES["ReferencedRequestSequence"]
    ),
    "ConceptNameCodeSequence": SequenceKey(
        schema.STORED_SEQUENCES["ConceptNameCodeSequence"],
        ("CodeValue", "CodingSchemeDesignator", "CodeMeaning"),
    ),
}


def sequence_items(keyword: str, row: dict[str, Any]) -> list[dict[str, Any]]:
    """The stored items of a sequence key for one result row of :func:`find`.

    Items map keywords to text, or to a list of items for a nested sequence.
    """
    key = SEQUENCES[keyword]
    if key.stored:
        text = row.get(keyword) or ""
        return list(json.loads(text).get(keyword, [])) if text else []
    item = {sub: row.get(f"{keyword}.{sub}") or "" for sub in key.matching}
    return [item] if any(item.values()) else []


def key_text(value: Any) -> str:
    """A key's value as one string, multiple values joined as on the wire."""
    if value is None or value == "":
        return ""
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    return str(value)


def query_level(value: object, patient_root: bool) -> str:
    """An identifier's Query/Retrieve Level, checked against the model.

    Patient Root has all four levels, Study Root no PATIENT level (PS3.4
    C.6.1 and C.6.2); raises QueryError naming the allowed ones.
    """
    level = str(value or "").strip().upper()
    allowed = LEVELS if patient_root else LEVELS[1:]
    if not level:
        raise QueryError(
            f"QueryRetrieveLevel is missing or empty ({', '.join(allowed)})"
        )
    if level not in allowed:
        raise QueryError(
            f"QueryRetrieveLevel '{level}' is not one of {', '.join(allowed)}"
        )
    return level


def check_key_level(keyword: str, level: str) -> None:
    """QueryError when *keyword* is a key of a level below *level*: a
    hierarchical query's keys are of its level or above (PS3.4 C.4.1.2.2).
    Keywords the archive does not index are not judged."""
    key = KEYS.get(keyword)
    if key is not None and LEVELS.index(key.level) > LEVELS.index(level):
        raise QueryError(
            f"{keyword} is {_article(key.level)} {key.level} key, below the "
            f"{level} level"
        )


def _article(level: str) -> str:
    return "an" if level == "IMAGE" else "a"


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
    "ContentCreatorName": _I.c.ContentCreatorName_norm,
}

# A DT value (PS3.5 6.2): YYYY[MM[DD[HH[MM[SS[.F{1,6}]]]]]][&ZZXX].
_DT = re.compile(
    r"(\d{4}(?:\d{2}(?:\d{2}(?:\d{2}(?:\d{2}(?:\d{2}(?:\.\d{1,6})?)?)?)?)?)?)"
    r"(?:[+-](\d{2})(\d{2}))?"
)


def _like(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


def _groups(column: sa.ColumnElement[str]) -> sa.ColumnElement[int]:
    """How many component groups a stored name has (one more than its '=')."""
    bare = sa.func.replace(column, "=", "", type_=sa.String)
    return sa.func.length(column) - sa.func.length(bare) + 1


def _name_condition(column: sa.ColumnElement[str], value: str) -> Any:
    """Match a person name component group by component group.

    A value with '=' matches group by group, an empty or '*' group matching
    anything. A value without '=' matches the alphabetic group and, when it
    has characters beyond ASCII, any group: the ideographic and phonetic
    groups are in other scripts, and an ASCII value matched on the first
    group only keeps the index on the column in use. One LIKE pattern per
    possible number of groups and position, each with as many literal '='
    as the name has: a '*' then never spans two groups.
    """
    groups = value.split("=")
    if len(groups) == 1:
        one = _like(value)
        options = {1: [one], 2: [one + "=%"], 3: [one + "=%=%"]}
        if not value.isascii():
            options[2].append("%=" + one)
            options[3] += ["%=" + one + "=%", "%=%=" + one]
    else:
        while groups and groups[-1].strip() in ("", "*"):
            groups.pop()
        if not groups:
            return None
        parts = ["%" if g.strip() in ("", "*") else _like(g) for g in groups]
        options = {
            n: ["=".join(parts + ["%"] * (n - len(parts)))]
            for n in range(len(parts), 4)
        }
    count = _groups(column)
    return sa.or_(
        *(
            sa.and_(column.like(pattern, escape="\\"), count == n)
            for n, patterns in options.items()
            for pattern in patterns
        )
    )


def condition(keyword: str, value: str) -> sa.ColumnElement[bool] | None:
    """The SQL condition for one matching key; None for universal matching.

    Raises QueryError for a value its matching type cannot use.
    """
    key = KEYS[keyword]
    column = key.column
    value = value.strip() if key.kind != "pn" else value.rstrip()
    if value == "" or value == "*":
        return None
    if key.kind == "sequence":
        raise QueryError(f"{keyword} is a sequence: it matches through its item")
    if column is None:
        return _count_condition(keyword, value)
    if key.kind == "datetime":
        return _datetime(keyword, column, value)
    if key.kind == "uid":
        if "*" in value or "?" in value:
            # PS3.4 C.2.2.2.4: no wild cards in UI keys; a UID matches whole.
            raise QueryError(f"{keyword} holds a wild card: '{value}'")
        uids = [u.strip() for u in value.split("\\") if u.strip()]
        if not uids:
            return None
        return column.in_(uids) if len(uids) > 1 else column == uids[0]
    if key.kind == "time":
        return _time_condition(keyword, column, value)
    if key.kind == "date":
        return _date_condition(keyword, column, value)
    if "\\" in value and key.kind in ("text", "pn") and keyword not in _MULTI_VALUED:
        # Multiple value matching (PS3.4 C.2.2.2.8): any of the values.
        alternatives = [
            condition(keyword, part) for part in value.split("\\") if part.strip()
        ]
        if any(alternative is None for alternative in alternatives):
            return None
        return sa.or_(*alternatives)
    if key.kind == "int":
        try:
            return column == int(value)
        except ValueError:
            raise QueryError(f"{keyword}: '{value}' is not an integer") from None
    if key.kind == "pn":
        norm = _NORM.get(keyword)
        if norm is None:
            return _name_condition(column, value)
        return _name_condition(norm, fold(value))
    if keyword in _MULTI_VALUED:
        return _any_value(column, value)
    if "*" in value or "?" in value:
        return column.like(_like(value), escape="\\")
    return column == value


_DATE = re.compile(r"(\d{4})\.?(\d{2})\.?(\d{2})")


def _date(keyword: str, text: str) -> str:
    """A DA value as YYYYMMDD (the ACR-NEMA form with dots read too)."""
    match = _DATE.fullmatch(text.strip())
    try:
        if match is None:
            raise ValueError
        dt.date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        raise QueryError(f"{keyword}: '{text}' is not a date (YYYYMMDD)") from None
    return match[1] + match[2] + match[3]


def _date_condition(
    keyword: str, column: sa.Column, value: str
) -> sa.ColumnElement[bool]:
    """Single value or range matching of a DA key (PS3.4 C.2.2.2.1, .5)."""
    if value.count("-") > 1:
        raise QueryError(f"{keyword}: '{value}' is not a date or a range of dates")
    if "-" not in value:
        return column == _date(keyword, value)
    low_text, _, high_text = (part.strip() for part in value.partition("-"))
    if not (low_text or high_text):
        raise QueryError(f"{keyword}: '{value}' is not a range")
    low = _date(keyword, low_text) if low_text else ""
    high = _date(keyword, high_text) if high_text else ""
    if low and high and low > high:
        # PS3.4 C.2.2.2.5: a range runs from its first value to its second.
        raise QueryError(f"{keyword} range ends before it begins: '{value}'")
    # An object with no value for the key matches no range.
    parts = [column != ""]
    if low:
        parts.append(column >= low)
    if high:
        parts.append(column <= high)
    return sa.and_(*parts)


def _datetime(keyword: str, column: sa.Column, value: str) -> sa.ColumnElement[bool]:
    """Single value or range matching of a DT key (PS3.4 C.2.2.2.5).

    A ``-`` is both the range separator and the sign of a UTC offset: a value
    that is one date-time with a valid offset is taken as that, anything else
    with a ``-`` as a range. Bounds compare as text without their offsets.
    """
    single = _DT.fullmatch(value)
    if single and (single[2] is None or _valid_offset(single[2], single[3])):
        return column == value
    for at in (i for i, c in enumerate(value) if c == "-"):
        low, high = _DT.fullmatch(value[:at]), _DT.fullmatch(value[at + 1 :])
        if (low or at == 0) and (high or at == len(value) - 1) and (low or high):
            if low and high and low[1] > high[1] + "\uffff":
                raise QueryError(f"{keyword} range ends before it begins: '{value}'")
            # An object with no value for the key matches no range.
            parts = [column != ""]
            if low:
                parts.append(column >= low[1])
            if high:
                # A partial upper bound covers all of that year, day, minute...
                parts.append(column <= high[1] + "\uffff")
            return sa.and_(*parts)
    raise QueryError(f"{keyword}: '{value}' is not a date-time or a range of them")


def _valid_offset(hours: str, minutes: str) -> bool:
    return int(hours) <= 14 and int(minutes) < 60


#: Keys whose index column holds all their values, joined by backslashes.
_MULTI_VALUED = frozenset({"OtherPatientIDs", "OtherPatientNames"})


def _any_value(column: sa.ColumnElement[str], value: str) -> Any:
    """An entity matches when any one of its values does (PS3.4 C.2.2.3).

    A '*' may still span two stored values: nothing delimits them in LIKE.
    """
    one, sep = _like(value), "\\\\"  # a literal backslash in the pattern
    patterns = (one, one + sep + "%", "%" + sep + one, "%" + sep + one + sep + "%")
    return sa.or_(*(column.like(p, escape="\\") for p in patterns))


_TIME = re.compile(r"^(\d\d)(\d\d)?(\d\d)?(?:\.(\d{1,6}))?$")


def _time_bounds(keyword: str, text: str) -> tuple[str, str]:
    """The first and last moment a TM value stands for, as HHMMSS.FFFFFF.

    A value names all of its last unit: '1000' is 10:00:00 to 10:00:59.999999,
    as a date names all of its day. Colons (the ACR-NEMA form) are ignored.
    """
    match = _TIME.match(text.replace(":", ""))
    if match is None or (match[4] and not match[3]):
        raise QueryError(f"{keyword}: '{text}' is not a time")
    hour, minute, second, fraction = match.groups()
    if int(hour) > 23 or int(minute or 0) > 59 or int(second or 0) > 60:
        raise QueryError(f"{keyword}: '{text}' is not a time")
    given = hour + (minute or "") + (second or "")
    fraction = fraction or ""
    low = given.ljust(6, "0") + "." + fraction.ljust(6, "0")
    high = given.ljust(6, "9") + "." + fraction.ljust(6, "9")
    return low, high


def _stored_time(column: sa.ColumnElement[str]) -> sa.ColumnElement[str]:
    """A stored TM value as HHMMSS.FFFFFF, missing digits as zeros, in SQL."""
    bare = sa.func.replace(column, ":", "", type_=sa.String)
    whole = sa.func.substr(bare + "000000", 1, 6, type_=sa.String)
    fraction = sa.func.substr(
        sa.func.substr(bare, 8, type_=sa.String) + "000000", 1, 6, type_=sa.String
    )
    return whole + "." + fraction


def _time_condition(keyword: str, column: sa.ColumnElement[str], value: str) -> Any:
    """Single value and range matching of times, compared as times.

    Both sides are brought to HHMMSS.FFFFFF, so '0930' and '093000' are one
    time and an upper bound of '1000' takes in 10:00:30. A range that
    crosses midnight is refused, as PS3.4 C.2.2.2.5.2 does not support it.
    """
    if "-" in value:
        low_text, _, high_text = (part.strip() for part in value.partition("-"))
        if not (low_text or high_text):
            raise QueryError(f"{keyword}: '{value}' is not a range")
        low = _time_bounds(keyword, low_text)[0] if low_text else ""
        high = _time_bounds(keyword, high_text)[1] if high_text else ""
        if low and high and low > high:
            raise QueryError(f"{keyword}: '{value}' crosses midnight")
    else:
        low, high = _time_bounds(keyword, value)
    stored = _stored_time(column)
    # An object with no value for the key matches no time.
    parts = [column != ""]
    if low:
        parts.append(stored >= low)
    if high:
        parts.append(stored <= high)
    return sa.and_(*parts)


def _related_count(keyword: str) -> Any:
    """The number a Number of ... Related ... key stands for, per result row."""
    st, se, i = _ST.alias(), _SE.alias(), _I.alias()
    count = sa.select(sa.func.count())
    if keyword == "NumberOfPatientRelatedStudies":
        query = count.select_from(st).where(st.c.patient_pk == _P.c.pk)
    elif keyword == "NumberOfPatientRelatedSeries":
        query = count.select_from(se.join(st, se.c.study_pk == st.c.pk)).where(
            st.c.patient_pk == _P.c.pk
        )
    elif keyword == "NumberOfPatientRelatedInstances":
        query = count.select_from(
            i.join(se, i.c.series_pk == se.c.pk).join(st, se.c.study_pk == st.c.pk)
        ).where(st.c.patient_pk == _P.c.pk)
    elif keyword == "NumberOfStudyRelatedSeries":
        query = count.select_from(se).where(se.c.study_pk == _ST.c.pk)
    elif keyword == "NumberOfStudyRelatedInstances":
        query = count.select_from(i.join(se, i.c.series_pk == se.c.pk)).where(
            se.c.study_pk == _ST.c.pk
        )
    elif keyword == "NumberOfSeriesRelatedInstances":
        query = count.select_from(i).where(i.c.series_pk == _SE.c.pk)
    else:
        return None
    return query.correlate_except(st, se, i).scalar_subquery()


def _count_condition(keyword: str, value: str) -> Any:
    """Single value matching on a computed count; None for other computed keys.

    Modalities and SOP Classes in Study are matched by :func:`find`.
    """
    related = _related_count(keyword)
    if related is None:
        return None
    try:
        wanted = int(value)
    except ValueError:
        raise QueryError(f"{keyword}: '{value}' is not an integer") from None
    return related == wanted


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
    # Read all rows first: a C-FIND answers slowly (one response per row),
    # and a connection held meanwhile is one less for parallel queries.
    with engine.connect() as conn:
        rows = conn.execute(query).mappings().all()
    for row in rows:
        item = dict(row)
        for key in lists:
            item[key] = sorted({v for v in (item[key] or "").split(_SEPARATOR) if v})
        yield item


#: What sending a stored object needs to know of it.
SENDING_COLUMNS = (
    _I.c.SOPClassUID,
    _I.c.SOPInstanceUID,
    _I.c.TransferSyntaxUID,
    _I.c.path,
    _I.c.incomplete,
)


def retrieve_rows(engine: sa.Engine, matching: dict[str, str]) -> list[dict[str, Any]]:
    """The instances a C-MOVE or C-GET identifier selects, in series order.

    *matching* holds unique keys only (single values or UID lists); the rows
    carry what sending needs: classes, syntax and the file's relative path.
    """
    source = (
        _P.join(_ST, _ST.c.patient_pk == _P.c.pk)
        .join(_SE, _SE.c.study_pk == _ST.c.pk)
        .join(_I, _I.c.series_pk == _SE.c.pk)
    )
    query = (
        sa.select(*SENDING_COLUMNS)
        .select_from(source)
        .order_by(_ST.c.pk, _SE.c.SeriesNumber, _SE.c.pk, _I.c.InstanceNumber, _I.c.pk)
    )
    for keyword, value in matching.items():
        clause = condition(keyword, value)
        if clause is not None:
            query = query.where(clause)
    with engine.connect() as conn:
        return [dict(row) for row in conn.execute(query).mappings()]


def stored_character_sets(
    engine: sa.Engine, patient_pk: int, study_pk: int | None
) -> list[str]:
    """The Specific Character Sets of a result row's study and patient.

    The study's first: at study level and below, most returned text is the
    study's. Each is the value of the first object indexed for that entity.
    """
    with engine.connect() as conn:
        out = []
        if study_pk is not None:
            out.append(
                conn.execute(
                    sa.select(_ST.c.SpecificCharacterSet).where(_ST.c.pk == study_pk)
                ).scalar_one_or_none()
            )
        out.append(
            conn.execute(
                sa.select(_P.c.SpecificCharacterSet).where(_P.c.pk == patient_pk)
            ).scalar_one_or_none()
        )
    return [c for c in out if c]
