"""The receive path's data set walk and File Meta encoding."""

from __future__ import annotations

import logging
import struct
import warnings
import zlib

import pydicom
import pytest
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian
from pynetdicom.dsutils import encode

from jivex_core.errors import CannotUnderstandError
from jivex_core.store import dicomfile
from jivex_core.store.dicomfile import parse_dataset, split_file
from jivex_core.store.index import INDEX_TAGS, InstanceRecord
from tests.corpus import readable_files

EXPLICIT = "1.2.840.10008.1.2.1"


def _el(group: int, elem: int, vr: bytes, value: bytes) -> bytes:
    if vr in (b"OB", b"SQ", b"UN", b"UT"):
        return struct.pack("<HH2sHI", group, elem, vr, 0, len(value)) + value
    return struct.pack("<HH2sH", group, elem, vr, len(value)) + value


IDENTITY = _el(0x0008, 0x0016, b"UI", b"1.2.840.10008.5.1.4.1.1.7\x00") + _el(
    0x0008, 0x0018, b"UI", b"1.2.3.4"
)


def test_strict_walk_agrees_with_pydicom_on_every_corpus_file():
    """Both readers index every real file the same way; few need pydicom."""
    fallbacks, compared = [], 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.disable(logging.WARNING)
        try:
            for item in readable_files():
                try:
                    parts = split_file(item.path.read_bytes())
                except CannotUnderstandError:
                    continue
                data = parts.data
                if parts.transfer_syntax == DeflatedExplicitVRLittleEndian:
                    data = zlib.decompress(data, -zlib.MAX_WBITS)
                encoding = dicomfile.transfer_syntax_encoding(parts.transfer_syntax)
                try:
                    fast = dicomfile._scan(data, *encoding)
                except dicomfile._Malformed:
                    fallbacks.append(item.path.name)
                    continue
                try:
                    slow, _ = dicomfile._read_tolerantly(data, *encoding)
                except CannotUnderstandError:
                    continue
                # Decode every element with pydicom, so that the record of
                # the slow side never takes the raw ASCII shortcut.
                for _elem in slow:
                    pass
                assert InstanceRecord.from_dataset(fast) == InstanceRecord.from_dataset(
                    slow
                ), item.path
                compared += 1
        finally:
            logging.disable(logging.NOTSET)
    assert compared > 600
    assert len(fallbacks) < 10, fallbacks


def test_nested_sequences_with_undefined_lengths():
    inner = _el(0x0008, 0x0100, b"SH", b"CODE01")
    item = struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF) + inner
    item += struct.pack("<HHI", 0xFFFE, 0xE00D, 0)
    seq = struct.pack("<HH2sHI", 0x0040, 0x0275, b"SQ", 0, 0xFFFFFFFF) + item
    seq += struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
    data = IDENTITY + seq + _el(0x0040, 0x0280, b"ST", b"after ")
    ds = parse_dataset(data, EXPLICIT).dataset
    assert ds.RequestAttributesSequence[0].CodeValue == "CODE01"
    assert ds[0x00400280].value == "after"


def test_a_sequence_that_never_ends_is_not_understood():
    tail = struct.pack("<HH2sHI", 0x0040, 0x0275, b"SQ", 0, 0xFFFFFFFF)
    tail += struct.pack("<HHI", 0xFFFE, 0xE000, 0)
    with pytest.raises(CannotUnderstandError):
        parse_dataset(IDENTITY + tail, EXPLICIT)


def test_an_oversized_item_is_tolerated_with_a_warning(caplog):
    """Policy: warn and store what pydicom can still read (level 2 keeps the
    bytes as received); the strict walk names what is wrong."""
    tail = struct.pack("<HH2sHI", 0x0040, 0x0275, b"SQ", 0, 16)
    tail += struct.pack("<HHI", 0xFFFE, 0xE000, 400) + b"\x00" * 8
    ds = parse_dataset(IDENTITY + tail, EXPLICIT).dataset
    assert ds.SOPInstanceUID == "1.2.3.4"
    assert "not well-formed (item at offset" in caplog.text


