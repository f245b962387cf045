"""C-FIND latency: JiveX-Py's Q/R SCP against Orthanc, on the same archive.

What it measures
----------------
A generated archive (by default 5,000 studies of 20 small instances:
100,000 instances, the size issue 3 names) is stored into a fresh
``jivex server`` and a fresh Orthanc. Then one pynetdicom C-FIND SCU, the same
client for both, keeps an association open to each and times study-level
queries by Patient ID, by a wild-card Patient Name (``SMI*``) and by a Study
Date range (one quarter), each with two sets of return keys: five plain
attributes, and what a study browser asks for (eight more, among them
Modalities in Study and the number of related series and instances, which
the archive computes). The peers answer in turn, query by query, so that load
from other work on the machine falls on both alike; each query is repeated
and the median printed with the ratio Orthanc/ours (above 1: we answer
faster). The answers of both peers are compared with each other and with what
the generator wrote. The targets of issue 3 (Patient ID under 50 ms, ``SMI*``
under 200 ms, both faster than Orthanc) are checked and the exit code is 1
when one is missed.

The client's own work is in both figures: pynetdicom spends about half a
millisecond of CPU decoding each answer here, several times what our server
spends producing it, so the ratios understate the difference between the
servers.
``profile_qr_find.py`` measures our server's share alone.

The archive
-----------
Seeded and so the same in every run: 2,768 patients with one to six
studies each, names drawn from 120 surnames of several languages with a long
tail of frequencies, one in ten double-barrelled (``GARCIA-LOPEZ``), given
names that match the sex, real birth and study dates (2012-2024) and times,
and twelve kinds of study (CT, MR, CR, DX, US, MG, PET-CT, NM) of one to five
series, with the modalities' own SOP classes. Every study has ``--per-study``
instances (16x16 pixels: the index, not the files, is under test). On the
default archive the Patient ID query returns 3 studies, ``SMI*`` 163 and the
date range 104 (the benchmark prints the counts it checks).

Loading
-------
Both peers get the same files the same way: ``--workers`` DCMTK ``storescu``
processes at once, each sending its share of the folders over one
association, with ``TCP_NODELAY=1`` (PEERS.md). Neither peer fsyncs while
loading (``fsync = false``, Orthanc's ``SyncStorageArea`` false): durability
is what ``bench_storage_scp.py`` measures, and it does not change how a query
is answered. Orthanc answers C-FIND from unknown AEs only with
``DicomAlwaysAllowFind``; it has no option to bind one address, so it runs on
kernel-chosen ports and is stopped at the end.

Usage::

    .venv/bin/python benchmarks/bench_qr_find.py [--studies 5000] [--per-study 20]

``--work DIR`` keeps both data folders in DIR (our index is then
``DIR/jivex/index.sqlite``, for profiling); by default they are removed.
``--reuse DIR`` starts both peers on the folders such a run left and only
queries them.
"""

from __future__ import annotations

import argparse
import datetime
import json
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    ComputedRadiographyImageStorage,
    CTImageStorage,
    DigitalMammographyXRayImageStorageForPresentation,
    DigitalXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
    MRImageStorage,
    NuclearMedicineImageStorage,
    PositronEmissionTomographyImageStorage,
    UltrasoundImageStorage,
)
from pynetdicom import AE, evt
from pynetdicom.association import Association
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
from jivex_core.uids import IMPLEMENTATION_CLASS_UID, new_uid

GENERATOR_VERSION = 2  # bump when the generated archive changes

