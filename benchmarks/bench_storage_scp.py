"""Storage SCP throughput: JiveX-Py against Orthanc, one CT study, one association.

What it measures
----------------
The wall time that DCMTK's ``storescu`` needs to send a synthetic 500-slice
512x512 16-bit CT study (Explicit VR Little Endian, about 0.5 MB a slice) over
ONE association to

* ``jivex server`` with a fresh data folder and default settings (fsync on,
  max PDU 32768, logging at INFO), and
* Orthanc (Debian package) with its own config in a temp folder: SQLite index,
  ``SyncStorageArea`` left at its default (fsync per file), no compression, no
  plugins, its default max PDU (16384).

Both receivers store durably and index every object before answering, so the
figure is "instances safely archived per second" as a modality sees it. After
each send the instance count is checked (``jivex ls --json``, Orthanc's
``GET /statistics``). Rounds alternate ours/Orthanc because this is a shared
2-core machine where absolute numbers drift by 2x; only the ratio of medians
within one run means anything.

Why TCP_NODELAY=1
-----------------
DCMTK (``storescu``, and Orthanc, which uses DCMTK's network code) leaves
Nagle's algorithm on unless ``TCP_NODELAY=1`` is in its environment. Then each
small DIMSE message waits ~40 ms for the peer's delayed ACK, capping any
receiver at ~20 instances/s whatever it does. Both peers and ``storescu`` run
with it set so that the receivers, not the TCP stack, are measured.

Usage::

    .venv/bin/python benchmarks/bench_storage_scp.py [--instances 500] [--keep]

``--py-spy FILE`` additionally samples our server with py-spy (if installed in
the venv) during its first round and prints the hot spots; ``--our-max-pdu N``
runs our server with ``network.max_pdu = N`` from a TOML config.

Only 127.0.0.1 and kernel-chosen free ports are used. Orthanc 1.10 has no
option to bind its DICOM or HTTP port to one address (it listens on all
interfaces; ``RemoteAccessAllowed`` false makes its REST API refuse other
hosts), so it runs on an unusual ephemeral port and is stopped right after
its round. Every process started here is stopped by PID in ``finally``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

from jivex_core.uids import IMPLEMENTATION_CLASS_UID, new_uid

STORESCU = "/usr/bin/storescu"  # DCMTK; .venv/bin/storescu is pynetdicom's
ORTHANC = "/usr/sbin/Orthanc"
REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
JIVEX = VENV_BIN / "jivex"
PY_SPY = VENV_BIN / "py-spy"
LOOPBACK = "127.0.0.1"
SIZE = 512
GENERATOR_VERSION = 1  # bump when the generated study changes
PADDING = -2000  # stored value outside the reconstruction circle, as CT_small


# -- the study ------------------------------------------------------------


def _phantom_grids() -> tuple[np.ndarray, np.ndarray]:
    axis = (np.arange(SIZE, dtype=np.float32) - (SIZE - 1) / 2) / (SIZE / 2)
    return np.meshgrid(axis, axis)


def _inside(
    x: np.ndarray, y: np.ndarray, cx: float, cy: float, rx: float, ry: float
) -> np.ndarray:
    return ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1.0


def phantom_slice(
    index: int, count: int, grids: tuple[np.ndarray, np.ndarray]
) -> np.ndarray:
    """A deterministic thorax-like slice in HU (int16) for slice *index*."""
    x, y = grids
    t = index / max(count - 1, 1)  # 0 at the head end, 1 at the feet
    hu = np.full((SIZE, SIZE), -1000.0, dtype=np.float32)  # air
    bx, by = 0.80 - 0.10 * np.sin(np.pi * t), 0.58 - 0.06 * np.sin(np.pi * t)
    hu[_inside(x, y, 0.0, 0.05, bx + 0.04, by + 0.04)] = -100.0  # fat
    hu[_inside(x, y, 0.0, 0.05, bx, by)] = 40.0  # soft tissue
    if 0.15 < t < 0.75:  # lungs
        lung = 0.25 * np.sin(np.pi * (t - 0.15) / 0.6) + 0.05
        hu[_inside(x, y, -0.38, 0.0, lung, lung * 1.5)] = -850.0
        hu[_inside(x, y, 0.38, 0.0, lung, lung * 1.5)] = -850.0
        hu[_inside(x, y, 0.08, -0.05, 0.12, 0.12)] = 60.0  # heart
    hu[_inside(x, y, 0.0, 0.45, 0.09, 0.08)] = 700.0  # vertebra
    hu[_inside(x, y, 0.0, 0.45, 0.04, 0.035)] = 250.0  # marrow
    hu[_inside(x, y, 0.05, 0.25, 0.04, 0.04)] = 200.0  # contrast-filled aorta
    hu[_inside(x, y, 0.0, -0.55 - 0.04, 0.2, 0.02)] = -100.0  # table
    noise = np.random.default_rng(1000 + index).normal(0.0, 12.0, (SIZE, SIZE))
    hu += noise.astype(np.float32)
    outside = x**2 + y**2 > 1.0  # outside the reconstruction circle
    hu = np.clip(hu, -1024, 3071)
    hu[outside] = PADDING - 1024  # stored as Pixel Padding Value
    return hu.astype(np.int16)


def _base_header() -> Dataset:
    path = get_testdata_file("CT_small.dcm")
    if path is None:
        raise SystemExit("pydicom's test file CT_small.dcm is not available")
    ds = dcmread(path)
    with contextlib.suppress(KeyError):
        del ds[0xFFFCFFFC]  # Data Set Trailing Padding: storescu drops it anyway
    ds.PatientName = "JIVEX^BENCHMARK"
    ds.PatientID = "BENCH-CT"
    ds.StudyDescription = "Synthetic CT benchmark study"
    ds.SeriesDescription = "Axial 1.0 mm"
    ds.AccessionNumber = "BENCH0001"
    ds.StudyInstanceUID = new_uid()
    ds.SeriesInstanceUID = new_uid()
    ds.FrameOfReferenceUID = new_uid()
    ds.Rows = ds.Columns = SIZE
    ds.PixelSpacing = [0.661468, 0.661468]  # 338.67 mm reconstruction diameter
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.PixelPaddingValue = PADDING
    ds.RescaleIntercept = "-1024"
    ds.RescaleSlope = "1"
    ds.RescaleType = "HU"
    ds.WindowCenter = "40"
    ds.WindowWidth = "400"
    ds.SliceThickness = "1.0"
    ds.SpacingBetweenSlices = "1.0"
    ds.ImageComments = "Synthetic phantom, JiveX-Py benchmark"
    return ds


def generate_study(count: int, folder: Path) -> list[Path]:
    """Write *count* CT slices into *folder* (reused when already complete)."""
    marker = folder / ".complete"
    if marker.exists():
        files = sorted(folder.glob("CT*.dcm"))
        if len(files) == count:
            return files
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    ds = _base_header()
    grids = _phantom_grids()
    x0, y0, z0 = -169.0, -169.0, 0.0
    started = time.perf_counter()
    files = []
    for i in range(count):
        sop_uid = new_uid()
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = ds.SOPClassUID
        meta.MediaStorageSOPInstanceUID = sop_uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
        ds.file_meta = meta
        ds.SOPInstanceUID = sop_uid
        ds.InstanceNumber = i + 1
        z = z0 - 1.0 * i  # feet first supine: slices advance towards the feet
        ds.ImagePositionPatient = [f"{x0:.4f}", f"{y0:.4f}", f"{z:.4f}"]
        ds.SliceLocation = f"{z:.4f}"
        ds.PixelData = (phantom_slice(i, count, grids) + 1024).tobytes()
        ds["PixelData"].VR = "OW"
        path = folder / f"CT{i + 1:05d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        files.append(path)
    marker.write_text("ok\n")
    print(f"generated {count} instances in {time.perf_counter() - started:.1f} s")
    return files


# -- processes and ports --------------------------------------------------


def free_port() -> int:
    """A port that the kernel says is free on the loopback interface now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def listening(port: int) -> bool:
    """Whether a socket of this machine is listening on TCP *port*.

    Read from /proc rather than probed with a connection: a connection closed
    before its A-ASSOCIATE-RQ keeps an association open in our server until
    its ACSE timeout, and would then delay its shutdown.
    """
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as fh:
            for line in fh.readlines()[1:]:
                fields = line.split()
                local, state = fields[1], fields[3]
                if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                    return True
    return False


