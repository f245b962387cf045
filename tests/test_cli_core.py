"""The core a command reaches or starts, and what the command says.

With no core serving the data folder, a command starts one for itself:
it must run no job it was not started for (a listing, a delete, a queued
``--no-wait`` send or a retrieve without our Storage SCP), and only the jobs
it queued and waits for. With a core serving the folder, the command goes
through it (``import`` too) and survives its death with a readable message.
Destinations are DCMTK storescp, archives DCMTK dcmqrscp.
"""

from __future__ import annotations

import datetime as dt
import json
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pydicom
import pytest

from jivex_core.link_client import LinkClient
from jivex_core.store.index import Index, database_url
from jivex_core.store.jobs import CANCELLED, QUEUED, RUNNING, JobQueue
from tests.corpus import make_ct_series, query_archive_files
from tests.helpers import (
    JIVEX,
    REPO,
    JivexServer,
    StoreSCP,
    dcmtk,
    free_port,
    peer_env,
    run_jivex,
    wait_for_port,
)

MR_STUDY = "1.113654.3.13.1026"
MR_FILES = query_archive_files()[:9]


def remote(ae_title: str, port: int, *lines: str) -> str:
    text = f'[[remote]]\nae_title = "{ae_title}"\nhost = "127.0.0.1"\nport = {port}\n'
    return text + "".join(f"{line}\n" for line in lines) + "\n"


def write_config(path: Path, *parts: str) -> Path:
    path.write_text("".join(parts))
    return path


def jobs_of(data: Path) -> list[dict]:
    run = run_jivex("jobs", "--json", "--data", str(data))
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def imported(data: Path, *files: str) -> None:
    run = run_jivex("import", "--data", str(data), *files)
    assert run.returncode == 0, run.stderr


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
{aet} {db} RW (200, 1024mb) ANY
AETable END
"""


class Dcmqrscp:
    """DCMTK's dcmqrscp as archive *aet*, holding *files*, that moves to
    our Storage SCP (AE JIVEX on *ours*)."""

    def __init__(self, root: Path, aet: str, ours: int, port: int = 0) -> None:
        self.root, self.aet, self.ours = root, aet, ours
        self.port = port or free_port()
        self.db = root / f"dcmqr-{aet}"
        self.db.mkdir(exist_ok=True)
        self.proc: subprocess.Popen | None = None

    def start(self, *files: str) -> Dcmqrscp:
        config = self.root / f"dcmqrscp-{self.aet}.cfg"
        config.write_text(
            DCMQRSCP_CONFIG.format(
                port=self.port, ours=self.ours, db=self.db, aet=self.aet
            )
        )
        log = open(self.root / f"dcmqrscp-{self.aet}.log", "ab")
        self.proc = subprocess.Popen(
            [dcmtk("dcmqrscp"), "-c", str(config)],
            stdout=log,
            stderr=log,
            env=peer_env(),
        )
        wait_for_port(self.port, self.proc)
        if files:
            stored = subprocess.run(
                [
                    *(dcmtk("storescu"), "-aec", self.aet, "127.0.0.1"),
                    *(str(self.port), *files),
                ],
                capture_output=True,
                text=True,
                env=peer_env(),
                timeout=60,
            )
            assert stored.returncode == 0, stored.stderr
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


# -- a core started by a command runs only that command's jobs --------------


@pytest.mark.interop
def test_a_command_core_runs_no_job_it_was_not_started_for(tmp_path):
    """Repro B of the acceptance report, and its cousins: with no server,
    queued sends and retrieves stay queued through `jobs`, `delete` and
    another command's send; cancel sticks; a --no-wait send exits 0."""
    data = tmp_path / "data"
    files = make_ct_series(tmp_path / "ct", 3)
    imported(data, *files, *MR_FILES)
    scp = StoreSCP(tmp_path, "DEST").start()
    archive_port = free_port()  # nothing listens: a retrieve could not run
    config = write_config(
        tmp_path / "jivex.toml",
        remote("DEST", scp.port),
        remote("ARCH", archive_port),
    )
    common = ["--data", str(data), "--config", str(config)]
    try:
        queued = run_jivex("send", *common, "--to", "DEST", "--no-wait", "QUEUE1")
        assert queued.returncode == 0, queued.stderr
        assert "queued" in queued.stdout
        assert "it runs when `jivex server` or the workstation serves" in (
            queued.stderr
        )
        move = run_jivex(
            "move", *common, "--from", "ARCH", "--no-wait", "--json", MR_STUDY
        )
        assert move.returncode == 0, move.stderr
        assert "could not ask 'ARCH' which of the inputs it has" in move.stderr
        move_id = json.loads(move.stdout)["id"]

        for _ in range(2):
            listing = run_jivex("jobs", *common)
            assert listing.returncode == 0, listing.stderr
            assert "queued jobs run when `jivex server`" in listing.stderr
        dry = run_jivex("delete", *common, "--dry-run", MR_STUDY)
        assert dry.returncode == 0, dry.stderr
        jobs = {j["id"]: j for j in jobs_of(data)}
        assert [(j["state"], j["attempts"]) for j in jobs.values()] == [
            (QUEUED, 0),
            (QUEUED, 0),
        ]
        assert scp.requests() == 0  # the listings sent nothing

        # Another send that waits runs its own job only.
        mine = run_jivex("send", *common, "--to", "DEST", "--json", MR_STUDY)
        assert mine.returncode == 0, mine.stderr
        assert json.loads(mine.stdout)["completed"] == 9
        assert len(scp.received()) == 9
        jobs = {j["id"]: j for j in jobs_of(data)}
        assert jobs[move_id]["state"] == QUEUED and jobs[move_id]["attempts"] == 0
        first = min(jobs)
        assert jobs[first]["state"] == QUEUED and jobs[first]["attempts"] == 0

        cancel = run_jivex("jobs", *common, "--cancel", str(move_id))
        assert cancel.returncode == 0, cancel.stderr
        assert f"job {move_id}: cancelled" in cancel.stdout
        assert {j["id"]: j["state"] for j in jobs_of(data)}[move_id] == CANCELLED
    finally:
        scp.stop()

    # The server serving the folder runs the queued send; the cancelled
    # retrieve stays cancelled.
    scp.start()
    server = JivexServer(data, config=config).start()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            states = {j["id"]: j["state"] for j in jobs_of(data)}
            if states[first] == "done":
                break
            time.sleep(0.3)
        assert states == {first: "done", move_id: CANCELLED, max(states): "done"}
    finally:
        server.stop()
        scp.stop()


