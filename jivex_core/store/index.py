"""The index database: the only code that reads or writes it.

SQLAlchemy Core on SQLite (WAL mode) by default. Writers are serialised by
one lock per process; SQLite's busy timeout covers a second process (an
import while the server runs). The schema is brought up to date with Alembic
when the index is opened.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence as AbcSequence
from dataclasses import MISSING, asdict, dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from jivex_core.charsets import fold
from jivex_core.errors import StoreError
from jivex_core.store import schema
from jivex_core.store.dicomfile import integer, text

logger = logging.getLogger(__name__)

_MIGRATIONS = Path(__file__).with_name("migrations")


@dataclass(frozen=True)
class InstanceRecord:
    """What the index keeps of one object, read from its data set."""

    PatientID: str
    IssuerOfPatientID: str
    PatientName: str
    PatientBirthDate: str
    PatientBirthTime: str
    PatientSex: str
    OtherPatientIDs: str
    OtherPatientNames: str
    SpecificCharacterSet: str
    StudyInstanceUID: str
    StudyDate: str
    StudyTime: str
    AccessionNumber: str
    StudyID: str
    ReferringPhysicianName: str
    StudyDescription: str
    SeriesInstanceUID: str
    Modality: str
    SeriesNumber: int | None
    SeriesDescription: str
    BodyPartExamined: str
    PerformedProcedureStepStartDate: str
    PerformedProcedureStepStartTime: str
    RequestedProcedureID: str
    ScheduledProcedureStepID: str
    SOPInstanceUID: str
    SOPClassUID: str
    InstanceNumber: int | None
    Rows: int | None
    Columns: int | None
    BitsAllocated: int | None
    NumberOfFrames: int | None
    ContentDate: str
    ContentTime: str
    ContentDescription: str
    PresentationCreationDate: str
    PresentationCreationTime: str
    ContentCreatorName: str
    ObservationDateTime: str
    # Of the first item of Concept Name Code Sequence (key object documents).
    ConceptNameCodeSequence_CodeValue: str = ""
    ConceptNameCodeSequence_CodingSchemeDesignator: str = ""
    ConceptNameCodeSequence_CodeMeaning: str = ""
    #: JSON of the STORED_SEQUENCES the object has, '' when none.
    sequences: str = ""

    @classmethod
    def from_dataset(cls, ds: Dataset) -> InstanceRecord:
        """Read the indexed attributes; malformed values index as empty."""
        request = _first_item(ds, "RequestAttributesSequence")
        fields: dict[str, Any] = {}
        for name, kind in _FIELD_KINDS.items():
            if name in ("RequestedProcedureID", "ScheduledProcedureStepID"):
                fields[name] = text(request, name) if request is not None else ""
            elif kind is int:
                fields[name] = integer(ds, name)
            else:
                fields[name] = text(ds, name)
        if fields["SOPClassUID"].startswith(_CLASSES_WITH_SEQUENCES):
            stored = _stored_sequences(ds)
            concept = (stored.get("ConceptNameCodeSequence") or [{}])[0]
            for name in ("CodeValue", "CodingSchemeDesignator", "CodeMeaning"):
                fields[f"ConceptNameCodeSequence_{name}"] = concept.get(name, "")
            if stored:
                fields["sequences"] = json.dumps(
                    stored, ensure_ascii=False, separators=(",", ":")
                )
        return cls(**fields)

    def patient_key(self) -> str:
        """Identity of the patient within this archive.

        Patient ID with its issuer; an object without an ID is grouped by
        name and birth date instead, never merged with every other such one.
        """
        if self.PatientID:
            return f"id\\{self.PatientID}\\{self.IssuerOfPatientID}"
        return f"noid\\{self.PatientName}\\{self.PatientBirthDate}"


#: The record's fields read as top-level attributes of the same keyword.
_FIELD_KINDS = {
    name: (int if "int" in str(f.type) else str)
    for name, f in InstanceRecord.__dataclass_fields__.items()
    if f.default is MISSING
}

#: Presentation states and structured reports (key object documents
#: included): the only objects whose sequences of tables 12 and 13 are read,
#: so an ordinary image costs no sequence decoding.
_CLASSES_WITH_SEQUENCES = ("1.2.840.10008.5.1.4.1.1.11.", "1.2.840.10008.5.1.4.1.1.88.")

#: Tags :meth:`InstanceRecord.from_dataset` reads: all a receive needs parsed.
INDEX_TAGS: frozenset[int] = frozenset(
    int(tag_for_keyword(keyword))
    for keyword in [
        *_FIELD_KINDS,
        "SpecificCharacterSet",
        "RequestAttributesSequence",
        *schema.STORED_SEQUENCES,
    ]
)


def _stored_sequences(ds: Dataset) -> dict[str, list[dict[str, Any]]]:
    """The STORED_SEQUENCES the data set has, reduced to what they keep."""
    out: dict[str, list[dict[str, Any]]] = {}
    for keyword, tree in schema.STORED_SEQUENCES.items():
        items = _items(ds, keyword, tree)
        if items:
            out[keyword] = items
    return out


def _items(ds: Dataset, keyword: str, tree: dict[str, Any]) -> list[dict[str, Any]]:
    """The items of one sequence with the sub-attributes *tree* names.

    A sub-attribute is kept when the item has it, even empty (a type 2
    attribute is known to be empty, not missing). A sequence that cannot be
    decoded is indexed as absent: the object is still stored and found.
    """
    if keyword not in ds:
        return []
    try:
        seq = ds[keyword].value
        if not isinstance(seq, Sequence):
            return []
        out: list[dict[str, Any]] = []
        for item in seq:
            entry: dict[str, Any] = {}
            for sub, subtree in tree.items():
                if sub not in item:
                    continue
                entry[sub] = (
                    text(item, sub) if subtree is None else _items(item, sub, subtree)
                )
            out.append(entry)
        return out
    except Exception as exc:
        logger.warning("%s cannot be decoded; not indexed: %s", keyword, exc)
        return []


def _first_item(ds: Dataset, keyword: str) -> Dataset | None:
    try:
        seq = ds.get(keyword)
        return seq[0] if seq else None
    except Exception:
        return None


def _norm(name: str) -> str:
    return fold(name)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    # NORMAL in WAL mode survives a crash of the process; the files
    # themselves are fsynced, so a lost tail after power loss is re-indexable.
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    # Wild card matching is case-sensitive but for person names, which match
    # on their folded columns (PS3.4 C.2.2.2.4).
    cur.execute("PRAGMA case_sensitive_like=ON")
    cur.close()


def database_url(data_dir: Path) -> str:
    """The default index: an SQLite file in the data folder."""
    return f"sqlite:///{data_dir / 'index.sqlite'}"


def upgrade_schema(engine: sa.Engine, target: str = "head") -> None:
    """Apply pending Alembic revisions, logging each upgrade at WARNING.

    *target* other than the head builds the index of an earlier version, to
    test the upgrade from it.
    """
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    wanted = ScriptDirectory.from_config(cfg).get_revision(target).revision
    with engine.begin() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
        if current == wanted:
            return
        if current is None:
            logger.warning("Creating the index schema at revision %s", wanted)
        else:
            logger.warning(
                "Upgrading the index schema from revision %s to %s", current, wanted
            )
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, wanted)


class Index:
    """Patient, study, series and instance rows of the archive."""

    def __init__(self, url: str) -> None:
        # Every association may query at once: never make one wait for a
        # pooled connection (SQLite connections are cheap).
        self.engine = sa.create_engine(url, pool_size=8, max_overflow=-1)
        if self.engine.dialect.name == "sqlite":
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        try:
            upgrade_schema(self.engine)
        except sa.exc.DBAPIError as exc:
            self.engine.dispose()
            raise StoreError(
                f"the index database cannot be opened: {exc.orig}"
            ) from exc
        self._write_lock = threading.Lock()
        # One connection and prebuilt statements for the receive path: a
        # connection checkout and statement construction per object cost more
        # than the SQL itself.
        self._writer = self.engine.connect()
        t = schema.instance
        self._select_instance = sa.select(t.c.pk, t.c.incomplete).where(
            t.c.SOPInstanceUID == sa.bindparam("uid")
        )
        self._insert_instance = sa.insert(t)
        # An object stored again is no longer removed (a reload, or anyone
        # sending it): its reference goes in the same transaction.
        self._drop_reference = sa.delete(schema.removed_instance).where(
            schema.removed_instance.c.SOPInstanceUID == sa.bindparam("uid")
        )
        self._touch_study = (
            sa.update(schema.study)
            .where(schema.study.c.pk == sa.bindparam("study_pk"))
            .values(last_received=sa.bindparam("now"))
        )
        # Series UID -> (series pk, study pk); study pk -> when last touched.
        self._series_cache: OrderedDict[str, tuple[int, int]] = OrderedDict()
        self._study_touched: dict[int, float] = {}

    def close(self) -> None:
        """Release the database connections."""
        with self._write_lock:
            self._writer.close()
        self.engine.dispose()

    @property
    def write_lock(self) -> threading.Lock:
        """Held around every write so that check-then-insert is atomic."""
        return self._write_lock

    def has_instance(self, sop_instance_uid: str, complete: bool = False) -> bool:
        """Whether an object with this SOP Instance UID is already stored.

        With *complete*, one stored cut short does not count.
        """
        with self._write_lock:
            return self.contains(sop_instance_uid, complete)

    def contains(self, sop_instance_uid: str, complete: bool = False) -> bool:
        """:meth:`has_instance` for a caller that holds :attr:`write_lock`."""
        conn = self._writer
        try:
            row = conn.execute(self._select_instance, {"uid": sop_instance_uid}).first()
        finally:
            # Never keep a read transaction open: another process may write.
            conn.rollback()
        return row is not None and not (complete and row.incomplete)

    def add_instance(
        self,
        rec: InstanceRecord,
        path: str,
        size: int,
        transfer_syntax: str,
        calling_ae: str,
        incomplete: bool = False,
        origin_ae: str = "",
    ) -> tuple[bool, str | None]:
        """Insert one object (and its patient, study, series) without commit.

        Call with :attr:`write_lock` held, then :meth:`commit` or
        :meth:`rollback`. Returns ``(added, replaced)``: *added* is False,
        with nothing left pending, when an object with this SOP Instance UID
        is already indexed (the unique key decides); *replaced* is the path of
        an incomplete copy that this complete one replaces. *origin_ae* is
        the remote AE the object can be fetched again from ('' if none); a
        reference to the object removed earlier is dropped.
        """
        values = {
            "SOPInstanceUID": rec.SOPInstanceUID,
            "SOPClassUID": rec.SOPClassUID,
            "InstanceNumber": rec.InstanceNumber,
            "Rows": rec.Rows,
            "Columns": rec.Columns,
            "BitsAllocated": rec.BitsAllocated,
            "NumberOfFrames": rec.NumberOfFrames,
            "ContentDate": rec.ContentDate,
            "ContentTime": rec.ContentTime,
            "ContentDescription": rec.ContentDescription,
            "PresentationCreationDate": rec.PresentationCreationDate,
            "PresentationCreationTime": rec.PresentationCreationTime,
            "ContentCreatorName": rec.ContentCreatorName,
            "ContentCreatorName_norm": _norm(rec.ContentCreatorName),
            "ObservationDateTime": rec.ObservationDateTime,
            "ConceptNameCodeSequence_CodeValue": rec.ConceptNameCodeSequence_CodeValue,
            "ConceptNameCodeSequence_CodingSchemeDesignator": (
                rec.ConceptNameCodeSequence_CodingSchemeDesignator
            ),
            "ConceptNameCodeSequence_CodeMeaning": (
                rec.ConceptNameCodeSequence_CodeMeaning
            ),
            "sequences": rec.sequences,
            "path": path,
            "size": size,
            "TransferSyntaxUID": transfer_syntax,
            "calling_ae": calling_ae,
            "origin_ae": origin_ae,
            "incomplete": incomplete,
        }
        now = dt.datetime.now()
        conn = self._writer
        replaced: str | None = None
        try:
            series_pk, study_pk = self._series_of(conn, rec, now)
            row = {**values, "series_pk": series_pk, "received_at": now}
            try:
                conn.execute(self._insert_instance, row)
            except sa.exc.IntegrityError:
                # Rare (a duplicate): start over in a clean transaction.
                self.rollback()
                t = schema.instance
                old = conn.execute(
                    sa.select(t.c.path, t.c.incomplete).where(
                        t.c.SOPInstanceUID == rec.SOPInstanceUID
                    )
                ).first()
                if old is None:
                    raise
                if incomplete or not old.incomplete:
                    self.rollback()
                    return False, None
                # A complete copy of an object that arrived cut short.
                conn.execute(
                    sa.delete(t).where(t.c.SOPInstanceUID == rec.SOPInstanceUID)
                )
                series_pk, study_pk = self._series_of(conn, rec, now)
                conn.execute(self._insert_instance, {**row, "series_pk": series_pk})
                replaced = str(old.path)
            conn.execute(self._drop_reference, {"uid": rec.SOPInstanceUID})
        except BaseException:
            self.rollback()
            raise
        # The browser sorts by last arrival; once a second is precise enough
        # and saves an UPDATE per object of a large series.
        tick = time.monotonic()
        if tick - self._study_touched.get(study_pk, -1e9) >= 1.0:
            conn.execute(self._touch_study, {"study_pk": study_pk, "now": now})
            self._study_touched[study_pk] = tick
        return True, replaced

    def _series_of(
        self, conn: sa.Connection, rec: InstanceRecord, now: dt.datetime
    ) -> tuple[int, int]:
        cached = self._series_cache.get(rec.SeriesInstanceUID)
        if cached is None:
            return self._ensure_series(conn, rec, now)
        self._series_cache.move_to_end(rec.SeriesInstanceUID)
        return cached

    def commit(self) -> None:
        """Commit what :meth:`add_instance` left pending."""
        try:
            self._writer.commit()
        except BaseException:
            self.rollback()
            raise

    def rollback(self) -> None:
        """Undo what :meth:`add_instance` left pending."""
        self._writer.rollback()
        # The caches may name rows of the transaction just undone.
        self.forget_rows()

    def forget_rows(self) -> None:
        """Drop the cached series and study rows (some may be gone)."""
        self._series_cache.clear()
        self._study_touched.clear()

    @property
    def writer(self) -> sa.Connection:
        """The connection of every write; use it with :attr:`write_lock`
        held, and leave no transaction open."""
        return self._writer

    def _ensure_series(
        self, conn: sa.Connection, rec: InstanceRecord, now: dt.datetime
    ) -> tuple[int, int]:
        patient_pk = self._ensure(
            conn,
            schema.patient,
            schema.patient.c.patient_key,
            rec.patient_key(),
            {
                "PatientID": rec.PatientID,
                "IssuerOfPatientID": rec.IssuerOfPatientID,
                "PatientName": rec.PatientName,
                "PatientName_norm": _norm(rec.PatientName),
                "PatientBirthDate": rec.PatientBirthDate,
                "PatientBirthTime": rec.PatientBirthTime,
                "PatientSex": rec.PatientSex,
                "OtherPatientIDs": rec.OtherPatientIDs,
                "OtherPatientNames": rec.OtherPatientNames,
                "SpecificCharacterSet": rec.SpecificCharacterSet,
            },
        )
        study_pk = self._ensure(
            conn,
            schema.study,
            schema.study.c.StudyInstanceUID,
            rec.StudyInstanceUID,
            {
                "patient_pk": patient_pk,
                "StudyDate": rec.StudyDate,
                "StudyTime": rec.StudyTime,
                "AccessionNumber": rec.AccessionNumber,
                "StudyID": rec.StudyID,
                "ReferringPhysicianName": rec.ReferringPhysicianName,
                "ReferringPhysicianName_norm": _norm(rec.ReferringPhysicianName),
                "StudyDescription": rec.StudyDescription,
                "SpecificCharacterSet": rec.SpecificCharacterSet,
                "last_received": now,
            },
        )
        series_pk = self._ensure(
            conn,
            schema.series,
            schema.series.c.SeriesInstanceUID,
            rec.SeriesInstanceUID,
            {
                "study_pk": study_pk,
                "Modality": rec.Modality,
                "SeriesNumber": rec.SeriesNumber,
                "SeriesDescription": rec.SeriesDescription,
                "BodyPartExamined": rec.BodyPartExamined,
                "PerformedProcedureStepStartDate": rec.PerformedProcedureStepStartDate,
                "PerformedProcedureStepStartTime": rec.PerformedProcedureStepStartTime,
                "RequestedProcedureID": rec.RequestedProcedureID,
                "ScheduledProcedureStepID": rec.ScheduledProcedureStepID,
            },
        )
        self._series_cache[rec.SeriesInstanceUID] = (series_pk, study_pk)
        if len(self._series_cache) > 4096:
            self._series_cache.popitem(last=False)
            self._study_touched.clear()
        return series_pk, study_pk

    @staticmethod
    def _ensure(
        conn: sa.Connection,
        table: sa.Table,
        key_col: sa.Column,
        key: str,
        values: dict[str, Any],
    ) -> int:
        row = conn.execute(sa.select(table.c.pk).where(key_col == key)).first()
        if row is not None:
            return int(row[0])
        result = conn.execute(sa.insert(table).values({key_col.name: key, **values}))
        return int(result.inserted_primary_key[0])

    # -- reading -----------------------------------------------------------

    def instance_path(self, sop_instance_uid: str) -> str | None:
        """The relative path the index gives for an object, None if unknown."""
        t = schema.instance
        with self.engine.connect() as conn:
            return conn.execute(
                sa.select(t.c.path).where(t.c.SOPInstanceUID == sop_instance_uid)
            ).scalar_one_or_none()

    def count_instances(self) -> int:
        """How many objects the archive holds."""
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    sa.select(sa.func.count()).select_from(schema.instance)
                ).scalar_one()
            )

    def studies(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Study rows for the browser, most recently received first."""
        p, st, se, i = schema.patient, schema.study, schema.series, schema.instance
        counts = (
            sa.select(
                se.c.study_pk,
                sa.func.count(sa.distinct(se.c.pk)).label("n_series"),
                sa.func.count(i.c.pk).label("n_instances"),
            )
            .select_from(se.join(i, i.c.series_pk == se.c.pk))
            .group_by(se.c.study_pk)
            .subquery()
        )
        query = (
            sa.select(
                p.c.PatientName,
                p.c.PatientID,
                p.c.PatientBirthDate,
                p.c.PatientSex,
                st.c.pk,
                st.c.StudyInstanceUID,
                st.c.StudyDate,
                st.c.StudyTime,
                st.c.StudyDescription,
                st.c.AccessionNumber,
                st.c.last_received,
                counts.c.n_series,
                counts.c.n_instances,
            )
            .select_from(
                st.join(p, p.c.pk == st.c.patient_pk).outerjoin(
                    counts, counts.c.study_pk == st.c.pk
                )
            )
            .order_by(st.c.last_received.desc())
        )
        if limit:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
            modalities: dict[int, list[str]] = {}
            for study_pk, modality in conn.execute(
                sa.select(se.c.study_pk, se.c.Modality).distinct()
            ):
                if modality:
                    modalities.setdefault(study_pk, []).append(modality)
        return [
            {
                "PatientName": r["PatientName"],
                "PatientID": r["PatientID"],
                "PatientBirthDate": r["PatientBirthDate"],
                "PatientSex": r["PatientSex"],
                "StudyInstanceUID": r["StudyInstanceUID"],
                "StudyDate": r["StudyDate"],
                "StudyTime": r["StudyTime"],
                "StudyDescription": r["StudyDescription"],
                "AccessionNumber": r["AccessionNumber"],
                "ModalitiesInStudy": sorted(modalities.get(r["pk"], [])),
                "NumberOfStudyRelatedSeries": int(r["n_series"] or 0),
                "NumberOfStudyRelatedInstances": int(r["n_instances"] or 0),
                "LastReceived": r["last_received"].isoformat(timespec="seconds"),
            }
            for r in rows
        ]

    def series_of(self, study_uid: str) -> list[dict[str, Any]]:
        """Series rows of one study, in series number order."""
        st, se, i = schema.study, schema.series, schema.instance
        query = (
            sa.select(
                se.c.SeriesInstanceUID,
                se.c.Modality,
                se.c.SeriesNumber,
                se.c.SeriesDescription,
                sa.func.count(i.c.pk).label("n"),
            )
            .select_from(
                se.join(st, st.c.pk == se.c.study_pk).outerjoin(
                    i, i.c.series_pk == se.c.pk
                )
            )
            .where(st.c.StudyInstanceUID == study_uid)
            .group_by(se.c.pk)
            .order_by(se.c.SeriesNumber, se.c.pk)
        )
        with self.engine.connect() as conn:
            return [
                {
                    "SeriesInstanceUID": r.SeriesInstanceUID,
                    "Modality": r.Modality,
                    "SeriesNumber": r.SeriesNumber,
                    "SeriesDescription": r.SeriesDescription,
                    "NumberOfSeriesRelatedInstances": int(r.n),
                }
                for r in conn.execute(query)
            ]

    def instances_of(self, series_uid: str, data_dir: Path) -> list[dict[str, Any]]:
        """Instance rows of one series in display order, with absolute paths."""
        se, i = schema.series, schema.instance
        query = (
            sa.select(
                i.c.SOPInstanceUID,
                i.c.SOPClassUID,
                i.c.InstanceNumber,
                i.c.NumberOfFrames,
                i.c.path,
            )
            .select_from(i.join(se, se.c.pk == i.c.series_pk))
            .where(se.c.SeriesInstanceUID == series_uid)
            .order_by(i.c.InstanceNumber, i.c.pk)
        )
        with self.engine.connect() as conn:
            return [
                {
                    "SOPInstanceUID": r.SOPInstanceUID,
                    "SOPClassUID": r.SOPClassUID,
                    "InstanceNumber": r.InstanceNumber,
                    "NumberOfFrames": r.NumberOfFrames,
                    "path": str(data_dir / r.path),
                }
                for r in conn.execute(query)
            ]

    def created_series(
        self, study_uid: str, modality: str, calling_ae: str, uid_prefix: str
    ) -> tuple[str, int | None, int] | None:
        """The series of *modality* this station created in a study, if any.

        A series counts as ours when its UID is under *uid_prefix* (our
        root) and its objects came from *calling_ae* (our own AE title: the
        core stores what it creates under its own name). Returns its
        Series Instance UID, Series Number and highest Instance Number; of
        several, the first created.
        """
        st, se, i = schema.study, schema.series, schema.instance
        query = (
            sa.select(
                se.c.SeriesInstanceUID,
                se.c.SeriesNumber,
                sa.func.max(i.c.InstanceNumber).label("last"),
            )
            .select_from(
                i.join(se, se.c.pk == i.c.series_pk).join(st, st.c.pk == se.c.study_pk)
            )
            .where(
                st.c.StudyInstanceUID == study_uid,
                se.c.Modality == modality,
                se.c.SeriesInstanceUID.startswith(uid_prefix, autoescape=True),
                i.c.calling_ae == calling_ae,
            )
            .group_by(se.c.pk)
            .order_by(se.c.pk)
            .limit(1)
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        return row.SeriesInstanceUID, row.SeriesNumber, int(row.last or 0)

    def series_numbers(self, study_uid: str) -> set[int]:
        """The Series Numbers the series of a study use."""
        st, se = schema.study, schema.series
        query = (
            sa.select(se.c.SeriesNumber)
            .select_from(se.join(st, st.c.pk == se.c.study_pk))
            .where(st.c.StudyInstanceUID == study_uid, se.c.SeriesNumber.is_not(None))
        )
        with self.engine.connect() as conn:
            return {int(n) for n in conn.execute(query).scalars()}

    def instances_of_classes(
        self, study_uid: str, sop_classes: AbcSequence[str], data_dir: Path
    ) -> list[dict[str, Any]]:
        """The objects of some SOP classes in a study, with absolute paths."""
        st, se, i = schema.study, schema.series, schema.instance
        query = (
            sa.select(
                i.c.SOPClassUID,
                i.c.SOPInstanceUID,
                se.c.SeriesInstanceUID,
                se.c.Modality,
                se.c.SeriesNumber,
                i.c.InstanceNumber,
                i.c.path,
            )
            .select_from(
                i.join(se, se.c.pk == i.c.series_pk).join(st, st.c.pk == se.c.study_pk)
            )
            .where(
                st.c.StudyInstanceUID == study_uid,
                i.c.SOPClassUID.in_(list(sop_classes)),
            )
            .order_by(se.c.SeriesNumber, i.c.InstanceNumber, i.c.pk)
        )
        with self.engine.connect() as conn:
            return [
                {**dict(row), "path": str(data_dir / row["path"])}
                for row in conn.execute(query).mappings()
            ]

    def listing(self, level: str, data_dir: Path) -> list[dict[str, Any]]:
        """Rows of ``jivex ls`` at one level, keyed by DICOM keywords.

        Each row carries the keys of the levels above it, so a script reading
        instance rows needs no join.
        """
        p, st, se, i = schema.patient, schema.study, schema.series, schema.instance
        patient_cols = [
            p.c.PatientID,
            p.c.IssuerOfPatientID,
            p.c.PatientName,
            p.c.PatientBirthDate,
            p.c.PatientSex,
        ]
        study_cols = [
            st.c.StudyInstanceUID,
            st.c.StudyDate,
            st.c.StudyTime,
            st.c.AccessionNumber,
            st.c.StudyID,
            st.c.StudyDescription,
            st.c.ReferringPhysicianName,
        ]
        series_cols = [
            se.c.SeriesInstanceUID,
            se.c.Modality,
            se.c.SeriesNumber,
            se.c.SeriesDescription,
        ]
        instance_cols = [
            i.c.SOPInstanceUID,
            i.c.SOPClassUID,
            i.c.InstanceNumber,
            i.c.Rows,
            i.c.Columns,
            i.c.NumberOfFrames,
            i.c.TransferSyntaxUID,
            i.c.size,
            i.c.calling_ae,
            i.c.origin_ae,
            i.c.received_at,
            i.c.incomplete,
            i.c.path,
        ]
        if level == "patient":
            query = sa.select(*patient_cols).order_by(p.c.PatientName, p.c.pk)
        elif level == "study":
            query = (
                sa.select(*patient_cols, *study_cols)
                .select_from(st.join(p, p.c.pk == st.c.patient_pk))
                .order_by(st.c.StudyDate, st.c.pk)
            )
        elif level == "series":
            query = (
                sa.select(*patient_cols, *study_cols, *series_cols)
                .select_from(
                    se.join(st, st.c.pk == se.c.study_pk).join(
                        p, p.c.pk == st.c.patient_pk
                    )
                )
                .order_by(st.c.pk, se.c.SeriesNumber, se.c.pk)
            )
        elif level == "instance":
            query = (
                sa.select(*patient_cols, *study_cols, *series_cols, *instance_cols)
                .select_from(
                    i.join(se, se.c.pk == i.c.series_pk)
                    .join(st, st.c.pk == se.c.study_pk)
                    .join(p, p.c.pk == st.c.patient_pk)
                )
                .order_by(i.c.pk)
            )
        else:
            raise ValueError(
                f"level '{level}' is not one of patient, study, series, instance"
            )
        out = []
        with self.engine.connect() as conn:
            for row in conn.execute(query).mappings():
                item = dict(row)
                if "path" in item:
                    item["path"] = str(data_dir / item["path"])
                if "received_at" in item:
                    item["received_at"] = item["received_at"].isoformat()
                out.append(item)
        return out


def record_dict(rec: InstanceRecord) -> dict[str, Any]:
    """The record as plain data (for events)."""
    return asdict(rec)
