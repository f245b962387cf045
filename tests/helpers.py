"""Shared test helpers: free ports, DCMTK tools, a `jivex server` process."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydicom

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
JIVEX = [sys.executable, "-m", "jivex_core"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def dcmtk(tool: str) -> str:
    """Absolute path of a DCMTK tool.

    The venv also holds pynetdicom's apps under the same names (storescu,
    findscu, ...), so PATH alone could pick ours instead of DCMTK's.
    """
    for folder in ("/usr/bin", "/usr/local/bin"):
        candidate = Path(folder) / tool
        if candidate.exists():
            return str(candidate)
    found = shutil.which(tool)
    if not found or Path(found).parent == Path(sys.executable).parent:
        raise RuntimeError(f"DCMTK's '{tool}' is not installed (make test installs it)")
    return found


def peer_env() -> dict[str, str]:
    """Environment for DCMTK peers: Nagle off, as PEERS.md explains."""
    return {**os.environ, "TCP_NODELAY": "1"}


def wait_for_port(
    port: int, proc: subprocess.Popen | None = None, timeout=30.0
) -> None:
    """Wait until something accepts connections on 127.0.0.1:*port*."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(
                f"process exited with {proc.returncode} before listening"
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


@dataclass
class JivexServer:
    """A `jivex server` subprocess on free loopback ports."""

    data_dir: Path
    extra: list[str] = field(default_factory=list)
    config: Path | None = None
    port: int = 0
    query_port: int = 0
    proc: subprocess.Popen | None = None
    log_path: Path | None = None

    def start(self) -> JivexServer:
        self.port = self.port or free_port()
        self.query_port = self.query_port or free_port()
        args = [
            *JIVEX,
            "server",
            "--data",
            str(self.data_dir),
            "--bind",
            "127.0.0.1",
            "--storage-port",
            str(self.port),
            "--query-port",
            str(self.query_port),
        ]
        if self.config is not None:
            args += ["--config", str(self.config)]
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}-server.log"
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [*args, *self.extra], stdout=log, stderr=log, cwd=REPO
        )
        wait_for_port(self.port, self.proc)
        # Up means the client link too: the command line looks for it.
        link = self.data_dir / "core-link.json"
        deadline = time.monotonic() + 30
        while not link.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                self.proc.wait()
                raise RuntimeError(f"jivex server wrote no link file:\n{self.log()}")
            time.sleep(0.02)
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def stop(self, timeout: float = 30.0) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    def ls(self, level: str = "instance") -> list[dict]:
        return jivex_ls(self.data_dir, level)


def jivex_ls(data_dir: Path, level: str = "instance") -> list[dict]:
    """Rows of `jivex ls --json` for *data_dir*."""
    out = subprocess.run(
        [*JIVEX, "ls", "--json", "--level", level, "--data", str(data_dir)],
        capture_output=True,
        check=True,
        cwd=REPO,
    )
    return json.loads(out.stdout)


