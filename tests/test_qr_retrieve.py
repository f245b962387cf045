"""Query/Retrieve SCP, C-MOVE and C-GET: DCMTK's movescu and getscu.

The archive holds the query studies of tests/corpus.py (DOE^J1: 9 MR images
stored in Implicit VR), MR_small in JPEG 2000 lossless (study 4MR1) and a
generated study of 300 small CT images for the cancel tests. Move
destinations are DCMTK storescp processes: DEST accepts every syntax it
knows, PLAIN only uncompressed ones (so JPEG 2000 must be decompressed for
it), CTONLY only CT Image Storage, REFUSER rejects every association, IMPLICIT accepts
Implicit VR Little Endian only; DOWN
is a port nobody listens on.
"""

from __future__ import annotations

import re
import signal
import subprocess
import threading
import time
from io import BytesIO
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE, evt
from pynetdicom.dimse_primitives import C_FIND, C_MOVE
from pynetdicom.pdu_primitives import SOPClassExtendedNegotiation
from pynetdicom.sop_class import (
    PatientRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
)

from tests.corpus import make_ct_series, query_archive_files
from tests.helpers import (
    JivexServer,
    StoreSCP,
    dcmtk,
    free_port,
    peer_env,
    pynetdicom_peer,
    run_jivex,
)

pytestmark = pytest.mark.interop

MR_STUDY = "1.113654.3.13.1026"
CT_STUDY = "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322"
J2K_FILE = get_testdata_file("MR_small_jp2klossless.dcm")
J2K_STUDY = "1.3.6.1.4.1.5962.1.2.4.20040826185059.5457"
BIG_STUDY = generate_uid(prefix="1.2.826.0.1.3680043.8.498.7461.99.")
BIG_COUNT = 300

CT_ONLY_CONFIG = """\
[[TransferSyntaxes]]
[Uncompressed]
TransferSyntax1 = LocalEndianExplicit
TransferSyntax2 = LittleEndianImplicit

[[PresentationContexts]]
[CTOnly]
PresentationContext1 = CTImageStorage\\Uncompressed

[[Profiles]]
[CTOnly]
PresentationContexts = CTOnly
"""


def _big_study(folder: Path) -> list[str]:
    return make_ct_series(folder, BIG_COUNT, 8, "CANCEL1", BIG_STUDY)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("retrieve")
    files = [*query_archive_files(), J2K_FILE, *_big_study(root / "big")]
    imported = run_jivex("import", "--data", str(root / "data"), *files)
    assert imported.returncode == 0, imported.stderr
    (root / "ctonly.cfg").write_text(CT_ONLY_CONFIG)
    dest = StoreSCP(root, "DEST", "+xa").start()
    plain = StoreSCP(root, "PLAIN").start()
    ctonly = StoreSCP(root, "CTONLY", "-xf", str(root / "ctonly.cfg"), "CTOnly")
    ctonly.start()
    refuser = StoreSCP(root, "REFUSER", "--refuse").start()
    implicit = StoreSCP(root, "IMPLICIT", "+xi").start()
    scps = (dest, plain, ctonly, refuser, implicit)
    remotes = [f"{p.aet}@127.0.0.1:{p.port}" for p in scps]
    remotes.append(f"DOWN@127.0.0.1:{free_port()}")
    server = JivexServer(
        root / "data", extra=[arg for r in remotes for arg in ("--remote", r)]
    ).start()
    yield server, {p.aet: p for p in scps}, root
    server.stop()
    for scp in scps:
        scp.stop()


def movescu(server, destination, *keys, model="-S", extra=()):
    args = [dcmtk("movescu"), "-d", model, "-aem", destination, "-aec", "JIVEX"]
    args += [*extra, "127.0.0.1", str(server.query_port)]
    for key in keys:
        args[-2:-2] = ["-k", key]
    run = subprocess.run(
        args, capture_output=True, text=True, env=peer_env(), timeout=120
    )
    return run.returncode, run.stdout + run.stderr


def _last_response(log: str) -> str:
    """The last C-MOVE/C-GET response DCMTK dumped with -d."""
    blocks = re.findall(
        r"Message Type\s*: C-(?:MOVE|GET) RSP(.*?)END DIMSE MESSAGE", log, re.S
    )
    return blocks[-1] if blocks else ""


def final_counts(log: str) -> dict[str, int]:
    """Counts of the final response; those it left out are missing."""
    counts = {}
    block = _last_response(log)
    for name in ("Remaining", "Completed", "Failed", "Warning"):
        found = re.search(rf"{name} Suboperations\s*:\s*(\d+)", block)
        if found:
            counts[name] = int(found[1])
    return counts


def final_status(log: str) -> str:
    """The status code of the final response, e.g. '0x0000'."""
    found = re.search(r"DIMSE Status\s*:\s*(0x[0-9a-f]{4})", _last_response(log))
    return found[1] if found else ""


def final_comment(log: str) -> str:
    """The Error Comment of the final response (DCMTK dumps it with -d as
    the response's Status Detail), '' when it has none."""
    tail = log.split("Message Type")[-1]
    found = re.findall(r"\(0000,0902\) LO \[(.*?)\s*\]", tail)
    return found[-1] if found else ""


SUCCESS, WARNING, CANCEL = "0x0000", "0xb000", "0xfe00"
UNABLE_TO_PERFORM, IDENTIFIER_MISMATCH = "0xa702", "0xa900"


