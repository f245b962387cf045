"""Local removal, the references kept of removed objects, reload from their
origin, and the lifetime policy; against Orthanc and DCMTK's storescu.

Orthanc holds the query studies of tests/corpus.py and knows our Storage
SCP (on a port chosen for the module) as modality JIVEX. Our remote AE
table names it PACS: Orthanc sends its C-STORE sub-operations as ORTHANC,
so objects are attributed to PACS only through the Move Originator of our
C-MOVE. Each test runs its own `jivex server` on that port.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

from jivex_core.store import Store
from jivex_core.store.dicomfile import split_file
from jivex_core.uids import new_uid
from tests.corpus import query_archive_files
from tests.helpers import (
    JIVEX,
    REPO,
    JivexServer,
    dcmtk,
    free_port,
    peer_env,
    run_jivex,
    start_orthanc,
)

pytestmark = pytest.mark.interop

MR_STUDY = "1.113654.3.13.1026"
MR_FILES = [Path(f"/work/shared/data/dcm4che/MR{n:02d}.dcm") for n in range(1, 4)]
CT_STUDY = "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322"


@dataclass
class Orthanc:
    dicom_port: int
    our_port: int


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory) -> Iterator[Orthanc]:
    root = tmp_path_factory.mktemp("reload-orthanc")
    dicom_port, http_port, our_port = free_port(), free_port(), free_port()
    proc = start_orthanc(
        root, dicom_port, http_port, {"jivex": ["JIVEX", "127.0.0.1", our_port]}
    )
    try:
        stored = subprocess.run(
            [
                *(dcmtk("storescu"), "-aec", "ORTHANC", "127.0.0.1", str(dicom_port)),
                *query_archive_files(),
            ],
            capture_output=True,
            text=True,
            env=peer_env(),
            timeout=120,
        )
        assert stored.returncode == 0, stored.stderr
        yield Orthanc(dicom_port, our_port)
    finally:
        proc.terminate()
        proc.wait(30)


def cli(server: JivexServer, *args: str) -> subprocess.CompletedProcess:
    return run_jivex(args[0], "--data", str(server.data_dir), *args[1:])


def data_sets(rows: list[dict]) -> dict[str, bytes]:
    """Each object's data set as stored, without its File Meta."""
    return {
        r["SOPInstanceUID"]: split_file(Path(r["path"]).read_bytes()).data for r in rows
    }


def config(tmp_path: Path, remotes: str, extra: str = "") -> Path:
    path = tmp_path / "jivex.toml"
    path.write_text(remotes + extra)
    return path


def remote(ae_title: str, port: int, *lines: str) -> str:
    return "\n".join(
        [
            "[[remote]]",
            f'ae_title = "{ae_title}"',
            'host = "127.0.0.1"',
            f"port = {port}",
            *lines,
            "",
        ]
    )


@pytest.mark.parametrize("mode", ["move", "get"])
def test_a_study_removed_locally_is_reloaded_from_its_origin(orthanc, tmp_path, mode):
    """Retrieve, delete, reload: the same data sets come back and the
    references go. With C-MOVE the objects arrive from AE ORTHANC on a
    separate association and are still PACS's; with C-GET on our own."""
    lines = ['retrieve = "get"'] if mode == "get" else []
    server = JivexServer(
        tmp_path / "data",
        config=config(tmp_path, remote("PACS", orthanc.dicom_port, *lines)),
    )
    server.port = orthanc.our_port
    server.start()
    try:
        moved = cli(server, "move", "--from", "PACS", "--json", MR_STUDY)
        assert moved.returncode == 0, moved.stderr
        before = server.ls()
        assert len(before) == 9
        assert {r["origin_ae"] for r in before} == {"PACS"}
        if mode == "move":
            # Sent by Orthanc under its own title, attributed to our node.
            assert {r["calling_ae"] for r in before} == {"ORTHANC"}
        original = data_sets(before)

        deleted = cli(server, "delete", MR_STUDY)
        assert deleted.returncode == 0, deleted.stderr
        assert "all 9 of 9 objects, reload from PACS" in deleted.stdout
        assert server.ls("study") == [] and server.ls() == []
        assert not any(Path(r["path"]).exists() for r in before)
        (reference,) = json.loads(cli(server, "ls", "--removed", "--json").stdout)
        assert reference["StudyInstanceUID"] == MR_STUDY
        assert reference["NumberOfRemovedInstances"] == 9
        assert reference["origin_ae"] == "PACS"
        assert reference["PatientName"] == "DOE^J1"

        reloaded = cli(server, "reload", "--json", MR_STUDY)
        assert reloaded.returncode == 0, reloaded.stderr + reloaded.stdout
        job = json.loads(reloaded.stdout)
        assert job["kind"] == "move" and job["remote_ae"] == "PACS"
        assert job["request"]["reload"] == 9 and job["request"]["level"] == "STUDY"
        assert job["state"] == "done" and job["completed"] == 9
        after = server.ls()
        assert data_sets(after) == original
        assert {r["origin_ae"] for r in after} == {"PACS"}
        assert json.loads(cli(server, "ls", "--removed", "--json").stdout) == []
        again = cli(server, "reload", MR_STUDY)
        assert again.returncode == 2
        assert f"'{MR_STUDY}' is stored, not removed" in again.stderr
    finally:
        server.stop()


