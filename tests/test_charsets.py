"""Folding of person names and the choice of an answer's character set."""

from __future__ import annotations

from io import BytesIO

import pydicom
import pytest
from pynetdicom.dsutils import decode, encode

from jivex_core.charsets import can_encode, fold, response_character_set, terms


@pytest.mark.parametrize(
    ("value", "folded"),
    [
        ("Doe^John", "DOE^JOHN"),
        ("Διονυσιος", "ΔΙΟΝΥΣΙΟΣ"),  # final sigma
        ("Люкceмбypг", "ЛЮКCEМБYPГ"),
        ("Yılmaz^İpek", "YILMAZ^IPEK"),
        ("Groß", "GROẞ"),  # one letter stays one letter
        ("ｽｽﾞｷ^ｲﾁﾛｳ", "スズキ^イチロウ"),  # half-width kana, voiced mark composed
        ("Ｄｏｅ", "DOE"),  # full-width Latin
        ("Noe\u0308l", "NOËL"),  # decomposed accent
        ("山田^太郎=やまだ^たろう", "山田^太郎=やまだ^たろう"),  # no case
        ("กำ", "กำ"),  # Thai SARA AM keeps its one character
        ("ﬁ", "ﬁ"),  # a ligature whose plain form is two letters stays
        ("Ａ＝Ｂ", "A＝B"),  # a full-width '=' is no delimiter
        ("*ｽ?", "*ス?"),  # wild cards stay
    ],
)
def test_fold(value, folded):
    assert fold(value) == folded


def test_fold_keeps_delimiters_and_wild_cards_in_place():
    value = "ｱ*^ß?=Ｂ\\ｲ"
    assert [c for c in fold(value) if c in "^=\\*?"] == [
        c for c in value if c in "^=\\*?"
    ]


@pytest.mark.parametrize(
    ("texts", "charset", "expected"),
    [
        (["Buc^Jérôme"], ["ISO_IR 100"], True),
        (["Dvořák"], ["ISO_IR 100"], False),
        (["Иванов^Иван", "Müller"], ["ISO 2022 IR 100", "ISO 2022 IR 144"], True),
        # pydicom would not switch back to Latin-1 before the '='.
        (["Иванов=Müller"], ["ISO 2022 IR 100", "ISO 2022 IR 144"], False),
        (["山田^太郎"], ["", "ISO 2022 IR 87"], True),
        (["ﾔﾏﾀﾞ=山田"], ["ISO 2022 IR 13", "ISO 2022 IR 87"], True),
        (["ﾔﾏﾀﾞ"], ["ISO_IR 13"], True),
        (["山田"], ["ISO_IR 13"], False),  # JIS X 0201 has no kanji
        # pydicom would write Latin-1 bytes without their escape sequence.
        (["Jérôme"], ["", "ISO 2022 IR 100"], False),
        (["ﾔﾏﾀﾞ"], ["ISO_IR 14"], False),  # Romaji: ASCII only
        (["Doe"], ["ISO_IR 999"], False),
    ],
)
def test_can_encode(texts, charset, expected):
    assert can_encode([("PN", t) for t in texts], charset) is expected


def test_what_can_be_encoded_is_sent_and_read_back_intact():
    # As the SCP sends answers: pynetdicom's encoder, pydicom's decoder.
    cases = [
        ("ISO 2022 IR 100\\ISO 2022 IR 144", "Müller^Hans=Иванов^Иван"),
        ("\\ISO 2022 IR 149", "Hong^Gildong=洪^吉洞=홍^길동"),
        ("ISO 2022 IR 13\\ISO 2022 IR 87", "ﾔﾏﾀﾞ^ﾀﾛｳ=山田^太郎=やまだ^たろう"),
        ("ISO_IR 13", "ｽｽﾞｷ^ｲﾁﾛｳ"),
        ("ISO_IR 166", "สมชาย^ใจดี"),
        ("GB18030", "Wang^XiaoDong=王^小东"),
    ]
    for charset, name in cases:
        assert can_encode([("PN", name)], terms(charset)), charset
        ds = pydicom.Dataset()
        ds.SpecificCharacterSet = terms(charset)
        ds.PatientName = name
        encoded = encode(ds, False, True)
        assert encoded is not None
        assert str(decode(BytesIO(encoded), False, True).PatientName) == name, charset


@pytest.mark.parametrize(
    ("texts", "stored", "expected"),
    [
        (["Doe^John"], ["ISO_IR 144"], None),
        (["Buc^Jérôme"], ["ISO_IR 100"], "ISO_IR 100"),
        (["山田"], ["\\ISO 2022 IR 87"], ["", "ISO 2022 IR 87"]),
        # The study's set cannot hold the patient's name: the patient's can.
        (["Иванов", "Müller"], ["ISO_IR 100", "ISO_IR 144"], "ISO_IR 192"),
        (["Иванов"], ["ISO_IR 100", "ISO_IR 144"], "ISO_IR 144"),
        (["Иванов"], [], "ISO_IR 192"),
        (["Tanaka", "ｽｽﾞｷ"], ["ISO_IR 14"], "ISO_IR 192"),
        (["Jérôme"], ["ISO_IR 999"], "ISO_IR 192"),
    ],
)
def test_response_character_set(texts, stored, expected):
    assert response_character_set([("LO", t) for t in texts], stored) == expected
