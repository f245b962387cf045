"""C-FIND on every character set of the conformance statement (section 5).

One object per character set, its Patient's Name written in that set:
pydicom's character set files where they exist, built here with real names
otherwise (encoded by pydicom, the bytes checked against Python's codecs).
The pydicom files are imported with `jivex import`, the built ones sent with
DCMTK's storescu. Each name is then looked for with DCMTK's findscu in
ANOTHER character set than the one it is stored in, lower-case where the
script has case: the right patient must match and no other, and an answer
must carry the Specific Character Set it is encoded in and decode, with
pydicom and with DCMTK, to the stored name.

An answer comes in the query's character set when that one can carry it,
else in the character set of the stored object, and in UTF-8 (ISO_IR 192)
where pydicom cannot encode it in either: UTF-8 encodes every name, and
PS3.4 C.4.1.1.3.2 only asks that the answer say which set it uses. Every set
of section 5 works, with two remarks: ISO_IR 14 is not a Defined Term of
PS3.3 (ISO-IR 14 is the G0 half of ISO_IR 13), so it is read as ISO_IR 13 and
never used for an answer; and the ISO 2022 forms of the Japanese and Korean
sets come from pydicom's files (ISO 2022 IR 13, 87, 149).
"""

from __future__ import annotations

import copy
import subprocess
import unicodedata
import warnings
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_charset_files

from jivex_core.uids import new_uid
from tests.helpers import JivexServer, dcmtk, findscu, peer_env, run_jivex

pytestmark = pytest.mark.interop

#: pydicom's files: Patient ID -> file name.
PYDICOM_FILES = {
    "SCSFREN": "chrFren.dcm",  # ISO_IR 100
    "SCSGERM": "chrGerm.dcm",  # ISO_IR 100
    "SCSRUSS": "chrRuss.dcm",  # ISO_IR 144
    "SCSARAB": "chrArab.dcm",  # ISO_IR 127
    "SCSGREEK": "chrGreek.dcm",  # ISO_IR 126
    "SCSHBRW": "chrHbrw.dcm",  # ISO_IR 138
    "X1EXAMPLE": "chrX1.dcm",  # ISO_IR 192
    "X2EXAMPLE": "chrX2.dcm",  # GB18030
    "H31EXAMPLE": "chrH31.dcm",  # \ISO 2022 IR 87
    "H32EXAMPLE": "chrH32.dcm",  # ISO 2022 IR 13\ISO 2022 IR 87
    "2008-4": "chrJapMulti.dcm",  # \ISO 2022 IR 87
    "I2EXAMPLE": "chrI2.dcm",  # \ISO 2022 IR 149
    "2008-3": "chrKoreanMulti.dcm",  # \ISO 2022 IR 149
}

#: Built objects: Patient ID -> (Specific Character Set, name, referring).
BUILT = {
    "LATIN2": ("ISO_IR 101", "Dvořák^Antonín", ""),
    "LATIN3": ("ISO_IR 109", "Żammit^Ġużeppi", ""),
    "LATIN4": ("ISO_IR 110", "Bērziņš^Jānis", ""),
    "LATIN5": ("ISO_IR 148", "Yılmaz^İpek", ""),
    "JISKANA": ("ISO_IR 13", "ｽｽﾞｷ^ｲﾁﾛｳ", ""),
    "JISROMAJI": ("ISO_IR 14", "Tanaka^Hanako", ""),
    "THAI": ("ISO_IR 166", "สมชาย^ใจดี", ""),
    "PLAIN": ("", "Doe^Jane", ""),
    # Decomposed accents, as some systems write UTF-8.
    "NFD": ("ISO_IR 192", unicodedata.normalize("NFD", "Noël^Zoë"), ""),
    "SHARPS": ("ISO_IR 192", "Groß^Lukas", ""),
    # Code extensions between two single-byte sets (PS3.5 6.1.2.5).
    "MIXED": (
        "ISO 2022 IR 100\\ISO 2022 IR 144",
        "Иванов^Иван",
        "Müller^Jürgen",
    ),
}