def test_move_study_to_a_storescp(setup):
    server, scps, _ = setup
    dest = scps["DEST"]
    dest.clear()
    rc, log = movescu(
        server, "DEST", "QueryRetrieveLevel=STUDY", f"StudyInstanceUID={MR_STUDY}"
    )
    assert rc == 0, log
    assert final_status(log) == SUCCESS, log
    stored = {
        r["SOPInstanceUID"]: r for r in server.ls() if r["StudyInstanceUID"] == MR_STUDY
    }
    received = dest.datasets()
    assert set(received) == set(stored) and len(received) == 9
    # Pending responses count down; the final one has the totals.
    assert re.search(r"Remaining Suboperations\s*: 8\b", log), log
    assert final_counts(log)["Completed"] == 9
    # Sent as stored: the same data set, element for element.
    for uid, row in stored.items():
        original = pydicom.dcmread(row["path"])
        assert received[uid].PixelData == original.PixelData
        assert received[uid].PatientName == original.PatientName


def test_move_compressed_object_as_stored_or_decompressed(setup):
    server, scps, _ = setup
    original = pydicom.dcmread(J2K_FILE)
    for name, expected_ts in (
        ("DEST", original.file_meta.TransferSyntaxUID),
        ("PLAIN", None),
    ):
        scp = scps[name]
        scp.clear()
        _rc, log = movescu(
            server, name, "QueryRetrieveLevel=STUDY", f"StudyInstanceUID={J2K_STUDY}"
        )
        assert final_status(log) == SUCCESS, log
        (ds,) = scp.datasets().values()
        if expected_ts:
            assert ds.file_meta.TransferSyntaxUID == expected_ts
            assert ds.PixelData == original.PixelData  # the stored bytes
        else:
            assert not ds.file_meta.TransferSyntaxUID.is_compressed
            assert np.array_equal(ds.pixel_array, original.pixel_array)
        assert ds.SOPInstanceUID == original.SOPInstanceUID  # the same object


def test_move_to_a_destination_that_takes_only_implicit_vr(setup):
    """Objects stored in Explicit VR, and compressed ones, are converted to
    Implicit VR Little Endian (the one syntax every SCP accepts)."""
    server, scps, _ = setup
    implicit = scps["IMPLICIT"]
    implicit.clear()
    for study in (CT_STUDY, J2K_STUDY):
        _, log = movescu(
            server, "IMPLICIT", "QueryRetrieveLevel=STUDY", f"StudyInstanceUID={study}"
        )
        assert final_status(log) == SUCCESS, log
    received = implicit.datasets()
    assert len(received) == 2
    original = pydicom.dcmread(J2K_FILE)
    j2k = received[str(original.SOPInstanceUID)]
    assert np.array_equal(j2k.pixel_array, original.pixel_array)
    ct = next(ds for uid, ds in received.items() if uid != original.SOPInstanceUID)
    assert ct.PatientName == "CompressedSamples^CT1"
    assert "is encoded as" not in server.log()


def test_move_at_series_and_image_levels_and_patient_root(setup):
    server, scps, _ = setup
    dest = scps["DEST"]
    rows = [r for r in server.ls() if r["StudyInstanceUID"] == MR_STUDY]
    two = sorted(r["SOPInstanceUID"] for r in rows)[:2]
    dest.clear()
    _, log = movescu(
        server,
        "DEST",
        "QueryRetrieveLevel=IMAGE",
        f"StudyInstanceUID={MR_STUDY}",
        f"SeriesInstanceUID={rows[0]['SeriesInstanceUID']}",
        "SOPInstanceUID=" + "\\".join(two),
    )
    assert final_status(log) == SUCCESS, log
    assert sorted(dest.received()) == two
    dest.clear()
    _, log = movescu(
        server, "DEST", "QueryRetrieveLevel=PATIENT", "PatientID=1CT1", model="-P"
    )
    assert final_status(log) == SUCCESS, log
    assert [ds.StudyInstanceUID for ds in dest.datasets().values()] == [CT_STUDY]
    dest.clear()
    _, log = movescu(
        server,
        "DEST",
        "QueryRetrieveLevel=SERIES",
        f"StudyInstanceUID={MR_STUDY}",
        f"SeriesInstanceUID={rows[0]['SeriesInstanceUID']}",
    )
    assert final_counts(log)["Completed"] == 9, log


def test_unknown_destination_gets_a801_on_the_open_association(setup, tmp_path):
    server, _, _ = setup
    queries = []
    for n in range(2):
        ds = Dataset()
        ds.QueryRetrieveLevel = "STUDY"
        ds.StudyInstanceUID = MR_STUDY
        path = tmp_path / f"q{n}.dcm"
        ds.save_as(path, implicit_vr=False, little_endian=True)
        queries.append(str(path))
    run = subprocess.run(
        [
            dcmtk("movescu"),
            "-v",
            "-S",
            "-aem",
            "NOBODY",
            "-aec",
            "JIVEX",
            "127.0.0.1",
            str(server.query_port),
            *queries,
        ],
        capture_output=True,
        text=True,
        env=peer_env(),
        timeout=60,
    )
    log = run.stdout + run.stderr
    # Both requests answered on one association, which ends in a release.
    assert log.count("Refused: MoveDestinationUnknown") >= 2, log
    assert log.count("Requesting Association") == 1
    assert "Releasing Association" in log and "Abort" not in log
    assert "Move Destination 'NOBODY' is not a known AE" in server.log()