def test_removed_instances_are_reloaded_alone(orthanc, tmp_path):
    """Two objects removed from a study that stays: the reload asks for
    those two at image level, not for the study."""
    server = JivexServer(
        tmp_path / "data",
        config=config(tmp_path, remote("PACS", orthanc.dicom_port)),
    )
    server.port = orthanc.our_port
    server.start()
    try:
        moved = cli(server, "move", "--from", "PACS", MR_STUDY)
        assert moved.returncode == 0, moved.stderr
        rows = server.ls()
        gone = [r["SOPInstanceUID"] for r in rows[:2]]
        deleted = cli(server, "delete", "--json", *gone)
        assert deleted.returncode == 0, deleted.stderr
        assert json.loads(deleted.stdout)["instances"] == 2
        assert len(server.ls()) == 7
        reloaded = cli(server, "reload", "--json", MR_STUDY)
        assert reloaded.returncode == 0, reloaded.stderr
        job = json.loads(reloaded.stdout)
        assert job["request"]["level"] == "IMAGE", job
        assert sorted(job["request"]["keys"]["SOPInstanceUID"].split("\\")) == sorted(
            gone
        )
        assert job["completed"] == 2
        assert len(server.ls()) == 9
    finally:
        server.stop()


def storescu(server: JivexServer, calling: str, *files: Path | str) -> None:
    run = subprocess.run(
        [
            *(dcmtk("storescu"), "-aet", calling, "-aec", "JIVEX"),
            *("127.0.0.1", str(server.port), *map(str, files)),
        ],
        capture_output=True,
        text=True,
        env=peer_env(),
        timeout=60,
    )
    assert run.returncode == 0, run.stderr


def test_bad_input_is_named_with_the_exit_codes_of_the_readme(tmp_path):
    """Objects sent by a node of the remote table are its (by calling AE);
    a modality's are nobody's. Unknown, stored, origin-less, unreachable and
    unconfigured origins each get their message: 2 nothing done, 1 some."""
    unreachable = remote("PACS", free_port(), "retry_minutes = [60]")
    server = JivexServer(tmp_path / "data", config=config(tmp_path, unreachable))
    server.start()
    ct = get_testdata_file("CT_small.dcm")
    try:
        storescu(server, "PACS", *MR_FILES)
        storescu(server, "CT1", ct)
        origins = {r["StudyInstanceUID"]: r["origin_ae"] for r in server.ls()}
        assert origins == {MR_STUDY: "PACS", CT_STUDY: ""}

        unknown = cli(server, "delete", "1.2.3.4")
        assert unknown.returncode == 2
        assert "nothing stored has the UID or Patient ID '1.2.3.4'" in unknown.stderr
        some = cli(server, "delete", MR_STUDY, "1.2.3.4")
        assert some.returncode == 1, some.stderr
        assert "all 3 of 3 objects, reload from PACS" in some.stdout
        assert "'1.2.3.4'" in some.stderr
        twice = cli(server, "delete", MR_STUDY)
        assert twice.returncode == 2 and "is already removed" in twice.stderr

        never = cli(server, "reload", "1.2.3.9")
        assert never.returncode == 2
        assert "nothing removed has the UID or Patient ID '1.2.3.9'" in never.stderr
        stored = cli(server, "reload", CT_STUDY)
        assert stored.returncode == 2
        assert f"'{CT_STUDY}' is stored, not removed" in stored.stderr
        modality = cli(server, "delete", CT_STUDY)
        assert modality.returncode == 0
        assert "no reload can bring it back" in modality.stderr
        nowhere = cli(server, "reload", CT_STUDY)
        assert nowhere.returncode == 2
        assert "not retrieved from a configured remote AE (received from 'CT1')" in (
            nowhere.stderr
        )

        # The origin does not answer: the job waits for its next attempt.
        down = cli(server, "reload", "--json", MR_STUDY)
        assert down.returncode == 2
        job = json.loads(down.stdout)
        assert job["state"] == "queued" and job["attempts"] == 1
        assert "could not be reached" in job["last_error"]
        assert "will be tried again" in down.stderr
        # Asked again: the same job, tried now; the other input is named.
        both = cli(server, "reload", MR_STUDY, CT_STUDY, "--no-wait", "--json")
        assert both.returncode == 1 and "received from 'CT1'" in both.stderr
        (same,) = json.loads(both.stdout)
        assert same["id"] == job["id"]
        jobs = json.loads(cli(server, "jobs", "--json").stdout)
        assert [j["id"] for j in jobs] == [job["id"]]
    finally:
        server.stop()

    # The origin is taken out of the remote table.
    server.config = config(tmp_path, "")
    server.start()
    try:
        gone = cli(server, "reload", MR_STUDY)
        assert gone.returncode == 2
        assert (
            "3 removed objects from 'PACS', which is no longer in the remote AE "
            "table" in gone.stderr
        )
    finally:
        server.stop()


