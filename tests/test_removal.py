"""Removal in the store: references, reload plans, the lifetime policy, and
what a crash in the middle of a removal leaves (nothing half done)."""

from __future__ import annotations

import datetime as dt
import io
import logging
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest
import sqlalchemy as sa
from pydicom.data import get_testdata_file

from jivex_core.config import build_settings
from jivex_core.housekeeping import Housekeeping
from jivex_core.store import Store
from jivex_core.store.dicomfile import split_file
from jivex_core.store.removal import DELETE, RemovalError
from jivex_core.uids import new_uid
from tests.helpers import REPO

_TEMPLATE = pydicom.dcmread(get_testdata_file("CT_small.dcm"))


def encoded(study: str, series: str, number: int, patient: str = "P1") -> bytes:
    """CT_small as instance *number* of a series of a study of our own."""
    ds = _TEMPLATE.copy()
    ds.PatientID = patient
    ds.PatientName = f"Test^{patient}"
    ds.StudyInstanceUID = study
    ds.SeriesInstanceUID = series
    ds.SOPInstanceUID = new_uid()
    ds.InstanceNumber = number
    ds.file_meta = _TEMPLATE.file_meta.copy()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def add(store: Store, data: bytes, calling: str = "PACS", origin: str = "PACS") -> str:
    parts = split_file(data)
    result = store.ingest(parts.data, parts.transfer_syntax, calling, origin_ae=origin)
    assert result.stored
    return result.record.SOPInstanceUID


def fill(
    store: Store,
    series_sizes: list[int],
    patient: str = "P1",
    calling: str = "PACS",
    origin: str = "PACS",
) -> tuple[str, list[str], list[str]]:
    """A study with series of the given sizes; its UID, series, instances."""
    study = new_uid()
    series_uids, instances = [], []
    for size in series_sizes:
        series = new_uid()
        series_uids.append(series)
        for number in range(1, size + 1):
            data = encoded(study, series, number, patient)
            instances.append(add(store, data, calling, origin))
    return study, series_uids, instances


@pytest.fixture
def store(tmp_path: Path):
    opened = Store(tmp_path / "data", min_free_bytes=0, fsync=False)
    yield opened
    opened.close()


def disk_files(store: Store) -> set[str]:
    return {
        p.relative_to(store.data_dir).as_posix()
        for p in (store.data_dir / "files").rglob("*.dcm")
    }


def index_paths(store: Store) -> dict[str, str]:
    rows = store.index.listing("instance", store.data_dir)
    return {
        r["SOPInstanceUID"]: Path(r["path"]).relative_to(store.data_dir).as_posix()
        for r in rows
    }


def test_removal_keeps_a_reference_and_takes_rows_and_files(store):
    study, _, instances = fill(store, [3, 2])
    other, _, kept = fill(store, [1], patient="P2")
    paths = index_paths(store)
    selection = store.removals.select([study, "1.2.3.4.5"])
    assert [p.view() for p in selection.problems] == [
        {
            "uid": "1.2.3.4.5",
            "error": "nothing stored has the UID or Patient ID '1.2.3.4.5'",
        }
    ]
    summary = store.removals.summary(selection, {"PACS"})
    assert (summary.studies, summary.series, summary.instances) == (1, 2, 5)
    assert summary.not_reloadable == 0 and summary.origins == ["PACS"]

    assert store.removals.remove(selection.instance_pks, DELETE) == 5
    assert set(index_paths(store)) == set(kept)
    assert disk_files(store) == {paths[kept[0]]}
    assert not (store.data_dir / "files" / study).exists()
    assert [
        r["StudyInstanceUID"] for r in store.index.listing("study", store.data_dir)
    ] == [other]
    refs = store.removals.references([study])
    assert {r["SOPInstanceUID"] for r in refs} == set(instances)
    assert {r["origin_ae"] for r in refs} == {"PACS"}
    assert {r["reason"] for r in refs} == {"delete"}
    (row,) = store.removals.removed_studies()
    assert row["StudyInstanceUID"] == study and row["RemovedInstances"] == 5
    assert row["NumberOfStudyRelatedSeries"] == 2 and row["PatientID"] == "P1"
    # Removing it again, or a patient that is only removed, names the input.
    again = store.removals.select([study])
    assert (
        again.problems[0].error == f"'{study}' is already removed (jivex reload "
        "brings it back)"
    )


def test_an_object_stored_again_drops_its_reference(store, tmp_path):
    study, (series,), instances = fill(store, [2])
    data = {uid: store.index.instance_path(uid) for uid in instances}
    raw = {uid: (store.data_dir / path).read_bytes() for uid, path in data.items()}
    store.removals.remove(store.removals.select([study]).instance_pks, DELETE)
    assert store.removals.count() == 2
    add(store, raw[instances[0]])
    assert store.removals.count() == 1
    # The study is partly back: the plan asks for the one missing object.
    plan = store.removals.plan_reload([study], {"PACS"})
    (request,) = plan.requests
    assert request.level == "IMAGE" and request.instances == 1
    assert request.keys["SOPInstanceUID"] == instances[1]
    assert request.keys["SeriesInstanceUID"] == series