#: The Python codecs of the single-byte sets, independent of pydicom's table.
CODECS = {
    "": "ascii",
    "ISO_IR 100": "latin_1",
    "ISO_IR 101": "iso8859_2",
    "ISO_IR 109": "iso8859_3",
    "ISO_IR 110": "iso8859_4",
    "ISO_IR 126": "iso8859_7",
    "ISO_IR 127": "iso8859_6",
    "ISO_IR 138": "iso8859_8",
    "ISO_IR 144": "iso8859_5",
    "ISO_IR 148": "iso8859_9",
    "ISO_IR 13": "shift_jis",
    "ISO_IR 14": "ascii",
    "ISO_IR 166": "tis_620",
    "ISO_IR 192": "utf-8",
    "GB18030": "gb18030",
}

#: Objects written byte by byte: bad character sets, stored all the same,
#: and code extensions left for the reader to switch back at a '^'.
BAD = {
    "LENIENT": (
        "ISO 2022 IR 100\\ISO 2022 IR 144",
        b"\x1b-L" + "Иванов".encode("iso8859_5") + b"^J\xfcrgen",
    ),
    # Declares UTF-8, holds Latin-1 bytes.
    "BADUTF8": ("ISO_IR 192", "Müller^Jörg".encode("latin_1")),
    # A term no standard defines: read as the default, which pydicom
    # takes to be Latin-1.
    "BADTERM": ("ISO_IR 999", "Ångström^Anders".encode("latin_1")),
}


def _read(path: Path | str) -> pydicom.Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(path)


def _raw(ds: pydicom.Dataset, keyword: str) -> bytes:
    """The bytes of a value as read, before any decoding."""
    return ds.get_item(keyword).value.rstrip(b" ")


def _build(template: pydicom.Dataset, patient_id: str, charset: str) -> pydicom.Dataset:
    ds = copy.deepcopy(template)
    ds.PatientID = patient_id
    ds.StudyID = patient_id
    ds.StudyInstanceUID = new_uid()
    ds.SeriesInstanceUID = new_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = new_uid()
    if charset:
        ds.SpecificCharacterSet = charset.split("\\") if "\\" in charset else charset
    else:
        del ds.SpecificCharacterSet
    return ds


def _build_files(folder: Path) -> list[Path]:
    template = _read(get_charset_files("chrFren.dcm")[0])
    paths = []
    for patient_id, (charset, name, referring) in BUILT.items():
        path = folder / f"{patient_id}.dcm"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom does not know ISO_IR 14
            ds = _build(template, patient_id, charset)
            ds.PatientName = name
            ds.ReferringPhysicianName = referring
            ds.save_as(path, enforce_file_format=True)
        raw = _raw(_read(path), "PatientName")
        if charset in CODECS:
            assert raw == name.encode(CODECS[charset]), patient_id
        else:
            # Cyrillic needs its G1 designation; the reference is Latin-1.
            assert raw.startswith(b"\x1b-L"), raw
            assert b"\x1b-L" not in _raw(_read(path), "ReferringPhysicianName")
        paths.append(path)
    for patient_id, (charset, raw) in BAD.items():
        path = folder / f"{patient_id}.dcm"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = _build(template, patient_id, charset)
            ds.PatientName = "x" * len(raw)
            ds.save_as(path, enforce_file_format=True)
        data = path.read_bytes()
        assert data.count(b"x" * len(raw)) == 1
        path.write_bytes(data.replace(b"x" * len(raw), raw))
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    root = tmp_path_factory.mktemp("qr-charsets")
    files = [get_charset_files(name)[0] for name in PYDICOM_FILES.values()]
    imported = run_jivex("import", "--data", str(root / "data"), *files)
    assert imported.returncode == 0, imported.stderr
    built = root / "built"
    built.mkdir()
    sent = _build_files(built)
    server = JivexServer(root / "data").start()
    try:
        store = subprocess.run(
            [dcmtk("storescu"), "-aec", "JIVEX", "127.0.0.1", str(server.port)]
            + [str(p) for p in sent],
            capture_output=True,
            text=True,
            env=peer_env(),
            timeout=120,
        )
        assert store.returncode == 0, store.stdout + store.stderr
        yield server
    finally:
        server.stop()