def test_cancel_sticks_when_a_running_job_is_given_back(tmp_path):
    """A cancel asked while a job runs is honoured when the attempt ends by
    a retry, a shutdown or a crash, instead of queueing the job again."""
    index = Index(database_url(tmp_path))
    queue = JobQueue(index.engine)
    try:
        ends = {}
        for how in ("reschedule", "requeue", "resume"):
            job = queue.add("send", "DEST", {}, ["1.2.3"])
            assert queue.claim(only={job.pk}).state == RUNNING
            assert queue.cancel(job.pk).state == RUNNING  # asked, between objects
            if how == "reschedule":
                queue.reschedule(job.pk, dt.datetime.now(), "could not be reached")
            elif how == "requeue":
                queue.requeue(job.pk)
            else:
                queue.resume()
            ends[how] = queue.get(job.pk).state
        assert ends == dict.fromkeys(ends, CANCELLED)
        assert queue.claim() is None  # nothing to run
        # Retried by an operator after it failed: the old cancel is gone.
        job = queue.add("send", "DEST", {}, ["1.2.4"])
        queue.claim(only={job.pk})
        queue.finish(job.pk, "failed", "refused")
        failed = queue.get(job.pk)
        assert (failed.failed, failed.total) == (1, 1)  # unsent counts as failed
        assert queue.retry_now(job.pk).state == QUEUED
        assert queue.claim().pk == job.pk
    finally:
        index.close()


# -- waiting: retries, held sends -------------------------------------------


