"""C-FIND in SQL: the computed keys in one statement, the matching on indexes.

The archive is built here so that every count differs between patients,
studies and series: a count taken from the wrong row, or from the whole
table, gives a wrong number.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRLittleEndian,
    MRImageStorage,
    PositronEmissionTomographyImageStorage,
)

from jivex_core.store import Store
from jivex_core.store.query import find
from jivex_core.uids import new_uid

# patient -> studies -> series as (modality, SOP class, instances)
ARCHIVE = {
    "PA": [
        [("CT", CTImageStorage, 3), ("PT", PositronEmissionTomographyImageStorage, 2)],
        [("MR", MRImageStorage, 4)],
    ],
    "PB": [[("", CTImageStorage, 1), ("CT", CTImageStorage, 2)]],
}
PATIENT_COUNTS = (
    "NumberOfPatientRelatedStudies",
    "NumberOfPatientRelatedSeries",
    "NumberOfPatientRelatedInstances",
)
COMPUTED = {
    *PATIENT_COUNTS,
    "NumberOfStudyRelatedSeries",
    "NumberOfStudyRelatedInstances",
    "ModalitiesInStudy",
    "SOPClassesInStudy",
    "NumberOfSeriesRelatedInstances",
}


def _encoded(ds: Dataset) -> bytes:
    fp = DicomBytesIO()
    fp.is_little_endian = True
    fp.is_implicit_VR = False
    write_dataset(fp, ds)
    return fp.getvalue()


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    store = Store(tmp_path_factory.mktemp("computed"), min_free_bytes=0, fsync=False)
    uids: dict[str, list] = {}
    for patient, studies in ARCHIVE.items():
        for study in studies:
            study_uid = new_uid()
            uids.setdefault(patient, []).append((study_uid, []))
            for modality, sop_class, count in study:
                series_uid = new_uid()
                uids[patient][-1][1].append(series_uid)
                for number in range(count):
                    ds = Dataset()
                    ds.SOPClassUID = sop_class
                    ds.SOPInstanceUID = new_uid()
                    ds.PatientID = patient
                    ds.PatientName = f"{patient}^TEST"
                    ds.StudyInstanceUID = study_uid
                    ds.SeriesInstanceUID = series_uid
                    ds.Modality = modality
                    ds.InstanceNumber = number + 1
                    store.ingest(_encoded(ds), ExplicitVRLittleEndian, "TEST")
    yield store, uids
    store.close()


@pytest.fixture
def executed(archive):
    """(statement, parameters) of what the index runs during the test."""
    seen: list[tuple[str, object]] = []

    def record(conn, cursor, statement, parameters, *args):
        seen.append((statement, parameters))

    engine = archive[0].index.engine
    sa.event.listen(engine, "before_cursor_execute", record)
    yield seen
    sa.event.remove(engine, "before_cursor_execute", record)


@pytest.fixture
def statements(executed):
    """The SQL statements the index runs during the test."""
    return _Statements(executed)


class _Statements:
    def __init__(self, executed):
        self._executed = executed

    def __len__(self):
        return len(self._executed)

    def __getitem__(self, i):
        return self._executed[i][0]

    def __repr__(self):
        return repr([s for s, _ in self._executed])


def test_study_level_counts_are_per_study(archive):
    store, uids = archive
    rows = list(find(store.index.engine, "STUDY", {}, {"StudyInstanceUID", *COMPUTED}))
    by_uid = {row["StudyInstanceUID"]: row for row in rows}
    first, second = (by_uid[uid] for uid, _ in uids["PA"])
    (other,) = (by_uid[uid] for uid, _ in uids["PB"])
    assert (
        first["NumberOfStudyRelatedSeries"],
        first["NumberOfStudyRelatedInstances"],
    ) == (2, 5)
    assert (
        second["NumberOfStudyRelatedSeries"],
        second["NumberOfStudyRelatedInstances"],
    ) == (1, 4)
    assert (
        other["NumberOfStudyRelatedSeries"],
        other["NumberOfStudyRelatedInstances"],
    ) == (2, 3)
    assert first["ModalitiesInStudy"] == ["CT", "PT"]
    assert second["ModalitiesInStudy"] == ["MR"]
    # A series without a modality adds none; CT is listed once.
    assert other["ModalitiesInStudy"] == ["CT"]
    assert first["SOPClassesInStudy"] == sorted(
        [CTImageStorage, PositronEmissionTomographyImageStorage]
    )
    assert other["SOPClassesInStudy"] == [CTImageStorage]
    # Patient counts are returned at the study level too.
    assert [first[k] for k in PATIENT_COUNTS] == [2, 3, 9]
    assert other["NumberOfPatientRelatedInstances"] == 3
    # Series keys are not computed above their level.
    assert "NumberOfSeriesRelatedInstances" not in first


def test_patient_and_series_levels(archive):
    store, uids = archive
    patients = {
        row["PatientID"]: row
        for row in find(
            store.index.engine,
            "PATIENT",
            {},
            {"PatientID", *PATIENT_COUNTS},
        )
    }
    assert patients["PA"]["NumberOfPatientRelatedStudies"] == 2
    assert patients["PA"]["NumberOfPatientRelatedSeries"] == 3
    assert patients["PB"]["NumberOfPatientRelatedStudies"] == 1
    assert patients["PB"]["NumberOfPatientRelatedInstances"] == 3
    study_uid, series_uids = uids["PA"][0]
    series = {
        row["SeriesInstanceUID"]: row["NumberOfSeriesRelatedInstances"]
        for row in find(
            store.index.engine,
            "SERIES",
            {"StudyInstanceUID": study_uid},
            {"SeriesInstanceUID", "NumberOfSeriesRelatedInstances"},
        )
    }
    assert series == {series_uids[0]: 3, series_uids[1]: 2}


def test_one_statement_whatever_the_number_of_answers(archive, statements):
    store, _ = archive
    rows = list(find(store.index.engine, "STUDY", {}, {"StudyInstanceUID", *COMPUTED}))
    assert len(rows) == 3
    assert len(statements) == 1, statements


def test_computed_keys_not_asked_for_are_not_computed(archive, statements):
    store, _ = archive
    (row,) = find(store.index.engine, "STUDY", {"PatientID": "PB"}, {"PatientID"})
    assert set(row) == {"PatientID", "_patient_pk", "_study_pk"}
    assert "count(" not in statements[-1].lower()
    assert "group_concat" not in statements[-1].lower()


def test_modalities_in_study_as_a_matching_key_and_returned(archive):
    store, uids = archive
    rows = list(
        find(
            store.index.engine,
            "STUDY",
            {"ModalitiesInStudy": "PT\\MR"},
            {"StudyInstanceUID", "ModalitiesInStudy"},
        )
    )
    assert sorted(row["StudyInstanceUID"] for row in rows) == sorted(
        uid for uid, _ in uids["PA"]
    )
    # The whole list comes back, not only the modalities asked for.
    assert sorted(row["ModalitiesInStudy"] for row in rows) == [["CT", "PT"], ["MR"]]


@pytest.mark.parametrize(
    ("matching", "index"),
    [
        ({"PatientID": "PA"}, "ix_patient_PatientID"),
        # A wild card after a literal prefix is a range on the upper-cased
        # names: SQLite does that only with case_sensitive_like on and a
        # BINARY index, as the index has.
        ({"PatientName": "pa*"}, "ix_patient_PatientName_norm"),
        ({"StudyDate": "20230101-20230331"}, "ix_study_StudyDate"),
        ({"AccessionNumber": "A1"}, "ix_study_AccessionNumber"),
    ],
)
def test_matching_searches_an_index(archive, executed, matching, index):
    store, _ = archive
    list(find(store.index.engine, "STUDY", matching, {"StudyInstanceUID", *COMPUTED}))
    statement, parameters = executed[-1]
    with store.index.engine.connect() as conn:
        plan = list(conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters))
    # The outer query's loops; the computed keys' subqueries hang below them.
    # A name is matched on each of its component groups: SQLite runs that as
    # a MULTI-INDEX OR, whose branches are the searches to look at.
    children: dict[int, list[tuple[int, str]]] = {}
    for node, parent, _, detail in plan:
        children.setdefault(parent, []).append((node, detail))

    def loops(parent: int) -> list[str]:
        out = []
        for node, detail in children.get(parent, []):
            if "SUBQUERY" in detail:
                continue
            if detail == "MULTI-INDEX OR" or detail.startswith("INDEX "):
                out += loops(node)
            else:
                out.append(detail)
        return out

    outer = loops(0)
    assert any(f"INDEX {index} " in d for d in outer), plan
    assert not any(d.startswith("SCAN") for d in outer), plan