def _encode(value: str, charset: str) -> bytes:
    """*value* as an SCU writes it in *charset* (Python's codecs)."""
    if charset in CODECS:
        return value.encode(CODECS[charset])
    if charset == "\\ISO 2022 IR 87":
        return value.encode("iso2022_jp")  # back to ASCII before each delimiter
    if charset == "\\ISO 2022 IR 149":
        # G1 designation before each component that needs it.
        out = []
        for group in value.split("="):
            out.append(
                b"^".join(
                    c.encode() if c.isascii() else b"\x1b$)C" + c.encode("euc_kr")
                    for c in group.split("^")
                )
            )
        return b"=".join(out)
    return value.encode("ascii")  # a term no codec has: ASCII text only


def _query(
    archive: JivexServer,
    tmp_path: Path,
    charset: str | None,
    keyword: str,
    value: str,
    *more: str,
) -> tuple[list[pydicom.Dataset], str]:
    keys: list[str | bytes] = ["QueryRetrieveLevel=STUDY", "PatientID", *more]
    if charset is not None:
        keys.append(f"SpecificCharacterSet={charset}")
    keys.append(f"{keyword}=".encode() + _encode(value, charset or ""))
    return findscu(archive, tmp_path, *keys)


def _ids(found: list[pydicom.Dataset]) -> set[str]:
    return {str(ds.PatientID) for ds in found}


