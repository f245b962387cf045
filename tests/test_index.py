"""The index schema, its revisions, and what ingest keeps for tables 12-13."""

from __future__ import annotations

import copy
import datetime as dt
import logging
from pathlib import Path

import pydicom
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from pydicom.data import get_testdata_file

from jivex_core.store import Store
from jivex_core.store.dicomfile import split_file
from jivex_core.store.index import Index, database_url, upgrade_schema
from jivex_core.store.query import find, sequence_items
from jivex_core.store.schema import metadata
from jivex_core.uids import new_uid
from tests import state_objects
from tests.helpers import SHARED_DATA

PR_LUTS = SHARED_DATA / "weasis-dicom-tools" / "prLUTs.dcm"


def _ingest(store: Store, path: str | Path):
    parts = split_file(Path(path).read_bytes())
    return store.ingest(parts.data, parts.transfer_syntax, "TEST")


def _revision(engine: sa.Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def test_the_schema_module_and_the_revisions_agree(tmp_path):
    index = Index(database_url(tmp_path))
    try:
        with index.engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "compare_server_default": True}
            )
            assert compare_metadata(context, metadata) == []
    finally:
        index.close()


def _fill_revision_0002(engine: sa.Engine) -> None:
    """One MR object as an index of revision 0002 holds it (raw SQL: today's
    code writes the columns 0002 lacks)."""
    now = dt.datetime(2026, 12, 1, 8, 0, 0)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO patient VALUES (1, 'id\\583295\\', '583295', '', "
                "'DOE^J1', 'DOE^J1', '', '', '', '', '', '')"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO study VALUES (1, 1, '1.113654.3.13.1026', '20170716', "
                "'154736', 'MOF5026', 'RP1026', '', '', '', '', :now)"
            ),
            {"now": now},
        )
        conn.execute(
            sa.text(
                "INSERT INTO series VALUES (1, 1, '1.113654.5.14.1035', 'MR', 1, "
                "'', '', '', '', 'RP1026', 'SPS2032')"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO instance VALUES (1, 1, '1.113654.5.15.1504', "
                "'1.2.840.10008.5.1.4.1.1.4', 1, 256, 256, 16, NULL, '20170716', "
                "'154736', 'files/mr1.dcm', 1000, '1.2.840.10008.1.2.1', 'TEST', "
                ":now, 0)"
            ),
            {"now": now},
        )


def test_an_index_of_revision_0002_is_upgraded_in_place(tmp_path, caplog):
    old = sa.create_engine(database_url(tmp_path))
    upgrade_schema(old, "0002")
    assert _revision(old) == "0002"
    _fill_revision_0002(old)
    old.dispose()

    caplog.set_level(logging.WARNING, "jivex_core.store.index")
    store = Store(tmp_path, min_free_bytes=0)
    try:
        engine = store.index.engine
        assert _revision(engine) == "0006"
        assert "from revision 0002 to 0006" in caplog.text
        # The old row answers as an object without the new attributes.
        series = {
            "StudyInstanceUID": "1.113654.3.13.1026",
            "SeriesInstanceUID": "1.113654.5.14.1035",
        }
        wanted = {"SOPInstanceUID", "ContentCreatorName", "ReferencedSeriesSequence"}
        (row,) = find(engine, "IMAGE", series, wanted)
        assert row["SOPInstanceUID"] == "1.113654.5.15.1504"
        assert row["ContentCreatorName"] == ""
        assert sequence_items("ReferencedSeriesSequence", row) == []
        coded = {**series, "ConceptNameCodeSequence.CodeValue": "113000"}
        assert list(find(engine, "IMAGE", coded, wanted)) == []
        # New objects are indexed with them, next to the old row.
        added = _ingest(store, PR_LUTS)
        assert added.stored
        state = {
            "StudyInstanceUID": "1.2.276.0.7230010.3.200.6",
            "SeriesInstanceUID": "1.2.276.0.7230010.3.200.6.0",
            "ContentCreatorName": "riesmeier*",
        }
        (row,) = find(engine, "IMAGE", state, wanted)
        assert row["ContentCreatorName"] == "Riesmeier^Joerg"
        (referenced,) = sequence_items("ReferencedSeriesSequence", row)
        assert referenced["SeriesInstanceUID"] == "1.2.276.0.7230010.3.200.6.3"
        assert store.index.count_instances() == 2
        # Revision 0006: the old object's origin is its calling AE.
        origins = {
            r["SOPInstanceUID"]: r["origin_ae"]
            for r in store.index.listing("instance", tmp_path)
        }
        assert origins["1.113654.5.15.1504"] == "TEST"
    finally:
        store.close()


def test_long_reference_sequences_are_kept_whole(tmp_path):
    # 2000 references: far more than the 64 KiB kept of other elements.
    template = pydicom.dcmread(
        SHARED_DATA / "dcm4che" / "MR01.dcm", stop_before_pixels=True
    )
    images = []
    for _ in range(2000):
        image = copy.deepcopy(template)
        image.SOPInstanceUID = new_uid()
        images.append(image)
    ds = state_objects.presentation_state(
        images, new_uid(), 1, "long", "Doe^Jane", ("20260101", "120000")
    )
    path = state_objects.write(ds, tmp_path / "long.dcm")
    assert len(ds.ReferencedSeriesSequence[0].ReferencedImageSequence) == 2000
    store = Store(tmp_path / "data", min_free_bytes=0)
    try:
        result = _ingest(store, path)
        query = {
            "StudyInstanceUID": str(ds.StudyInstanceUID),
            "SeriesInstanceUID": str(ds.SeriesInstanceUID),
        }
        (row,) = find(store.index.engine, "IMAGE", query, {"ReferencedSeriesSequence"})
        (series,) = sequence_items("ReferencedSeriesSequence", row)
        assert [
            r["ReferencedSOPInstanceUID"] for r in series["ReferencedImageSequence"]
        ] == [str(image.SOPInstanceUID) for image in images]
        assert len(result.record.sequences) > 64 * 1024
    finally:
        store.close()


def test_an_ordinary_image_has_its_sequences_left_undecoded(tmp_path):
    # Tables 12 and 13 are for presentation states and key objects: an image
    # carrying one of their sequences costs its receive no decoding.
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ref = pydicom.Dataset()
    ref.SeriesInstanceUID = "1.2.3.4"
    ds.ReferencedSeriesSequence = pydicom.Sequence([ref])
    path = tmp_path / "ct.dcm"
    ds.save_as(path)
    store = Store(tmp_path / "data", min_free_bytes=0)
    try:
        result = _ingest(store, path)
        assert result.stored and result.record.sequences == ""
    finally:
        store.close()


def test_names_indexed_before_the_fold_are_folded_on_upgrade(tmp_path):
    old = sa.create_engine(database_url(tmp_path))
    upgrade_schema(old, "0002")
    _fill_revision_0002(old)
    upgrade_schema(old, "0004")
    name = "Ｙａｍａｄａ^ｔａｒｏｕ"  # full-width Latin: width folds away
    with old.begin() as conn:
        conn.execute(
            sa.text("UPDATE patient SET PatientName = :n, PatientName_norm = :u"),
            {"n": name, "u": name.upper()},
        )
    old.dispose()
    store = Store(tmp_path, min_free_bytes=0)
    try:
        engine = store.index.engine
        assert _revision(engine) == "0006"
        (row,) = find(engine, "PATIENT", {"PatientName": "yamada*"}, {"PatientID"})
        assert row["PatientID"] == "583295"
    finally:
        store.close()