@pytest.mark.interop
def test_reload_asked_again_waits_for_the_new_attempt(tmp_path):
    """The origin was down: the reload's job waits for its next attempt.
    Asked again once the origin is up, the command waits for that attempt
    and reports the objects back, not the earlier failure."""
    ours = free_port()
    pacs = Dcmqrscp(tmp_path, "PACS", ours)
    config = write_config(
        tmp_path / "jivex.toml", remote("PACS", pacs.port, "retry_minutes = [60]")
    )
    server = JivexServer(tmp_path / "data", config=config, port=ours).start()
    try:
        sent = subprocess.run(
            [dcmtk("storescu"), "-aet", "PACS", "127.0.0.1", str(ours), *MR_FILES],
            capture_output=True,
            text=True,
            env=peer_env(),
            timeout=60,
        )
        assert sent.returncode == 0, sent.stderr
        common = ["--data", str(server.data_dir)]
        assert run_jivex("delete", *common, MR_STUDY).returncode == 0
        down = run_jivex("reload", *common, "--json", MR_STUDY)
        assert down.returncode == 2
        job = json.loads(down.stdout)
        assert (job["state"], job["attempts"]) == (QUEUED, 1)
        assert "will be tried again" in down.stderr

        pacs.start(*MR_FILES)
        again = run_jivex("reload", *common, "--json", MR_STUDY)
        assert again.returncode == 0, again.stderr
        back = json.loads(again.stdout)
        assert back["id"] == job["id"]
        assert (back["state"], back["attempts"], back["completed"]) == ("done", 2, 9)
        assert "will be tried again" not in again.stderr
        assert len(server.ls()) == 9
    finally:
        server.stop()
        pacs.stop()


@pytest.mark.interop
def test_a_send_held_to_send_at_is_reported_not_waited_for(tmp_path):
    data = tmp_path / "data"
    imported(data, *MR_FILES)
    scp = StoreSCP(tmp_path, "NIGHT").start()
    at = (dt.datetime.now() + dt.timedelta(hours=2)).strftime("%H:%M")
    config = write_config(
        tmp_path / "jivex.toml", remote("NIGHT", scp.port, f'send_at = "{at}"')
    )
    try:
        started = time.monotonic()
        alone = run_jivex(
            "send", "--data", str(data), "--config", str(config), "--to", "NIGHT",
            MR_STUDY, timeout=60,
        )  # fmt: skip
        assert alone.returncode == 0, alone.stderr
        assert time.monotonic() - started < 30
        assert "is held until " in alone.stderr and f"{at} (local time)" in (
            alone.stderr
        )
        assert "it is sent then if `jivex server` or the workstation" in (alone.stderr)
        server = JivexServer(data, config=config).start()
        try:
            served = run_jivex(
                "send", "--data", str(data), "--to", "NIGHT", MR_STUDY, timeout=60
            )
            assert served.returncode == 0, served.stderr
            assert "the core serving this data folder sends it then" in (served.stderr)
            time.sleep(1.0)
            assert [j["state"] for j in jobs_of(data)] == [QUEUED, QUEUED]
            assert scp.requests() == 0
        finally:
            server.stop()
    finally:
        scp.stop()


# -- the core dying under a command -------------------------------------------


