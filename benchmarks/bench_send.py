"""Sending and retrieving: JiveX-Py's SCUs against DCMTK's, in one run.

What it measures
----------------
1. **Send.** The synthetic 500-slice 512x512 CT study of
   ``bench_storage_scp.py`` goes to one DCMTK ``storescp`` (its own output
   folder per round) from

   * DCMTK ``storescu`` reading the files (one association), and
   * a ``jivex send`` job of a running ``jivex server`` that holds the same
     study (imported beforehand, not timed), measured from the request on
     the core's link to the job's end (the job queue, association and
     sending included).

   Printed: instances per second of each and the ratio ours/storescu (the
   target is at least 0.8).
2. **Retrieve.** Orthanc holds the study; it is moved with C-MOVE

   * to DCMTK ``movescu`` acting as its own Storage SCP (``+P``), and
   * to ``jivex server`` by a ``jivex move`` job (our Q/R SCU sends the
     C-MOVE, our Storage SCP receives), from the request to the job's end,

   alternating rounds. Printed: seconds for each and the ratio
   movescu/ours (above 1: we are faster).

Everything runs on loopback on free ports with ``TCP_NODELAY=1`` for the
DCMTK tools and Orthanc (PEERS.md). The machine is shared: only the ratios
of one run mean anything.

Usage::

    .venv/bin/python benchmarks/bench_send.py [--count 500] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_storage_scp import (
    JIVEX,
    LOOPBACK,
    ORTHANC,
    STORESCU,
    free_port,
    generate_study,
    http_get_json,
    nodelay_env,
    stop,
    wait_for_port,
)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from jivex_core.link_client import LinkClient

STORESCP = "/usr/bin/storescp"
MOVESCU = "/usr/bin/movescu"


def start_storescp(folder: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    folder.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [STORESCP, "-aet", "DEST", "-od", str(folder), str(port)],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        env=nodelay_env(),
    )
    wait_for_port(port, proc, 30)
    return proc


def start_jivex(
    data: Path, storage: int, query: int, remotes: list[str], log: Path
) -> tuple[subprocess.Popen[bytes], LinkClient]:
    args = [str(JIVEX), "server", "--data", str(data), "--bind", LOOPBACK]
    args += ["--storage-port", str(storage), "--query-port", str(query)]
    for remote in remotes:
        args += ["--remote", remote]
    proc = subprocess.Popen(args, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    wait_for_port(storage, proc, 60)
    deadline = time.monotonic() + 30
    while (client := LinkClient.connect(data)) is None:
        if time.monotonic() > deadline:
            raise RuntimeError("the core's link did not come up")
        time.sleep(0.1)
    return proc, client


def wait_job(client: LinkClient, job: dict) -> dict:
    while job["state"] not in ("done", "failed", "cancelled"):
        if job["state"] == "queued" and job["attempts"]:
            raise RuntimeError(f"job failed and waits for a retry: {job}")
        time.sleep(0.01)
        job = client.call("job", id=job["id"])
    return job


def bench_send(files: list[Path], work: Path, rounds: int) -> tuple[float, float]:
    work.mkdir(parents=True)
    count = len(files)
    scp_port = free_port()
    data = work / "jivex-send"
    imported = subprocess.run(
        [str(JIVEX), "import", "--data", str(data), *map(str, files)],
        capture_output=True,
    )
    if imported.returncode != 0:
        raise RuntimeError(imported.stderr.decode())
    core, client = start_jivex(
        data,
        free_port(),
        free_port(),
        [f"DEST@{LOOPBACK}:{scp_port}"],
        work / "jivex-send.log",
    )
    study = json.loads(
        subprocess.run(
            [str(JIVEX), "ls", "--json", "--data", str(data)], capture_output=True
        ).stdout
    )[0]["StudyInstanceUID"]
    ours: list[float] = []
    theirs: list[float] = []
    try:
        for number in range(rounds):
            for who in ("storescu", "jivex"):
                out = work / f"out-{who}-{number}"
                scp = start_storescp(out, scp_port, work / f"storescp-{who}.log")
                try:
                    started = time.perf_counter()
                    if who == "storescu":
                        subprocess.run(
                            [
                                *(STORESCU, "-aec", "DEST", LOOPBACK, str(scp_port)),
                                *map(str, files),
                            ],
                            check=True,
                            env=nodelay_env(),
                            capture_output=True,
                        )
                    else:
                        job = client.call("send", to="DEST", uids=[study])
                        job = wait_job(client, job)
                        if job["completed"] != count:
                            raise RuntimeError(f"send incomplete: {job}")
                    elapsed = time.perf_counter() - started
                finally:
                    stop(scp)
                received = len(list(out.iterdir()))
                if received != count:
                    raise RuntimeError(f"{who}: storescp got {received} of {count}")
                (theirs if who == "storescu" else ours).append(count / elapsed)
                print(f"send round {number + 1} {who:8s} {count / elapsed:7.1f} /s")
                shutil.rmtree(out)
    finally:
        client.close()
        stop(core)
    return statistics.median(ours), statistics.median(theirs)


def bench_retrieve(files: list[Path], work: Path, rounds: int) -> tuple[float, float]:
    work.mkdir(parents=True)
    count = len(files)
    dicom, http = free_port(), free_port()
    movescu_port, jivex_storage = free_port(), free_port()
    config = {
        "Name": "bench-send",
        "StorageDirectory": str(work / "orthanc-storage"),
        "IndexDirectory": str(work / "orthanc-index"),
        "Plugins": [],
        "DicomAet": "ORTHANC",
        "DicomPort": dicom,
        "HttpPort": http,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "DicomModalities": {
            "movescu": ["MOVESCU", LOOPBACK, movescu_port],
            "jivex": ["JIVEX", LOOPBACK, jivex_storage],
        },
        "SaveJobs": False,
    }
    (work / "orthanc.json").write_text(json.dumps(config))
    orthanc = subprocess.Popen(
        [ORTHANC, str(work / "orthanc.json")],
        stdout=(work / "orthanc.log").open("wb"),
        stderr=subprocess.STDOUT,
        env=nodelay_env(),
    )
    ours: list[float] = []
    theirs: list[float] = []
    try:
        wait_for_port(http, orthanc, 60)
        wait_for_port(dicom, orthanc, 60)
        subprocess.run(
            [STORESCU, "-aec", "ORTHANC", LOOPBACK, str(dicom), *map(str, files)],
            check=True,
            env=nodelay_env(),
            capture_output=True,
        )
        study = http_get_json(http, "/studies?expand")[0]["MainDicomTags"][
            "StudyInstanceUID"
        ]
        for number in range(rounds):
            for who in ("movescu", "jivex"):
                if who == "movescu":
                    out = work / f"movescu-{number}"
                    out.mkdir()
                    started = time.perf_counter()
                    subprocess.run(
                        [
                            *(MOVESCU, "-S", "-aet", "MOVESCU", "-aem", "MOVESCU"),
                            *("-aec", "ORTHANC", "+P", str(movescu_port)),
                            *("-od", str(out), "-k", "QueryRetrieveLevel=STUDY"),
                            *("-k", f"StudyInstanceUID={study}", LOOPBACK, str(dicom)),
                        ],
                        check=True,
                        env=nodelay_env(),
                        capture_output=True,
                    )
                    elapsed = time.perf_counter() - started
                    received = len(list(out.iterdir()))
                    shutil.rmtree(out)
                else:
                    data = work / f"jivex-retrieve-{number}"
                    core, client = start_jivex(
                        data,
                        jivex_storage,
                        free_port(),
                        [f"ORTHANC@{LOOPBACK}:{dicom}"],
                        work / "jivex-move.log",
                    )
                    try:
                        started = time.perf_counter()
                        (job,) = client.call(
                            "move", **{"from": "ORTHANC"}, level="STUDY", uids=[study]
                        )
                        job = wait_job(client, job)
                        elapsed = time.perf_counter() - started
                        received = job["completed"]
                    finally:
                        client.close()
                        stop(core)
                    shutil.rmtree(data)
                if received != count:
                    raise RuntimeError(f"{who}: received {received} of {count}")
                (theirs if who == "movescu" else ours).append(elapsed)
                print(f"retrieve round {number + 1} {who:8s} {elapsed:6.2f} s")
    finally:
        stop(orthanc)
    return statistics.median(ours), statistics.median(theirs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    cache = Path(tempfile.gettempdir()) / f"jivex-bench-ct-{args.count}"
    files = generate_study(args.count, cache)
    with tempfile.TemporaryDirectory(prefix="jivex-bench-send-") as tmp:
        work = Path(tmp)
        ours, theirs = bench_send(files, work / "send", args.rounds)
        print(
            f"send: jivex {ours:.1f}/s, storescu {theirs:.1f}/s, "
            f"ratio ours/storescu {ours / theirs:.2f} (target >= 0.8)"
        )
        mine, movescu = bench_retrieve(files, work / "retrieve", args.rounds)
        print(
            f"retrieve: jivex {mine:.2f} s, movescu {movescu:.2f} s, "
            f"ratio movescu/ours {movescu / mine:.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
