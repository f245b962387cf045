"""Querying and retrieving from other archives: Orthanc and DCMTK dcmqrscp.

Orthanc holds the query studies of tests/corpus.py (sent to it with
storescu) and knows our server as modality JIVEX, so it can C-MOVE to us.
`jivex find`, `jivex move` and `jivex send` talk to a running `jivex server`
through its link. Orthanc 1.10 cannot bind one address: it runs on free
ports with remote access refused, and stops with the module.
"""

from __future__ import annotations

import json
import struct
import subprocess
import threading
import time
import urllib.request

import pytest
from pynetdicom import evt
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelGet

from tests.corpus import query_archive_files
from tests.helpers import (
    JivexServer,
    dcmtk,
    free_port,
    peer_env,
    pynetdicom_peer,
    run_jivex,
    start_orthanc,
    wait_for_port,
)

pytestmark = pytest.mark.interop

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))
MR_STUDY = "1.113654.3.13.1026"
CT_STUDY = "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322"


def _http(port: int, path: str):
    with _NO_PROXY.open(f"http://127.0.0.1:{port}{path}", timeout=60) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def peers(tmp_path_factory):
    root = tmp_path_factory.mktemp("qr-scu")
    dicom_port, http_port = free_port(), free_port()
    jivex = JivexServer(
        root / "data", extra=["--remote", f"ORTHANC@127.0.0.1:{dicom_port}"]
    )
    jivex.port, jivex.query_port = free_port(), free_port()
    orthanc = start_orthanc(
        root, dicom_port, http_port, {"jivex": ["JIVEX", "127.0.0.1", jivex.port]}
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
        jivex.start()
        yield jivex, http_port, dicom_port
    finally:
        jivex.stop()
        orthanc.terminate()
        orthanc.wait(30)


def jivex_cli(server: JivexServer, *args: str) -> subprocess.CompletedProcess:
    return run_jivex(*args[:1], "--data", str(server.data_dir), *args[1:])


def test_find_studies_by_name_and_level(peers):
    server, _, _ = peers
    run = jivex_cli(server, "find", "--from", "ORTHANC", "--json", "PatientName=doe*")
    assert run.returncode == 0, run.stderr
    (row,) = json.loads(run.stdout)
    assert row["PatientID"] == "583295" and row["StudyInstanceUID"] == MR_STUDY
    assert row["ModalitiesInStudy"] == "MR"
    assert row["NumberOfStudyRelatedInstances"] == "9"
    series = jivex_cli(
        server,
        "find",
        "--from",
        "ORTHANC",
        "--level",
        "series",
        "--json",
        f"StudyInstanceUID={MR_STUDY}",
    )
    (one,) = json.loads(series.stdout)
    assert one["Modality"] == "MR" and one["NumberOfSeriesRelatedInstances"] == "9"
    table = jivex_cli(server, "find", "--from", "ORTHANC", "PatientID=1CT1")
    assert "CompressedSamples^CT1" in table.stdout and CT_STUDY in table.stdout


def test_find_is_cancelled_after_the_limit(peers):
    server, _, _ = peers
    run = jivex_cli(
        server,
        "find",
        "--from",
        "ORTHANC",
        "--level",
        "image",
        "--limit",
        "3",
        "--json",
        f"StudyInstanceUID={MR_STUDY}",
        "SeriesInstanceUID=*",
    )
    # Orthanc needs a single series UID at image level; ask per series.
    if run.returncode == 2:
        series = json.loads(
            jivex_cli(
                server,
                "find",
                "--from",
                "ORTHANC",
                "--level",
                "series",
                "--json",
                f"StudyInstanceUID={MR_STUDY}",
            ).stdout
        )[0]["SeriesInstanceUID"]
        run = jivex_cli(
            server,
            "find",
            "--from",
            "ORTHANC",
            "--level",
            "image",
            "--limit",
            "3",
            "--json",
            f"StudyInstanceUID={MR_STUDY}",
            f"SeriesInstanceUID={series}",
        )
    assert run.returncode == 1, run.stderr  # partial: cut short
    assert "cancelled after 3 answers" in run.stderr
    assert 3 <= len(json.loads(run.stdout)) < 9


def test_find_with_bad_input(peers):
    server, _, _ = peers
    run = jivex_cli(server, "find", "--from", "ORTHANC", "PatientNmae=x")
    assert run.returncode == 2 and "'PatientNmae' is not a DICOM keyword" in run.stderr
    run = jivex_cli(server, "find", "--from", "NOBODY")
    assert (
        run.returncode == 2 and "'NOBODY' is not in the remote AE table" in run.stderr
    )
    run = jivex_cli(server, "find", "--from", "ORTHANC", "no-equals-sign")
    assert run.returncode == 2 and "is not KEY=VALUE" in run.stderr


def test_move_a_study_from_orthanc(peers):
    server, _, _ = peers
    run = jivex_cli(server, "move", "--from", "ORTHANC", "--json", MR_STUDY)
    assert run.returncode == 0, run.stderr
    job = json.loads(run.stdout)
    assert job["state"] == "done" and job["completed"] == 9 and job["failed"] == 0
    ours = [r for r in server.ls() if r["StudyInstanceUID"] == MR_STUDY]
    assert len(ours) == 9
    assert {r["calling_ae"] for r in ours} == {"ORTHANC"}


def test_move_a_series_is_resolved_to_its_study(peers):
    server, _, _ = peers
    series = json.loads(
        jivex_cli(
            server,
            "find",
            "--from",
            "ORTHANC",
            "--level",
            "series",
            "--json",
            f"StudyInstanceUID={CT_STUDY}",
        ).stdout
    )[0]["SeriesInstanceUID"]
    run = jivex_cli(server, "move", "--from", "ORTHANC", "--level", "series", series)
    assert run.returncode == 0, run.stderr
    assert any(r["SeriesInstanceUID"] == series for r in server.ls())
    missing = jivex_cli(
        server, "move", "--from", "ORTHANC", "--level", "series", "1.2.3.4"
    )
    assert missing.returncode == 2 and "has no series '1.2.3.4'" in missing.stderr


def test_send_to_orthanc(peers, tmp_path):
    server, http_port, _ = peers
    run = jivex_cli(server, "move", "--from", "ORTHANC", CT_STUDY)
    assert run.returncode == 0, run.stderr
    before = len(_http(http_port, "/instances"))
    # Orthanc already has the study: sending it again stores nothing new.
    sent = jivex_cli(server, "send", "--to", "ORTHANC", CT_STUDY)
    assert sent.returncode == 0, sent.stderr
    assert len(_http(http_port, "/instances")) == before


def test_orthanc_refuses_a_move_to_an_unknown_aet(peers, tmp_path):
    """An archive that does not know our AE title refuses the move: Orthanc
    1.10 drops the association without a final response, so the job waits
    for its next attempt with the reason, and nothing arrives."""
    _, _, dicom_port = peers
    stranger = JivexServer(
        tmp_path / "data",
        extra=["--ae-title", "STRANGER", "--remote", f"ORTHANC@127.0.0.1:{dicom_port}"],
    ).start()
    try:
        # Orthanc shows nothing to an AE it does not know: the C-FIND that
        # checks the UIDs first finds none, and says so.
        checked = jivex_cli(stranger, "move", "--from", "ORTHANC", MR_STUDY)
        assert checked.returncode == 2
        assert f"'ORTHANC' has no study '{MR_STUDY}'" in checked.stderr
        assert "--no-check" in checked.stderr
        run = jivex_cli(
            stranger, "move", "--from", "ORTHANC", "--no-check", "--json", MR_STUDY
        )
        assert run.returncode == 2, run.stderr
        job = json.loads(run.stdout)
        assert job["state"] == "queued" and job["attempts"] == 1, job
        assert "before the final C-MOVE response" in job["last_error"]
        assert "will be tried again" in run.stderr
        assert stranger.ls() == []
    finally:
        stranger.stop()


def test_an_unreachable_archive(tmp_path):
    port = free_port()
    server = JivexServer(
        tmp_path / "data", extra=["--remote", f"GONE@127.0.0.1:{port}"]
    )
    server.start()
    try:
        run = jivex_cli(server, "find", "--from", "GONE")
        assert run.returncode == 2 and "could not be reached" in run.stderr
        moved = jivex_cli(server, "move", "--from", "GONE", MR_STUDY)
        assert moved.returncode == 2
        assert "will be tried again" in moved.stderr
    finally:
        server.stop()


DCMQRSCP_CONFIG = """\
NetworkTCPPort  = {port}
MaxPDUSize      = 16384
MaxAssociations = 16

HostTable BEGIN
jivex = (JIVEX, 127.0.0.1, {ours})
HostTable END

VendorTable BEGIN
VendorTable END

AETable BEGIN
DCMQR {db} RW (200, 1024mb) ANY
AETable END
"""


def test_dcmqrscp_as_a_second_archive(tmp_path):
    """DCMTK's dcmqrscp: query it and retrieve from it (PEERS.md: keep its
    archive small; it ignores ModalitiesInStudy as a matching key)."""
    db = tmp_path / "dcmqr"
    db.mkdir()
    port = free_port()
    server = JivexServer(
        tmp_path / "data", extra=["--remote", f"DCMQR@127.0.0.1:{port}"]
    )
    server.port = free_port()
    config = tmp_path / "dcmqrscp.cfg"
    config.write_text(DCMQRSCP_CONFIG.format(port=port, ours=server.port, db=db))
    log = open(tmp_path / "dcmqrscp.log", "wb")
    peer = subprocess.Popen(
        [dcmtk("dcmqrscp"), "-c", str(config)],
        stdout=log,
        stderr=log,
        env=peer_env(),
    )
    try:
        wait_for_port(port, peer)
        stored = subprocess.run(
            [
                *(dcmtk("storescu"), "-aec", "DCMQR", "127.0.0.1", str(port)),
                *query_archive_files()[:9],  # the 9 MR images of DOE^J1
            ],
            capture_output=True,
            text=True,
            env=peer_env(),
            timeout=60,
        )
        assert stored.returncode == 0, stored.stderr
        server.start()
        found = jivex_cli(
            server, "find", "--from", "DCMQR", "--json", "PatientID=583295"
        )
        assert found.returncode == 0, found.stderr
        (row,) = json.loads(found.stdout)
        assert row["StudyInstanceUID"] == MR_STUDY
        moved = jivex_cli(server, "move", "--from", "DCMQR", "--json", MR_STUDY)
        assert moved.returncode == 0, moved.stderr
        assert json.loads(moved.stdout)["completed"] == 9
        assert len(server.ls()) == 9
    finally:
        server.stop()
        peer.terminate()
        peer.wait(10)


def test_retrieve_with_c_get_from_orthanc(peers, tmp_path):
    """A remote configured with retrieve = "get": the objects come back on
    our own association, which asks for the SCP role of the storage
    classes; Orthanc sends nothing without that."""
    _, _, dicom_port = peers
    config = tmp_path / "jivex.toml"
    config.write_text(
        f'[[remote]]\nae_title = "ORTHANC"\nhost = "127.0.0.1"\nport = {dicom_port}\n'
        'retrieve = "get"\n'
    )
    server = JivexServer(tmp_path / "data", config=config).start()
    try:
        run = jivex_cli(server, "move", "--from", "ORTHANC", "--json", MR_STUDY)
        assert run.returncode == 0, run.stderr
        job = json.loads(run.stdout)
        assert job["state"] == "done" and job["completed"] == 9, job
        rows = server.ls()
        assert len(rows) == 9 and {r["calling_ae"] for r in rows} == {"ORTHANC"}
        assert "(C-GET)" in server.log()
    finally:
        server.stop()


def test_our_c_get_proposes_role_selection(tmp_path):
    """What the C-GET association asks for, seen by a pynetdicom acceptor."""
    seen = {}

    def on_requested(event):
        seen.update(event.assoc.requestor.role_selection)

    scp, port = pynetdicom_peer(
        "GETPEER",
        [(StudyRootQueryRetrieveInformationModelGet,)],
        [(evt.EVT_REQUESTED, on_requested)],
    )
    config = tmp_path / "jivex.toml"
    config.write_text(
        f'[[remote]]\nae_title = "GETPEER"\nhost = "127.0.0.1"\nport = {port}\n'
        'retrieve = "get"\nretry_minutes = [60]\n'
    )
    server = JivexServer(tmp_path / "data", config=config).start()
    try:
        jivex_cli(server, "move", "--from", "GETPEER", MR_STUDY)
    finally:
        server.stop()
        scp.shutdown()
    ct = "1.2.840.10008.5.1.4.1.1.2"
    assert ct in seen
    assert seen[ct].scp_role is True


def test_move_a_series_from_a_strict_archive_with_its_study(tmp_path):
    """Another jivex server as the archive: it answers hierarchical queries
    only, so a series is retrieved with --study."""
    archive = JivexServer(tmp_path / "archive")
    run_jivex("import", "--data", str(tmp_path / "archive"), *query_archive_files())
    archive.start()
    ours = JivexServer(tmp_path / "data")
    ours.port, ours.query_port = free_port(), free_port()
    try:
        series = next(
            r["SeriesInstanceUID"]
            for r in archive.ls()
            if r["StudyInstanceUID"] == MR_STUDY
        )
        # The archive must know us as a move destination: its own --remote.
        archive.stop()
        archive.extra = ["--remote", f"JIVEX@127.0.0.1:{ours.port}"]
        archive.start()
        ours.extra = ["--remote", f"ARCHIVE@127.0.0.1:{archive.query_port}"]
        ours.start()
        refused = jivex_cli(
            ours, "move", "--from", "ARCHIVE", "--level", "series", series
        )
        assert refused.returncode == 2
        assert "--study UID" in refused.stderr
        moved = jivex_cli(
            ours,
            "move",
            "--from",
            "ARCHIVE",
            "--level",
            "series",
            "--study",
            MR_STUDY,
            series,
        )
        assert moved.returncode == 0, moved.stderr
        assert len(ours.ls()) == 9
        running = jivex_cli(ours, "find", "--from", "X", "--remote", "X@127.0.0.1:9")
        assert running.returncode == 2 and "--remote only works" in running.stderr
    finally:
        ours.stop()
        archive.stop()


def test_the_optional_keys_of_a_node_are_asked(tmp_path):
    """What a node configured with optional_keys is asked at image level,
    seen by a pynetdicom Q/R SCP standing in for it."""
    from pydicom.dataset import Dataset
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind

    asked = []

    def on_find(event):
        asked.append({elem.keyword for elem in event.identifier})
        ds = Dataset()
        ds.QueryRetrieveLevel = "IMAGE"
        ds.SOPInstanceUID = "1.2.3.1"
        ds.ContentDate = "20240102"
        yield 0xFF00, ds

    scp, port = pynetdicom_peer(
        "OPTIONS",
        [(StudyRootQueryRetrieveInformationModelFind,)],
        [(evt.EVT_C_FIND, on_find)],
    )
    config = tmp_path / "jivex.toml"
    config.write_text(
        f'[[remote]]\nae_title = "OPTIONS"\nhost = "127.0.0.1"\nport = {port}\n'
        'optional_keys = ["ContentDate", "ObservationDateTime"]\n'
    )
    try:
        run = run_jivex(
            "find",
            "--config",
            str(config),
            "--data",
            str(tmp_path / "data"),
            "--from",
            "OPTIONS",
            "--level",
            "image",
            "--json",
            "StudyInstanceUID=1.2",
            "SeriesInstanceUID=1.2.3",
        )
    finally:
        scp.shutdown()
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == [
        {"SOPInstanceUID": "1.2.3.1", "ContentDate": "20240102"}
    ]
    assert {"ContentDate", "ObservationDateTime", "Rows"} <= asked[0]
    assert "ContentTime" not in asked[0]  # not configured
    bad = tmp_path / "bad.toml"
    bad.write_text(config.read_text().replace("ObservationDateTime", "PatientAge"))
    refused = run_jivex("jobs", "--config", str(bad), "--data", str(tmp_path / "d"))
    assert refused.returncode == 2 and "'PatientAge' is not an optional key" in (
        refused.stderr
    )


def test_a_running_query_is_cancelled_on_request(tmp_path):
    """The link's cancel_find stops a find between two answers: the remote
    (a pynetdicom Q/R SCP answering slowly) gets a C-FIND-CANCEL."""
    from pydicom.dataset import Dataset
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind

    from jivex_core.link_client import LinkClient

    sent = []
    seen_cancel = threading.Event()

    def on_find(event):
        for number in range(100):
            if event.is_cancelled:
                seen_cancel.set()
                yield 0xFE00, None
                return
            ds = Dataset()
            ds.QueryRetrieveLevel = "STUDY"
            ds.StudyInstanceUID = f"1.2.3.{number + 1}"
            sent.append(number)
            time.sleep(0.05)
            yield 0xFF00, ds

    scp, port = pynetdicom_peer(
        "SLOWQR",
        [(StudyRootQueryRetrieveInformationModelFind,)],
        [(evt.EVT_C_FIND, on_find)],
    )
    server = JivexServer(
        tmp_path / "data", extra=["--remote", f"SLOWQR@127.0.0.1:{port}"]
    )
    server.start()
    results = []
    try:
        asking = LinkClient.connect(server.data_dir)
        stopping = LinkClient.connect(server.data_dir)
        worker = threading.Thread(
            target=lambda: results.append(
                asking.call(
                    "find", **{"from": "SLOWQR"}, level="STUDY", keys={}, query_id="q1"
                )
            )
        )
        worker.start()
        deadline = time.monotonic() + 10
        while len(sent) < 5 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert stopping.call("cancel_find", query_id="q1") == {"cancelled": True}
        worker.join(30)
        assert stopping.call("cancel_find", query_id="q1") == {"cancelled": False}
        asking.close()
        stopping.close()
    finally:
        server.stop()
        scp.shutdown()
    (result,) = results
    assert result["cancelled"] and result["truncated"]
    assert 1 <= len(result["rows"]) < 100
    assert seen_cancel.wait(5)


#: Answers a mock archive sends instead of an encoded identifier (Implicit
#: VR Little Endian), by Patient ID, and how our SCU names each.
BROKEN_ANSWERS = {
    # A sequence of undefined length whose item never ends: no reader can
    # tell where the identifier's next element starts.
    "UNENDED": (
        struct.pack("<HHI", 0x0008, 0x0052, 6)
        + b"STUDY "
        + b"\x08\x00\x10\x11\xff\xff\xff\xff"  # (0008,1110) SQ
        + b"\xfe\xff\x00\xe0\xff\xff\xff\xff"  # item
        + b"\x10\x00\x10\x00\x04\x00\x00\x00AB",  # cut name
        "(0010,0010) runs past its container",
    ),
    "GARBAGE": (b"\xff\xfe\x00\x01garbage!!", "(FEFF,0100) needs"),
    # A name declaring 200 bytes of which 4 follow: not a row for DOE*.
    "CUTNAME": (
        struct.pack("<HHI", 0x0008, 0x0052, 6)
        + b"STUDY "
        + struct.pack("<HHI", 0x0010, 0x0010, 200)
        + b"DOE*",
        "(0010,0010) needs 200 bytes, 4 left",
    ),
    "LEVELONLY": (
        struct.pack("<HHI", 0x0008, 0x0052, 6) + b"STUDY ",
        "no attribute that a row can show",
    ),
}


def test_broken_identifiers_in_answers_are_reported_and_skipped(tmp_path, monkeypatch):
    """A mock archive (pynetdicom) answers good identifiers and broken ones:
    a cut-short sequence, garbage, a name running past the end, nothing but
    the level. The query keeps the good answers, exits 1
    and names each broken one with what is wrong; none becomes a row."""
    from pydicom.dataset import Dataset
    from pynetdicom import service_class
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind

    real_encode = service_class.encode

    def encode_broken(ds, *args, **kwargs):
        broken = BROKEN_ANSWERS.get(str(ds.get("PatientID", "")))
        if broken is None:
            return real_encode(ds, *args, **kwargs)
        return broken[0]

    # Only the SCP side (the peer) encodes through service_class; our SCU
    # encodes its request through pynetdicom.association.
    monkeypatch.setattr(service_class, "encode", encode_broken)
    patients = ["GOOD1", *BROKEN_ANSWERS, "GOOD2"]

    def on_find(event):
        for number, patient in enumerate(patients, 1):
            answer = Dataset()
            answer.QueryRetrieveLevel = "STUDY"
            answer.PatientID = patient
            answer.StudyInstanceUID = f"1.2.826.0.1.3680043.8.498.7461.9.{number}"
            yield 0xFF00, answer
        yield 0x0000, None

    scp, port = pynetdicom_peer(
        "CRUMBLY",
        [(StudyRootQueryRetrieveInformationModelFind, "1.2.840.10008.1.2")],
        [(evt.EVT_C_FIND, on_find)],
    )
    server = JivexServer(
        tmp_path / "data", extra=["--remote", f"CRUMBLY@127.0.0.1:{port}"]
    )
    server.start()
    try:
        run = jivex_cli(server, "find", "--from", "CRUMBLY", "--json", "PatientID=*")
        again = jivex_cli(server, "find", "--from", "CRUMBLY", "--json")
    finally:
        server.stop()
        scp.shutdown()
    assert run.returncode == 1, run.stderr
    assert [row["PatientID"] for row in json.loads(run.stdout)] == ["GOOD1", "GOOD2"]
    for number, (_, problem) in enumerate(BROKEN_ANSWERS.values(), 2):
        assert f"answer {number}: broken identifier ({problem}" in run.stderr, (
            run.stderr
        )
    assert f"answer {len(patients)}" not in run.stderr  # GOOD2 is fine
    assert again.returncode == 1 and "answer 2" in again.stderr  # still serving