def test_destination_down_fails_every_sub_operation(setup):
    server, _, _ = setup
    _rc, log = movescu(
        server, "DOWN", "QueryRetrieveLevel=STUDY", f"StudyInstanceUID={MR_STUDY}"
    )
    assert final_status(log) != SUCCESS, log
    assert final_status(log) == UNABLE_TO_PERFORM, log
    assert final_counts(log) == {"Completed": 0, "Failed": 9, "Warning": 0}
    # The Failed SOP Instance UID List names all nine.
    assert log.count("1.113654.5.15.15") >= 9, log
    assert "could not be reached" in server.log()
    # The requestor reads why in the Error Comment (PS3.7 C.4).
    assert final_comment(log) == "'DOWN' could not be reached", log


def test_destination_rejecting_the_association(setup):
    server, _, _ = setup
    _, log = movescu(
        server, "REFUSER", "QueryRetrieveLevel=STUDY", f"StudyInstanceUID={CT_STUDY}"
    )
    assert final_status(log) == UNABLE_TO_PERFORM, log
    assert final_counts(log) == {"Completed": 0, "Failed": 1, "Warning": 0}
    assert "'REFUSER' at 127.0.0.1" in server.log()
    assert "rejected the association" in server.log()
    comment = final_comment(log)
    assert comment.startswith("'REFUSER' rejected the association"), log
    assert len(comment) <= 64


def test_destination_refusing_some_classes(setup):
    server, scps, _ = setup
    ctonly = scps["CTONLY"]
    ctonly.clear()
    _rc, log = movescu(
        server, "CTONLY", "QueryRetrieveLevel=PATIENT", "PatientID=4MR1", model="-P"
    )
    assert final_counts(log) == {"Completed": 0, "Failed": 1, "Warning": 0}, log
    # Only MR proposed, nothing accepted: pynetdicom aborts such an
    # association, which is no abort of the destination's.
    assert final_comment(log) == "'CTONLY' accepted no presentation context", log
    # A patient with CT and no refused class is moved whole.
    _, log = movescu(
        server, "CTONLY", "QueryRetrieveLevel=PATIENT", "PatientID=1CT1", model="-P"
    )
    assert final_status(log) == SUCCESS, log
    assert len(ctonly.received()) == 1
    # Both studies at once (a list of UIDs): one stored, one refused, so
    # B000 with the refused one in the Failed SOP Instance UID List.
    ctonly.clear()
    _, log = movescu(
        server,
        "CTONLY",
        "QueryRetrieveLevel=STUDY",
        f"StudyInstanceUID={CT_STUDY}\\{J2K_STUDY}",
    )
    assert final_status(log) == WARNING, log
    assert final_counts(log) == {"Completed": 1, "Failed": 1, "Warning": 0}, log
    assert final_comment(log) == "'CTONLY' accepted no context for MR Image Storage"
    # The hint about C-GET roles is for C-GET requestors only.
    assert not [
        line
        for line in server.log().splitlines()
        if "C-MOVE sub-operation" in line and "SCP role" in line
    ]
    mr = next(r for r in server.ls() if r["PatientID"] == "4MR1")
    assert mr["SOPInstanceUID"] in log.split("Failed SOP Instance UID List")[-1]
    assert len(ctonly.received()) == 1


def test_movescu_cancel_after_first_response(setup):
    server, scps, _ = setup
    scps["DEST"].clear()
    _, log = movescu(
        server,
        "DEST",
        "QueryRetrieveLevel=STUDY",
        f"StudyInstanceUID={BIG_STUDY}",
        extra=("--cancel", "1"),
    )
    assert final_status(log) == CANCEL, log
    counts = final_counts(log)
    assert counts["Remaining"] > 0 and counts["Completed"] < BIG_COUNT, log
    assert counts["Completed"] + counts["Remaining"] == BIG_COUNT
    # The SCP goes on serving.
    _, again = movescu(
        server, "DEST", "QueryRetrieveLevel=STUDY", f"StudyInstanceUID={CT_STUDY}"
    )
    assert final_status(again) == SUCCESS, again


def test_cancel_right_after_the_request_still_cancels(setup, tmp_path):
    """The cancel is sent before any sub-operation can start: the
    destination takes its time to accept the association."""
    _, _, root = setup
    received = []

    def on_requested(_event):
        time.sleep(1.0)

    def on_store(event):
        received.append(event.request.AffectedSOPInstanceUID)
        return 0x0000

    scp, slow_port = pynetdicom_peer(
        "SLOW",
        [(CTImageStorage,), (CTImageStorage, ExplicitVRLittleEndian)],
        [(evt.EVT_REQUESTED, on_requested), (evt.EVT_C_STORE, on_store)],
    )
    # SLOW is not in the remote table of the module's server: use another.
    data = tmp_path / "data"
    big = sorted(str(p) for p in (root / "big").iterdir())
    assert run_jivex("import", "--data", str(data), *big).returncode == 0
    own = JivexServer(data, extra=["--remote", f"SLOW@127.0.0.1:{slow_port}"])
    own.start()
    try:
        scu = AE(ae_title="CANCELLER")
        scu.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
        assoc = scu.associate("127.0.0.1", own.query_port, ae_title="JIVEX")
        assert assoc.is_established
        ds = Dataset()
        ds.QueryRetrieveLevel = "STUDY"
        ds.StudyInstanceUID = BIG_STUDY
        responses = assoc.send_c_move(
            ds, "SLOW", StudyRootQueryRetrieveInformationModelMove
        )
        cx_id = assoc.accepted_contexts[0].context_id
        assoc.send_c_cancel(1, cx_id)
        statuses = [(st.Status, st) for st, _ in responses if st]
        assoc.release()
        final = statuses[-1][1]
        assert final.Status == 0xFE00
        assert final.NumberOfCompletedSuboperations == 0
        assert final.NumberOfRemainingSuboperations == BIG_COUNT
        assert received == []
    finally:
        own.stop()
        scp.shutdown()


