"""Storage SCP behaviour: duplicates, bad objects, full disk, AE whitelist,
and the pitfalls seen in the field (TCP_NODELAY, max PDU 0, duplicate
contexts, UN sequences, Deflated)."""

from __future__ import annotations

import re
import socket
import struct
import subprocess
import time
import zlib
from io import BytesIO
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    CTImageStorage,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)
from pynetdicom import AE, _config

from jivex_core.config import build_settings
from jivex_core.services.storage_scp import StorageSCP
from jivex_core.store import Store
from jivex_core.store.dicomfile import encode_file_meta
from jivex_core.uids import new_uid
from tests.helpers import JivexServer, dcmtk, free_port, peer_env

CT_SMALL = Path(get_testdata_file("CT_small.dcm"))


def storescu(port: int, *files: Path, options=("-xe",)) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            dcmtk("storescu"),
            *options,
            "-aec",
            "JIVEX",
            "-aet",
            "MODALITY",
            "127.0.0.1",
            str(port),
            *map(str, files),
        ],
        capture_output=True,
        text=True,
        env=peer_env(),
        timeout=120,
    )


def scu_store(port: int, path_or_ds, *, contexts=None, max_pdu=16382):
    """C-STORE with pynetdicom; returns the status value (or raises)."""
    ae = AE(ae_title="TESTSCU")
    ae.maximum_pdu_size = max_pdu
    for sop_class, syntaxes in contexts or [
        (CTImageStorage, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
    ]:
        ae.add_requested_context(sop_class, syntaxes)
    assoc = ae.associate("127.0.0.1", port, ae_title="JIVEX")
    assert assoc.is_established
    try:
        status = assoc.send_c_store(path_or_ds)
        return int(status.Status)
    finally:
        assoc.release()


def raw_file(
    tmp_path: Path, data: bytes, ts=ExplicitVRLittleEndian, sop_uid: str | None = None
) -> Path:
    """A file whose data set bytes are *data*, sent as they are (chunked)."""
    path = tmp_path / f"raw-{new_uid()}.dcm"
    path.write_bytes(encode_file_meta(CTImageStorage, sop_uid or new_uid(), ts) + data)
    return path


@pytest.fixture
def chunked_send():
    _config.STORE_SEND_CHUNKED_DATASET = True
    yield
    _config.STORE_SEND_CHUNKED_DATASET = False


def test_same_instance_twice_is_kept_once(jivex_server):
    first = storescu(jivex_server.port, CT_SMALL)
    assert first.returncode == 0, first.stderr
    rows = jivex_server.ls()
    assert len(rows) == 1
    stored = Path(rows[0]["path"])
    before = (stored.stat().st_ino, stored.stat().st_mtime_ns, stored.read_bytes())

    second = storescu(jivex_server.port, CT_SMALL, options=("-xe", "-d"))
    assert second.returncode == 0, second.stderr
    assert re.search(r"DIMSE Status +: 0x0000: Success", second.stderr)
    assert len(jivex_server.ls()) == 1
    after = (stored.stat().st_ino, stored.stat().st_mtime_ns, stored.read_bytes())
    assert after == before


def test_garbage_is_refused_with_c000_and_nothing_is_lost(
    jivex_server, tmp_path, chunked_send
):
    assert scu_store(jivex_server.port, CT_SMALL) == 0x0000
    kept = Path(jivex_server.ls()[0]["path"]).read_bytes()

    rng = np.random.default_rng(7)
    garbage = raw_file(tmp_path, rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    assert scu_store(jivex_server.port, garbage) == 0xC000
    truncated_header = raw_file(tmp_path, b"\x08\x00\x16\x00UI\xff\x7f1.2")
    assert scu_store(jivex_server.port, truncated_header) == 0xC000

    # Still serving, and the object stored before is untouched.
    other = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    assert (
        scu_store(
            jivex_server.port,
            other,
            contexts=[(other.SOPClassUID, [ExplicitVRLittleEndian])],
        )
        == 0x0000
    )
    rows = jivex_server.ls()
    assert len(rows) == 2
    assert Path(rows[0]["path"]).read_bytes() == kept
    assert not list((jivex_server.data_dir / "incoming").iterdir())
    assert "refused with 0xC000" in jivex_server.log()


def test_full_disk_answers_a700(tmp_path):
    config = tmp_path / "jivex.toml"
    # A reserve larger than any disk: every store would go below it.
    config.write_text("[storage]\nmin_free_space_mb = 1e12\n")
    server = JivexServer(tmp_path / "data", config=config).start()
    try:
        assert scu_store(server.port, CT_SMALL) == 0xA700
        assert server.ls() == []
        assert "below the reserve" in server.log()
    finally:
        assert server.stop() == 0


def test_calling_ae_not_whitelisted_is_rejected(tmp_path):
    config = tmp_path / "jivex.toml"
    config.write_text('[network]\naccepted_calling_aets = ["MODALITY"]\n')
    server = JivexServer(tmp_path / "data", config=config).start()
    try:
        echo = [dcmtk("echoscu"), "-aec", "JIVEX", "127.0.0.1", str(server.port)]
        bad = subprocess.run(
            [*echo, "-aet", "INTRUDER"],
            capture_output=True,
            text=True,
            env=peer_env(),
            timeout=60,
        )
        assert bad.returncode != 0
        assert "Association Rejected" in bad.stdout + bad.stderr
        good = subprocess.run(
            [*echo, "-aet", "MODALITY"],
            capture_output=True,
            text=True,
            env=peer_env(),
            timeout=60,
        )
        assert good.returncode == 0, good.stdout + good.stderr
        assert storescu(server.port, CT_SMALL).returncode == 0
        assert len(server.ls()) == 1
    finally:
        server.stop()


@pytest.fixture
def inproc_scp(tmp_path):
    """The Storage SCP in this process, so its sockets can be inspected."""
    settings = build_settings(
        {
            "network": {
                "bind_address": "127.0.0.1",
                "storage_port": free_port(),
                "query_port": free_port(),
            },
            "storage": {"data_dir": str(tmp_path / "data"), "min_free_space_mb": 0},
        }
    )
    store = Store(settings.data_dir, min_free_bytes=0)
    scp = StorageSCP(settings, store)
    scp.start()
    yield scp
    scp.stop(timeout=5)
    store.close()


def test_sockets_set_tcp_nodelay(inproc_scp):
    ae = AE(ae_title="TESTSCU")
    ae.add_requested_context("1.2.840.10008.1.1")
    assoc = ae.associate("127.0.0.1", inproc_scp.port, ae_title="JIVEX")
    try:
        assert assoc.is_established
        server_side = inproc_scp.ae.active_associations[0]
        sock = server_side.dul.socket.socket
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        assoc.release()


def test_peer_max_pdu_zero_means_unlimited(inproc_scp):
    ds = pydicom.dcmread(CT_SMALL)
    ds.SOPInstanceUID = new_uid()
    # A larger object than any PDU a limit would allow in one piece.
    ds.Rows = ds.Columns = 512
    ds.PixelData = np.arange(512 * 512, dtype=np.int16).tobytes()
    assert scu_store(inproc_scp.port, ds, max_pdu=0) == 0x0000
    ae = AE(ae_title="TESTSCU")
    ae.maximum_pdu_size = 0
    ae.add_requested_context("1.2.840.10008.1.1")
    assoc = ae.associate("127.0.0.1", inproc_scp.port, ae_title="JIVEX")
    assert assoc.is_established
    assert int(assoc.send_c_echo().Status) == 0
    assoc.release()
    assert inproc_scp.store.index.count_instances() == 1


def test_two_contexts_with_the_same_abstract_syntax(inproc_scp):
    ae = AE(ae_title="TESTSCU")
    ae.add_requested_context(CTImageStorage, ImplicitVRLittleEndian)
    ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", inproc_scp.port, ae_title="JIVEX")
    assert assoc.is_established
    assert len(assoc.accepted_contexts) == 2
    statuses = []
    for implicit in (True, False):
        ds = pydicom.dcmread(CT_SMALL)
        ds.SOPInstanceUID = new_uid()
        ds.set_original_encoding(implicit, True)
        ds.file_meta.TransferSyntaxUID = (
            ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
        )
        statuses.append(int(assoc.send_c_store(ds).Status))
    assoc.release()
    assert statuses == [0, 0]
    stored = {
        r["TransferSyntaxUID"]
        for r in inproc_scp.store.index.listing("instance", inproc_scp.store.data_dir)
    }
    assert stored == {ImplicitVRLittleEndian, ExplicitVRLittleEndian}


def _explicit(tag: int, vr: bytes, value: bytes) -> bytes:
    group, elem = tag >> 16, tag & 0xFFFF
    if vr in (b"OB", b"UN", b"SQ", b"UT"):
        return (
            struct.pack("<HH", group, elem)
            + vr
            + struct.pack("<HI", 0, len(value))
            + value
        )
    return struct.pack("<HH", group, elem) + vr + struct.pack("<H", len(value)) + value


def test_un_with_undefined_length_is_kept_and_what_follows_parses(
    inproc_scp, tmp_path, chunked_send
):
    sop_uid = new_uid()
    # An implicit VR item inside a UN element of undefined length (PS3.5
    # 6.2.2): a private sequence as a gateway that did not know it forwards it.
    item_body = struct.pack("<HHI", 0x0009, 0x1001, 4) + b"ABCD"
    item = struct.pack("<HHI", 0xFFFE, 0xE000, len(item_body)) + item_body
    un = (
        struct.pack("<HH", 0x0009, 0x1010)
        + b"UN"
        + struct.pack("<HI", 0, 0xFFFFFFFF)
        + item
        + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
    )
    data = b"".join(
        [
            _explicit(0x00080016, b"UI", CTImageStorage.encode() + b"\x00"),
            _explicit(
                0x00080018,
                b"UI",
                sop_uid.encode() + (b"\x00" if len(sop_uid) % 2 else b""),
            ),
            _explicit(0x00080060, b"CS", b"CT"),
            _explicit(0x00090010, b"LO", b"ACME 1.0"),
            un,
            _explicit(0x00100010, b"PN", b"AFTER^UN"),
            _explicit(0x00100020, b"LO", b"UN-TEST "),
            _explicit(0x0020000D, b"UI", b"1.2.3.4.5.6\x00"),
            _explicit(0x0020000E, b"UI", b"1.2.3.4.5.6.7"),
        ]
    )
    assert scu_store(inproc_scp.port, raw_file(tmp_path, data, sop_uid=sop_uid)) == 0
    row = inproc_scp.store.index.listing("instance", inproc_scp.store.data_dir)[0]
    assert row["PatientName"] == "AFTER^UN"
    assert row["PatientID"] == "UN-TEST"
    stored = Path(row["path"]).read_bytes()
    assert stored.endswith(data)
    back = pydicom.dcmread(row["path"])
    assert back.PatientName == "AFTER^UN"


def test_deflated_objects_read_back(inproc_scp, tmp_path):
    original = pydicom.dcmread(get_testdata_file("image_dfl.dcm"))
    result = storescu(
        inproc_scp.port, Path(get_testdata_file("image_dfl.dcm")), options=("-xd",)
    )
    assert result.returncode == 0, result.stderr
    row = inproc_scp.store.index.listing("instance", inproc_scp.store.data_dir)[0]
    assert row["TransferSyntaxUID"] == DeflatedExplicitVRLittleEndian
    raw = Path(row["path"]).read_bytes()
    meta_len = int.from_bytes(raw[140:144], "little")
    zlib.decompress(raw[144 + meta_len :], -zlib.MAX_WBITS)  # really deflated
    back = pydicom.dcmread(row["path"])
    assert back.file_meta.TransferSyntaxUID == DeflatedExplicitVRLittleEndian
    assert np.array_equal(back.pixel_array, original.pixel_array)
    dump = subprocess.run(
        [dcmtk("dcmdump"), row["path"]], capture_output=True, text=True
    )
    assert dump.returncode == 0 and "PixelData" in dump.stdout


def test_file_meta_is_ours():
    meta = encode_file_meta(CTImageStorage, "1.2.3.4", ExplicitVRLittleEndian, "MOD")
    ds = pydicom.dcmread(BytesIO(meta + _explicit(0x00080060, b"CS", b"CT")))
    assert ds.file_meta.ImplementationClassUID.startswith("1.2.826.0.1.3680043.8.498.")
    assert ds.file_meta.SourceApplicationEntityTitle == "MOD"
    assert ds.file_meta.MediaStorageSOPInstanceUID == "1.2.3.4"
    assert ds.Modality == "CT"
    assert isinstance(ds.file_meta, FileMetaDataset)
    assert isinstance(ds, Dataset)


@pytest.mark.parametrize(
    "proposed",
    [
        [ImplicitVRLittleEndian, ExplicitVRLittleEndian],
        [ExplicitVRLittleEndian, ImplicitVRLittleEndian],
        ["1.2.840.10008.1.2.4.70", ExplicitVRLittleEndian],
        ["1.2.840.10008.1.2.4.999", ExplicitVRLittleEndian],  # unknown first
    ],
)
def test_first_proposed_supported_syntax_is_accepted(inproc_scp, proposed):
    ae = AE(ae_title="TESTSCU")
    ae.add_requested_context(CTImageStorage, proposed)
    assoc = ae.associate("127.0.0.1", inproc_scp.port, ae_title="JIVEX")
    try:
        assert assoc.is_established
        (accepted,) = assoc.accepted_contexts
        expected = next(ts for ts in proposed if not ts.endswith(".999"))
        assert accepted.transfer_syntax[0] == expected
    finally:
        assoc.release()


def test_unknown_sop_class_context_is_rejected_and_others_accepted(inproc_scp):
    ae = AE(ae_title="TESTSCU")
    ae.add_requested_context("1.2.3.4.5.6.7.8.9", ExplicitVRLittleEndian)
    ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", inproc_scp.port, ae_title="JIVEX")
    try:
        assert assoc.is_established
        assert [cx.abstract_syntax for cx in assoc.accepted_contexts] == [
            CTImageStorage
        ]
        assert len(assoc.rejected_contexts) == 1
    finally:
        assoc.release()


def test_retired_and_private_classes_are_stored(inproc_scp):
    for sop_class in ("1.2.840.10008.5.1.4.1.1.6", "1.2.276.0.50.1.33"):
        ds = pydicom.dcmread(CT_SMALL)
        ds.SOPClassUID = sop_class
        ds.SOPInstanceUID = new_uid()
        ds.file_meta.MediaStorageSOPClassUID = sop_class
        assert (
            scu_store(
                inproc_scp.port, ds, contexts=[(sop_class, [ExplicitVRLittleEndian])]
            )
            == 0
        )
    assert inproc_scp.store.index.count_instances() == 2


def test_peer_abort_is_logged_with_its_source(inproc_scp, caplog):
    caplog.set_level("INFO", logger="jivex_core")
    ae = AE(ae_title="ABORTER")
    ae.add_requested_context("1.2.840.10008.1.1")
    assoc = ae.associate("127.0.0.1", inproc_scp.port, ae_title="JIVEX")
    assert assoc.is_established
    assoc.abort()
    deadline = time.monotonic() + 10
    while "A-ABORT from 'ABORTER'" not in caplog.text and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "A-ABORT from 'ABORTER'" in caplog.text
    assert "source: service user" in caplog.text


def test_sop_class_not_of_the_context_is_refused_0122(inproc_scp):
    from pynetdicom.dimse_primitives import C_STORE
    from pynetdicom.sop_class import MRImageStorage

    ds = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    ae = AE(ae_title="TESTSCU")
    ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", inproc_scp.port, ae_title="JIVEX")
    try:
        req = C_STORE()
        req.MessageID = 1
        req.AffectedSOPClassUID = MRImageStorage
        req.AffectedSOPInstanceUID = ds.SOPInstanceUID
        req.Priority = 2
        raw = Path(get_testdata_file("MR_small.dcm")).read_bytes()
        req.DataSet = BytesIO(raw[144 + int.from_bytes(raw[140:144], "little") :])
        # As pynetdicom's own send_* methods do: pause its reactor first.
        assoc._reactor_checkpoint.clear()
        while not assoc._is_paused:
            time.sleep(0.0001)
        assoc.dimse.send_msg(req, assoc.accepted_contexts[0].context_id)
        _, rsp = assoc.dimse.get_msg(block=True)
        assoc._reactor_checkpoint.set()
        assert int(rsp.Status) == 0x0122
    finally:
        assoc.release()
    assert inproc_scp.store.index.count_instances() == 0


def test_data_set_of_another_class_is_refused_a900(inproc_scp, tmp_path, chunked_send):
    mr = Path(get_testdata_file("MR_small.dcm")).read_bytes()
    data = mr[144 + int.from_bytes(mr[140:144], "little") :]
    # The File Meta (and so the request) says CT; the data set is MR.
    assert scu_store(inproc_scp.port, raw_file(tmp_path, data)) == 0xA900
    ds = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    path = tmp_path / "other-instance.dcm"
    path.write_bytes(
        encode_file_meta(ds.SOPClassUID, new_uid(), ExplicitVRLittleEndian) + data
    )
    assert (
        scu_store(
            inproc_scp.port, path, contexts=[(ds.SOPClassUID, [ExplicitVRLittleEndian])]
        )
        == 0xC000
    )
    assert inproc_scp.store.index.count_instances() == 0
