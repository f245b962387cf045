"""Computed C-FIND keys (statement, table 11) from the index, in one statement.

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
def statements(archive):
    """The SQL statements the index runs during the test."""
    seen: list[str] = []

    def record(conn, cursor, statement, *args):
        seen.append(statement)

    engine = archive[0].index.engine
    sa.event.listen(engine, "before_cursor_execute", record)
    yield seen
    sa.event.remove(engine, "before_cursor_execute", record)


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