def getscu(server, out: Path, *keys, model="-S"):
    out.mkdir(exist_ok=True)
    args = [dcmtk("getscu"), "-d", model, "-aec", "JIVEX", "-od", str(out)]
    for key in keys:
        args += ["-k", key]
    args += ["127.0.0.1", str(server.query_port)]
    run = subprocess.run(
        args, capture_output=True, text=True, env=peer_env(), timeout=120
    )
    return run.returncode, run.stdout + run.stderr


def test_getscu_retrieves_a_study_and_a_patient(setup, tmp_path):
    server, _, _ = setup
    rc, log = getscu(
        server,
        tmp_path / "a",
        "QueryRetrieveLevel=STUDY",
        f"StudyInstanceUID={MR_STUDY}",
    )
    assert rc == 0 and final_status(log) == SUCCESS, log
    assert len(list((tmp_path / "a").iterdir())) == 9
    assert final_counts(log)["Completed"] == 9
    rc, log = getscu(
        server,
        tmp_path / "b",
        "QueryRetrieveLevel=PATIENT",
        "PatientID=1CT1",
        model="-P",
    )
    assert final_status(log) == SUCCESS, log
    assert len(list((tmp_path / "b").iterdir())) == 1


def test_get_without_role_selection_fails_cleanly(setup):
    server, _, _ = setup
    scu = AE(ae_title="NOROLES")
    scu.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    scu.add_requested_context(CTImageStorage)  # no SCP/SCU role selection
    assoc = scu.associate("127.0.0.1", server.query_port, ae_title="JIVEX")
    assert assoc.is_established
    # We may not take the SCU role for it, so the context is refused.
    assert [str(cx.abstract_syntax) for cx in assoc.accepted_contexts] == [
        StudyRootQueryRetrieveInformationModelGet
    ]
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    ds.StudyInstanceUID = CT_STUDY
    done = threading.Event()
    results = []

    def run():
        results.extend(
            (st, ident)
            for st, ident in assoc.send_c_get(
                ds, StudyRootQueryRetrieveInformationModelGet
            )
        )
        done.set()

    threading.Thread(target=run, daemon=True).start()
    assert done.wait(30), "C-GET without storage contexts hangs"
    assoc.release()
    status, identifier = results[-1]
    assert status.Status == 0xA702
    assert status.NumberOfFailedSuboperations == 1
    assert status.NumberOfCompletedSuboperations == 0
    assert status.ErrorComment == "no context with the SCP role for CT Image Storage"
    assert "(a C-GET requestor must propose it with the SCP role)" in server.log()
    (ct,) = [r for r in server.ls() if r["StudyInstanceUID"] == CT_STUDY]
    assert identifier.FailedSOPInstanceUIDList == ct["SOPInstanceUID"]


def test_bad_retrieve_identifiers(setup, tmp_path):
    server, _, _ = setup
    for keys, comment in [
        (["QueryRetrieveLevel=STUDY"], "a STUDY retrieve needs StudyInstanceUID"),
        (["QueryRetrieveLevel=WARD", "StudyInstanceUID=1.2"], "is not one of"),
        (["QueryRetrieveLevel=STUDY", "StudyInstanceUID=1.2*"], "holds a wild card"),
        (
            ["QueryRetrieveLevel=PATIENT", "PatientID=1CT1\\4MR1"],
            "PatientID '1CT1\\4MR1' holds more than one value",
        ),
        (
            [
                "QueryRetrieveLevel=STUDY",
                f"StudyInstanceUID={MR_STUDY}",
                "SOPInstanceUID=1.2",
            ],
            "below the STUDY level",
        ),
    ]:
        model = "-P" if "QueryRetrieveLevel=PATIENT" in keys else "-S"
        _, log = movescu(server, "DEST", *keys, model=model)
        assert final_status(log) == IDENTIFIER_MISMATCH, log
        assert comment in server.log()
        # The comment is what the log says, in LO: a backslash, LO's value
        # delimiter, becomes '/'.
        logged = server.log().replace("\\", "/")
        assert final_comment(log), log
        assert final_comment(log).removesuffix("...") in logged, log
        # getscu reads the same comment.
        _, log = getscu(server, tmp_path / "get", *keys, model=model)
        assert final_status(log) == IDENTIFIER_MISMATCH, log
        assert final_comment(log), log
        assert final_comment(log).removesuffix("...") in logged, log
    # Nothing matches: success with no sub-operations.
    _, log = movescu(
        server, "DEST", "QueryRetrieveLevel=STUDY", "StudyInstanceUID=1.2.3.4"
    )
    assert final_status(log) == SUCCESS, log


