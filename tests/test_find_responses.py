"""C-FIND answers written as bytes: the same bytes pydicom and pynetdicom write.

Every case is encoded both ways, in each of the three syntaxes the Q/R SCP
accepts; what the fast path must decline is checked to be declined.
"""

from __future__ import annotations

import logging
from io import BytesIO

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pynetdicom import _handlers, evt, service_class
from pynetdicom.dimse_messages import C_FIND_RSP
from pynetdicom.dimse_primitives import C_ECHO, C_FIND
from pynetdicom.dsutils import encode

from jivex_core.config import Settings
from jivex_core.services import find_responses
from jivex_core.services.find_responses import (
    EncodedIdentifier,
    pending_find_response,
)
from jivex_core.services.qr_scp import QueryRetrieveSCP

IMPLICIT, EXPLICIT, BIG = (
    "1.2.840.10008.1.2",
    "1.2.840.10008.1.2.1",
    "1.2.840.10008.1.2.2",
)
SYNTAXES = {IMPLICIT: (True, True), EXPLICIT: (False, True), BIG: (False, False)}
STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"


@pytest.fixture(scope="module")
def scp():
    return QueryRetrieveSCP(Settings(), store=None)  # encoding needs no store


def _request(**keys) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    for keyword, value in keys.items():
        setattr(ds, keyword, value)
    return ds


def _both_ways(scp, request, row, syntax):
    answers = scp._flat_answers(request, "STUDY", syntax)
    fast = answers.encode(row) if answers is not None else None
    slow = encode(scp._response(request, "STUDY", row), *SYNTAXES[syntax])
    return fast, slow


BROWSER = _request(
    SpecificCharacterSet="",
    PatientName="",
    PatientID="P1",
    PatientBirthDate="",
    StudyDate="20230101-20230331",
    StudyTime="",
    StudyInstanceUID="",  # UI: padded with NUL
    AccessionNumber="",
    StudyDescription="",
    ReferringPhysicianName="",
    ModalitiesInStudy="",
    NumberOfStudyRelatedSeries="",
    NumberOfStudyRelatedInstances="",
    RetrieveAETitle="",  # asked for: ours comes back
)
ROWS = [
    {
        "PatientName": "SMITH^JOHN^A",
        "PatientID": "P1",
        "PatientBirthDate": "19600101",
        "StudyDate": "20230102",
        "StudyTime": "120000",
        "StudyInstanceUID": "1.2.3.45",
        "AccessionNumber": "A1",
        "StudyDescription": "CT THORAX",
        "ReferringPhysicianName": "",
        "ModalitiesInStudy": ["CT", "PT"],
        "NumberOfStudyRelatedSeries": 3,
        "NumberOfStudyRelatedInstances": 120,
    },
    # Odd lengths everywhere, one value, missing keys, empty lists.
    {
        "PatientName": "DOE^J",
        "PatientID": "P12",
        "StudyInstanceUID": "1.2.3.4",
        "ModalitiesInStudy": ["MR"],
        "NumberOfStudyRelatedSeries": 0,
    },
    {"PatientName": "", "ModalitiesInStudy": [], "StudyDescription": "A\\B"},
]


@pytest.mark.parametrize("syntax", SYNTAXES)
@pytest.mark.parametrize("row", ROWS)
def test_plain_answers_are_the_bytes_pydicom_writes(scp, syntax, row):
    fast, slow = _both_ways(scp, BROWSER, row, syntax)
    assert fast is not None
    assert fast == slow


@pytest.mark.parametrize("syntax", SYNTAXES)
def test_long_length_text_vrs_and_private_elements(scp, syntax):
    request = _request(PatientID="")
    request.add_new(0x00081190, "UR", "")  # Retrieve URL
    request.add_new(0x00400280, "ST", "")  # Comments on the Performed Step
    request.add_new(0x00091010, "LO", "")  # private, not in the index
    request.add_new(0x00080000, "UL", 0)  # a group length: never written
    row = {"PatientID": "X", "RetrieveURL": "http://127.0.0.1/wado"}
    fast, slow = _both_ways(scp, request, row, syntax)
    assert fast is not None
    assert fast == slow


@pytest.mark.filterwarnings("ignore:A value of type")
@pytest.mark.parametrize(
    ("request_", "row"),
    [
        # Not ASCII: pydicom chooses the character set.
        (_request(PatientName=""), {"PatientName": "MÜLLER^HANS"}),
        # Binary and sequence elements.
        (_request(PatientID="", Rows=None), {"Rows": 16}),  # US
        (_request(PatientID="", ProcedureCodeSequence=Sequence()), {}),
        # A type that is not text for the VR (pydicom refuses it too).
        (_request(PatientID=""), {"PatientID": 12}),
        (_request(PatientID=""), {"PatientID": 1.5}),
    ],
)
def test_what_is_not_plain_text_is_left_to_pydicom(scp, request_, row):
    answers = scp._flat_answers(request_, "STUDY", EXPLICIT)
    assert answers.encode(row) is None
    # ... and the answer the SCP yields is then the Dataset pydicom writes.
    ds = scp._identifier(answers, request_, "STUDY", row)
    assert type(ds) is Dataset