def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float) -> None:
    """Return once *port* is listening; fail if *proc* exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process {proc.pid} exited with {proc.returncode}")
        if listening(port):
            return
        time.sleep(0.1)
    raise RuntimeError(f"port {port} did not open within {timeout:.0f} s")


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    """Stop one process we started, by its PID; kill it if it hangs."""
    if proc.poll() is not None:
        return
    os.kill(proc.pid, sig)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@contextlib.contextmanager
def started(
    cmd: Sequence[str], log: Path, env: dict[str, str]
) -> Iterator[subprocess.Popen[bytes]]:
    """Run *cmd* in the background, output to *log*; stop it on exit."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            list(cmd), stdout=out, stderr=subprocess.STDOUT, env=env, cwd=log.parent
        )
        try:
            yield proc
        finally:
            stop(proc)


def nodelay_env() -> dict[str, str]:
    return {**os.environ, "TCP_NODELAY": "1"}


def http_get_json(port: int, path: str) -> object:
    """GET from 127.0.0.1 only, ignoring any proxy settings."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"http://{LOOPBACK}:{port}{path}", timeout=10) as resp:
        return json.load(resp)


# -- one round ------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    peer: str
    seconds: float
    instances: int
    nbytes: int

    @property
    def per_second(self) -> float:
        return self.instances / self.seconds

    @property
    def mb_per_second(self) -> float:
        return self.nbytes / 1e6 / self.seconds


def send(files: Sequence[Path], called_ae: str, port: int, log: Path) -> float:
    """Send *files* with DCMTK storescu in one association; return the wall time."""
    cmd = [STORESCU, "-aet", "BENCHSCU", "-aec", called_ae, LOOPBACK, str(port)]
    cmd += [str(f) for f in files]
    begin = time.perf_counter()
    with open(log, "wb") as out:
        rc = subprocess.run(
            cmd, stdout=out, stderr=subprocess.STDOUT, env=nodelay_env(), check=False
        ).returncode
    elapsed = time.perf_counter() - begin
    if rc != 0:
        tail = log.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"storescu exited with {rc}:\n{tail}")
    return elapsed


def run_ours(
    files: Sequence[Path],
    work: Path,
    nbytes: int,
    max_pdu: int | None,
    py_spy: Path | None,
) -> Result:
    data = work / "data"
    storage_port, query_port = free_port(), free_port()
    while query_port == storage_port:
        query_port = free_port()
    cmd = [str(JIVEX), "server", "--data", str(data), "--bind", LOOPBACK]
    cmd += ["--storage-port", str(storage_port), "--query-port", str(query_port)]
    if max_pdu is not None:
        config = work / "jivex.toml"
        config.write_text(f"[network]\nmax_pdu = {max_pdu}\n")
        cmd += ["--config", str(config)]
    with started(cmd, work / "server.log", nodelay_env()) as server:
        wait_for_port(storage_port, server, 60)
        spy: subprocess.Popen[bytes] | None = None
        try:
            if py_spy is not None:
                spy_cmd = [str(PY_SPY), "record", "--pid", str(server.pid)]
                spy_cmd += ["--format", "raw", "--function", "--rate", "200"]
                spy_cmd += ["-o", str(py_spy)]
                with open(work / "py-spy.log", "wb") as spy_log:
                    spy = subprocess.Popen(
                        spy_cmd, stdout=spy_log, stderr=subprocess.STDOUT
                    )
                time.sleep(1.0)  # let it attach
            elapsed = send(files, "JIVEX", storage_port, work / "storescu.log")
        finally:
            if spy is not None:
                stop(spy, signal.SIGINT)
                if not py_spy.exists():
                    print(f"py-spy failed: {(work / 'py-spy.log').read_text()[-800:]}")
        listing = subprocess.run(
            [str(JIVEX), "ls", "--json", "--level", "instance", "--data", str(data)],
            capture_output=True,
            check=True,
        ).stdout
    count = len(json.loads(listing))
    if count != len(files):
        raise RuntimeError(f"jivex indexed {count} of {len(files)} instances")
    return Result("jivex", elapsed, count, nbytes)


def run_orthanc(
    files: Sequence[Path], work: Path, nbytes: int, max_pdu: int | None
) -> Result:
    dicom_port, http_port = free_port(), free_port()
    while http_port == dicom_port:
        http_port = free_port()
    config: dict[str, object] = {
        "Name": "JiveX-bench",
        "StorageDirectory": str(work / "storage"),
        "IndexDirectory": str(work / "index"),
        "StorageCompression": False,
        "Plugins": [],
        "DicomServerEnabled": True,
        "DicomAet": "ORTHANC",
        "DicomCheckCalledAet": False,
        "DicomPort": dicom_port,
        "DicomModalities": {},
        "OrthancPeers": {},
        "HttpServerEnabled": True,
        "HttpPort": http_port,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "SaveJobs": False,
    }
    if max_pdu is not None:
        config["MaximumPduLength"] = max_pdu
    config_file = work / "orthanc.json"
    config_file.write_text(json.dumps(config, indent=2))
    with started([ORTHANC, str(config_file)], work / "orthanc.log", nodelay_env()) as (
        orthanc
    ):
        wait_for_port(http_port, orthanc, 60)
        wait_for_port(dicom_port, orthanc, 60)
        http_get_json(http_port, "/system")  # the REST API answers too
        elapsed = send(files, "ORTHANC", dicom_port, work / "storescu.log")
        stats = http_get_json(http_port, "/statistics")
    assert isinstance(stats, dict)
    count = int(stats["CountInstances"])
    if count != len(files):
        raise RuntimeError(f"Orthanc indexed {count} of {len(files)} instances")
    return Result("orthanc", elapsed, count, nbytes)


# -- py-spy summary -------------------------------------------------------


def summarize_py_spy(raw: Path, top: int = 25) -> None:
    """Print self and cumulative sample shares from py-spy's collapsed stacks."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, number = line.rpartition(" ")
        if not stack or not number.isdigit():
            continue
        n = int(number)
        frames = stack.split(";")
        samples += n
        own[frames[-1]] += n
        for frame in set(frames):
            total[frame] += n
    if not samples:
        print("py-spy recorded no samples")
        return
    for title, counter in (("self", own), ("cumulative", total)):
        print(f"\npy-spy {title} time ({samples} non-idle samples):")
        for frame, n in counter.most_common(top):
            print(f"  {100 * n / samples:5.1f}%  {frame[:110]}")