def test_storing_on_the_query_port_is_refused(setup):
    server, _, _ = setup
    run = subprocess.run(
        [
            dcmtk("storescu"),
            "-aec",
            "JIVEX",
            "127.0.0.1",
            str(server.query_port),
            get_testdata_file("CT_small.dcm"),
        ],
        capture_output=True,
        text=True,
        env=peer_env(),
        timeout=60,
    )
    log = run.stdout + run.stderr
    assert run.returncode != 0
    assert "Association Rejected" in log, log
    assert "none of its" in server.log()


def test_findscu_cancel_after_the_first_answer(setup, tmp_path):
    """findscu cancels after its first answer. The answers go out faster
    than a cancel comes back, so on a busy machine all 300 may be sent
    first; what must hold is a clean end: FE00 with fewer answers, or 0000
    with all of them, never an abort or an error."""
    server, _, _ = setup
    (series,) = {
        r["SeriesInstanceUID"]
        for r in server.ls()
        if r["StudyInstanceUID"] == BIG_STUDY
    }
    run = subprocess.run(
        [
            dcmtk("findscu"),
            *("-v", "-S", "-aec", "JIVEX", "--cancel", "1"),
            *("-k", "QueryRetrieveLevel=IMAGE", "-k", f"StudyInstanceUID={BIG_STUDY}"),
            *("-k", f"SeriesInstanceUID={series}", "-k", "SOPInstanceUID"),
            *("127.0.0.1", str(server.query_port)),
        ],
        capture_output=True,
        text=True,
        env=peer_env(),
        timeout=60,
    )
    log = run.stdout + run.stderr
    assert run.returncode == 0 and "Sending Cancel Request" in log, log
    answers = log.count("Find Response:")
    if "MatchingTerminatedDueToCancelRequest" in log:
        assert answers < BIG_COUNT, log
    else:
        assert "Received Final Find Response (Success)" in log, log
        assert answers == BIG_COUNT
    assert "Releasing Association" in log and "Abort" not in log


def test_find_cancel_right_after_the_request_is_honoured(setup):
    """A C-FIND-CANCEL sent right behind its request: pynetdicom would drop
    it before serving the request; the SCP answers FE00 and no match."""
    server, _, _ = setup
    scu = AE(ae_title="CANCELLER")
    scu.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    assoc = scu.associate("127.0.0.1", server.query_port, ae_title="JIVEX")
    assert assoc.is_established
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    ds.PatientID = ""
    ds.StudyInstanceUID = ""
    statuses = []
    for _ in range(5):  # the race is on our side: each round must cancel
        responses = assoc.send_c_find(ds, StudyRootQueryRetrieveInformationModelFind)
        assoc.send_c_cancel(1, assoc.accepted_contexts[0].context_id)
        statuses.append([st.Status for st, _ in responses if "Status" in st])
    assoc.release()
    for answered in statuses:
        assert answered[-1] == 0xFE00, statuses
        assert len(answered) == 1  # not one match was sent


def test_move_destination_from_the_config_file(setup, tmp_path):
    _, scps, _ = setup
    dest = scps["DEST"]
    config = tmp_path / "jivex.toml"
    config.write_text(
        f'[[remote]]\nae_title = "ARCHIVE2"\nhost = "127.0.0.1"\nport = {dest.port}\n'
    )
    data = tmp_path / "data"
    assert run_jivex("import", "--data", str(data), J2K_FILE).returncode == 0
    own = JivexServer(data, config=config).start()
    try:
        dest.clear()
        _, log = movescu(
            own, "ARCHIVE2", "QueryRetrieveLevel=STUDY", f"StudyInstanceUID={J2K_STUDY}"
        )
        assert final_status(log) == SUCCESS, log
        assert len(dest.received()) == 1
    finally:
        own.stop()


def test_malformed_identifier_gets_c000_and_the_scp_keeps_serving(setup):
    server, _, _ = setup
    scu = AE(ae_title="GARBLER")
    scu.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
    assoc = scu.associate("127.0.0.1", server.query_port, ae_title="JIVEX")
    assert assoc.is_established
    req = C_MOVE()
    req.MessageID = 7
    req.AffectedSOPClassUID = StudyRootQueryRetrieveInformationModelMove
    req.Priority = 2
    req.MoveDestination = "DEST"
    # An element header promising more bytes than follow.
    req.Identifier = BytesIO(b"\x08\x00\x52\x00\xff\xff\x00\x00STU")
    cx_id = assoc.accepted_contexts[0].context_id
    assoc._reactor_checkpoint.clear()
    while not assoc._is_paused:
        time.sleep(0.001)
    assoc.dimse.send_msg(req, cx_id)
    _, rsp = assoc.dimse.get_msg(block=True)
    assoc._reactor_checkpoint.set()
    assert rsp.Status == 0xC000
    assert "malformed identifier" in rsp.ErrorComment
    assoc.release()
    _, log = movescu(
        server, "DEST", "QueryRetrieveLevel=STUDY", f"StudyInstanceUID={CT_STUDY}"
    )
    assert final_status(log) == SUCCESS, log