# Ordered by frequency: the weight of rank r is 1 / (r + 20).
SURNAMES = (
    "MUELLER SCHMIDT SCHNEIDER FISCHER SMITH WEBER MEYER WAGNER BECKER SCHULZ "
    "HOFFMANN GARCIA JOHNSON SCHAEFER KOCH BAUER RICHTER KLEIN WOLF SCHROEDER "
    "NEUMANN SCHWARZ BROWN ZIMMERMANN BRAUN KRUEGER HOFMANN HARTMANN LANGE "
    "SCHMITT WERNER SCHMITZ KRAUSE MEIER LEHMANN SCHMID SCHULZE MAIER KOEHLER "
    "HERRMANN KOENIG WALTER MAYER HUBER KAISER FUCHS PETERS LANG SCHOLZ MOELLER "
    "WEISS JUNG HAHN SCHUBERT VOGEL FRIEDRICH KELLER GUENTHER FRANK BERGER "
    "WINKLER ROTH BECK LORENZ BAUMANN FRANKE ALBRECHT SCHUSTER SIMON LUDWIG "
    "BOEHM WINTER KRAUS MARTIN SCHUMACHER KRAEMER VOGT STEIN JAEGER OTTO SOMMER "
    "GROSS SEIDEL HEINRICH BRANDT HAAS SCHREIBER GRAF SCHULTE DIETRICH ZIEGLER "
    "KUHN KUEHN POHL ENGEL HORN BUSCH BERGMANN THOMAS VOIGT SAUER ARNOLD "
    "WOLFF PFEIFFER SMITHSON ROSSI NOVAK YILMAZ KAYA NGUYEN TANAKA SATO "
    "KOWALSKI NOWAK LOPEZ MARTINEZ SMIRNOV IVANOV DUBOIS MOREAU SMILEY"
).split()
MALE = (
    "PETER THOMAS MICHAEL ANDREAS STEFAN KLAUS JUERGEN FRANK MARKUS CHRISTIAN "
    "WOLFGANG HANS JAN LUKAS JONAS DAVID JOHN JAMES CARLOS MEHMET HIROSHI "
    "PIOTR LUCA IVAN"
).split()
FEMALE = (
    "SABINE PETRA MONIKA ANDREA CLAUDIA SUSANNE NICOLE STEFANIE JULIA ANNA "
    "LAURA SOPHIE MARIA EMMA MIA HANNAH MARY LINDA ELIF YUKI ANNA MARTA "
    "GIULIA OLGA"
).split()
REFERRING = [
    "HAUSARZT^KLAUS^^DR.",
    "BERGER^MARTINA^^DR.",
    "KLINIK^CHIRURGIE",
    "OKONKWO^ADA^^DR.",
    "FISCHER^UWE^^PROF. DR.",
    "",
]
SOP_CLASS = {
    "CT": CTImageStorage,
    "MR": MRImageStorage,
    "CR": ComputedRadiographyImageStorage,
    "DX": DigitalXRayImageStorageForPresentation,
    "US": UltrasoundImageStorage,
    "MG": DigitalMammographyXRayImageStorageForPresentation,
    "PT": PositronEmissionTomographyImageStorage,
    "NM": NuclearMedicineImageStorage,
}
# (weight, study description, body part, series as (modality, description))
STUDY_KINDS: list[tuple[int, str, str, list[tuple[str, str]]]] = [
    (14, "CT THORAX WITH CONTRAST", "CHEST", [
        ("CT", "Topogram"), ("CT", "Thorax 1.0 B31f"), ("CT", "Thorax 5.0 cor"),
    ]),
    (10, "CT HEAD", "HEAD", [("CT", "Topogram"), ("CT", "Head 5.0 H30s")]),
    (8, "CT ABDOMEN PELVIS", "ABDOMEN", [
        ("CT", "Topogram"), ("CT", "Abdomen 1.0 B30f"), ("CT", "Abdomen 3.0 cor"),
    ]),
    (8, "MR KNEE LEFT", "KNEE", [
        ("MR", "Localizer"), ("MR", "PD TSE sag"), ("MR", "T1 TSE cor"),
        ("MR", "PD FS tra"),
    ]),
    (8, "MR BRAIN", "HEAD", [
        ("MR", "Localizer"), ("MR", "T2 TSE tra"), ("MR", "FLAIR tra"),
        ("MR", "T1 MPRAGE"), ("MR", "DWI"),
    ]),
    (6, "MR LUMBAR SPINE", "LSPINE", [
        ("MR", "Localizer"), ("MR", "T2 TSE sag"), ("MR", "T1 TSE sag"),
    ]),
    (14, "CHEST PA AND LATERAL", "CHEST", [("CR", "PA"), ("CR", "LAT")]),
    (8, "HAND LEFT", "HAND", [("DX", "AP and oblique")]),
    (8, "US ABDOMEN", "ABDOMEN", [("US", "Abdomen")]),
    (5, "MAMMOGRAPHY SCREENING", "BREAST", [
        ("MG", "R CC"), ("MG", "L CC"), ("MG", "R MLO"), ("MG", "L MLO"),
    ]),
    (4, "PET-CT WHOLE BODY", "WHOLEBODY", [
        ("CT", "Topogram"), ("CT", "WB CT AC"), ("PT", "WB PET AC"),
    ]),
    (3, "BONE SCAN", "WHOLEBODY", [("NM", "Whole body")]),
]  # fmt: skip
FIRST_DAY = datetime.date(2012, 1, 1)
DAYS = (datetime.date(2024, 12, 31) - FIRST_DAY).days + 1
NAME_QUERY = "SMI*"
DATE_RANGE = ("20230101", "20230331")
STUDIES_PER_FOLDER = 100