class _Silent:
    """A TCP listener on loopback that accepts and never answers: a peer
    an association request waits on."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.peers: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.peers.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.peers:
            conn.close()


@pytest.mark.interop
def test_the_core_killed_during_a_command(tmp_path):
    data = tmp_path / "data"
    imported(data, *MR_FILES)
    silent = _Silent()
    config = write_config(tmp_path / "jivex.toml", remote("SILENT", silent.port))
    server = JivexServer(data, config=config).start()
    try:
        command = subprocess.Popen(
            [*JIVEX, "send", "--data", str(data), "--to", "SILENT", MR_STUDY],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        link = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            link = link or LinkClient.connect(data)
            if link is not None and any(
                j["state"] == RUNNING for j in link.call("jobs")
            ):
                break
            time.sleep(0.1)
        assert link is not None
        link.close()
        time.sleep(0.5)  # the command is polling its job
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait(10)
        _, err = command.communicate(timeout=60)
        assert command.returncode == 2, err
        assert "Traceback" not in err
        assert "stopped during the command" in err
        assert "the send may be incomplete: see `jivex jobs`" in err
        assert len(err.strip().splitlines()) == 1, err
    finally:
        server.stop()
        silent.close()


# -- import next to a running core -------------------------------------------


@pytest.mark.interop
def test_import_goes_through_the_running_core(tmp_path):
    """Its routing rules forward what is imported (storescp receives it),
    and the files the server has in flight in incoming/ are left alone."""
    data = tmp_path / "data"
    scp = StoreSCP(tmp_path, "FORWARD").start()
    config = write_config(
        tmp_path / "jivex.toml",
        remote("FORWARD", scp.port),
        '[[routing]]\ndestinations = ["FORWARD"]\nmodality = ["CT"]\n\n'
        "[jobs]\nforward_delay_seconds = 0.2\n",
    )
    ct = make_ct_series(tmp_path / "ct", 4)
    server = JivexServer(data, config=config).start()
    in_flight = data / "incoming" / "0123456789abcdef.part"
    in_flight.write_bytes(b"half of an object being received")
    try:
        run = run_jivex("import", "--data", str(data), *ct, MR_FILES[0])
        assert run.returncode == 0, run.stderr
        assert "5 stored" in run.stderr
        assert in_flight.exists()
        deadline = time.monotonic() + 30
        while len(scp.received()) < 4 and time.monotonic() < deadline:
            time.sleep(0.2)
        cts = {str(pydicom.dcmread(p).SOPInstanceUID) for p in ct}
        assert scp.received() == cts  # the CT images, not the MR one
        assert {j["kind"] for j in jobs_of(data)} == {"forward"}
        # A warning about a file comes back from the core, named.
        cut = tmp_path / "cut.dcm"
        cut.write_bytes(Path(MR_FILES[1]).read_bytes()[:3000])
        short = run_jivex("import", "--data", str(data), str(cut))
        assert short.returncode == 0, short.stderr
        assert f"{cut}: The data set ends inside" in short.stderr
        assert "(incomplete: its data set ends early)" in short.stdout
    finally:
        server.stop()
        scp.stop()


def test_import_alone_leaves_incoming_to_the_owner(tmp_path):
    """No core runs: the import writes to the folder but does not clear
    incoming/ (a core starting meanwhile may be receiving there); the next
    core that owns the folder does."""
    data = tmp_path / "data"
    leftover = data / "incoming" / "left.part"
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"a crash left this")
    imported(data, MR_FILES[0])
    assert leftover.exists()
    listing = run_jivex("jobs", "--data", str(data))  # a core for a command
    assert listing.returncode == 0, listing.stderr
    assert not leftover.exists()


# -- move: unknown UIDs, long lists --------------------------------------------


@pytest.mark.interop
def test_move_names_what_the_archive_does_not_have(tmp_path):
    ours = free_port()
    archive = Dcmqrscp(tmp_path, "DCMQR", ours).start(*MR_FILES)
    server = JivexServer(
        tmp_path / "data",
        extra=["--remote", f"DCMQR@127.0.0.1:{archive.port}"],
        port=ours,
    ).start()
    try:
        some = run_jivex(
            "move", "--data", str(server.data_dir), "--from", "DCMQR",
            MR_STUDY, "1.2.3.999",
        )  # fmt: skip
        assert some.returncode == 1, some.stderr
        assert "'DCMQR' has no study '1.2.3.999'" in some.stderr
        assert "9 stored" in some.stdout
        assert len(server.ls()) == 9

        bogus = [f"1.2.3.{n}" for n in range(1, 1201)]
        none = run_jivex(
            "move", "--data", str(server.data_dir), "--from", "DCMQR", *bogus
        )
        assert none.returncode == 2
        assert "'DCMQR' has no study '1.2.3.1', '1.2.3.2'" in none.stderr
        assert "and 1180 more" in none.stderr and "1.2.3.1200" not in none.stderr
        assert len(none.stderr) < 2000
        assert len(server.ls()) == 9  # nothing else came

        many = run_jivex(
            "move", "--data", str(server.data_dir), "--from", "DCMQR",
            *bogus[:700], MR_STUDY,
        )  # fmt: skip
        assert many.returncode == 1, many.stderr
        assert "… and 680 more" in many.stderr
        assert len(many.stderr.splitlines()) < 25
    finally:
        server.stop()
        archive.stop()


def test_long_uid_lists_go_out_in_chunks(tmp_path):
    data = tmp_path / "data"
    imported(data, MR_FILES[0])
    uids = [f"1.2.3.{n}" for n in range(1, 1201)]
    run = run_jivex(
        "move", "--data", str(data), "--remote", f"ARCH@127.0.0.1:{free_port()}",
        "--from", "ARCH", "--no-wait", "--no-check", *uids,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    jobs = sorted(jobs_of(data), key=lambda j: j["id"])
    lists = [j["request"]["keys"]["StudyInstanceUID"].split("\\") for j in jobs]
    assert [len(chunk) for chunk in lists] == [500, 500, 200]
    assert [uid for chunk in lists for uid in chunk] == uids
    assert {(j["state"], j["attempts"]) for j in jobs} == {(QUEUED, 0)}


# -- find checks its keys, the lows of the command line -------------------------


def test_find_refuses_a_key_below_its_level(tmp_path):
    run = run_jivex(
        "find", "--data", str(tmp_path / "data"), "--remote", "X@127.0.0.1:9",
        "--from", "X", "SOPInstanceUID=1.2.3",
    )  # fmt: skip
    assert run.returncode == 2
    assert "SOPInstanceUID is an IMAGE key, below the STUDY level" in run.stderr
    assert "could not be reached" not in run.stderr  # refused before sending
    series = run_jivex(
        "find", "--data", str(tmp_path / "data"), "--remote", "X@127.0.0.1:9",
        "--from", "X", "--level", "patient", "Modality=CT",
    )  # fmt: skip
    assert series.returncode == 2
    assert "Modality is a SERIES key, below the PATIENT level" in series.stderr


@pytest.mark.interop
def test_send_of_known_and_unknown_uids_sends_the_known(tmp_path):
    data = tmp_path / "data"
    imported(data, *MR_FILES)
    scp = StoreSCP(tmp_path, "DEST").start()
    try:
        run = run_jivex(
            "send", "--data", str(data), "--remote", f"DEST@127.0.0.1:{scp.port}",
            "--to", "DEST", MR_STUDY, "1.2.3.4",
        )  # fmt: skip
        assert run.returncode == 1, run.stderr
        assert "nothing stored has the UID or Patient ID '1.2.3.4'" in run.stderr
        assert "9 stored" in run.stdout
        assert len(scp.received()) == 9
        (job,) = jobs_of(data)
        assert job["request"]["uids"] == [MR_STUDY]
    finally:
        scp.stop()


def test_command_line_lows(tmp_path):
    data = tmp_path / "data"
    both = run_jivex("jobs", "--data", str(data), "--cancel", "1", "--retry", "2")
    assert both.returncode == 2
    assert "argument --retry: not allowed with argument --cancel" in both.stderr
    config = write_config(tmp_path / "b.toml", "[network]\nquery_port = 4000\n")
    port = run_jivex(
        "server", "--data", str(data), "--config", str(config),
        "--storage-port", "70000", "--bind", "127.0.0.1",
    )  # fmt: skip
    assert port.returncode == 2
    assert "--storage-port: Input should be less than or equal to 65535" in (
        port.stderr
    )
    assert "b.toml" not in port.stderr.splitlines()[-1]
    for host in ("[::1]", "a b", "1.2.3.999"):
        bad = run_jivex(
            "send", "--data", str(data), "--remote", f"X@{host}:5", "--to", "X", "1"
        )
        assert bad.returncode == 2
        assert f"host: '{host}' is not an IPv4 address or a host name" in bad.stderr
    imported(data, MR_FILES[0])
    uid = str(pydicom.dcmread(MR_FILES[0]).SOPInstanceUID)
    one = run_jivex("delete", "--data", str(data), uid)
    assert one.returncode == 0, one.stderr
    assert "all 1 of 1 object" in one.stdout
    assert "removed 1 study, 1 object (" in one.stderr
    assert "1 of these objects was not retrieved" in one.stderr
    assert "no reload can bring it back" in one.stderr


@pytest.mark.interop
def test_a_peer_accepting_no_context_is_named_so(tmp_path):
    """DCMTK storescp taking CT only, sent MR images only: it accepts the
    association with none of our contexts, which is not an abort."""
    data = tmp_path / "data"
    imported(data, *MR_FILES)
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
            "send", "--data", str(data), "--to", "CTONLY", "--json",
            "--remote", f"CTONLY@127.0.0.1:{scp.port}", MR_STUDY,
        )  # fmt: skip
    finally:
        scp.stop()
    assert run.returncode == 2, run.stderr
    job = json.loads(run.stdout)
    assert "accepted no presentation context" in (job["last_error"])