def test_relational_retrieval_is_not_offered(setup):
    """SOP Class Extended Negotiation asking for relational queries gets no
    agreement back (PS3.4 C.5.1.1), and a relational-style query, which
    leaves out the unique keys above its level, is refused."""
    server, _, _ = setup
    scu = AE(ae_title="RELATIONAL")
    scu.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    item = SOPClassExtendedNegotiation()
    item.sop_class_uid = StudyRootQueryRetrieveInformationModelFind
    item.service_class_application_information = b"\x01"
    assoc = scu.associate(
        "127.0.0.1", server.query_port, ae_title="JIVEX", ext_neg=[item]
    )
    assert assoc.is_established
    assert not assoc.acceptor.sop_class_extended
    ds = Dataset()
    ds.QueryRetrieveLevel = "SERIES"
    ds.SeriesInstanceUID = ""
    ds.Modality = "CT"
    statuses = [
        st.Status
        for st, _ in assoc.send_c_find(ds, StudyRootQueryRetrieveInformationModelFind)
        if st
    ]
    assoc.release()
    assert statuses == [0xA900]


def test_association_limit_on_the_query_port(tmp_path):
    config = tmp_path / "jivex.toml"
    config.write_text("[network]\nmax_associations = 1\n")
    server = JivexServer(tmp_path / "data", config=config).start()
    try:
        scu = AE(ae_title="FIRST")
        scu.add_requested_context("1.2.840.10008.1.1")
        first = scu.associate("127.0.0.1", server.query_port, ae_title="JIVEX")
        assert first.is_established
        second = scu.associate("127.0.0.1", server.query_port, ae_title="JIVEX")
        assert second.is_rejected
        first.release()
        time.sleep(0.5)
        third = scu.associate("127.0.0.1", server.query_port, ae_title="JIVEX")
        assert third.is_established
        third.release()
    finally:
        server.stop()


def test_move_stops_when_the_requestor_aborts(setup, tmp_path):
    _, _, root = setup
    received = []

    def on_store(event):
        time.sleep(0.05)
        received.append(event.request.AffectedSOPInstanceUID)
        return 0x0000

    scp, slow_port = pynetdicom_peer(
        "SLOWSTORE",
        [(CTImageStorage,), (CTImageStorage, ExplicitVRLittleEndian)],
        [(evt.EVT_C_STORE, on_store)],
    )
    data = tmp_path / "data"
    big = sorted(str(p) for p in (root / "big").iterdir())
    assert run_jivex("import", "--data", str(data), *big).returncode == 0
    own = JivexServer(data, extra=["--remote", f"SLOWSTORE@127.0.0.1:{slow_port}"])
    own.start()
    try:
        scu = AE(ae_title="QUITTER")
        scu.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
        assoc = scu.associate("127.0.0.1", own.query_port, ae_title="JIVEX")
        ds = Dataset()
        ds.QueryRetrieveLevel = "STUDY"
        ds.StudyInstanceUID = BIG_STUDY
        responses = assoc.send_c_move(
            ds, "SLOWSTORE", StudyRootQueryRetrieveInformationModelMove
        )
        status, _ = next(responses)
        assert status.Status == 0xFF00
        assoc.abort()
        deadline = time.monotonic() + 10
        while "stopped: the requestor's association ended" not in own.log():
            assert time.monotonic() < deadline, own.log()
            time.sleep(0.1)
        assert len(received) < BIG_COUNT / 2
    finally:
        own.stop()
        scp.shutdown()