def run_jivex(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run a `jivex` subcommand to completion, capturing text output."""
    return subprocess.run(
        [*JIVEX, *args], capture_output=True, text=True, timeout=timeout, cwd=REPO
    )


def findscu(
    server: JivexServer,
    tmp_path: Path,
    *keys: str | bytes,
    model: str = "-S",
    extra: tuple[str, ...] = (),
) -> tuple[list[pydicom.Dataset], str]:
    """Query *server* with DCMTK's findscu; return the answers and its log.

    Each key is one ``-k`` argument. Bytes go to findscu as they are, so a
    value can be given in the character set the query names.
    """
    out = tmp_path / f"rsp{len(list(tmp_path.iterdir()))}"
    out.mkdir()
    args: list[str | bytes] = [
        dcmtk("findscu"),
        "-v",
        model,
        "-X",
        "-od",
        str(out),
        *extra,
        "-aec",
        "JIVEX",
        "127.0.0.1",
        str(server.query_port),
    ]
    for key in keys:
        args += ["-k", key]
    run = subprocess.run(args, capture_output=True, env=peer_env(), timeout=60)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        found = [pydicom.dcmread(p) for p in sorted(out.glob("rsp*.dcm"))]
    log = (run.stdout + run.stderr).decode(errors="replace")
    # A key findscu cannot parse would make any query look empty.
    assert "Bad override key" not in log, log
    return found, log


class StoreSCP:
    """A DCMTK storescp on a free port, writing into its own folder.

    DCMTK 3.6.7's tools cannot bind one address: the port is a free one
    chosen by the test, the tests reach it on 127.0.0.1, and the caller stops
    it. With -v its log has one line per C-STORE request, so a test can tell
    objects received twice from objects received once.
    """

    def __init__(self, root: Path, aet: str, *options: str, port: int = 0) -> None:
        self.aet, self.port = aet, port or free_port()
        self.root, self.options = root, options
        self.out = root / f"received-{aet}"
        self.out.mkdir(exist_ok=True)
        self.proc: subprocess.Popen | None = None
        self.logs: list[Path] = []

    def start(self) -> StoreSCP:
        log_path = self.root / f"storescp-{self.aet}-{len(self.logs)}.log"
        self.logs.append(log_path)
        log = open(log_path, "wb")
        self.proc = subprocess.Popen(
            [
                *(dcmtk("storescp"), "-v", "-aet", self.aet, *self.options),
                *("-od", str(self.out), str(self.port)),
            ],
            stdout=log,
            stderr=log,
            env=peer_env(),
        )
        wait_for_port(self.port, self.proc)
        return self

    def clear(self) -> None:
        for path in self.out.iterdir():
            path.unlink()

    def requests(self) -> int:
        return sum(p.read_text().count("Received Store Request") for p in self.logs)

    def datasets(self) -> dict[str, pydicom.Dataset]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            found = [pydicom.dcmread(p) for p in sorted(self.out.iterdir())]
        return {str(ds.SOPInstanceUID): ds for ds in found}

    def received(self) -> set[str]:
        return set(self.datasets())

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


ORTHANC = shutil.which("Orthanc") or "/usr/sbin/Orthanc"


def start_orthanc(
    root: Path, dicom_port: int, http_port: int, modalities: dict[str, list]
) -> subprocess.Popen:
    """Orthanc on the given ports with its REST API on loopback only.

    Orthanc 1.10 has no option to bind one address: its ports are free ones
    chosen by the test, remote access is refused, and the caller stops it.
    PEERS.md: it needs TCP_NODELAY=1, and UTF-8 to compare names.
    """
    config = {
        "Name": "jivex-test",
        "StorageDirectory": str(root / "orthanc-storage"),
        "IndexDirectory": str(root / "orthanc-index"),
        "Plugins": [],
        "DicomAet": "ORTHANC",
        "DicomPort": dicom_port,
        "HttpPort": http_port,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "DefaultEncoding": "Utf8",
        "DicomModalities": modalities,
        "SaveJobs": False,
    }
    (root / "orthanc.json").write_text(json.dumps(config))
    log = open(root / "orthanc.log", "wb")
    proc = subprocess.Popen(
        [ORTHANC, str(root / "orthanc.json")], stdout=log, stderr=log, env=peer_env()
    )
    wait_for_port(http_port, proc, 60)
    wait_for_port(dicom_port, proc, 60)
    return proc


def pynetdicom_peer(
    ae_title: str,
    contexts: list[tuple[str, ...]],
    handlers: list[Any],
    max_pdu: int | None = None,
) -> tuple[Any, int]:
    """A pynetdicom AE serving on a free loopback port: a peer that does what
    a test needs of it (stalls, aborts, answers slowly), where no real one
    would. Each context is (abstract syntax, transfer syntax...)."""
    from pynetdicom import AE

    ae = AE(ae_title=ae_title)
    if max_pdu is not None:
        ae.maximum_pdu_size = max_pdu
    for abstract, *syntaxes in contexts:
        ae.add_supported_context(abstract, *syntaxes)
    port = free_port()
    server = ae.start_server(("127.0.0.1", port), block=False, evt_handlers=handlers)
    return server, port


def raw_request(assoc: Any, request: Any, timeout: float = 30.0) -> list[Any]:
    """Send a C-FIND/C-MOVE/C-GET request primitive as built, its Identifier
    a BytesIO of whatever bytes a test wants on the wire, and return the
    response primitives up to the final one.

    pynetdicom's send_c_find() encodes a Dataset; malformed identifiers need
    the DIMSE layer itself, with the association's reactor paused so that
    the responses come to the test.
    """
    cx_id = next(
        cx.context_id
        for cx in assoc.accepted_contexts
        if cx.abstract_syntax == request.AffectedSOPClassUID
    )
    assoc._reactor_checkpoint.clear()
    while not assoc._is_paused:
        time.sleep(0.001)
    responses = []
    try:
        assoc.dimse.send_msg(request, cx_id)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            _, rsp = assoc.dimse.get_msg(block=True)
            if rsp is None:
                break
            responses.append(rsp)
            if rsp.Status not in (0xFF00, 0xFF01):
                break
    finally:
        assoc._reactor_checkpoint.set()
    return responses
