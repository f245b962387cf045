"""Sending through the job queue: `jivex send`, `jivex jobs`, routing, faults.

Destinations are DCMTK storescp processes on free loopback ports, except
where a test needs a peer that stalls on purpose (pynetdicom, in this
process): the kill test, whose claim is our durability, not interoperation.
Retry schedules are shortened in the config so that the retries happen
within the test.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian
from pynetdicom import evt

from jivex_core.link_client import LinkClient, LinkError
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


def config_file(path: Path, *remotes: str, extra: str = "") -> Path:
    text = ""
    for remote in remotes:
        aet, _, address = remote.partition("@")
        host, _, port = address.partition(":")
        text += f'[[remote]]\nae_title = "{aet}"\nhost = "{host}"\nport = {port}\n'
        text += "retry_minutes = [0.01, 0.01, 0.01]\n"
    path.write_text(text + extra)
    return path


def jobs_json(data: Path, config: Path | None = None) -> list[dict]:
    args = ["jobs", "--json", "--data", str(data)]
    if config:
        args += ["--config", str(config)]
    run = run_jivex(*args)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def wait_for_job(data: Path, pk: int, states=("done", "failed", "cancelled")):
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job = next(j for j in jobs_json(data) if j["id"] == pk)
        if job["state"] in states:
            return job
        time.sleep(0.3)
    raise AssertionError(f"job {pk} still {job}")


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """A data folder with the query studies, for embedded-core sends."""
    root = tmp_path_factory.mktemp("jobs")
    data = root / "data"
    assert (
        run_jivex("import", "--data", str(data), *query_archive_files()).returncode == 0
    )
    return data


def test_send_a_study_and_a_patient_with_the_embedded_core(archive, tmp_path):
    scp = StoreSCP(tmp_path, "DEST").start()
    try:
        run = run_jivex(
            "send",
            "--data",
            str(archive),
            "--remote",
            f"DEST@127.0.0.1:{scp.port}",
            "--to",
            "DEST",
            MR_STUDY,
            "1CT1",
        )
        assert run.returncode == 0, run.stderr
        assert "10 stored, 0 with warnings, 0 failed" in run.stdout
        ours = {
            r["SOPInstanceUID"]: r
            for r in json.loads(
                run_jivex(
                    "ls", "--json", "--level", "instance", "--data", str(archive)
                ).stdout
            )
        }
        received = scp.received()
        assert len(received) == 10 and received <= set(ours)
        # Level 2: what arrives is what is stored.
        for path in scp.out.iterdir():
            got = pydicom.dcmread(path)
            kept = pydicom.dcmread(ours[str(got.SOPInstanceUID)]["path"])
            assert got.PixelData == kept.PixelData
    finally:
        scp.stop()
    (job,) = [j for j in jobs_json(archive) if j["remote_ae"] == "DEST"][:1]
    assert job["state"] == "done" and job["completed"] == 10


def test_bad_send_requests_name_the_problem(archive):
    run = run_jivex("send", "--data", str(archive), "--to", "NOBODY", MR_STUDY)
    assert run.returncode == 2
    assert "'NOBODY' is not in the remote AE table" in run.stderr
    run = run_jivex(
        "send",
        "--data",
        str(archive),
        "--remote",
        "DEST@127.0.0.1:9",
        "--to",
        "DEST",
        "1.2.3.4",
    )
    assert run.returncode == 2
    assert "nothing stored has the UID or Patient ID '1.2.3.4'" in run.stderr


def test_partial_failure_when_the_peer_refuses_a_class(archive, tmp_path):
    cfg = tmp_path / "ctonly.cfg"
    cfg.write_text(
        "[[TransferSyntaxes]]\n[U]\nTransferSyntax1 = LocalEndianExplicit\n"
        "TransferSyntax2 = LittleEndianImplicit\n[[PresentationContexts]]\n[CT]\n"
        "PresentationContext1 = CTImageStorage\\U\n[[Profiles]]\n[CT]\n"
        "PresentationContexts = CT\n"
    )
    scp = StoreSCP(tmp_path, "CTONLY", "-xf", str(cfg), "CT").start()
    try:
        run = run_jivex(
            "send",
            "--data",
            str(archive),
            "--remote",
            f"CTONLY@127.0.0.1:{scp.port}",
            "--to",
            "CTONLY",
            "--json",
            MR_STUDY,
            "1CT1",
        )
    finally:
        scp.stop()
    assert run.returncode == 1, run.stderr  # partial failure
    job = json.loads(run.stdout)
    assert (job["completed"], job["failed"]) == (1, 9)
    assert "no presentation context for MR Image Storage" in job["last_error"]
    assert len(scp.received()) == 1


def test_destination_down_then_up_gets_everything_exactly_once(tmp_path):
    data = tmp_path / "data"
    files = make_ct_series(tmp_path / "files", 30)
    assert run_jivex("import", "--data", str(data), *files).returncode == 0
    scp = StoreSCP(tmp_path, "LATER")
    config = config_file(tmp_path / "jivex.toml", f"LATER@127.0.0.1:{scp.port}")
    server = JivexServer(data, config=config).start()
    try:
        run = run_jivex("send", "--data", str(data), "--to", "LATER", "QUEUE1")
        assert run.returncode == 2
        assert "could not be reached" in run.stderr
        assert "will be tried again" in run.stderr
        (job,) = jobs_json(data)
        assert job["state"] in ("queued", "running") and job["attempts"] >= 1
        assert job["completed"] == 0
        scp.start()
        job = wait_for_job(data, job["id"])
        assert job["state"] == "done", job
        assert job["completed"] == 30 and job["attempts"] >= 2
        assert scp.requests() == 30  # each object sent once
        assert len(scp.received()) == 30
    finally:
        server.stop()
        scp.stop()


def test_kill_during_a_send_loses_nothing(tmp_path):
    """SIGKILL the core while the peer holds the 80th object, restart it:
    the send resumes and every object arrives."""
    data = tmp_path / "data"
    files = make_ct_series(tmp_path / "files", 200)
    assert run_jivex("import", "--data", str(data), *files).returncode == 0
    received: list[str] = []
    stall = threading.Event()
    release = threading.Event()

    def on_store(event):
        if len(received) == 80 and not release.is_set():
            stall.set()
            release.wait(30)
            return 0xA700  # never reached the first time: the sender is dead
        received.append(event.request.AffectedSOPInstanceUID)
        return 0x0000

    scp, port = pynetdicom_peer(
        "STALLER",
        [(CTImageStorage, ExplicitVRLittleEndian)],
        [(evt.EVT_C_STORE, on_store)],
    )
    config = config_file(tmp_path / "jivex.toml", f"STALLER@127.0.0.1:{port}")
    server = JivexServer(data, config=config).start()
    try:
        run = run_jivex(
            "send", "--data", str(data), "--to", "STALLER", "--no-wait", "QUEUE1"
        )
        assert run.returncode == 0, run.stderr
        assert stall.wait(60), "the send never reached the 80th object"
        server.proc.kill()
        server.proc.wait(10)
        release.set()
        server.start()
        (job,) = jobs_json(data)
        job = wait_for_job(data, job["id"])
        assert job["state"] == "done", job
        assert job["completed"] == 200 and job["failed"] == 0
        stored = {r["SOPInstanceUID"] for r in server.ls()}
        assert set(received) == stored  # nothing lost
        # Confirmations are written in batches: those of the last batch
        # before the kill were lost with the process, so those objects were
        # sent again; none was counted without being confirmed.
        assert 200 <= len(received) <= 200 + 80
    finally:
        server.stop()
        scp.shutdown()


def test_cancel_and_retry_from_the_command_line(tmp_path):
    data = tmp_path / "data"
    files = make_ct_series(tmp_path / "files", 3)
    assert run_jivex("import", "--data", str(data), *files).returncode == 0
    port = free_port()
    config = config_file(
        tmp_path / "jivex.toml",
        f"NOWHERE@127.0.0.1:{port}",
    )
    # A long schedule: the job waits after its first attempt.
    config.write_text(config.read_text().replace("[0.01, 0.01, 0.01]", "[60]"))
    server = JivexServer(data, config=config).start()
    try:
        run = run_jivex("send", "--data", str(data), "--to", "NOWHERE", "QUEUE1")
        assert run.returncode == 2
        (job,) = jobs_json(data)
        assert job["state"] == "queued" and job["last_error"]
        table = run_jivex("jobs", "--data", str(data))
        assert "NOWHERE" in table.stdout and "could not be reached" in table.stdout
        scp = StoreSCP(tmp_path, "NOWHERE", port=port).start()
        try:
            retried = run_jivex("jobs", "--data", str(data), "--retry", str(job["id"]))
            assert retried.returncode == 0, retried.stderr
            done = wait_for_job(data, job["id"])
            assert done["state"] == "done" and done["completed"] == 3
        finally:
            scp.stop()
        again = run_jivex("send", "--data", str(data), "--to", "NOWHERE", "QUEUE1")
        assert again.returncode == 2
        second = max(j["id"] for j in jobs_json(data))
        cancel = run_jivex("jobs", "--data", str(data), "--cancel", str(second))
        assert cancel.returncode == 0 and "cancelled" in cancel.stdout
        assert wait_for_job(data, second)["state"] == "cancelled"
        repeat = run_jivex("jobs", "--data", str(data), "--cancel", str(second))
        assert repeat.returncode == 2 and "already cancelled" in repeat.stderr
    finally:
        server.stop()


def test_peer_aborting_mid_transfer_fails_after_the_retries(tmp_path):
    data = tmp_path / "data"
    files = make_ct_series(tmp_path / "files", 3)
    assert run_jivex("import", "--data", str(data), *files).returncode == 0
    scp = StoreSCP(tmp_path, "ABORTER", "--abort-after").start()
    config = config_file(tmp_path / "jivex.toml", f"ABORTER@127.0.0.1:{scp.port}")
    server = JivexServer(data, config=config).start()
    try:
        run = run_jivex(
            "send", "--data", str(data), "--to", "ABORTER", "--no-wait", "QUEUE1"
        )
        assert run.returncode == 0
        (job,) = jobs_json(data)
        job = wait_for_job(data, job["id"])
        assert job["state"] == "failed"
        assert job["attempts"] == 4  # the first and three retries
        assert "went away during the transfer" in job["last_error"]
        # Failed for good: what was not sent counts as failed (the object
        # in flight too: it was never confirmed).
        assert job["completed"] == 0 and job["failed"] == 3
        assert job["remaining"] == 0
        assert len(server.ls()) == 3  # nothing lost locally
    finally:
        server.stop()
        scp.stop()


def test_routing_forwards_what_matches(tmp_path):
    data = tmp_path / "data"
    scp = StoreSCP(tmp_path, "CTARCHIVE").start()
    config = config_file(
        tmp_path / "jivex.toml",
        f"CTARCHIVE@127.0.0.1:{scp.port}",
        extra='[[routing]]\ndestinations = ["CTARCHIVE"]\nmodality = ["CT"]\n'
        "\n[jobs]\nforward_delay_seconds = 0.2\n",
    )
    server = JivexServer(data, config=config).start()
    ct = make_ct_series(tmp_path / "files", 5)
    mr = sorted(str(p) for p in (Path(query_archive_files()[0]).parent).glob("MR0*"))
    try:
        sent = subprocess.run(
            [
                dcmtk("storescu"),
                "-aec",
                "JIVEX",
                "127.0.0.1",
                str(server.port),
                *ct,
                *mr,
            ],
            capture_output=True,
            text=True,
            env=peer_env(),
            timeout=60,
        )
        assert sent.returncode == 0, sent.stderr
        deadline = time.monotonic() + 30
        while len(scp.received()) < 5 and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.0)
        received = scp.received()
        ct_uids = {str(pydicom.dcmread(p).SOPInstanceUID) for p in ct}
        assert received == ct_uids  # the CT images, and no MR image
        jobs = jobs_json(data)
        assert {j["kind"] for j in jobs} == {"forward"}
        assert sum(j["completed"] for j in jobs) == 5
    finally:
        server.stop()
        scp.stop()


def test_routing_to_an_unknown_destination_is_a_config_error(tmp_path):
    config = tmp_path / "jivex.toml"
    config.write_text('[[routing]]\ndestinations = ["GHOST"]\n')
    run = run_jivex("jobs", "--config", str(config), "--data", str(tmp_path / "d"))
    assert run.returncode == 2
    assert (
        "routing rule 1: destination 'GHOST' is not in the remote table" in run.stderr
    )


def test_a_peer_with_no_pdu_limit_is_sent_to(archive, tmp_path):
    """A-ASSOCIATE-AC with Maximum Length 0 (no limit, PS3.8 D.1)."""
    got = []

    def on_store(event):
        got.append(len(event.request.DataSet.getvalue()))
        return 0x0000

    scp, port = pynetdicom_peer(
        "NOLIMIT",
        [
            ("1.2.840.10008.5.1.4.1.1.4",),
            ("1.2.840.10008.5.1.4.1.1.4", ExplicitVRLittleEndian),
        ],
        [(evt.EVT_C_STORE, on_store)],
        max_pdu=0,
    )
    try:
        run = run_jivex(
            "send",
            "--data",
            str(archive),
            "--remote",
            f"NOLIMIT@127.0.0.1:{port}",
            "--to",
            "NOLIMIT",
            MR_STUDY,
        )
    finally:
        scp.shutdown()
    assert run.returncode == 0, run.stderr
    assert len(got) == 9 and min(got) > 100_000


def test_the_link_lists_the_remote_table_for_the_workstation(tmp_path):
    # Nothing connects to these: the table is only listed.
    ports = [free_port() for _ in range(3)]
    config = config_file(
        tmp_path / "jivex.toml",
        f"PACS@127.0.0.1:{ports[0]}",
        f"STORE@localhost:{ports[1]}",
    )
    server = JivexServer(
        tmp_path / "data",
        config=config,
        extra=["--remote", f"EXTRA@127.0.0.2:{ports[2]}"],
    ).start()
    try:
        client = LinkClient.connect(server.data_dir)
        assert client is not None
        try:
            remotes = client.call("remotes")
            with pytest.raises(LinkError, match="'remote'"):
                client.call("remote")
        finally:
            client.close()
    finally:
        server.stop()
    # In the configuration's order, --remote last; nothing but the address.
    assert remotes == [
        {"ae_title": "PACS", "host": "127.0.0.1", "port": ports[0]},
        {"ae_title": "STORE", "host": "localhost", "port": ports[1]},
        {"ae_title": "EXTRA", "host": "127.0.0.2", "port": ports[2]},
    ]


def test_a_peer_rejecting_the_association_is_retried_with_the_reason(tmp_path):
    data = tmp_path / "data"
    files = make_ct_series(tmp_path / "files", 2)
    assert run_jivex("import", "--data", str(data), *files).returncode == 0
    scp = StoreSCP(tmp_path, "GRUMPY", "--refuse").start()
    try:
        run = run_jivex(
            "send",
            "--data",
            str(data),
            "--remote",
            f"GRUMPY@127.0.0.1:{scp.port}",
            "--to",
            "GRUMPY",
            "--json",
            "QUEUE1",
        )
    finally:
        scp.stop()
    assert run.returncode == 2
    job = json.loads(run.stdout)
    assert job["state"] == "queued" and job["attempts"] == 1
    assert "rejected the association" in job["last_error"]
    assert job["completed"] == job["failed"] == 0  # nothing lost or miscounted


def test_an_object_stored_incomplete_is_not_sent(tmp_path):
    data = tmp_path / "data"
    files = make_ct_series(tmp_path / "files", 3, patient_id="CUTSEND")
    cut = Path(files[0])
    cut.write_bytes(cut.read_bytes()[:-100])
    run_jivex("import", "--data", str(data), *files)
    scp = StoreSCP(tmp_path, "WHOLE").start()
    try:
        run = run_jivex(
            "send",
            "--data",
            str(data),
            "--remote",
            f"WHOLE@127.0.0.1:{scp.port}",
            "--to",
            "WHOLE",
            "--json",
            "CUTSEND",
        )
    finally:
        scp.stop()
    assert run.returncode == 1, run.stderr  # partial
    job = json.loads(run.stdout)
    assert (job["completed"], job["failed"]) == (2, 1)
    assert "stored incomplete" in job["last_error"]
    assert len(scp.received()) == 2