@pytest.mark.filterwarnings("ignore:The value length")
def test_values_too_long_for_a_short_length_field(scp):
    request = _request(StudyDescription="")
    row = {"StudyDescription": "X" * 70_000}
    assert scp._flat_answers(request, "STUDY", EXPLICIT).encode(row) is None
    fast, slow = _both_ways(scp, request, row, IMPLICIT)
    assert fast == slow  # implicit VR has a 4-byte length


def test_no_bytes_while_identifiers_are_logged_or_for_other_syntaxes():
    logged = Settings.model_validate({"logging": {"dump_datasets": True}})
    scp = QueryRetrieveSCP(logged, store=None)
    assert scp._flat_answers(BROWSER, "STUDY", EXPLICIT) is None
    plain = QueryRetrieveSCP(Settings(), store=None)
    assert plain._flat_answers(BROWSER, "STUDY", "1.2.840.10008.1.2.1.99") is None


def test_an_encoded_identifier_passes_pynetdicoms_encode():
    built = _request(PatientID="P1")
    ident = EncodedIdentifier(
        b"\x10\x00\x20\x00\x02\x00\x00\x00P1", (True, True), lambda: built
    )
    assert service_class.encode(ident, True, True) == ident.encoded
    # Asked for another syntax, it is built and encoded by pydicom.
    assert service_class.encode(ident, False, True) == encode(built, False, True)
    assert service_class.encode(built, False, True) == encode(built, False, True)


def _pending(status=0xFF00, message_id=7, uid=STUDY_ROOT_FIND, identifier=b"x" * 300):
    rsp = C_FIND()
    rsp.MessageIDBeingRespondedTo = message_id
    rsp.AffectedSOPClassUID = uid
    rsp.Status = status
    rsp.Identifier = BytesIO(identifier)
    return rsp


def _pynetdicoms(rsp, max_pdu):
    msg = C_FIND_RSP()
    msg.primitive_to_message(rsp)
    return [p.presentation_data_value_list for p in msg.encode_msg(3, max_pdu)]


@pytest.mark.parametrize("max_pdu", [0, 16384, 64, 7])
@pytest.mark.parametrize(
    "rsp",
    [
        _pending(),
        _pending(status=0xFF01, message_id=65535),
        _pending(uid="1.2.840.10008.5.1.4.1.2.1.1"),  # odd length: NUL pad
        _pending(identifier=b"y" * 70_000),
    ],
)
def test_pending_responses_are_the_pdus_pynetdicom_sends(rsp, max_pdu):
    ours = pending_find_response(rsp, 3, max_pdu)
    assert ours is not None
    assert [p.presentation_data_value_list for p in ours] == _pynetdicoms(rsp, max_pdu)


def test_other_responses_go_through_pynetdicom():
    final = _pending(status=0x0000)
    final.Identifier = None
    failed = _pending(status=0xA900)
    failed.ErrorComment = "bad"
    commented = _pending(status=0xFF00)
    commented.ErrorComment = "odd"
    empty = _pending(identifier=b"")
    request = _pending()
    request.MessageIDBeingRespondedTo = None
    request.MessageID = 1
    echo = C_ECHO()
    echo.MessageIDBeingRespondedTo = 1
    echo.Status = 0xFF00
    for primitive in (final, failed, commented, empty, request, echo):
        assert pending_find_response(primitive, 1, 16384) is None


class _Listening:
    """An association with one EVT_DIMSE_SENT handler bound."""

    def __init__(self, handler):
        self.handler = handler

    def get_handlers(self, event):
        assert event is evt.EVT_DIMSE_SENT
        return [(self.handler, None)]


def test_a_message_someone_listens_to_is_built_by_pynetdicom(caplog):
    assert not find_responses.only_quiet_listeners(_Listening(print))
    standard = _Listening(_handlers.standard_dimse_sent_handler)
    with caplog.at_level(logging.WARNING, logger="pynetdicom"):
        assert find_responses.only_quiet_listeners(standard)
    # pynetdicom's own message log, when on, gets its message.
    with caplog.at_level(logging.DEBUG, logger="pynetdicom"):
        assert not find_responses.only_quiet_listeners(standard)
