"""C-STORE requests written as bytes: the same PDVs as pynetdicom's own."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom.data import get_testdata_file
from pynetdicom.dimse_messages import C_STORE_RQ
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.dsutils import split_dataset

from jivex_core.services import store_requests


def _request(path: Path, originator: tuple[str, int] | None) -> C_STORE:
    req = C_STORE()
    req.MessageID = 7
    req.Priority = 2
    req.AffectedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    req.AffectedSOPInstanceUID = "1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322"
    if originator:
        req.MoveOriginatorApplicationEntityTitle = originator[0]
        req.MoveOriginatorMessageID = originator[1]
    _meta, offset = split_dataset(path)
    req._dataset_path = (path, offset)
    return req


def _pynetdicom_pdvs(req: C_STORE, max_pdu: int) -> list[bytes]:
    msg = C_STORE_RQ()
    msg.primitive_to_message(req)
    return [
        pdata.presentation_data_value_list[0][1] for pdata in msg.encode_msg(1, max_pdu)
    ]


@pytest.mark.parametrize("max_pdu", [16384, 4096, 0])
@pytest.mark.parametrize("originator", [None, ("MOVESCU", 3), ("ODD", 65535)])
def test_the_same_pdvs_as_pynetdicom(max_pdu, originator):
    path = Path(get_testdata_file("CT_small.dcm"))
    req = _request(path, originator)
    ours = [value for _cx, value in store_requests.request_pdvs(req, 1, max_pdu)]
    assert ours == _pynetdicom_pdvs(_request(path, originator), max_pdu)


def test_requests_without_a_file_are_left_to_pynetdicom():
    req = C_STORE()
    req.MessageID = 1
    req.AffectedSOPInstanceUID = "1.2.3"
    assert store_requests.request_pdvs(req, 1, 16384) is None


@pytest.mark.parametrize("max_pdu", [16384, 0])
def test_the_pdus_written_directly_are_those_pynetdicom_writes(max_pdu):
    from pynetdicom.pdu import P_DATA_TF
    from pynetdicom.pdu_primitives import P_DATA

    path = Path(get_testdata_file("CT_small.dcm"))
    pieces = store_requests._pieces(_request(path, ("MOVESCU", 3)), max_pdu)
    ours = b"".join(bytes(b) for b in store_requests.pdus(5, pieces))
    theirs = b""
    for context_id, value in store_requests.request_pdvs(
        _request(path, ("MOVESCU", 3)), 5, max_pdu
    ):
        pdata = P_DATA()
        pdata.presentation_data_value_list.append((context_id, value))
        pdu = P_DATA_TF()
        pdu.from_primitive(pdata)
        theirs += pdu.encode()
    assert ours == theirs


def test_our_files_data_set_offset_is_found_without_pydicom(tmp_path):
    from jivex_core.store import Store

    store = Store(tmp_path, min_free_bytes=0)
    try:
        raw = Path(get_testdata_file("CT_small.dcm")).read_bytes()
        from jivex_core.store.dicomfile import split_file

        parts = split_file(raw)
        store.ingest(parts.data, parts.transfer_syntax, "TEST")
        (stored,) = (tmp_path / "files").rglob("*.dcm")
        _meta, offset = split_dataset(stored)
        assert store_requests.dataset_offset(stored) == offset
    finally:
        store.close()
    other = tmp_path / "plain.dcm"
    other.write_bytes(b"\0" * 200)
    assert store_requests.dataset_offset(other) is None