def _pick(rng: np.random.Generator, weights: np.ndarray) -> int:
    return int(rng.choice(len(weights), p=weights))


def _date(day: int) -> str:
    return (FIRST_DAY + datetime.timedelta(days=day)).strftime("%Y%m%d")


def _patients(rng: np.random.Generator, studies: int) -> list[dict[str, Any]]:
    """Patients with one to six studies each, *studies* studies in all."""
    surname_w = 1.0 / (np.arange(len(SURNAMES)) + 20.0)
    surname_w /= surname_w.sum()
    out: list[dict[str, Any]] = []
    left = studies
    while left > 0:
        n = min(left, 1 + min(int(rng.geometric(0.55)) - 1, 5))
        left -= n
        surname = SURNAMES[_pick(rng, surname_w)]
        if rng.random() < 0.1:
            surname += "-" + SURNAMES[_pick(rng, surname_w)]
        sex = "F" if rng.random() < 0.52 else "M"
        given = rng.choice(FEMALE if sex == "F" else MALE)
        name = f"{surname}^{given}"
        if rng.random() < 0.25:
            name += "^" + "ABCDEFGHJKLMNPRSTW"[int(rng.integers(0, 18))]
        birth = datetime.date(1930, 1, 1) + datetime.timedelta(
            days=int(rng.integers(0, 85 * 365))
        )
        out.append(
            {
                "PatientName": name,
                "PatientID": str(4_000_000 + len(out) * 37),
                "PatientBirthDate": birth.strftime("%Y%m%d"),
                "PatientSex": sex,
                "studies": n,
            }
        )
    return out


def _series_sizes(instances: int, series: int) -> list[int]:
    series = max(1, min(series, instances))
    return [instances // series + (1 if i < instances % series else 0)
            for i in range(series)]  # fmt: skip