def test_reload_plans_ask_for_no_more_than_was_removed(store):
    study, series, instances = fill(store, [2, 3])
    pks = store.removals.select([study]).instance_pks
    store.removals.remove(pks, DELETE)
    # All of it removed from one origin: the study.
    (whole,) = store.removals.plan_reload([study], {"PACS"}).requests
    assert (whole.level, whole.keys, whole.instances) == (
        "STUDY",
        {"StudyInstanceUID": study},
        5,
    )
    # One series asked for: that series.
    (one,) = store.removals.plan_reload([series[1]], {"PACS"}).requests
    assert one.level == "SERIES" and one.keys["SeriesInstanceUID"] == series[1]
    # One instance asked for: that instance.
    (single,) = store.removals.plan_reload([instances[0]], {"PACS"}).requests
    assert single.level == "IMAGE" and single.keys["SOPInstanceUID"] == instances[0]


def test_reload_plans_name_what_cannot_be_reloaded(store):
    modality_study, _, _ = fill(store, [1], calling="CT1", origin="")
    gone_study, _, _ = fill(store, [2], patient="P2", calling="OLD", origin="OLD")
    local, _, _ = fill(store, [1], patient="P3")
    for study in (modality_study, gone_study):
        store.removals.remove(store.removals.select([study]).instance_pks, DELETE)
    plan = store.removals.plan_reload(
        [modality_study, gone_study, local, "1.2.9"], {"PACS"}
    )
    assert plan.requests == []
    assert [p.error for p in plan.problems] == [
        f"'{modality_study}': 1 removed object not retrieved from a configured "
        "remote AE (received from 'CT1'): nowhere to fetch them from",
        f"'{gone_study}': 2 removed objects from 'OLD', which is no longer in the "
        "remote AE table",
        f"'{local}' is stored, not removed",
        "nothing removed has the UID or Patient ID '1.2.9'",
    ]


def _age(store: Store, study: str, days: float) -> None:
    """Make the objects of *study* received *days* ago (the test's clock)."""
    then = dt.datetime.now() - dt.timedelta(days=days)
    with store.index.engine.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE instance SET received_at = :then WHERE series_pk IN "
                "(SELECT series.pk FROM series JOIN study ON study.pk = "
                "series.study_pk WHERE study.StudyInstanceUID = :study)"
            ),
            {"then": then, "study": study},
        )


def test_the_lifetime_policy_removes_only_what_can_come_back(store, caplog):
    settings = build_settings(
        {
            "storage": {"lifetime_days": 30},
            "remote": [{"ae_title": "PACS", "host": "127.0.0.1", "port": 9}],
        }
    )
    old, _, _ = fill(store, [2])
    new, _, new_instances = fill(store, [2], patient="P2")
    modality, _, _ = fill(store, [1], patient="P3", calling="CT1", origin="")
    mixed, _, mixed_instances = fill(store, [2], patient="P4")
    mixed_local = add(
        store,
        encoded(mixed, new_uid(), 1, "P4"),
        calling="WORKSTATION",
        origin="",
    )
    for study in (old, modality, mixed):
        _age(store, study, 31)
    _age(store, new, 29)
    housekeeping = Housekeeping(settings, store)
    caplog.set_level(logging.INFO, "jivex_core.housekeeping")

    assert housekeeping.apply_lifetime() == 4
    left = set(index_paths(store))
    assert left == {*new_instances, mixed_local, *_instances(store, modality)}
    refs = store.removals.references()
    assert {r["SOPInstanceUID"] for r in refs} == {
        *_removed(store, old),
        *mixed_instances,
    }
    assert {r["reason"] for r in refs} == {"lifetime"}
    assert f"study '{modality}' of Test^P3 (P3)" in caplog.text
    assert "keeps 1 object received from 'CT1': not retrieved from a configured" in (
        caplog.text
    )
    assert "keeps 1 object received from 'WORKSTATION'" in caplog.text
    # The next run finds nothing more to remove, and says nothing new.
    caplog.clear()
    assert housekeeping.apply_lifetime() == 0
    assert "keeps" not in caplog.text
    # 0 days: the policy is off.
    off = Housekeeping(build_settings({}), store)
    _age(store, new, 1000)
    assert off.apply_lifetime() == 0


def _instances(store: Store, study: str) -> list[str]:
    rows = store.index.listing("instance", store.data_dir)
    return [r["SOPInstanceUID"] for r in rows if r["StudyInstanceUID"] == study]


def _removed(store: Store, study: str) -> list[str]:
    return [r["SOPInstanceUID"] for r in store.removals.references([study])]


