"""C-FIND latency: JiveX-Py's Q/R SCP against Orthanc, on the same archive.

What it measures
----------------
A generated archive (by default 5,000 studies of 20 small CT instances:
100,000 instances, the size issue 3 names) is stored into a fresh
``jivex server`` and a fresh Orthanc with DCMTK's ``storescu``. Then one
pynetdicom C-FIND SCU, the same client for both, keeps an association open
to each and times study-level queries: by Patient ID, by a wild-card
Patient Name (``SMI*``) and by a Study Date range. Each query is repeated and
the median printed with the ratio Orthanc/ours (above 1: we answer faster).

Both peers run with ``TCP_NODELAY=1`` (PEERS.md). Orthanc answers C-FIND from
unknown AEs only with ``DicomAlwaysAllowFind``; it has no option to bind one
address, so it runs on kernel-chosen ports and is stopped after its round.
Loading is the slow part (about ten minutes per peer for 100,000 instances
on two cores); ``--studies`` and ``--per-study`` make smaller archives.

Usage::

    .venv/bin/python benchmarks/bench_qr_find.py [--studies 5000] [--per-study 20]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian
from pynetdicom import AE, evt
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_storage_scp import (
    JIVEX,
    ORTHANC,
    STORESCU,
    free_port,
    http_get_json,
    nodelay_env,
    started,
    wait_for_port,
)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from jivex_core.services.association import set_nodelay
from jivex_core.uids import new_uid

SURNAMES = [
    "SMITH",
    "SMITHSON",
    "JONES",
    "MILLER",
    "BROWN",
    "WILSON",
    "TAYLOR",
    "MUELLER",
    "SCHMIDT",
    "GARCIA",
    "MARTIN",
    "ROSSI",
    "NOVAK",
    "SATO",
]
REPEATS = 15


def generate(studies: int, per_study: int, folder: Path) -> int:
    """Write the archive once (cached by size); return the instance count."""
    marker = folder.with_name(folder.name + ".complete")  # not in the folder sent
    if marker.exists():
        return int(marker.read_text())
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    pixels = np.zeros((16, 16), np.int16).tobytes()
    count = 0
    for s in range(studies):
        study_uid, series_uid = new_uid(), new_uid()
        surname = SURNAMES[s % len(SURNAMES)]
        day = (
            20000101 + int(rng.integers(0, 24)) * 10000 + int(rng.integers(1, 13)) * 100
        )
        for i in range(per_study):
            ds = Dataset()
            ds.file_meta = FileMetaDataset()
            ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
            ds.SOPClassUID = CTImageStorage
            ds.SOPInstanceUID = new_uid()
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            ds.PatientName = f"{surname}^PATIENT{s:05d}"
            ds.PatientID = f"P{s:06d}"
            ds.PatientBirthDate = "19600101"
            ds.PatientSex = "O"
            ds.StudyInstanceUID = study_uid
            ds.SeriesInstanceUID = series_uid
            ds.StudyDate = str(day + 1)
            ds.StudyTime = "120000"
            ds.AccessionNumber = f"A{s:07d}"
            ds.StudyID = str(s)
            ds.Modality = "CT"
            ds.SeriesNumber = 1
            ds.InstanceNumber = i + 1
            ds.Rows = ds.Columns = 16
            ds.BitsAllocated = ds.BitsStored = 16
            ds.HighBit = 15
            ds.PixelRepresentation = 1
            ds.SamplesPerPixel = 1
            ds.PhotometricInterpretation = "MONOCHROME2"
            ds.PixelData = pixels
            ds.save_as(folder / f"{s:05d}-{i:03d}.dcm", enforce_file_format=True)
            count += 1
    marker.write_text(str(count))
    return count


def load(folder: Path, called: str, port: int, log: Path) -> float:
    """Store the archive with storescu, one association; the wall time."""
    begin = time.perf_counter()
    with open(log, "wb") as out:
        subprocess.run(
            [
                STORESCU,
                "+sd",
                "+r",
                "-aet",
                "BENCHSCU",
                "-aec",
                called,
                "127.0.0.1",
                str(port),
                str(folder),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=nodelay_env(),
            check=True,
        )
    return time.perf_counter() - begin


QUERIES: dict[str, dict[str, str]] = {
    "PatientID": {"PatientID": "P000123"},
    "PatientName=SMI*": {"PatientName": "SMI*"},
    "StudyDate range": {"StudyDate": "20050101-20050331"},
}


def time_queries(called: str, port: int) -> dict[str, tuple[float, int]]:
    """Median latency (ms) and match count of each query, one association."""
    ae = AE(ae_title="BENCHFIND")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    # Nagle off on our client too, or each response waits for a delayed ACK.
    assoc = ae.associate(
        "127.0.0.1",
        port,
        ae_title=called,
        evt_handlers=[(evt.EVT_CONN_OPEN, lambda event: set_nodelay(event.assoc))],
    )
    if not assoc.is_established:
        raise RuntimeError(f"{called} refused the C-FIND association")
    out = {}
    try:
        for name, keys in QUERIES.items():
            times, matches = [], 0
            for _ in range(REPEATS):
                ds = Dataset()
                ds.QueryRetrieveLevel = "STUDY"
                for attr in (
                    "PatientName",
                    "PatientID",
                    "StudyDate",
                    "StudyInstanceUID",
                    "AccessionNumber",
                ):
                    setattr(ds, attr, keys.get(attr, ""))
                begin = time.perf_counter()
                matches = sum(
                    1
                    for status, ident in assoc.send_c_find(
                        ds, StudyRootQueryRetrieveInformationModelFind
                    )
                    if status and status.Status in (0xFF00, 0xFF01)
                )
                times.append((time.perf_counter() - begin) * 1000)
            out[name] = (statistics.median(times), matches)
    finally:
        assoc.release()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=5000)
    parser.add_argument("--per-study", type=int, default=20)
    args = parser.parse_args()
    cache = Path(tempfile.gettempdir()) / (
        f"jivex-bench-find-{args.studies}x{args.per_study}"
    )
    count = generate(args.studies, args.per_study, cache)
    print(f"archive: {args.studies} studies, {count} instances in {cache}")
    results: dict[str, dict[str, tuple[float, int]]] = {}
    with tempfile.TemporaryDirectory(prefix="jivex-find-") as tmp:
        work = Path(tmp)
        storage, query = free_port(), free_port()
        cmd = [
            str(JIVEX),
            "server",
            "--data",
            str(work / "jivex"),
            "--bind",
            "127.0.0.1",
            "--storage-port",
            str(storage),
            "--query-port",
            str(query),
            "--log-level",
            "WARNING",
        ]
        with started(cmd, work / "jivex.log", nodelay_env()) as proc:
            wait_for_port(query, proc, 60)
            seconds = load(cache, "JIVEX", storage, work / "load-jivex.log")
            print(f"jivex    loaded in {seconds:6.1f} s")
            results["jivex"] = time_queries("JIVEX", query)
        dicom, http = free_port(), free_port()
        config = {
            "Name": "jivex-find-bench",
            "StorageDirectory": str(work / "o-storage"),
            "IndexDirectory": str(work / "o-index"),
            "Plugins": [],
            "DicomAet": "ORTHANC",
            "DicomPort": dicom,
            "HttpPort": http,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "DicomAlwaysAllowFind": True,
            "DicomCheckCalledAet": False,
            "StorageCompression": False,
            "SaveJobs": False,
        }
        (work / "orthanc.json").write_text(json.dumps(config))
        with started(
            [ORTHANC, str(work / "orthanc.json")], work / "orthanc.log", nodelay_env()
        ) as proc:
            wait_for_port(dicom, proc, 60)
            wait_for_port(http, proc, 60)
            seconds = load(cache, "ORTHANC", dicom, work / "load-orthanc.log")
            stats = http_get_json(http, "/statistics")
            print(
                f"orthanc  loaded in {seconds:6.1f} s "
                f"({stats['CountInstances']} instances)"
            )
            results["orthanc"] = time_queries("ORTHANC", dicom)
    print("\nstudy-level C-FIND, median of", REPEATS, "(ms; matches):")
    for name in QUERIES:
        ours, theirs = results["jivex"][name], results["orthanc"][name]
        print(
            f"  {name:18} jivex {ours[0]:8.1f} ({ours[1]:4d})   "
            f"orthanc {theirs[0]:8.1f} ({theirs[1]:4d})   "
            f"ratio orthanc/jivex {theirs[0] / ours[0]:5.2f}"
        )
        if ours[1] != theirs[1]:
            print(f"    matches differ for {name}: {ours[1]} vs {theirs[1]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