def _age(data_dir: Path, study: str, days: float) -> None:
    """Make the objects of *study* received *days* ago, in the index."""
    then = (dt.datetime.now() - dt.timedelta(days=days)).isoformat(" ")
    with sqlite3.connect(data_dir / "index.sqlite") as db:
        db.execute(
            "UPDATE instance SET received_at = ? WHERE series_pk IN (SELECT "
            "series.pk FROM series JOIN study ON study.pk = series.study_pk "
            "WHERE study.StudyInstanceUID = ?)",
            (then, study),
        )
        db.execute(
            "UPDATE study SET last_received = ? WHERE StudyInstanceUID = ?",
            (then, study),
        )


def _wait_for_log(server: JivexServer, text: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while text not in server.log():
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.1)
    return server.log()


def test_the_lifetime_policy_on_a_data_folder(tmp_path):
    """Old retrieved studies go with their references kept; an old study a
    modality sent (no origin) and a recent one stay."""
    pacs = remote("PACS", free_port(), "retry_minutes = [60]")
    server = JivexServer(
        tmp_path / "data",
        config=config(tmp_path, "[storage]\nlifetime_days = 30\n\n" + pacs),
    )
    recent = tmp_path / "recent.dcm"
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.StudyInstanceUID, ds.SeriesInstanceUID = new_uid(), new_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = new_uid()
    ds.save_as(recent)
    server.start()
    try:
        storescu(server, "PACS", *MR_FILES, recent)
        storescu(server, "CT1", get_testdata_file("CT_small.dcm"))
    finally:
        server.stop()
    _age(server.data_dir, MR_STUDY, 31)
    _age(server.data_dir, CT_STUDY, 400)
    _age(server.data_dir, str(ds.StudyInstanceUID), 29)

    server.start()
    try:
        log = _wait_for_log(server, "Lifetime policy (30 days)")
        assert "removed 3 objects; kept 1 object of 1 study" in log
        assert "keeps 1 object received from 'CT1'" in log
        studies = {r["StudyInstanceUID"] for r in server.ls("study")}
        assert studies == {CT_STUDY, str(ds.StudyInstanceUID)}
        refs = json.loads(
            cli(server, "ls", "--removed", "--level", "instance", "--json").stdout
        )
        assert len(refs) == 3
        assert {(r["StudyInstanceUID"], r["reason"], r["origin_ae"]) for r in refs} == {
            (MR_STUDY, "lifetime", "PACS")
        }
    finally:
        server.stop()


def test_a_core_killed_while_removing_a_large_study(tmp_path):
    """SIGKILL of `jivex server` while `jivex delete` removes 2000 objects,
    once the references are committed: the restarted core finishes the
    removal, and at no moment does a row name a missing file, a file lack a
    row or a reference, or an object vanish without its reference."""
    from tests.test_removal import fill

    data = tmp_path / "data"
    store = Store(data, min_free_bytes=0, fsync=False)
    study, _, instances = fill(store, [1000, 1000])
    other, _, others = fill(store, [2], patient="P2")
    store.close()
    pacs = remote("PACS", free_port(), "retry_minutes = [60]")
    server = JivexServer(data, config=config(tmp_path, pacs)).start()
    db = sqlite3.connect(data / "index.sqlite")
    deleting = subprocess.Popen(
        [*JIVEX, "delete", "--data", str(data), study],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not db.execute(
            "SELECT count(*) FROM removed_instance WHERE path != ''"
        ).fetchone()[0]:
            assert time.monotonic() < deadline and deleting.poll() is None
        server.proc.kill()
        server.proc.wait()
    finally:
        deleting.wait(30)
        db.close()
        server.stop()

    def state() -> tuple[dict[str, str], set[str], set[str]]:
        with sqlite3.connect(data / "index.sqlite") as conn:
            indexed = dict(conn.execute("SELECT SOPInstanceUID, path FROM instance"))
            refs = {
                r
                for (r,) in conn.execute("SELECT SOPInstanceUID FROM removed_instance")
            }
        files = {p.relative_to(data).as_posix() for p in data.rglob("files/**/*.dcm")}
        return indexed, refs, files

    indexed, refs, files = state()
    assert set(indexed.values()) <= files  # no row names a missing file
    assert set(indexed) | refs == set(instances) | set(others)
    assert refs == set(instances) and set(indexed) == set(others)
    left = len(files) - len(indexed)
    assert left > 0, "the kill came after the removal had finished"
    print(f"killed with {left} files left")

    server.start()
    try:
        log = _wait_for_log(server, "Finished removing the files of")
        indexed, refs, files = state()
        assert files == set(indexed.values())
        assert refs == set(instances) and set(indexed) == set(others)
        assert [r["StudyInstanceUID"] for r in server.ls("study")] == [other]
        assert "a removal had been interrupted" in log
    finally:
        server.stop()