@pytest.mark.parametrize(
    ("charset", "keyword", "value", "expected"),
    [
        # ISO_IR 100, asked in UTF-8 and in Latin-5; accents count.
        ("ISO_IR 192", "PatientName", "buc^jér*", {"SCSFREN"}),
        ("ISO_IR 148", "PatientName", "äneas^rüdiger", {"SCSGERM"}),
        ("ISO_IR 192", "PatientName", "Buc^Jerome", set()),
        # ISO_IR 101; in Latin-1, which has no ř, a ? stands for it.
        ("ISO_IR 192", "PatientName", "dvořák^*", {"LATIN2"}),
        ("ISO_IR 100", "PatientName", "dvo?ák^antonín", {"LATIN2"}),
        # ISO_IR 109 and 110.
        ("ISO_IR 192", "PatientName", "żammit^ġużeppi", {"LATIN3"}),
        ("ISO_IR 192", "PatientName", "bērziņš^jānis", {"LATIN4"}),
        ("ISO_IR 101", "PatientName", "*š^j*", {"LATIN4"}),
        # ISO_IR 148: dotless and dotted I fold to I.
        ("ISO_IR 100", "PatientName", "yilmaz^ipek", {"LATIN5"}),
        ("ISO_IR 192", "PatientName", "YILMAZ^İPEK", {"LATIN5"}),
        # ISO_IR 144. The file's name mixes Latin c, e, y, p into the
        # Cyrillic, so the all-Cyrillic spelling must not match.
        ("ISO_IR 192", "PatientName", "люк*", {"SCSRUSS"}),
        ("ISO_IR 192", "PatientName", "Люксембург", set()),
        # ISO_IR 127, 126 (lower case, final sigma), 138, 166.
        ("ISO_IR 192", "PatientName", "قباني^*", {"SCSARAB"}),
        ("ISO_IR 192", "PatientName", "διον*", {"SCSGREEK"}),
        ("ISO_IR 192", "PatientName", "*σιος", {"SCSGREEK"}),
        ("ISO_IR 192", "PatientName", "*^דבורה", {"SCSHBRW"}),
        ("ISO_IR 192", "PatientName", "สมชาย^ใจดี", {"THAI"}),
        # ISO_IR 13, half-width katakana; a full-width query matches too.
        ("ISO_IR 192", "PatientName", "ｽｽﾞｷ^*", {"JISKANA"}),
        ("\\ISO 2022 IR 87", "PatientName", "スズキ^イチロウ", {"JISKANA"}),
        # ISO_IR 14 (Romaji), stored and asked.
        ("ISO_IR 192", "PatientName", "tanaka*", {"JISROMAJI"}),
        ("ISO_IR 14", "PatientName", "TANAKA^HANAKO", {"JISROMAJI"}),
        # The default repertoire, stored and asked.
        ("ISO_IR 144", "PatientName", "doe^jane", {"PLAIN"}),
        (None, "PatientName", "DOE^JANE", {"PLAIN"}),
        # ISO 2022 IR 87 and ISO 2022 IR 13: by any one component group,
        # or group by group; H32 has the same ideographic and phonetic
        # groups as H31, chrJapMulti only the phonetic one.
        ("GB18030", "PatientName", "山田^太郎", {"H31EXAMPLE", "H32EXAMPLE"}),
        ("ISO_IR 192", "PatientName", "yamada^*", {"H31EXAMPLE"}),
        (
            "\\ISO 2022 IR 87",
            "PatientName",
            "やまだ^たろう",
            {"H31EXAMPLE", "H32EXAMPLE", "2008-4"},
        ),
        ("ISO_IR 13", "PatientName", "ﾔﾏﾀﾞ^ﾀﾛｳ", {"H32EXAMPLE"}),
        (
            "ISO_IR 192",
            "PatientName",
            "=山田^太郎=やまだ^*",
            {"H31EXAMPLE", "H32EXAMPLE"},
        ),
        ("ISO_IR 192", "PatientName", "=やまだ^たろう", set()),  # not group 2
        ("ISO_IR 192", "PatientName", "*=*", None),  # universal
        # ISO 2022 IR 149: by the phonetic group, by Hanja in IR 149 for a
        # name stored in UTF-8.
        ("ISO_IR 192", "PatientName", "홍^길동", {"I2EXAMPLE"}),
        ("ISO_IR 192", "PatientName", "김*", {"2008-3"}),
        ("\\ISO 2022 IR 149", "PatientName", "王^小東", {"X1EXAMPLE"}),
        # ISO_IR 192 and GB18030: 小東 (traditional) and 小东 (simplified).
        ("ISO_IR 100", "PatientName", "wang^xiaodong", {"X1EXAMPLE", "X2EXAMPLE"}),
        ("GB18030", "PatientName", "王^小東", {"X1EXAMPLE"}),
        ("ISO_IR 192", "PatientName", "王^小东", {"X2EXAMPLE"}),
        # Decomposed UTF-8 matches precomposed Latin-1; ß is one letter.
        ("ISO_IR 100", "PatientName", "noël^zoë", {"NFD"}),
        ("ISO_IR 100", "PatientName", "gro?^lukas", {"SHARPS"}),
        ("ISO_IR 100", "PatientName", "groß^lukas", {"SHARPS"}),
        ("ISO_IR 192", "PatientName", "GROSS^LUKAS", set()),
        # Code extensions: a Cyrillic patient, a German referring physician.
        ("ISO_IR 144", "PatientName", "иванов^иван", {"MIXED"}),
        ("ISO_IR 192", "ReferringPhysicianName", "müller^j*", {"MIXED"}),
        # Latin-1 again after the '^', with no escape sequence to say so.
        ("ISO_IR 192", "PatientName", "иванов^jürgen", {"LENIENT"}),
    ],
)
def test_names_match_across_character_sets(
    archive, tmp_path, charset, keyword, value, expected
):
    found, log = _query(archive, tmp_path, charset, keyword, value)
    if expected is None:
        expected = set(PYDICOM_FILES) | set(BUILT) | set(BAD)
    assert _ids(found) == expected, log


