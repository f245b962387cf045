"""Local removal of objects, the references kept of them, and what a reload
and the lifetime policy need to know about them.

Removing an object takes its index row and its file away and keeps a
reference (``removed_instance``): its UIDs, SOP class, the patient, study
and series attributes the browser lists, the remote AE it came from and
when it was removed. Storing the object again (a reload, or anyone sending
it) drops the reference in the same transaction as the new index row
(:meth:`jivex_core.store.index.Index.add_instance`).

**Order of a removal, and why.** The index goes first, the files after:

1. one transaction writes the references (each still naming its file in
   ``path``) and deletes the index rows, with the patient, study and series
   rows left empty; on SQLite it is committed with ``synchronous=FULL``, so
   that it is on disk before any file goes;
2. the files are unlinked, their folders fsynced, and only then the
   references' ``path`` cleared.

A crash before the commit changes nothing. A crash after it leaves files
that no index row names but whose references still do: the start-up
recovery (:meth:`Removals.finish_pending`) removes them. So at every moment
no index row names a missing file (readers, the Q/R SCP and the viewer,
never meet a hole), no file is left without a row or a reference naming it,
and no object is gone without its reference. The other order (files first)
would let a crash leave index rows pointing at nothing and objects gone with
no trace of where they came from.

File removal holds the index's write lock per batch and skips an object
stored again meanwhile (its new file has the same path), so that a reload
racing a removal never loses the new copy.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from jivex_core.store import schema
from jivex_core.store.files import FileStore
from jivex_core.store.index import Index
from jivex_core.wording import counted

logger = logging.getLogger(__name__)

DELETE, LIFETIME = "delete", "lifetime"

_P, _ST, _SE, _I = schema.patient, schema.study, schema.series, schema.instance
_R = schema.removed_instance

#: The references' columns and what they are copied from.
_COPIED: dict[str, sa.ColumnElement[Any]] = {
    "SOPInstanceUID": _I.c.SOPInstanceUID,
    "SOPClassUID": _I.c.SOPClassUID,
    "InstanceNumber": _I.c.InstanceNumber,
    "SeriesInstanceUID": _SE.c.SeriesInstanceUID,
    "Modality": _SE.c.Modality,
    "SeriesNumber": _SE.c.SeriesNumber,
    "SeriesDescription": _SE.c.SeriesDescription,
    "StudyInstanceUID": _ST.c.StudyInstanceUID,
    "StudyDate": _ST.c.StudyDate,
    "StudyTime": _ST.c.StudyTime,
    "AccessionNumber": _ST.c.AccessionNumber,
    "StudyID": _ST.c.StudyID,
    "StudyDescription": _ST.c.StudyDescription,
    "ReferringPhysicianName": _ST.c.ReferringPhysicianName,
    "PatientID": _P.c.PatientID,
    "IssuerOfPatientID": _P.c.IssuerOfPatientID,
    "PatientName": _P.c.PatientName,
    "PatientBirthDate": _P.c.PatientBirthDate,
    "PatientSex": _P.c.PatientSex,
    "origin_ae": _I.c.origin_ae,
    "calling_ae": _I.c.calling_ae,
    "size": _I.c.size,
    "received_at": _I.c.received_at,
    "path": _I.c.path,
}

_STORED = (
    _I.join(_SE, _SE.c.pk == _I.c.series_pk)
    .join(_ST, _ST.c.pk == _SE.c.study_pk)
    .join(_P, _P.c.pk == _ST.c.patient_pk)
)

#: Rows per statement: SQLite allows a few hundred bound values.
_CHUNK = 400
#: Files removed per hold of the write lock.
_FILE_BATCH = 256


def _chunks(values: Sequence[Any], size: int = _CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _stored_match(value: str) -> sa.ColumnElement[bool]:
    return sa.or_(
        _I.c.SOPInstanceUID == value,
        _SE.c.SeriesInstanceUID == value,
        _ST.c.StudyInstanceUID == value,
        _P.c.PatientID == value,
    )


def _removed_match(value: str) -> sa.ColumnElement[bool]:
    return sa.or_(
        _R.c.SOPInstanceUID == value,
        _R.c.SeriesInstanceUID == value,
        _R.c.StudyInstanceUID == value,
        _R.c.PatientID == value,
    )


def _objects(count: int) -> str:
    return f"{count} removed object" + ("" if count == 1 else "s")


def _sources(titles: Iterable[str]) -> str:
    return ", ".join(
        f"received from '{t}'" if t else "imported" for t in sorted(titles)
    )


class RemovalError(ValueError):
    """Nothing of a removal or reload could be done; the message says why."""


@dataclass
class Problem:
    """One input that could not be acted on, and why."""

    value: str
    error: str

    def view(self) -> dict[str, str]:
        """For the link: ``{"uid", "error"}``."""
        return {"uid": self.value, "error": self.error}


@dataclass
class Selection:
    """The stored objects some inputs stand for."""

    instance_pks: list[int] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


@dataclass
class Summary:
    """What a removal takes (or took) away, for a confirmation or a report."""

    patients: int = 0
    studies: int = 0
    series: int = 0
    instances: int = 0
    size: int = 0
    #: Objects with no origin in the remote AE table: no reload brings them
    #: back.
    not_reloadable: int = 0
    origins: list[str] = field(default_factory=list)
    study_rows: list[dict[str, Any]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def view(self) -> dict[str, Any]:
        """For the link and ``jivex delete --json``."""
        return {
            "patients": self.patients,
            "studies": self.study_rows,
            "series": self.series,
            "instances": self.instances,
            "size": self.size,
            "not_reloadable": self.not_reloadable,
            "origins": self.origins,
            "errors": [p.view() for p in self.problems],
        }


@dataclass(frozen=True)
class ReloadRequest:
    """One retrieve that brings removed objects back from their origin."""

    origin_ae: str
    level: str
    keys: dict[str, str]
    instances: int


@dataclass
class ReloadPlan:
    """The retrieves a reload needs, and the inputs it cannot serve."""

    requests: list[ReloadRequest] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


@dataclass(frozen=True)
class ExpiredStudy:
    """A study past the lifetime: what the policy removes and what it keeps."""

    study_uid: str
    patient: str
    newest: dt.datetime
    cutoff: dt.datetime
    removable: list[int]
    #: Objects kept, by the AE they were received from ('' for an import).
    kept: dict[str, int]


class Removals:
    """Removes objects of one data folder and reads the references."""

    def __init__(self, index: Index, files: FileStore) -> None:
        self.index = index
        self.files = files
        self.engine = index.engine

    # -- what inputs stand for ---------------------------------------------

    def select(self, values: Iterable[str]) -> Selection:
        """The stored objects of patients (by Patient ID), studies, series or
        instances; an input that matches none is a problem named by it."""
        out = Selection()
        seen: set[int] = set()
        wanted = list(dict.fromkeys(v.strip() for v in values if v.strip()))
        with self.engine.connect() as conn:
            for value in wanted:
                pks = conn.execute(
                    sa.select(_I.c.pk).select_from(_STORED).where(_stored_match(value))
                ).scalars()
                found = [pk for pk in pks if pk not in seen]
                if found or self._stored(conn, value):
                    seen.update(found)
                    out.instance_pks.extend(found)
                    continue
                removed = conn.execute(
                    sa.select(sa.func.count()).where(_removed_match(value))
                ).scalar_one()
                out.problems.append(
                    Problem(
                        value,
                        f"'{value}' is already removed (jivex reload brings it back)"
                        if removed
                        else f"nothing stored has the UID or Patient ID '{value}'",
                    )
                )
        return out

    @staticmethod
    def _stored(conn: sa.Connection, value: str) -> bool:
        return (
            conn.execute(
                sa.select(_I.c.pk).select_from(_STORED).where(_stored_match(value))
            ).first()
            is not None
        )

    def summary(self, selection: Selection, known_origins: set[str]) -> Summary:
        """What removing *selection* takes away, per study."""
        out = Summary(problems=list(selection.problems))
        if not selection.instance_pks:
            return out
        patients: set[int] = set()
        series: set[int] = set()
        origins: set[str] = set()
        studies: dict[int, dict[str, Any]] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(selection.instance_pks):
                rows = conn.execute(
                    sa.select(
                        _P.c.pk.label("patient_pk"),
                        _ST.c.pk.label("study_pk"),
                        _SE.c.pk.label("series_pk"),
                        _I.c.size,
                        _I.c.origin_ae,
                        _I.c.calling_ae,
                    )
                    .select_from(_STORED)
                    .where(_I.c.pk.in_(chunk))
                )
                for row in rows:
                    patients.add(row.patient_pk)
                    series.add(row.series_pk)
                    study = studies.setdefault(
                        row.study_pk,
                        {"instances": 0, "size": 0, "origins": set(), "kept": 0},
                    )
                    study["instances"] += 1
                    study["size"] += row.size
                    out.instances += 1
                    out.size += row.size
                    if row.origin_ae in known_origins:
                        origins.add(row.origin_ae)
                        study["origins"].add(row.origin_ae)
                    else:
                        out.not_reloadable += 1
                        study["kept"] += 1
            described = conn.execute(
                sa.select(
                    _ST.c.pk,
                    _ST.c.StudyInstanceUID,
                    _ST.c.StudyDate,
                    _ST.c.StudyDescription,
                    _P.c.PatientName,
                    _P.c.PatientID,
                    sa.select(sa.func.count(_I.c.pk))
                    .select_from(_I.join(_SE, _SE.c.pk == _I.c.series_pk))
                    .where(_SE.c.study_pk == _ST.c.pk)
                    .scalar_subquery()
                    .label("total"),
                )
                .select_from(_ST.join(_P, _P.c.pk == _ST.c.patient_pk))
                .where(_ST.c.pk.in_(list(studies)))
                .order_by(_ST.c.StudyDate, _ST.c.pk)
            )
            for row in described:
                study = studies[row.pk]
                out.study_rows.append(
                    {
                        "StudyInstanceUID": row.StudyInstanceUID,
                        "StudyDate": row.StudyDate,
                        "StudyDescription": row.StudyDescription,
                        "PatientName": row.PatientName,
                        "PatientID": row.PatientID,
                        "instances": study["instances"],
                        "of": int(row.total),
                        "size": study["size"],
                        "origins": sorted(study["origins"]),
                        "not_reloadable": study["kept"],
                    }
                )
        out.patients = len(patients)
        out.studies = len(studies)
        out.series = len(series)
        out.origins = sorted(origins)
        return out

    # -- removing ----------------------------------------------------------

    def remove(
        self,
        instance_pks: Sequence[int],
        reason: str,
        at: dt.datetime | None = None,
        received_before: dt.datetime | None = None,
    ) -> int:
        """Remove objects by their index keys, keeping a reference of each;
        returns how many were removed. See the module for the order.

        With *received_before*, objects received since are kept: the
        lifetime policy chose a study by its newest object, and one may have
        arrived in between.
        """
        if not instance_pks:
            return 0
        at = at or dt.datetime.now()
        removed = 0
        with self.index.write_lock:
            conn = self.index.writer
            sqlite = conn.dialect.name == "sqlite"
            try:
                if sqlite:
                    # The references must be on disk before any file goes.
                    conn.exec_driver_sql("PRAGMA synchronous=FULL")
                pks = list(instance_pks)
                if received_before is not None:
                    pks = [
                        pk
                        for chunk in _chunks(pks)
                        for pk in conn.execute(
                            sa.select(_I.c.pk).where(
                                _I.c.pk.in_(chunk), _I.c.received_at < received_before
                            )
                        ).scalars()
                    ]
                removed = self._remove_rows(conn, pks, reason, at)
                conn.commit()
            except BaseException:
                conn.rollback()
                raise
            finally:
                self.index.forget_rows()
                if sqlite:
                    conn.exec_driver_sql("PRAGMA synchronous=NORMAL")
                    conn.rollback()
        self.finish_pending()
        return removed

    def _remove_rows(
        self,
        conn: sa.Connection,
        instance_pks: Sequence[int],
        reason: str,
        at: dt.datetime,
    ) -> int:
        removed = 0
        series_pks: set[int] = set()
        columns = list(_COPIED)
        for chunk in _chunks(list(instance_pks)):
            uids = sa.select(_I.c.SOPInstanceUID).where(_I.c.pk.in_(chunk))
            conn.execute(sa.delete(_R).where(_R.c.SOPInstanceUID.in_(uids)))
            source = (
                sa.select(
                    *_COPIED.values(),
                    sa.literal(at, sa.DateTime).label("removed_at"),
                    sa.literal(reason, sa.String).label("reason"),
                )
                .select_from(_STORED)
                .where(_I.c.pk.in_(chunk))
            )
            conn.execute(
                sa.insert(_R).from_select([*columns, "removed_at", "reason"], source)
            )
            series_pks.update(
                conn.execute(
                    sa.select(_I.c.series_pk).where(_I.c.pk.in_(chunk)).distinct()
                ).scalars()
            )
            removed += conn.execute(sa.delete(_I).where(_I.c.pk.in_(chunk))).rowcount
        # Rows left empty: a listing or a query must not find them.
        study_pks: set[int] = set()
        for chunk in _chunks(sorted(series_pks)):
            study_pks.update(
                conn.execute(
                    sa.select(_SE.c.study_pk).where(_SE.c.pk.in_(chunk)).distinct()
                ).scalars()
            )
            conn.execute(
                sa.delete(_SE).where(
                    _SE.c.pk.in_(chunk),
                    ~sa.exists().where(_I.c.series_pk == _SE.c.pk),
                )
            )
        patient_pks: set[int] = set()
        for chunk in _chunks(sorted(study_pks)):
            patient_pks.update(
                conn.execute(
                    sa.select(_ST.c.patient_pk).where(_ST.c.pk.in_(chunk)).distinct()
                ).scalars()
            )
            conn.execute(
                sa.delete(_ST).where(
                    _ST.c.pk.in_(chunk),
                    ~sa.exists().where(_SE.c.study_pk == _ST.c.pk),
                )
            )
        for chunk in _chunks(sorted(patient_pks)):
            conn.execute(
                sa.delete(_P).where(
                    _P.c.pk.in_(chunk),
                    ~sa.exists().where(_ST.c.patient_pk == _P.c.pk),
                )
            )
        return removed

    def finish_pending(self) -> int:
        """Remove the files of references that still name one: those of the
        removal just committed, or of one a crash interrupted. Returns how
        many references were finished."""
        with self.engine.connect() as conn:
            pending = conn.execute(
                sa.select(_R.c.pk, _R.c.SOPInstanceUID, _R.c.path)
                .where(_R.c.path != "")
                .order_by(_R.c.pk)
            ).all()
        for batch in _chunks(pending, _FILE_BATCH):
            self._remove_files(batch)
        return len(pending)

    def _remove_files(self, batch: Sequence[Any]) -> None:
        with self.index.write_lock:
            conn = self.index.writer
            try:
                # An object stored again meanwhile has its new file at the
                # same path: that one stays.
                back = set(
                    conn.execute(
                        sa.select(_I.c.SOPInstanceUID).where(
                            _I.c.SOPInstanceUID.in_([r.SOPInstanceUID for r in batch])
                        )
                    ).scalars()
                )
                conn.rollback()
                folders: set[Path] = set()
                for row in batch:
                    if row.SOPInstanceUID not in back:
                        folders.add(self.files.remove(row.path))
                # The unlinks are durable before the references forget them.
                self.files.prune(folders)
                conn.execute(
                    sa.update(_R)
                    .where(_R.c.pk.in_([r.pk for r in batch]), _R.c.path != "")
                    .values(path="")
                )
                conn.commit()
            except BaseException:
                conn.rollback()
                raise

    # -- reading references ------------------------------------------------

    def count(self) -> int:
        """How many references there are."""
        with self.engine.connect() as conn:
            return int(
                conn.execute(sa.select(sa.func.count()).select_from(_R)).scalar_one()
            )

    def references(self, values: Iterable[str] = ()) -> list[dict[str, Any]]:
        """Reference rows (all, or those of patients by ID, studies, series,
        instances), keyed by DICOM keywords as ``jivex ls`` has them."""
        wanted = [v.strip() for v in values if v.strip()]
        query = sa.select(_R).order_by(
            _R.c.StudyInstanceUID, _R.c.SeriesNumber, _R.c.InstanceNumber, _R.c.pk
        )
        if wanted:
            query = query.where(sa.or_(*(_removed_match(v) for v in wanted)))
        out = []
        with self.engine.connect() as conn:
            for row in conn.execute(query).mappings():
                item = {k: v for k, v in row.items() if k not in ("pk", "path")}
                item["received_at"] = row["received_at"].isoformat()
                item["removed_at"] = row["removed_at"].isoformat()
                out.append(item)
        return out

    def removed_studies(self) -> list[dict[str, Any]]:
        """Per study with references: its browser row (the columns of
        :meth:`Index.studies`) plus ``RemovedInstances``, ``RemovedSeries``,
        ``RemovedAt`` and ``RemovedFrom`` (the origins)."""
        query = (
            sa.select(
                _R.c.StudyInstanceUID,
                sa.func.count(_R.c.pk).label("n"),
                sa.func.count(sa.distinct(_R.c.SeriesInstanceUID)).label("n_series"),
                sa.func.max(_R.c.removed_at).label("removed_at"),
                sa.func.max(_R.c.received_at).label("received_at"),
                sa.func.max(_R.c.pk).label("last"),
            )
            .group_by(_R.c.StudyInstanceUID)
            .subquery()
        )
        described = sa.select(
            query, *(_R.c[k] for k in _STUDY_KEYS if k != "StudyInstanceUID")
        ).join(_R, _R.c.pk == query.c.last)
        extra: dict[str, tuple[set[str], set[str]]] = defaultdict(
            lambda: (set(), set())
        )
        with self.engine.connect() as conn:
            rows = conn.execute(described).mappings().all()
            for study, modality, origin in conn.execute(
                sa.select(
                    _R.c.StudyInstanceUID, _R.c.Modality, _R.c.origin_ae
                ).distinct()
            ):
                modalities, origins = extra[study]
                if modality:
                    modalities.add(modality)
                origins.add(origin)
        out = []
        for row in rows:
            modalities, origins = extra[row["StudyInstanceUID"]]
            out.append(
                {
                    **{k: row[k] for k in _STUDY_KEYS},
                    "ModalitiesInStudy": sorted(modalities),
                    "NumberOfStudyRelatedSeries": int(row["n_series"]),
                    "NumberOfStudyRelatedInstances": int(row["n"]),
                    "LastReceived": row["received_at"].isoformat(timespec="seconds"),
                    "RemovedInstances": int(row["n"]),
                    "RemovedSeries": int(row["n_series"]),
                    "RemovedAt": row["removed_at"].isoformat(timespec="seconds"),
                    "RemovedFrom": sorted(origins),
                }
            )
        return out

    def with_removed_studies(self, local: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The browser's study rows *local* with what was removed of each
        (``Removed`` False, ``RemovedInstances``, ``RemovedAt``,
        ``RemovedFrom``), then the studies removed whole (``Removed`` True),
        most recently removed first."""
        removed = {r["StudyInstanceUID"]: r for r in self.removed_studies()}
        out = []
        for row in local:
            gone = removed.pop(row["StudyInstanceUID"], None)
            out.append(
                {
                    **row,
                    "Removed": False,
                    "RemovedInstances": gone["RemovedInstances"] if gone else 0,
                    "RemovedAt": gone["RemovedAt"] if gone else None,
                    "RemovedFrom": gone["RemovedFrom"] if gone else [],
                }
            )
        rest = sorted(removed.values(), key=lambda r: r["RemovedAt"], reverse=True)
        out.extend({**row, "Removed": True} for row in rest)
        return out

    def with_removed_series(
        self, study_uid: str, local: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """The series rows *local* of a study with what was removed of each,
        then its series removed whole, as :meth:`with_removed_studies`."""
        removed = {r["SeriesInstanceUID"]: r for r in self.removed_series(study_uid)}
        out = []
        for row in local:
            gone = removed.pop(row["SeriesInstanceUID"], None)
            count = gone["RemovedInstances"] if gone else 0
            out.append({**row, "Removed": False, "RemovedInstances": count})
        out.extend({**row, "Removed": True} for row in removed.values())
        return out

    def removed_series(self, study_uid: str) -> list[dict[str, Any]]:
        """Per series of *study_uid* with references: the columns of
        :meth:`Index.series_of` plus ``RemovedInstances``."""
        query = (
            sa.select(
                _R.c.SeriesInstanceUID,
                sa.func.max(_R.c.Modality).label("Modality"),
                sa.func.max(_R.c.SeriesNumber).label("SeriesNumber"),
                sa.func.max(_R.c.SeriesDescription).label("SeriesDescription"),
                sa.func.count(_R.c.pk).label("n"),
            )
            .where(_R.c.StudyInstanceUID == study_uid)
            .group_by(_R.c.SeriesInstanceUID)
            .order_by(sa.func.max(_R.c.SeriesNumber))
        )
        with self.engine.connect() as conn:
            return [
                {
                    "SeriesInstanceUID": r.SeriesInstanceUID,
                    "Modality": r.Modality,
                    "SeriesNumber": r.SeriesNumber,
                    "SeriesDescription": r.SeriesDescription,
                    "NumberOfSeriesRelatedInstances": int(r.n),
                    "RemovedInstances": int(r.n),
                }
                for r in conn.execute(query)
            ]

    # -- reloading ---------------------------------------------------------

    def plan_reload(self, values: Iterable[str], known_origins: set[str]) -> ReloadPlan:
        """The retrieves that fetch the removed objects of *values* (patients
        by ID, studies, series, instances) again from where they came from.

        Each study is retrieved at the coarsest level that asks for no more
        than was removed: the study when all of it was removed from one
        origin, else the series removed whole, else the instances. Inputs
        that name nothing removed, objects without an origin and origins no
        longer in the remote AE table (*known_origins*) are problems named
        by the input.
        """
        plan = ReloadPlan()
        wanted = list(dict.fromkeys(v.strip() for v in values if v.strip()))
        chosen: dict[str, Any] = {}
        with self.engine.connect() as conn:
            for value in wanted:
                rows = conn.execute(
                    sa.select(
                        _R.c.SOPInstanceUID,
                        _R.c.SeriesInstanceUID,
                        _R.c.StudyInstanceUID,
                        _R.c.origin_ae,
                        _R.c.calling_ae,
                    ).where(_removed_match(value))
                ).all()
                if not rows:
                    plan.problems.append(
                        Problem(
                            value,
                            f"'{value}' is stored, not removed"
                            if self._stored(conn, value)
                            else f"nothing removed has the UID or Patient ID '{value}'",
                        )
                    )
                    continue
                unknown: dict[str, int] = defaultdict(int)
                gone: dict[str, int] = defaultdict(int)
                for row in rows:
                    if not row.origin_ae:
                        unknown[row.calling_ae] += 1
                    elif row.origin_ae not in known_origins:
                        gone[row.origin_ae] += 1
                    else:
                        chosen.setdefault(row.SOPInstanceUID, row)
                if unknown:
                    plan.problems.append(
                        Problem(
                            value,
                            f"'{value}': {_objects(sum(unknown.values()))} not "
                            "retrieved from a configured remote AE "
                            f"({_sources(unknown)}): nowhere to fetch them from",
                        )
                    )
                for origin, count in sorted(gone.items()):
                    plan.problems.append(
                        Problem(
                            value,
                            f"'{value}': {_objects(count)} from '{origin}', "
                            "which is no longer in the remote AE table",
                        )
                    )
            groups: dict[tuple[str, str], list[Any]] = defaultdict(list)
            for row in chosen.values():
                groups[(row.origin_ae, row.StudyInstanceUID)].append(row)
            for (origin, study), rows in groups.items():
                plan.requests.extend(self._study_requests(conn, origin, study, rows))
        return plan

    def _study_requests(
        self, conn: sa.Connection, origin: str, study: str, rows: list[Any]
    ) -> list[ReloadRequest]:
        chosen = {r.SOPInstanceUID for r in rows}
        refs = conn.execute(
            sa.select(
                _R.c.SOPInstanceUID, _R.c.SeriesInstanceUID, _R.c.origin_ae
            ).where(_R.c.StudyInstanceUID == study)
        ).all()
        local_series = set(
            conn.execute(
                sa.select(_SE.c.SeriesInstanceUID)
                .select_from(_SE.join(_ST, _ST.c.pk == _SE.c.study_pk))
                .where(_ST.c.StudyInstanceUID == study)
            ).scalars()
        )

        def whole(found: list[Any]) -> bool:
            # All of it removed, from this origin, and asked for now.
            return all(
                r.SOPInstanceUID in chosen and r.origin_ae == origin for r in found
            )

        if not local_series and whole(refs):
            keys = {"StudyInstanceUID": study}
            return [ReloadRequest(origin, "STUDY", keys, len(rows))]
        by_series: dict[str, list[Any]] = defaultdict(list)
        for ref in refs:
            by_series[ref.SeriesInstanceUID].append(ref)
        whole_series: list[str] = []
        out: list[ReloadRequest] = []
        count = 0
        for series, found in sorted(by_series.items()):
            mine = [r.SOPInstanceUID for r in found if r.SOPInstanceUID in chosen]
            if not mine:
                continue
            if series not in local_series and whole(found):
                whole_series.append(series)
                count += len(mine)
                continue
            out.append(
                ReloadRequest(
                    origin,
                    "IMAGE",
                    {
                        "StudyInstanceUID": study,
                        "SeriesInstanceUID": series,
                        "SOPInstanceUID": "\\".join(mine),
                    },
                    len(mine),
                )
            )
        if whole_series:
            keys = {
                "StudyInstanceUID": study,
                "SeriesInstanceUID": "\\".join(whole_series),
            }
            out.insert(0, ReloadRequest(origin, "SERIES", keys, count))
        return out

    # -- the lifetime policy -----------------------------------------------

    def expired(
        self, days: float, known_origins: set[str], now: dt.datetime | None = None
    ) -> list[ExpiredStudy]:
        """Studies whose newest object was received more than *days* ago,
        each with the objects the policy may remove (their origin is in the
        remote AE table: a reload brings them back) and those it keeps."""
        cutoff = (now or dt.datetime.now()) - dt.timedelta(days=days)
        newest = (
            sa.select(_SE.c.study_pk, sa.func.max(_I.c.received_at).label("newest"))
            .select_from(_I.join(_SE, _SE.c.pk == _I.c.series_pk))
            .group_by(_SE.c.study_pk)
            .having(sa.func.max(_I.c.received_at) < cutoff)
            .subquery()
        )
        out: list[ExpiredStudy] = []
        with self.engine.connect() as conn:
            studies = conn.execute(
                sa.select(
                    _ST.c.pk,
                    _ST.c.StudyInstanceUID,
                    _P.c.PatientName,
                    _P.c.PatientID,
                    newest.c.newest,
                )
                .select_from(
                    newest.join(_ST, _ST.c.pk == newest.c.study_pk).join(
                        _P, _P.c.pk == _ST.c.patient_pk
                    )
                )
                .order_by(newest.c.newest)
            ).all()
            for study in studies:
                removable: list[int] = []
                kept: dict[str, int] = defaultdict(int)
                for pk, origin, calling in conn.execute(
                    sa.select(_I.c.pk, _I.c.origin_ae, _I.c.calling_ae)
                    .select_from(_I.join(_SE, _SE.c.pk == _I.c.series_pk))
                    .where(_SE.c.study_pk == study.pk)
                ):
                    if origin and origin in known_origins:
                        removable.append(pk)
                    else:
                        kept[calling] += 1
                out.append(
                    ExpiredStudy(
                        study.StudyInstanceUID,
                        f"{study.PatientName} ({study.PatientID})",
                        study.newest,
                        cutoff,
                        removable,
                        dict(kept),
                    )
                )
        return out


#: The study-level keys a reference carries, as :meth:`Index.studies` has them.
_STUDY_KEYS = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "StudyDescription",
    "AccessionNumber",
)


def kept_text(kept: dict[str, int]) -> str:
    """``3 objects received from 'CT1', 1 imported`` for a log line."""
    parts = []
    for calling, count in sorted(kept.items()):
        parts.append(
            f"{counted(count, 'object')} received from '{calling}'"
            if calling
            else f"{counted(count, 'object')} imported"
        )
    return ", ".join(parts)
