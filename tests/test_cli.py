"""The `jivex` command: server start-up errors, ls, import."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

from tests.helpers import (
    JIVEX,
    REPO,
    SHARED_DATA,
    JivexServer,
    free_port,
    jivex_ls,
    run_jivex,
)


def _run_server(
    data: Path, *args: str, storage_port: int | None = 0
) -> subprocess.CompletedProcess:
    """`jivex server` on loopback and free ports, expected to stop by itself.

    *storage_port* None passes none (a config file's value must stand); 0
    picks a free one.
    """
    ports = ["--query-port", str(free_port())]
    if storage_port is not None:
        ports += ["--storage-port", str(storage_port or free_port())]
    return run_jivex(
        "server",
        "--data",
        str(data),
        "--bind",
        "127.0.0.1",
        *ports,
        *args,
        timeout=60,
    )


def _server_fails(tmp_path: Path, *args: str, storage_port: bool = True) -> str:
    # Without storage_port the file's (bad) value must not be overridden.
    run = _run_server(
        tmp_path / "data", *args, storage_port=0 if storage_port else None
    )
    assert run.returncode == 2, run.stderr
    lines = [ln for ln in run.stderr.splitlines() if ln.startswith("jivex server:")]
    assert len(lines) == 1, run.stderr
    assert "Traceback" not in run.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ("[network]\nstorage_port = 70000\n", "network.storage_port"),
        ("[network]\nstorage_pot = 4000\n", "network.storage_pot: unknown key"),
        ("[network\n", "not valid TOML"),
        ('[network]\nae_title = "MUCH_TOO_LONG_AE_TITLE"\n', "network.ae_title"),
        ("[network]\nmax_pdu = 100\n", "network.max_pdu"),
        ('[[remote]]\nae_title = "PACS"\nhost = "h"\nport = "x"\n', "remote.0.port"),
        ('[logging]\nlevel = "LOUD"\n', "logging.level"),
    ],
)
def test_bad_config_stops_with_one_message_naming_the_key(tmp_path, toml, expected):
    config = tmp_path / "bad.toml"
    config.write_text(toml)
    message = _server_fails(
        tmp_path, "--config", str(config), storage_port="storage_port" not in toml
    )
    assert expected in message


def test_contradictory_ports_are_refused(tmp_path):
    port = str(free_port())
    run = run_jivex(
        "server",
        "--data",
        str(tmp_path / "d"),
        "--bind",
        "127.0.0.1",
        "--storage-port",
        port,
        "--query-port",
        port,
    )
    assert run.returncode == 2
    assert "network.storage_port and network.query_port" in run.stderr


def test_port_in_use_is_reported(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        run = _run_server(tmp_path / "data", storage_port=port)
    assert run.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in run.stderr
    assert "Traceback" not in run.stderr


def test_unusable_data_folder_is_reported(tmp_path):
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    run = _run_server(not_a_folder / "data")
    assert run.returncode == 2
    assert "cannot be used" in run.stderr and str(not_a_folder) in run.stderr


def test_sigterm_stops_the_server_gracefully(tmp_path):
    server = JivexServer(tmp_path / "data").start()
    link = json.loads((server.data_dir / "core-link.json").read_text())
    assert link["pid"] == server.proc.pid
    assert server.stop() == 0
    assert "Stopped" in server.log()
    assert not (server.data_dir / "core-link.json").exists()


def test_query_port_is_served_and_web_port_noted(tmp_path):
    server = JivexServer(tmp_path / "data", extra=["--web-port", str(free_port())])
    server.start()
    server.stop()
    assert (
        f"Query/Retrieve SCP 'JIVEX' listening on 127.0.0.1:{server.query_port}"
        in server.log()
    )
    assert "web port" in server.log()


def test_ls_json_has_dicom_keywords_and_path(tmp_path):
    data = tmp_path / "data"
    run = run_jivex("import", "--data", str(data), get_testdata_file("CT_small.dcm"))
    assert run.returncode == 0, run.stderr
    out = subprocess.run(
        [*JIVEX, "ls", "--json", "--level", "instance", "--data", str(data)],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    rows = json.loads(out.stdout)
    assert len(rows) == 1
    row = rows[0]
    for key in (
        "PatientID",
        "PatientName",
        "StudyInstanceUID",
        "SeriesInstanceUID",
        "SOPInstanceUID",
        "SOPClassUID",
        "Modality",
        "path",
    ):
        assert key in row
    assert row["PatientID"] == "1CT1" and row["Modality"] == "CT"
    assert Path(row["path"]).is_file()
    for level in ("patient", "study", "series"):
        rows = json.loads(
            subprocess.run(
                [*JIVEX, "ls", "--json", "--level", level, "--data", str(data)],
                capture_output=True,
                text=True,
                cwd=REPO,
            ).stdout
        )
        assert len(rows) == 1 and rows[0]["PatientID"] == "1CT1"
    table = run_jivex("ls", "--data", str(data))
    assert "1CT1" in table.stdout and "CompressedSamples^CT1" in table.stdout


def test_ls_of_an_empty_folder_says_so(tmp_path):
    run = run_jivex("ls", "--data", str(tmp_path))
    assert run.returncode == 2
    assert "holds no archive" in run.stderr


def test_import_reports_and_skips_non_dicom(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "notes.txt").write_text("not an image")
    (folder / "empty.dcm").write_bytes(b"")
    (folder / "CT_small.dcm").write_bytes(
        Path(get_testdata_file("CT_small.dcm")).read_bytes()
    )
    run = run_jivex("import", "--data", str(tmp_path / "data"), str(folder))
    assert run.returncode == 0, run.stderr
    assert "skipped:" in run.stderr and "notes.txt" in run.stderr
    assert "empty.dcm" in run.stderr
    assert "1 stored" in run.stderr
    assert "Traceback" not in run.stderr


def test_import_of_files_without_file_meta(tmp_path):
    files = [
        get_testdata_file("ExplVR_LitEndNoMeta.dcm"),
        get_testdata_file("ExplVR_BigEndNoMeta.dcm"),
    ]
    dcm4che = SHARED_DATA / "dcm4che" / "no_preamble_dicm_in_data"
    if dcm4che.exists():
        files.append(str(dcm4che))
    run = run_jivex("import", "--data", str(tmp_path / "data"), *files)
    assert "Traceback" not in run.stderr
    assert run.returncode in (0, 1)
    rows = {r["SOPInstanceUID"]: r for r in jivex_ls(tmp_path / "data")}
    assert "1.2.333.4444.5.6.7.8" in rows or "1.2.333.4444.5.6.7.8.9" in "".join(rows)
    import pydicom

    for row in rows.values():
        back = pydicom.dcmread(row["path"])  # a proper file now, with meta
        assert back.file_meta.TransferSyntaxUID == row["TransferSyntaxUID"]


def test_import_of_dicomdir_is_skipped_clearly(tmp_path):
    dicomdir = get_testdata_file("DICOMDIR")
    run = run_jivex("import", "--data", str(tmp_path / "data"), dicomdir)
    assert run.returncode == 0
    assert "DICOMDIR" in run.stderr


def test_import_while_the_server_runs(jivex_server):
    run = run_jivex(
        "import",
        "--data",
        str(jivex_server.data_dir),
        get_testdata_file("MR_small.dcm"),
    )
    assert run.returncode == 0, run.stderr
    assert len(jivex_server.ls()) == 1


def test_server_keeps_serving_after_sigterm_grace(tmp_path):
    """SIGINT is as graceful as SIGTERM."""
    server = JivexServer(tmp_path / "data").start()
    server.proc.send_signal(signal.SIGINT)
    deadline = time.monotonic() + 30
    while server.proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert server.proc.returncode == 0


def test_sigterm_lets_a_running_association_finish(tmp_path):
    import numpy as np
    import pydicom

    from jivex_core.uids import new_uid
    from tests.helpers import dcmtk, peer_env

    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.Rows = ds.Columns = 512
    ds.PixelData = np.zeros((512, 512), np.int16).tobytes()
    folder = tmp_path / "series"
    folder.mkdir()
    for i in range(80):
        ds.SOPInstanceUID = new_uid()
        ds.InstanceNumber = i + 1
        ds.save_as(folder / f"{i:03}.dcm")
    server = JivexServer(tmp_path / "data").start()
    sender = subprocess.Popen(
        [
            dcmtk("storescu"),
            "-aec",
            "JIVEX",
            "127.0.0.1",
            str(server.port),
            *sorted(map(str, folder.iterdir())),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=peer_env(),
    )
    # Stop while the association runs: it is allowed to finish.
    deadline = time.monotonic() + 20
    while "Association accepted" not in server.log() and time.monotonic() < deadline:
        time.sleep(0.02)
    server.proc.send_signal(signal.SIGTERM)
    out, _ = sender.communicate(timeout=60)
    assert sender.returncode == 0, out
    assert server.proc.wait(30) == 0
    assert len(server.ls()) == 80
    log = server.log()
    # The stop really came in the middle: objects were stored after it.
    assert log.rindex("C-STORE from") > log.index("Shutting down")


def test_peers_stuck_halfway_do_not_hold_up_the_stop(tmp_path):
    server = JivexServer(tmp_path / "data").start()
    idle = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(3)]
    halfway = socket.create_connection(("127.0.0.1", server.port))
    # The header of an A-ASSOCIATE-RQ announcing 256 bytes that never come.
    halfway.sendall(b"\x01\x00\x00\x00\x01\x00")
    time.sleep(0.5)
    started = time.monotonic()
    assert server.stop(timeout=30) == 0
    assert time.monotonic() - started < 8
    assert "Traceback" not in server.log()
    for sock in [*idle, halfway]:
        sock.close()


def test_a_second_server_on_the_same_folder_is_refused(jivex_server):
    run = _run_server(jivex_server.data_dir)
    assert run.returncode == 2
    assert f"already served by another jivex server (pid {jivex_server.proc.pid})" in (
        run.stderr
    )
    assert "Traceback" not in run.stderr


def test_import_skips_what_is_not_a_regular_dicom_file(tmp_path):
    import os

    folder = tmp_path / "in"
    folder.mkdir()
    os.mkfifo(folder / "pipe.dcm")
    (folder / "DICOMDIR").write_bytes(
        (SHARED_DATA / "dwv" / "bbmri.dcmdir").read_bytes()
    )
    run = run_jivex("import", "--data", str(tmp_path / "data"), str(folder), timeout=60)
    assert "pipe.dcm: is not a regular file" in run.stderr
    assert "DICOMDIR" in run.stderr and "not an object to store" in run.stderr
    assert "0 stored" in run.stderr
    nothing = run_jivex("import", "--data", str(tmp_path / "data"), "/nonexistent")
    assert nothing.returncode == 2
    assert "/nonexistent: does not exist" in nothing.stderr


def test_import_names_the_file_in_warnings_and_replaces_a_cut_copy(tmp_path):
    whole = SHARED_DATA / "dcm4che" / "MR02.dcm"
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(whole.read_bytes()[:3000])
    run = run_jivex("import", "--data", str(tmp_path / "data"), str(cut), str(whole))
    assert run.returncode == 0, run.stderr
    assert f"{cut}: The data set ends inside" in run.stderr
    assert "(incomplete: its data set ends early)" in run.stdout
    assert "replaces the copy that had arrived cut short" in run.stderr
    rows = jivex_ls(tmp_path / "data")
    assert len(rows) == 1 and rows[0]["incomplete"] is False
    assert Path(rows[0]["path"]).stat().st_size > whole.stat().st_size - 200