def test_thirty_queries_at_once_all_answer(setup):
    """Parallel C-FINDs whose answers need the stored character sets (the
    Japanese and Korean names): none may wait for a database connection."""
    server, _, _ = setup
    results: list[object] = []

    def one() -> None:
        scu = AE(ae_title="PARALLEL")
        scu.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
        assoc = scu.associate("127.0.0.1", server.query_port, ae_title="JIVEX")
        if not assoc.is_established:
            results.append("not established")
            return
        ds = Dataset()
        ds.QueryRetrieveLevel = "STUDY"
        ds.PatientName = ""
        ds.StudyInstanceUID = ""
        answers = list(
            assoc.send_c_find(ds, StudyRootQueryRetrieveInformationModelFind)
        )
        assoc.release()
        results.append([st.Status for st, _ in answers if "Status" in st])

    threads = [threading.Thread(target=one) for _ in range(30)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert len(results) == 30
    expected = len({r["StudyInstanceUID"] for r in server.ls()})
    for statuses in results:
        assert statuses == [0xFF00] * expected + [0x0000], statuses


def test_a_move_longer_than_the_network_timeout_ends_normally(setup, tmp_path):
    """network_timeout is about a silent peer; a requestor that only waits
    for our pending responses during a long move is not one."""
    _, scps, root = setup
    dest = scps["DEST"]
    config = tmp_path / "jivex.toml"
    config.write_text(
        "[network]\nnetwork_timeout = 0.2\n\n[[remote]]\n"
        f'ae_title = "DEST"\nhost = "127.0.0.1"\nport = {dest.port}\n'
    )
    data = tmp_path / "data"
    big = sorted(str(p) for p in (root / "big").iterdir())
    assert run_jivex("import", "--data", str(data), *big).returncode == 0
    own = JivexServer(data, config=config).start()
    try:
        dest.clear()
        started = time.monotonic()
        rc, log = movescu(
            own, "DEST", "QueryRetrieveLevel=STUDY", f"StudyInstanceUID={BIG_STUDY}"
        )
        assert time.monotonic() - started > 0.2  # longer than the timeout
        assert final_status(log) == SUCCESS, log
        assert rc == 0 and "Abort" not in log, log
    finally:
        own.stop()


def test_a_retrieve_by_thousands_of_uids(setup):
    """A list of UIDs over 64 KiB in the identifier (1,200 UIDs of about 60
    characters): all of them are read, and those stored are moved."""
    server, scps, _ = setup
    big = sorted(
        r["SOPInstanceUID"] for r in server.ls() if r["StudyInstanceUID"] == BIG_STUDY
    )
    series = next(
        r["SeriesInstanceUID"]
        for r in server.ls()
        if r["StudyInstanceUID"] == BIG_STUDY
    )
    padding = [
        f"1.2.826.0.1.3680043.8.498.7461.99.{n + 1}{'1' * 20}" for n in range(1200)
    ]
    dest = scps["DEST"]
    dest.clear()
    scu = AE(ae_title="MANYUIDS")
    scu.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
    assoc = scu.associate("127.0.0.1", server.query_port, ae_title="JIVEX")
    ds = Dataset()
    ds.QueryRetrieveLevel = "IMAGE"
    ds.StudyInstanceUID = BIG_STUDY
    ds.SeriesInstanceUID = series
    ds.SOPInstanceUID = padding + big[:5]
    statuses = [
        st
        for st, _ in assoc.send_c_move(
            ds, "DEST", StudyRootQueryRetrieveInformationModelMove
        )
        if "Status" in st
    ]
    assoc.release()
    assert statuses[-1].Status == 0x0000
    assert statuses[-1].NumberOfCompletedSuboperations == 5
    assert sorted(dest.received()) == big[:5]


def test_an_object_stored_incomplete_is_not_sent(setup, tmp_path):
    """One image was received cut short (stored, marked incomplete): sent as
    stored it would declare more bytes than it has and make the peer abort.
    It fails with the reason; the others go."""
    _, scps, _ = setup
    files = make_ct_series(tmp_path / "files", 3, 16, "CUT1")
    cut = Path(files[1])
    cut.write_bytes(cut.read_bytes()[:-100])
    data = tmp_path / "data"
    run_jivex("import", "--data", str(data), *files)
    dest = scps["DEST"]
    own = JivexServer(data, extra=["--remote", f"DEST@127.0.0.1:{dest.port}"])
    own.start()
    try:
        assert sum(r["incomplete"] for r in own.ls()) == 1
        dest.clear()
        _, log = movescu(
            own, "DEST", "QueryRetrieveLevel=PATIENT", "PatientID=CUT1", model="-P"
        )
        assert final_status(log) == WARNING, log
        assert final_counts(log) == {"Completed": 2, "Failed": 1, "Warning": 0}
        assert "stored incomplete" in own.log()
        assert final_comment(log).startswith("stored incomplete"), log
        assert len(dest.received()) == 2
    finally:
        own.stop()


def test_a_destination_aborting_on_one_object_gets_the_others(tmp_path):
    files = make_ct_series(tmp_path / "files", 6, 16, "ABORT1")
    bad = str(pydicom.dcmread(files[2]).SOPInstanceUID)
    received: list[str] = []

    def on_store(event):
        uid = str(event.request.AffectedSOPInstanceUID)
        if uid == bad:
            event.assoc.abort()
            return 0xC000
        received.append(uid)
        return 0x0000

    scp, port = pynetdicom_peer(
        "TOUCHY",
        [(CTImageStorage, ExplicitVRLittleEndian)],
        [(evt.EVT_C_STORE, on_store)],
    )
    data = tmp_path / "data"
    assert run_jivex("import", "--data", str(data), *files).returncode == 0
    own = JivexServer(data, extra=["--remote", f"TOUCHY@127.0.0.1:{port}"]).start()
    try:
        _, log = movescu(
            own, "TOUCHY", "QueryRetrieveLevel=PATIENT", "PatientID=ABORT1", model="-P"
        )
        assert final_status(log) == WARNING, log
        assert final_counts(log) == {"Completed": 5, "Failed": 1, "Warning": 0}
        assert bad not in received and len(set(received)) == 5
        assert "association lost, 3 objects go on a new one" in own.log()
        assert final_comment(log) == "'TOUCHY' ended the association during a C-STORE"
    finally:
        own.stop()
        scp.shutdown()


def test_a_find_on_a_move_context_is_refused_cleanly(setup):
    server, _, _ = setup
    scu = AE(ae_title="MIXUP")
    scu.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
    assoc = scu.associate("127.0.0.1", server.query_port, ae_title="JIVEX")
    req = C_FIND()
    req.MessageID = 3
    req.AffectedSOPClassUID = StudyRootQueryRetrieveInformationModelMove
    req.Priority = 2
    req.Identifier = BytesIO(b"\x08\x00\x52\x00\x06\x00\x00\x00STUDY ")
    cx_id = assoc.accepted_contexts[0].context_id
    assoc._reactor_checkpoint.clear()
    while not assoc._is_paused:
        time.sleep(0.001)
    assoc.dimse.send_msg(req, cx_id)
    _, rsp = assoc.dimse.get_msg(block=True)
    assoc._reactor_checkpoint.set()
    assert rsp.Status == 0x0122
    assert assoc.is_established  # not aborted
    assoc.release()


def test_a_destination_failing_every_object_is_named_with_its_status(tmp_path):
    """A702's Error Comment names the destination and the status it gave
    (with its own comment); the log line of the final response too."""
    files = make_ct_series(tmp_path / "files", 3, 16, "FULL1")

    def on_store(_event):
        status = Dataset()
        status.Status = 0xA700
        status.ErrorComment = "disk full"
        return status

    scp, port = pynetdicom_peer(
        "FULLDISK",
        [(CTImageStorage, ExplicitVRLittleEndian)],
        [(evt.EVT_C_STORE, on_store)],
    )
    data = tmp_path / "data"
    assert run_jivex("import", "--data", str(data), *files).returncode == 0
    own = JivexServer(data, extra=["--remote", f"FULLDISK@127.0.0.1:{port}"]).start()
    try:
        _, log = movescu(
            own, "FULLDISK", "QueryRetrieveLevel=PATIENT", "PatientID=FULL1", model="-P"
        )
        assert final_status(log) == UNABLE_TO_PERFORM, log
        assert final_counts(log) == {"Completed": 0, "Failed": 3, "Warning": 0}
        assert final_comment(log) == "'FULLDISK' answered 0xA700: disk full", log
        assert "(0xA702): 'FULLDISK' answered 0xA700: disk full" in own.log()
    finally:
        own.stop()
        scp.shutdown()


def _slow_move_at_shutdown(tmp_path, shutdown_timeout: float, count: int, delay: float):
    """C-MOVE *count* objects to a destination that takes *delay* s each,
    SIGTERM the server after the first pending response; return what the
    requestor got, the objects received, the server's exit code, how long
    it took to stop, and its log."""
    files = make_ct_series(tmp_path / "files", count, 16, "SLOWSTOP")
    received: list[str] = []

    def on_store(event):
        time.sleep(delay)
        received.append(str(event.request.AffectedSOPInstanceUID))
        return 0x0000

    scp, port = pynetdicom_peer(
        "SLOWDEST",
        [(CTImageStorage, ExplicitVRLittleEndian)],
        [(evt.EVT_C_STORE, on_store)],
    )
    data = tmp_path / "data"
    assert run_jivex("import", "--data", str(data), *files).returncode == 0
    config = tmp_path / "jivex.toml"
    config.write_text(f"[network]\nshutdown_timeout = {shutdown_timeout}\n")
    own = JivexServer(
        data, config=config, extra=["--remote", f"SLOWDEST@127.0.0.1:{port}"]
    ).start()
    try:
        scu = AE(ae_title="PATIENT1")
        scu.acse_timeout = scu.dimse_timeout = scu.network_timeout = 60
        scu.add_requested_context(PatientRootQueryRetrieveInformationModelMove)
        assoc = scu.associate("127.0.0.1", own.query_port, ae_title="JIVEX")
        assert assoc.is_established
        ds = Dataset()
        ds.QueryRetrieveLevel = "PATIENT"
        ds.PatientID = "SLOWSTOP"
        responses = assoc.send_c_move(
            ds, "SLOWDEST", PatientRootQueryRetrieveInformationModelMove
        )
        statuses = [next(responses)[0]]
        assert statuses[0].Status == 0xFF00
        started = time.monotonic()
        own.proc.send_signal(signal.SIGTERM)
        statuses += [status for status, _ in responses]
        answered = statuses[-1].get("Status") not in (None, 0xFF00)
        deadline = time.monotonic() + 5
        while not answered and assoc.is_established and time.monotonic() < deadline:
            time.sleep(0.02)  # the reactor takes in an abort after the answers
        aborted = assoc.is_aborted
        if assoc.is_established:
            assoc.release()  # as any requestor does after the final response
        code = own.proc.wait(shutdown_timeout + 30)
        took = time.monotonic() - started
        return statuses, aborted, received, code, took, own.log()
    finally:
        own.stop()
        scp.shutdown()


def test_sigterm_lets_a_running_move_finish_within_the_timeout(tmp_path):
    statuses, aborted, received, code, took, log = _slow_move_at_shutdown(
        tmp_path, shutdown_timeout=30, count=12, delay=0.15
    )
    final = statuses[-1]
    assert final.Status == 0x0000, log
    assert final.NumberOfCompletedSuboperations == 12
    assert len(set(received)) == 12 and not aborted
    assert code == 0 and took < 30, log
    assert "still running after" not in log


def test_sigterm_aborts_a_move_running_past_the_timeout(tmp_path):
    statuses, aborted, received, code, took, log = _slow_move_at_shutdown(
        tmp_path, shutdown_timeout=1, count=40, delay=0.2
    )
    # No final response: the requestor sees an A-ABORT once the timeout ran.
    assert aborted, log
    assert all(s.get("Status") in (0xFF00, None) for s in statuses), statuses
    assert len(received) < 40
    assert code == 0 and took < 1 + 10, log
    assert "1 Query/Retrieve requests still running after 1.0 s; aborted" in log
    assert "stopped: the server is stopping" in log
    # No new sub-association was opened once the server gave up.
    assert log.count("go on a new one") == 0
