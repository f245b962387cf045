"""DCMTK's storescu sends every real file we have to `jivex server`.

What the product stored is compared with what was on the wire: the same
storescu run is repeated against DCMTK's storescp in bit-preserving mode
(`+B`), as PEERS.md advises, because storescu itself may decompress or
re-encode what it reads. Files that share a SOP Instance UID go to separate
rounds (a fresh archive each), since an archive keeps the first of them.
"""

from __future__ import annotations

import subprocess
import warnings
from collections import defaultdict
from pathlib import Path

import pydicom
import pytest

from tests.corpus import CorpusFile, readable_files
from tests.helpers import (
    JivexServer,
    dcmtk,
    free_port,
    peer_env,
    run_jivex,
    wait_for_port,
)

pytestmark = pytest.mark.interop

#: storescu's option that proposes a file's own transfer syntax.
STORESCU_OPTION = {
    "1.2.840.10008.1.2": "-xi",
    "1.2.840.10008.1.2.1": "-xe",
    "1.2.840.10008.1.2.2": "-xb",
    "1.2.840.10008.1.2.1.99": "-xd",
    "1.2.840.10008.1.2.4.50": "-xy",
    "1.2.840.10008.1.2.4.51": "-xx",
    "1.2.840.10008.1.2.4.70": "-xs",
    "1.2.840.10008.1.2.4.80": "-xt",
    "1.2.840.10008.1.2.4.81": "-xu",
    "1.2.840.10008.1.2.4.90": "-xv",
    "1.2.840.10008.1.2.4.91": "-xw",
    "1.2.840.10008.1.2.5": "-xr",
}


def _storescu(option: str, port: int, aec: str, files: list[Path]) -> str:
    args = [
        dcmtk("storescu"),
        "-nh",
        "-R",
        option,
        "-aet",
        "MODALITY",
        "-aec",
        aec,
        "127.0.0.1",
        str(port),
        *map(str, files),
    ]
    run = subprocess.run(
        args, capture_output=True, text=True, env=peer_env(), timeout=600
    )
    return run.stdout + run.stderr


def _received_by_uid(folder: Path) -> dict[str, Path]:
    out = {}
    for path in folder.iterdir():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        out[str(ds.SOPInstanceUID)] = path
    return out


def _read(path: Path) -> pydicom.Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(path)


def _dataset_bytes(path: Path) -> bytes:
    raw = path.read_bytes()
    meta_len = int.from_bytes(raw[140:144], "little")  # (0002,0000) value
    return raw[144 + meta_len :]


def _rounds() -> list[list[CorpusFile]]:
    rounds: dict[int, list[CorpusFile]] = defaultdict(list)
    for item in readable_files():
        rounds[item.occurrence].append(item)
    return [rounds[k] for k in sorted(rounds)]


def test_corpus_is_large_enough():
    """Guard: the corpus really holds the shared data and pydicom's files."""
    files = readable_files()
    assert len(files) > 600
    assert any("shared" in f.path.parts for f in files)
    assert any("test_files" in f.path.parts for f in files)


@pytest.mark.parametrize("round_no", range(len(_rounds())))
def test_storescu_sends_every_readable_file(tmp_path, round_no):
    files = _rounds()[round_no]
    server = JivexServer(tmp_path / "data").start()
    ref_dir = tmp_path / "storescp"
    ref_dir.mkdir()
    ref_port = free_port()
    storescp = subprocess.Popen(
        [
            dcmtk("storescp"),
            "+B",
            "+xa",
            "-aet",
            "STORESCP",
            "-od",
            str(ref_dir),
            str(ref_port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=peer_env(),
    )
    try:
        wait_for_port(ref_port, storescp)
        groups: dict[str, list[CorpusFile]] = defaultdict(list)
        for item in files:
            if item.has_meta:
                groups[STORESCU_OPTION.get(item.transfer_syntax, "-x=")].append(item)
        logs = []
        for option, items in groups.items():
            paths = [i.path for i in items]
            logs.append(_storescu(option, ref_port, "STORESCP", paths))
            logs.append(_storescu(option, server.port, "JIVEX", paths))
    finally:
        storescp.terminate()
        storescp.wait(10)

    # What could not go over the wire (no File Meta, or a syntax storescu can
    # neither send nor decode) is imported instead: it must be stored too.
    on_wire = _received_by_uid(ref_dir)
    not_sent = [f for f in files if f.sop_instance_uid not in on_wire]
    refused: dict[str, str] = {}
    if not_sent:
        imported = run_jivex(
            "import", "--data", str(server.data_dir), *[str(f.path) for f in not_sent]
        )
        assert imported.returncode == 0, imported.stderr
        for line in imported.stderr.splitlines():
            if line.startswith("skipped: "):
                path, _, reason = line.removeprefix("skipped: ").partition(": ")
                refused[path] = reason
    stored = {row["SOPInstanceUID"]: row for row in server.ls("instance")}
    assert server.stop() == 0, server.log()

    # The one refusal allowed: bytes no transfer syntax describes (implicit
    # VR labelled as a compressed syntax), which DCMTK cannot read either;
    # storing them would file an object no reader can open.
    missing = [
        str(f.path)
        for f in files
        if f.sop_instance_uid not in stored
        and "encoded in Implicit VR" not in refused.get(str(f.path), "")
    ]
    assert not missing, f"not stored: {missing}\n" + "\n".join(logs)[-4000:]
    if refused:
        print(f"round {round_no}: refused on import: {refused}")

    mismatched = []
    for uid, ref_path in on_wire.items():
        ours = Path(stored[uid]["path"])
        ref_ds, our_ds = _read(ref_path), _read(ours)
        if ref_ds.file_meta.TransferSyntaxUID == our_ds.file_meta.TransferSyntaxUID:
            same = _dataset_bytes(ref_path) == _dataset_bytes(ours)
        else:
            same = ref_ds == our_ds
        if not same or stored[uid]["SOPClassUID"] != str(ref_ds.SOPClassUID):
            mismatched.append(str(ref_path))
    assert not mismatched, f"stored data set differs from the wire: {mismatched}"
    print(
        f"round {round_no}: {len(on_wire)} sent by storescu, "
        f"{len(not_sent)} imported: {[str(f.path.name) for f in not_sent]}"
    )