def test_a_last_element_cut_short_is_tolerated(caplog):
    data = (
        IDENTITY
        + _el(0x0010, 0x0010, b"PN", b"CUT^SHORT ")
        + struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OB", 0, 1000)
        + b"\x01" * 999
    )
    parsed = parse_dataset(data, EXPLICIT)
    assert parsed.dataset.PatientName == "CUT^SHORT"
    assert parsed.truncated
    assert "ends inside (7FE0,0010)" in caplog.text


def test_missing_identity_is_not_understood():
    with pytest.raises(CannotUnderstandError, match="no SOPInstanceUID"):
        parse_dataset(_el(0x0008, 0x0016, b"UI", b"1.2.3\x00"), EXPLICIT)
    with pytest.raises(CannotUnderstandError, match="not a UID"):
        parse_dataset(
            _el(0x0008, 0x0016, b"UI", b"1.2.3\x00")
            + _el(0x0008, 0x0018, b"UI", "1.2.ü".encode("latin-1")),
            EXPLICIT,
        )


def test_deflated_garbage_is_not_understood():
    with pytest.raises(CannotUnderstandError, match="does not inflate"):
        parse_dataset(b"\xff" * 64, DeflatedExplicitVRLittleEndian)


def test_implicit_bytes_on_an_explicit_context_are_filed_as_implicit(caplog):
    implicit = (
        struct.pack("<HHI", 0x0008, 0x0016, 26) + b"1.2.840.10008.5.1.4.1.1.7\x00"
    )
    implicit += struct.pack("<HHI", 0x0008, 0x0018, 8) + b"1.2.3.4\x00"
    parsed = parse_dataset(implicit, EXPLICIT)
    assert parsed.transfer_syntax == "1.2.840.10008.1.2"
    assert parsed.dataset.SOPInstanceUID == "1.2.3.4"
    assert "stored as Implicit VR Little Endian" in caplog.text
    with pytest.raises(CannotUnderstandError, match="does not allow"):
        parse_dataset(implicit, "1.2.840.10008.1.2.4.50")


def _person_name_data_set(charset: str, name: bytes) -> bytes:
    ds = pydicom.Dataset()
    ds.SpecificCharacterSet = charset.split("\\")
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = "1.2.3.4"
    ds.PatientName = "x" * len(name)
    data = encode(ds, False, True)
    assert data is not None
    return data.replace(b"x" * len(name), name)


@pytest.mark.parametrize(
    ("charset", "raw", "name"),
    [
        # The switch back to Latin-1 before '^' left to the reader.
        (
            "ISO 2022 IR 100\\ISO 2022 IR 144",
            b"\x1b-L\xb8\xd2\xd0\xdd\xde\xd2^J\xfcrgen",
            "Иванов^Jürgen",
        ),
        # ... and written out.
        (
            "ISO 2022 IR 100\\ISO 2022 IR 144",
            b"\x1b-L\xb8\xd2\xd0\xdd\xde\xd2\x1b-A^J\xfcrgen",
            "Иванов^Jürgen",
        ),
        # Korean in G1, then Latin-1 in G1 again after the '^'.
        (
            "ISO 2022 IR 100\\ISO 2022 IR 149",
            b"\xe7^\x1b$)C\xa4\xba^\xe7",
            "ç^ㅊ^ç",
        ),
        # In JIS X 0208, $^ is one kana: 05/14 is no delimiter there.
        (
            "\\ISO 2022 IR 87",
            b"\x1b$B$d$^$@\x1b(B^\x1b$B$?$m$&\x1b(B\\Tarou",
            "やまだ^たろう\\Tarou",
        ),
    ],
)
def test_person_names_restart_from_the_first_character_set_at_delimiters(
    charset, raw, name
):
    data = _person_name_data_set(charset, raw)
    parsed = parse_dataset(data, ExplicitVRLittleEndian, INDEX_TAGS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert dicomfile.text(parsed.dataset, "PatientName") == name