def generate(studies: int, per_study: int, folder: Path) -> dict[str, Any]:
    """Write the archive once (cached by size); return what it holds.

    The summary names the Patient ID the benchmark asks for and how many
    studies each query must find.
    """
    manifest = folder.with_name(folder.name + ".json")  # not in the folder sent
    if manifest.exists():
        return dict(json.loads(manifest.read_text()))
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    rng = np.random.default_rng(7)
    kind_w = np.array([k[0] for k in STUDY_KINDS], float)
    kind_w /= kind_w.sum()
    pixels = np.zeros((16, 16), np.uint16).tobytes()
    patients = _patients(rng, studies)
    count = 0
    study_no = 0
    expected = {"name": 0, "range": 0}
    query_patient = next(p for p in patients[len(patients) // 2 :] if p["studies"] == 3)
    for patient in patients:
        if patient["PatientName"].startswith(NAME_QUERY.rstrip("*")):
            expected["name"] += patient["studies"]
        for _ in range(patient["studies"]):
            _, description, body_part, series = STUDY_KINDS[_pick(rng, kind_w)]
            day = _date(int(rng.integers(0, DAYS)))
            if DATE_RANGE[0] <= day <= DATE_RANGE[1]:
                expected["range"] += 1
            seconds = int(rng.integers(7 * 3600, 20 * 3600))
            ds = Dataset()
            for key in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex"):
                setattr(ds, key, patient[key])
            ds.StudyInstanceUID = new_uid()
            ds.StudyDate = ds.SeriesDate = ds.ContentDate = day
            ds.StudyTime = f"{seconds // 3600:02d}{seconds // 60 % 60:02d}"
            ds.StudyTime += f"{seconds % 60:02d}"
            ds.AccessionNumber = f"A{2_400_000 + study_no}"
            ds.StudyID = str(study_no + 1)
            ds.StudyDescription = description
            ds.ReferringPhysicianName = REFERRING[int(rng.integers(0, len(REFERRING)))]
            ds.InstitutionName = "JIVEX BENCHMARK HOSPITAL"
            ds.BodyPartExamined = body_part
            ds.Rows = ds.Columns = 16
            ds.BitsAllocated = ds.BitsStored = 16
            ds.HighBit = 15
            ds.PixelRepresentation = 0
            ds.SamplesPerPixel = 1
            ds.PhotometricInterpretation = "MONOCHROME2"
            ds.PixelData = pixels
            sub = folder / f"g{study_no // STUDIES_PER_FOLDER:04d}"
            sub.mkdir(exist_ok=True)
            number = 0
            sizes = _series_sizes(per_study, len(series))
            for s, ((modality, series_description), size) in enumerate(
                zip(series, sizes, strict=False)
            ):
                ds.SeriesInstanceUID = new_uid()
                ds.Modality = modality
                ds.SeriesDescription = series_description
                ds.SeriesNumber = s + 1
                ds.SOPClassUID = SOP_CLASS[modality]
                for i in range(size):
                    ds.file_meta = FileMetaDataset()
                    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
                    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
                    ds.file_meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
                    ds.SOPInstanceUID = new_uid()
                    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
                    ds.InstanceNumber = i + 1
                    number += 1
                    ds.save_as(
                        sub / f"{study_no:05d}-{number:03d}.dcm",
                        enforce_file_format=True,
                    )
                    count += 1
            study_no += 1
    summary = {
        "version": GENERATOR_VERSION,
        "instances": count,
        "studies": study_no,
        "patients": len(patients),
        "patient_id": query_patient["PatientID"],
        "expected": {
            "PatientID": query_patient["studies"],
            f"PatientName={NAME_QUERY}": expected["name"],
            "StudyDate range": expected["range"],
        },
    }
    manifest.write_text(json.dumps(summary, indent=1))
    return summary


def load(folder: Path, called: str, port: int, workers: int, log: Path) -> float:
    """Send the archive with *workers* storescu processes at once; wall time."""
    groups = sorted(p for p in folder.iterdir() if p.is_dir())
    shares = [groups[w::workers] for w in range(workers)]
    begin = time.perf_counter()
    procs = []
    with open(log, "wb") as out:
        for share in shares:
            if not share:
                continue
            cmd = [STORESCU, "+sd", "-aet", "BENCHSCU", "-aec", called]
            cmd += ["127.0.0.1", str(port), *map(str, share)]
            procs.append(
                subprocess.Popen(
                    cmd, stdout=out, stderr=subprocess.STDOUT, env=nodelay_env()
                )
            )
        codes = [p.wait() for p in procs]
    if any(codes):
        tail = log.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"storescu to {called} exited with {codes}:\n{tail}")
    return time.perf_counter() - begin


PLAIN_KEYS = (
    "PatientName",
    "PatientID",
    "StudyDate",
    "StudyInstanceUID",
    "AccessionNumber",
)
BROWSER_KEYS = (
    *PLAIN_KEYS,
    "PatientBirthDate",
    "PatientSex",
    "StudyTime",
    "StudyDescription",
    "ReferringPhysicianName",
    "ModalitiesInStudy",
    "NumberOfStudyRelatedSeries",
    "NumberOfStudyRelatedInstances",
)
KEY_SETS = {"plain": PLAIN_KEYS, "browser": BROWSER_KEYS}
TARGET_MS = {"PatientID": 50.0, f"PatientName={NAME_QUERY}": 200.0}


def queries(patient_id: str) -> dict[str, dict[str, str]]:
    return {
        "PatientID": {"PatientID": patient_id},
        f"PatientName={NAME_QUERY}": {"PatientName": NAME_QUERY},
        "StudyDate range": {"StudyDate": "-".join(DATE_RANGE)},
    }


def associate(called: str, port: int) -> Association:
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
    return assoc


def find_once(
    assoc: Association, keys: dict[str, str], returned: Sequence[str]
) -> tuple[float, list[tuple[Any, ...]]]:
    """One study-level C-FIND: its latency (ms) and a digest of each answer."""
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    for attr in returned:
        setattr(ds, attr, keys.get(attr, ""))
    begin = time.perf_counter()
    answers, status = [], None
    for status, ident in assoc.send_c_find(
        ds, StudyRootQueryRetrieveInformationModelFind
    ):
        if status and status.Status in (0xFF00, 0xFF01):
            answers.append(ident)
    elapsed = (time.perf_counter() - begin) * 1000
    if not status or status.Status != 0:
        raise RuntimeError(f"C-FIND {keys} ended with {status}")
    digest = []
    for ident in answers:
        row = []
        for attr in returned:
            value = ident.get(attr, "")
            if attr == "ModalitiesInStudy":
                value = sorted(value) if isinstance(value, list | tuple) else [value]
                value = "\\".join(str(v) for v in value if v)
            row.append(str(value if value is not None else ""))
        digest.append(tuple(row))
    return elapsed, sorted(digest)


def time_queries(
    peers: dict[str, Association], summary: dict[str, Any], repeats: int
) -> dict[tuple[str, str], dict[str, list[float]]]:
    """Every query on every peer, in turn; the latencies of each."""
    times: dict[tuple[str, str], dict[str, list[float]]] = {}
    last: dict[tuple[str, str], dict[str, list[tuple[Any, ...]]]] = {}
    names = list(peers)
    for repeat in range(repeats + 1):  # the first round warms up
        for query, keys in queries(summary["patient_id"]).items():
            for key_set, returned in KEY_SETS.items():
                order = names if repeat % 2 else names[::-1]
                for peer in order:
                    ms, digest = find_once(peers[peer], keys, returned)
                    cell = (query, key_set)
                    if repeat:
                        times.setdefault(cell, {}).setdefault(peer, []).append(ms)
                    last.setdefault(cell, {})[peer] = digest
    for (query, key_set), answers in last.items():
        want = summary["expected"][query]
        for peer, digest in answers.items():
            if len(digest) != want:
                print(f"  {peer}: {query} ({key_set}) found {len(digest)}, not {want}")
        if len({tuple(d) for d in answers.values()}) > 1:
            ours, theirs = answers["jivex"], answers["orthanc"]
            diff = sorted(set(ours) ^ set(theirs))[:3]
            print(f"  answers differ for {query} ({key_set}), e.g. {diff}")
    return times


def start_ours(work: Path) -> tuple[list[str], int, int]:
    storage, query = free_port(), free_port()
    while query == storage:
        query = free_port()
    config = work / "jivex.toml"
    config.write_text("[storage]\nfsync = false\n")
    cmd = [str(JIVEX), "server", "--config", str(config), "--data"]
    cmd += [str(work / "jivex"), "--bind", "127.0.0.1", "--storage-port"]
    cmd += [str(storage), "--query-port", str(query), "--log-level", "WARNING"]
    return cmd, storage, query


def orthanc_config(work: Path) -> tuple[Path, int, int]:
    dicom, http = free_port(), free_port()
    while http == dicom:
        http = free_port()
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
        "SyncStorageArea": False,
        "SaveJobs": False,
    }
    path = work / "orthanc.json"
    path.write_text(json.dumps(config))
    return path, dicom, http