def test_delete_refuses_when_nothing_is_stored(store):
    housekeeping = Housekeeping(build_settings({}), store)
    with pytest.raises(RemovalError, match="nothing stored has the UID"):
        housekeeping.delete(["1.2.3"])
    with pytest.raises(RemovalError, match="no UIDs given"):
        housekeeping.delete([" "])
    study, _, _ = fill(store, [1], calling="CT1", origin="")
    preview = housekeeping.delete([study, "1.2.3"], dry_run=True)
    assert preview["dry_run"] and preview["instances"] == 1
    assert preview["not_reloadable"] == 1
    assert preview["errors"] == [
        {"uid": "1.2.3", "error": "nothing stored has the UID or Patient ID '1.2.3'"}
    ]
    assert store.index.count_instances() == 1  # a dry run removes nothing
    assert housekeeping.delete(["P1"])["instances"] == 1
    assert store.index.count_instances() == 0


# -- a crash in the middle ----------------------------------------------------

_CRASH = """
import os, signal, sys
from pathlib import Path
from jivex_core.store import Store
from jivex_core.store.removal import DELETE, Removals

folder, study, phase, after = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
store = Store(Path(folder), min_free_bytes=0)

def die():
    os.kill(os.getpid(), signal.SIGKILL)

if phase == "files":
    remove = store.files.remove
    done = []

    def counting(relative):
        if len(done) == after:
            die()
        done.append(relative)
        return remove(relative)

    store.files.remove = counting
else:
    rows = Removals._remove_rows

    def then_die(self, *args):
        rows(self, *args)
        die()

    Removals._remove_rows = then_die
store.removals.remove(store.removals.select([study]).instance_pks, DELETE)
"""


@pytest.mark.parametrize(("phase", "after"), [("rows", 0), ("files", 300)])
def test_a_crash_in_the_middle_of_a_removal_leaves_nothing_half_done(
    tmp_path, phase, after
):
    """SIGKILL inside the removal of a 600-object study: before the commit
    nothing changed; after it, the files that were left go at start-up.
    At no point does a row name a missing file, a file lack a row or a
    reference, or an object vanish without a reference."""
    data = tmp_path / "data"
    store = Store(data, min_free_bytes=0, fsync=False)
    study, _, instances = fill(store, [300, 300])
    other, _, others = fill(store, [2], patient="P2")
    paths = index_paths(store)
    store.close()

    run = subprocess.run(
        [sys.executable, "-c", _CRASH, str(data), study, phase, str(after)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == -9, run.stderr

    store = Store(data, min_free_bytes=0, fsync=False)
    try:
        # As the crash left it: every row names a file that exists.
        indexed = index_paths(store)
        on_disk = disk_files(store)
        assert set(indexed.values()) <= on_disk
        refs = {r["SOPInstanceUID"] for r in store.removals.references()}
        assert set(indexed) | refs == set(instances) | set(others)
        assert not set(indexed) & refs
        if phase == "rows":
            assert set(indexed) == set(paths) and not refs
        else:
            # Mid-way: the rows are gone, half the files still there.
            assert refs == set(instances)
            assert len(on_disk - set(indexed.values())) == 300

        store.recover_removals()
        indexed = index_paths(store)
        assert disk_files(store) == set(indexed.values())
        refs = {r["SOPInstanceUID"] for r in store.removals.references()}
        assert set(indexed) | refs == set(instances) | set(others)
        assert store.removals.finish_pending() == 0
        if phase == "files":
            assert not (data / "files" / study).exists()
            assert set(indexed) == set(others)
            assert store.index.listing("study", data)[0]["StudyInstanceUID"] == other
    finally:
        store.close()


def test_origins_tell_the_retrieves_apart():
    """C-STORE sub-operations belong to the retrieve whose Message ID they
    carry with our AE title as Move Originator; other objects are their
    sender's when it is in the remote AE table."""
    from jivex_core.services.origins import Origins

    settings = build_settings(
        {
            "network": {"ae_title": "US"},
            "remote": [
                {"ae_title": "PACS", "host": "127.0.0.1", "port": 9},
                {"ae_title": "PRIORS", "host": "127.0.0.1", "port": 10},
            ],
        }
    )
    origins = Origins(settings)
    first, second = origins.start_move("PACS"), origins.start_move("PRIORS")
    assert first != second
    assert origins.of_c_store("ORTHANC", "US", first) == "PACS"
    assert origins.of_c_store("ORTHANC", "US  ", second) == "PRIORS"
    # Another requestor's move to us, or no originator: by calling AE.
    assert origins.of_c_store("ORTHANC", "OTHER", first) == ""
    assert origins.of_c_store("PRIORS", None, None) == "PRIORS"
    assert origins.of_c_store("CT1") == ""
    origins.end_move(first)
    assert origins.of_c_store("ORTHANC", "US", first) == ""
    assert origins.start_move("PACS") not in (second, 0)