def _stored_names() -> dict[str, tuple[str, str]]:
    names = {}
    for pid, file_name in PYDICOM_FILES.items():
        ds = _read(get_charset_files(file_name)[0])
        names[pid] = (str(ds.PatientName), str(ds.get("ReferringPhysicianName", "")))
    names.update({pid: (name, ref) for pid, (_, name, ref) in BUILT.items()})
    names["BADTERM"] = ("Ångström^Anders", "^^^^")
    names["LENIENT"] = ("Иванов^Jürgen", "^^^^")
    return names


#: The Specific Character Set each answer must carry: the stored one.
ANSWER_CHARSETS = {
    "SCSFREN": "ISO_IR 100",
    "SCSGERM": "ISO_IR 100",
    "SCSRUSS": "ISO_IR 144",
    "SCSARAB": "ISO_IR 127",
    "SCSGREEK": "ISO_IR 126",
    "SCSHBRW": "ISO_IR 138",
    "X1EXAMPLE": "ISO_IR 192",
    "X2EXAMPLE": "GB18030",
    "H31EXAMPLE": ["", "ISO 2022 IR 87"],
    "H32EXAMPLE": ["ISO 2022 IR 13", "ISO 2022 IR 87"],
    "2008-4": ["", "ISO 2022 IR 87"],
    "I2EXAMPLE": ["", "ISO 2022 IR 149"],
    "2008-3": ["", "ISO 2022 IR 149"],
    "LATIN2": "ISO_IR 101",
    "LATIN3": "ISO_IR 109",
    "LATIN4": "ISO_IR 110",
    "LATIN5": "ISO_IR 148",
    "JISKANA": "ISO_IR 13",
    "JISROMAJI": None,  # ASCII only: no Specific Character Set
    "THAI": "ISO_IR 166",
    "PLAIN": None,
    "NFD": "ISO_IR 192",
    "SHARPS": "ISO_IR 192",
    "MIXED": ["ISO 2022 IR 100", "ISO 2022 IR 144"],
}

#: Sets the DCMTK here (iconv) cannot convert; their answers are checked
#: with pydicom only.
_DCMTK_CANNOT = {"ISO 2022 IR 87"}


def _check_answer(archive, tmp_path, charset, patient_id: str, expected) -> None:
    """Ask for one patient's names in *charset*; check the answer's encoding."""
    found, log = _query(
        archive,
        tmp_path,
        charset,
        "PatientID",
        patient_id,
        "PatientName",
        "ReferringPhysicianName",
    )
    assert len(found) == 1, log
    ds = found[0]
    name, referring = _stored_names()[patient_id]
    assert ds.get("SpecificCharacterSet") == expected
    assert str(ds.PatientName) == name
    assert str(ds.ReferringPhysicianName) == referring
    if isinstance(expected, str) and expected in CODECS:
        raw = _raw(_read(ds.filename), "PatientName")
        assert raw == name.encode(CODECS[expected])
    # DCMTK's own decoder reads the same names from the answer.
    terms = [expected] if isinstance(expected, str) else expected or []
    if not set(terms) & _DCMTK_CANNOT:
        utf8 = Path(ds.filename).with_suffix(".utf8")
        subprocess.run(
            [dcmtk("dcmconv"), "+U8", ds.filename, str(utf8)],
            check=True,
            capture_output=True,
        )
        converted = _read(utf8)
        assert str(converted.PatientName) == name
        assert str(converted.ReferringPhysicianName) == referring


@pytest.mark.parametrize("patient_id", sorted(ANSWER_CHARSETS))
def test_answers_to_a_default_repertoire_query_use_the_stored_set(
    archive, tmp_path, patient_id
):
    _check_answer(archive, tmp_path, None, patient_id, ANSWER_CHARSETS[patient_id])