def held(peer: str, work: Path, http: int) -> int:
    """How many instances *peer* says it holds."""
    if peer == "orthanc":
        stats = http_get_json(http, "/statistics")
        assert isinstance(stats, dict)
        return int(stats["CountInstances"])
    db = sqlite3.connect(f"file:{work / 'jivex' / 'index.sqlite'}?mode=ro", uri=True)
    try:
        return int(db.execute("SELECT count(*) FROM instance").fetchone()[0])
    finally:
        db.close()


def run(args: argparse.Namespace, work: Path, summary: dict[str, Any]) -> int:
    cache = Path(summary["folder"])
    ours_cmd, storage, query = start_ours(work)
    o_config, dicom, http = orthanc_config(work)
    env = nodelay_env()
    with (
        started(ours_cmd, work / "jivex.log", env) as ours,
        started([ORTHANC, str(o_config)], work / "orthanc.log", env) as orthanc,
    ):
        wait_for_port(query, ours, 60)
        wait_for_port(dicom, orthanc, 60)
        wait_for_port(http, orthanc, 60)
        for peer, called, port in (
            ("jivex", "JIVEX", storage),
            ("orthanc", "ORTHANC", dicom),
        ):
            loaded = "reused"
            if not args.reuse:
                seconds = load(
                    cache, called, port, args.workers, work / f"load-{peer}.log"
                )
                loaded = f"loaded in {seconds:6.1f} s"
            print(f"{peer:8} {loaded} ({held(peer, work, http)} instances)")
        peers = {
            "jivex": associate("JIVEX", query),
            "orthanc": associate("ORTHANC", dicom),
        }
        try:
            times = time_queries(peers, summary, args.repeats)
        finally:
            for assoc in peers.values():
                assoc.release()
    print(f"\nstudy-level C-FIND, median of {args.repeats} (ms; studies found):")
    failed = False
    for (name, key_set), per_peer in times.items():
        ours = statistics.median(per_peer["jivex"])
        theirs = statistics.median(per_peer["orthanc"])
        target = TARGET_MS.get(name)
        verdict = ""
        if target is not None:
            met = ours < target and ours < theirs
            failed |= not met
            verdict = f"  target < {target:.0f}: {'met' if met else 'MISSED'}"
        print(
            f"  {name:18} {key_set:8} jivex {ours:7.1f}  orthanc {theirs:7.1f}  "
            f"ratio orthanc/jivex {theirs / ours:5.2f}"
            f"  ({summary['expected'][name]}){verdict}"
        )
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=5000)
    parser.add_argument("--per-study", type=int, default=20)
    parser.add_argument("--workers", type=int, default=4, help="storescu at once")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--work", type=Path, help="keep the data folders here")
    parser.add_argument(
        "--reuse", type=Path, help="query the data folders a --work run left"
    )
    args = parser.parse_args()
    cache = Path(tempfile.gettempdir()) / (
        f"jivex-bench-find-v{GENERATOR_VERSION}-{args.studies}x{args.per_study}"
    )
    begin = time.perf_counter()
    summary = generate(args.studies, args.per_study, cache)
    summary["folder"] = str(cache)
    print(
        f"archive: {summary['patients']} patients, {summary['studies']} studies, "
        f"{summary['instances']} instances in {cache} "
        f"({time.perf_counter() - begin:.0f} s)"
    )
    if args.reuse is not None:
        return run(args, args.reuse, summary)
    if args.work is not None:
        if args.work.exists():
            raise SystemExit(f"{args.work} exists: give a new folder")
        args.work.mkdir(parents=True)
        return run(args, args.work, summary)
    with tempfile.TemporaryDirectory(prefix="jivex-find-") as tmp:
        return run(args, Path(tmp), summary)


if __name__ == "__main__":
    raise SystemExit(main())