# -- main -----------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="keep the work folders")
    parser.add_argument("--our-max-pdu", type=int, metavar="N")
    parser.add_argument("--orthanc-max-pdu", type=int, metavar="N")
    parser.add_argument("--no-orthanc", action="store_true", help="only our server")
    parser.add_argument("--py-spy", type=Path, metavar="FILE")
    args = parser.parse_args(argv)

    for tool in (STORESCU, JIVEX) + (() if args.no_orthanc else (ORTHANC,)):
        if not os.access(tool, os.X_OK):
            raise SystemExit(f"{tool} is missing (apt-get install dcmtk orthanc)")
    if args.py_spy is not None and not os.access(PY_SPY, os.X_OK):
        raise SystemExit(f"{PY_SPY} is missing (.venv/bin/pip install py-spy)")

    cache = Path(tempfile.gettempdir()) / (
        f"jivex-bench-ct-{args.instances}-v{GENERATOR_VERSION}"
    )
    files = generate_study(args.instances, cache)
    nbytes = sum(f.stat().st_size for f in files)
    print(
        f"study: {len(files)} instances, {nbytes / 1e6:.1f} MB, in {cache}; "
        f"our max PDU {args.our_max_pdu or 'default'}, "
        f"Orthanc's {args.orthanc_max_pdu or 'default'}"
    )

    work_root = Path(tempfile.mkdtemp(prefix="jivex-bench-"))
    results: list[Result] = []
    try:
        for round_no in range(1, args.rounds + 1):
            peers = ["jivex"] if args.no_orthanc else ["jivex", "orthanc"]
            for peer in peers:
                work = work_root / f"{peer}-{round_no}"
                work.mkdir()
                if peer == "jivex":
                    spy = args.py_spy if round_no == 1 else None
                    res = run_ours(files, work, nbytes, args.our_max_pdu, spy)
                else:
                    res = run_orthanc(files, work, nbytes, args.orthanc_max_pdu)
                results.append(res)
                print(
                    f"round {round_no} {peer:8s} {res.seconds:7.2f} s  "
                    f"{res.per_second:7.1f} instances/s  {res.mb_per_second:6.1f} MB/s"
                )
                if not args.keep:
                    shutil.rmtree(work, ignore_errors=True)
    finally:
        if args.keep:
            print(f"work folders kept in {work_root}")
        else:
            shutil.rmtree(work_root, ignore_errors=True)

    print("\nsummary (median of rounds; MB = 10^6 bytes):")
    medians: dict[str, tuple[float, float]] = {}
    for peer in ("jivex", "orthanc"):
        mine = [r for r in results if r.peer == peer]
        if not mine:
            continue
        ips = statistics.median(r.per_second for r in mine)
        mbs = statistics.median(r.mb_per_second for r in mine)
        medians[peer] = (ips, mbs)
        print(f"  {peer:8s} {ips:7.1f} instances/s  {mbs:6.1f} MB/s")
    if len(medians) == 2:
        ratio = medians["jivex"][0] / medians["orthanc"][0]
        print(f"  ratio jivex/orthanc: {ratio:.2f}")
    if args.py_spy is not None and args.py_spy.exists():
        summarize_py_spy(args.py_spy)
    return 0


if __name__ == "__main__":
    os.chdir(REPO)
    sys.exit(main())