@pytest.mark.parametrize(
    ("charset", "patient_id", "expected"),
    [
        # The query's set when it can carry the names.
        ("ISO_IR 192", "SCSRUSS", "ISO_IR 192"),
        ("ISO_IR 192", "H31EXAMPLE", "ISO_IR 192"),
        ("ISO_IR 148", "SCSGERM", "ISO_IR 148"),  # Latin-5 has Ä and ü
        ("GB18030", "H32EXAMPLE", "GB18030"),
        ("\\ISO 2022 IR 87", "X1EXAMPLE", ["", "ISO 2022 IR 87"]),
        # ISO 2022 IR 87 alone lacks the ASCII set that must come first
        # (PS3.3 C.12.1.1.2): read as \ISO 2022 IR 87, as other archives
        # do, and answered so, switching back to ASCII where needed.
        ("ISO 2022 IR 87", "H31EXAMPLE", ["", "ISO 2022 IR 87"]),
        ("ISO 2022 IR 87", "X1EXAMPLE", ["", "ISO 2022 IR 87"]),
        # Else the stored set: Latin-1 has no ř and no Cyrillic, JIS X 0208
        # no half-width katakana, ISO_IR 14 nothing beyond ASCII.
        ("ISO_IR 100", "LATIN2", "ISO_IR 101"),
        ("ISO_IR 100", "SCSRUSS", "ISO_IR 144"),
        ("\\ISO 2022 IR 87", "JISKANA", "ISO_IR 13"),
        ("ISO_IR 14", "JISKANA", "ISO_IR 13"),
        ("ISO_IR 999", "SCSGREEK", "ISO_IR 126"),
        ("ISO_IR 100", "X1EXAMPLE", "ISO_IR 192"),
        # Else UTF-8: a term no standard defines holds nothing beyond ASCII.
        (None, "BADTERM", "ISO_IR 192"),
        # pydicom cannot write a name that needs the switch back at '^'.
        (None, "LENIENT", "ISO_IR 192"),
        ("ISO_IR 100", "BADTERM", "ISO_IR 100"),  # unless the query's can
    ],
)
def test_answers_prefer_the_query_character_set(
    archive, tmp_path, charset, patient_id, expected
):
    _check_answer(archive, tmp_path, charset, patient_id, expected)


def test_bad_character_sets_are_stored_and_found(archive, tmp_path):
    # Latin-1 bytes under ISO_IR 192 decode with replacement characters:
    # the object is kept, found by ID and by a name that ? covers.
    found, log = _query(archive, tmp_path, None, "PatientName", "m?ller^j?rg")
    assert _ids(found) == {"BADUTF8"}, log
    (bad,) = _query(archive, tmp_path, None, "PatientID", "BADUTF8", "PatientName")[0]
    assert bad.SpecificCharacterSet == "ISO_IR 192"
    assert str(bad.PatientName) == "M\ufffdller^J\ufffdrg"
    found, log = _query(archive, tmp_path, "ISO_IR 192", "PatientName", "ångström*")
    assert _ids(found) == {"BADTERM"}, log


def test_bad_query_character_sets_are_answered(archive, tmp_path):
    # An unknown term in the query: its ASCII text still matches.
    found, log = _query(archive, tmp_path, "ISO_IR 999", "PatientName", "doe^jane")
    assert _ids(found) == {"PLAIN"}, log
    # Bytes that are not UTF-8 match nothing, and the SCP keeps serving.
    found, log = findscu(
        archive,
        tmp_path,
        "QueryRetrieveLevel=STUDY",
        "PatientID",
        "SpecificCharacterSet=ISO_IR 192",
        b"PatientName=\xff\xfe*",
    )
    assert not found, log
    again, log = _query(archive, tmp_path, "ISO_IR 192", "PatientName", "διον*")
    assert _ids(again) == {"SCSGREEK"}, log
