"""C-FIND keys of tables 11-13: presentation states, key objects, requests.

DCMTK's findscu against `jivex server`. The archive is the query archive of
test_qr_scp.py plus, sent with DCMTK's storescu, two real Grayscale Softcopy
Presentation States of the shared data and, in DOE^J1's MR study, a series of
three presentation states and a series of three key object documents made by
tests/state_objects.py (the shared data has no key object document). The
expected instances below are worked out by hand from what those objects hold:

  PR series, on DOE^J1's images (InstanceNumber: creator, created, refs):
    1  Smith^Anna  20170716 160000  "Window for soft tissue"  MR01-MR03
    2  SMITH^Bob   20170801 093000  "Zoom on lesion"          MR04
    3  Jones^Carl  20180105 110000  "Measurement"             MR05-MR06
  KO series (InstanceNumber: title, content date/time, observed):
    1  113000 Of Interest                  20170717 080000  20170717075500
    2  113001 Rejected for Quality Reasons  20170720 120000  20170720115000.5
    3  113004 For Teaching                 20171001 100000  (none)
  and, in CompressedSamples^CT1's study, a key object in ISO_IR 100 whose
  title is named in German ("Für die Lehre").
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

from jivex_core.uids import new_uid
from tests import state_objects
from tests.corpus import query_archive_files
from tests.helpers import SHARED_DATA, JivexServer, dcmtk, peer_env, run_jivex
from tests.test_qr_scp import CT_STUDY, MR_STUDY, findscu

pytestmark = pytest.mark.interop

MR_SERIES = "1.113654.5.14.1035"
MR = sorted(str(p) for p in (SHARED_DATA / "dcm4che").glob("MR0*.dcm"))
MR_CLASS = "1.2.840.10008.5.1.4.1.1.4"
MR_UIDS = [f"1.113654.5.15.{n}" for n in (1504, 1512, 1513, 1514, 1515, 1516)]
PR_SERIES = new_uid()
KO_SERIES = new_uid()
CT_KO_SERIES = new_uid()

#: Real presentation states of the shared data (each alone in its series).
PR_LUTS = SHARED_DATA / "weasis-dicom-tools" / "prLUTs.dcm"
PR_HIP = (
    SHARED_DATA
    / "orthanc-tests"
    / "HierarchicalAnonymization"
    / "2019-03-28"
    / "PR000000.dcm"
)
PR_LUTS_STUDY = "1.2.276.0.7230010.3.200.6"
PR_LUTS_SERIES = "1.2.276.0.7230010.3.200.6.0"
PR_HIP_STUDY = "1.2.276.0.7230010.3.1.2.665618.6496.1546453790.314806"
PR_HIP_SERIES = "1.3.6.1.4.1.44316.2.630.2.20190107213526.1.522194662555047229250"


def _made_objects(folder: Path) -> list[Path]:
    images = state_objects.read_images(MR)
    states = [
        (1, "Window for soft tissue", "Smith^Anna", ("20170716", "160000"), [0, 1, 2]),
        (2, "Zoom on lesion", "SMITH^Bob", ("20170801", "093000"), [3]),
        (3, "Measurement", "Jones^Carl", ("20180105", "110000"), [4, 5]),
    ]
    keys = [
        (1, ("113000", "DCM", "Of Interest"), ("20170717", "080000"), "20170717075500"),
        (
            2,
            ("113001", "DCM", "Rejected for Quality Reasons"),
            ("20170720", "120000"),
            "20170720115000.5",
        ),
        (3, ("113004", "DCM", "For Teaching"), ("20171001", "100000"), None),
    ]
    out = []
    for number, description, creator, created, refs in states:
        ds = state_objects.presentation_state(
            [images[i] for i in refs], PR_SERIES, number, description, creator, created
        )
        out.append(state_objects.write(ds, folder / f"pr{number}.dcm"))
    for number, title, content, observed in keys:
        ds = state_objects.key_object(
            images[2:4], KO_SERIES, number, title, content, observed
        )
        out.append(state_objects.write(ds, folder / f"ko{number}.dcm"))
    ct = state_objects.read_images([get_testdata_file("CT_small.dcm")])
    ds = state_objects.key_object(
        ct, CT_KO_SERIES, 1, ("113004", "DCM", "Für die Lehre"), ("20040119", "073000")
    )
    ds.SpecificCharacterSet = "ISO_IR 100"
    out.append(state_objects.write(ds, folder / "ko-latin1.dcm"))
    return out


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> list[Path]:
    return _made_objects(tmp_path_factory.mktemp("made"))


@pytest.fixture(scope="module")
def archive(tmp_path_factory, made):
    root = tmp_path_factory.mktemp("qr-keys")
    imported = run_jivex("import", "--data", str(root / "data"), *query_archive_files())
    assert imported.returncode == 0, imported.stderr
    server = JivexServer(root / "data").start()
    sent = subprocess.run(
        [
            dcmtk("storescu"),
            "-aec",
            "JIVEX",
            "127.0.0.1",
            str(server.port),
            str(PR_LUTS),
            str(PR_HIP),
            *map(str, made),
        ],
        capture_output=True,
        text=True,
        env=peer_env(),
        timeout=120,
    )
    assert sent.returncode == 0, sent.stdout + sent.stderr
    yield server
    server.stop()


def test_the_made_objects_conform_to_their_iods(made):
    for path in made:
        run = subprocess.run(
            ["dciodvfy", str(path)], capture_output=True, text=True, timeout=60
        )
        errors = [line for line in run.stderr.splitlines() if "Error" in line]
        assert not errors, (path.name, errors)


def _image_query(server, tmp_path, series: str, *keys: str, study: str = MR_STUDY):
    return findscu(
        server,
        tmp_path,
        "QueryRetrieveLevel=IMAGE",
        f"StudyInstanceUID={study}",
        f"SeriesInstanceUID={series}",
        "InstanceNumber",
        *keys,
    )


@pytest.mark.parametrize(
    ("series", "keys", "expected"),
    [
        # Table 12. Creator's name: a person name, matched case-insensitively.
        ("PR", ["ContentCreatorName=smith*"], {1, 2}),
        ("PR", ["ContentCreatorName=smith^anna"], {1}),
        ("PR", ["ContentCreatorName=*carl"], {3}),
        ("PR", ["ContentCreatorName=Doe*"], set()),
        ("PR", ["PresentationCreationDate=20170701-20171231"], {1, 2}),
        ("PR", ["PresentationCreationDate=20180101-"], {3}),
        ("PR", ["PresentationCreationDate=20170716"], {1}),
        ("PR", ["PresentationCreationTime=-1000"], {2}),
        ("PR", ["ContentDescription=Zoom*"], {2}),
        ("PR", ["ContentDescription=zoom*"], set()),  # LO: case matters
        # Table 13 on key objects: content date and time.
        ("KO", ["ContentDate=20170717"], {1}),
        ("KO", ["ContentDate=20170718-20171231"], {2, 3}),
        ("KO", ["ContentTime=-090000"], {1}),
        # Concept Name Code Sequence: sequence matching on its item.
        ("KO", ["ConceptNameCodeSequence[0].CodeValue=113000"], {1}),
        (
            "KO",
            [
                "ConceptNameCodeSequence[0].CodeValue=113000",
                "ConceptNameCodeSequence[0].CodingSchemeDesignator=DCM",
            ],
            {1},
        ),
        (
            "KO",
            [
                "ConceptNameCodeSequence[0].CodeValue=113000",
                "ConceptNameCodeSequence[0].CodingSchemeDesignator=SRT",
            ],
            set(),
        ),
        (
            "KO",
            ["ConceptNameCodeSequence[0].CodingSchemeDesignator=DCM"],
            {1, 2, 3},
        ),
        ("KO", ["ConceptNameCodeSequence[0].CodeMeaning=*Teaching"], {3}),
        ("KO", ["ConceptNameCodeSequence"], {1, 2, 3}),  # universal
        ("KO", ["ConceptNameCodeSequence[0].CodeValue"], {1, 2, 3}),
        # Observation DateTime: DT single value and ranges; no value, no match.
        ("KO", ["ObservationDateTime=20170717-20170719"], {1}),
        ("KO", ["ObservationDateTime=20170720115000.5"], {2}),
        ("KO", ["ObservationDateTime=20170720-"], {2}),
        ("KO", ["ObservationDateTime=-201707171200"], {1}),
        ("KO", ["ObservationDateTime=2017-2017"], {1, 2}),
        # Objects without the attributes do not match a value.
        ("KO", ["ContentCreatorName=*a*"], set()),
        ("PR", ["ConceptNameCodeSequence[0].CodeValue=113000"], set()),
        ("MR", ["ConceptNameCodeSequence[0].CodeValue=113000"], set()),
        ("MR", ["PresentationCreationDate=19000101-"], set()),
    ],
)
def test_image_level_matching(archive, tmp_path, series, keys, expected):
    series_uid = {"PR": PR_SERIES, "KO": KO_SERIES, "MR": MR_SERIES}[series]
    found, log = _image_query(archive, tmp_path, series_uid, *keys)
    assert {int(ds.InstanceNumber) for ds in found} == expected, log


def test_real_presentation_states_match_and_return_their_references(archive, tmp_path):
    found, log = _image_query(
        archive,
        tmp_path,
        PR_LUTS_SERIES,
        "ContentCreatorName=riesmeier*",
        "PresentationCreationDate=20000101-20001231",
        "ContentDescription",
        "PresentationCreationTime",
        "ReferencedSeriesSequence",
        study=PR_LUTS_STUDY,
    )
    (ds,) = found
    assert str(ds.ContentCreatorName) == "Riesmeier^Joerg"
    assert ds.ContentDescription == (
        "scrambled modality lut / voi lut / presentation lut"
    )
    assert ds.PresentationCreationTime == "1200"
    (series,) = ds.ReferencedSeriesSequence
    assert series.SeriesInstanceUID == "1.2.276.0.7230010.3.200.6.3"
    (image,) = series.ReferencedImageSequence
    assert image.ReferencedSOPClassUID == "1.2.840.10008.5.1.4.1.1.7"
    assert image.ReferencedSOPInstanceUID == "1.2.276.0.7230010.3.200.6.3.1"
    # The other real state: no creator's name; a value matches nothing there.
    hip, log = _image_query(
        archive,
        tmp_path,
        PR_HIP_SERIES,
        "ContentDescription=hip",
        "ContentCreatorName",
        study=PR_HIP_STUDY,
    )
    assert len(hip) == 1 and hip[0].ContentCreatorName == "", log
    none, log = _image_query(
        archive,
        tmp_path,
        PR_HIP_SERIES,
        "ContentCreatorName=a*",
        study=PR_HIP_STUDY,
    )
    assert not none, log


def test_referenced_series_come_back_whole_or_as_requested(archive, tmp_path):
    found, log = _image_query(
        archive, tmp_path, PR_SERIES, "InstanceNumber=1", "ReferencedSeriesSequence"
    )
    (ds,) = found
    (series,) = ds.ReferencedSeriesSequence
    assert series.SeriesInstanceUID == MR_SERIES
    assert [
        (ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID)
        for ref in series.ReferencedImageSequence
    ] == [(MR_CLASS, uid) for uid in MR_UIDS[:3]]
    # Only the sub-keys the request's item names, nested ones too.
    found, log = _image_query(
        archive,
        tmp_path,
        PR_SERIES,
        "InstanceNumber=3",
        "ReferencedSeriesSequence[0].ReferencedImageSequence[0].ReferencedSOPInstanceUID",
    )
    assert len(found) == 1, log
    (ds,) = found
    (series,) = ds.ReferencedSeriesSequence
    assert "SeriesInstanceUID" not in series
    assert [list(ref.keys()) for ref in series.ReferencedImageSequence] == [
        [0x00081155],
        [0x00081155],
    ]
    assert [ref.ReferencedSOPInstanceUID for ref in series.ReferencedImageSequence] == (
        MR_UIDS[4:6]
    )


def test_key_object_sequences_come_back(archive, tmp_path):
    found, log = _image_query(
        archive,
        tmp_path,
        KO_SERIES,
        "ConceptNameCodeSequence[0].CodeValue=113001",
        "ReferencedRequestSequence",
        "ObservationDateTime",
        "ContentDate",
        "ContentTime",
    )
    (ds,) = found
    assert int(ds.InstanceNumber) == 2
    assert ds.ObservationDateTime == "20170720115000.5"
    assert (ds.ContentDate, ds.ContentTime) == ("20170720", "120000")
    # The matched item with the requested attribute only.
    (concept,) = ds.ConceptNameCodeSequence
    assert list(concept.keys()) == [0x00080100] and concept.CodeValue == "113001"
    # All the table's sub-attributes, and nothing else of the stored item.
    (request,) = ds.ReferencedRequestSequence
    assert request.StudyInstanceUID == MR_STUDY
    assert request.AccessionNumber == "MOF5026"
    assert request.RequestedProcedureID == "RP1026"
    (code,) = request.RequestedProcedureCodeSequence
    assert (code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning) == (
        "RPC1026",
        "99JIVEX",
        "MR head without contrast",
    )
    assert "RequestedProcedureDescription" not in request
    assert "ReferencedStudySequence" not in request
    # An empty request item: the whole stored item.
    found, log = _image_query(
        archive, tmp_path, KO_SERIES, "InstanceNumber=3", "ConceptNameCodeSequence"
    )
    (concept,) = found[0].ConceptNameCodeSequence
    assert (concept.CodeValue, concept.CodingSchemeDesignator, concept.CodeMeaning) == (
        "113004",
        "DCM",
        "For Teaching",
    )
    # A requested sub-key the index does not keep: present and empty.
    found, log = _image_query(
        archive,
        tmp_path,
        KO_SERIES,
        "InstanceNumber=1",
        "ReferencedRequestSequence[0].RequestedProcedureDescription",
        "ReferencedRequestSequence[0].AccessionNumber",
    )
    assert len(found) == 1, log
    (request,) = found[0].ReferencedRequestSequence
    assert request.AccessionNumber == "MOF5026"
    assert "RequestedProcedureDescription" in request
    assert request.RequestedProcedureDescription in ("", None)


def test_non_ascii_items_match_and_come_back_in_utf8(archive, tmp_path):
    found, log = _image_query(
        archive,
        tmp_path,
        CT_KO_SERIES,
        "SpecificCharacterSet=ISO_IR 192",
        "ConceptNameCodeSequence[0].CodeMeaning=Für*",
        study=CT_STUDY,
    )
    assert len(found) == 1, log
    (ds,) = found
    assert ds.SpecificCharacterSet == "ISO_IR 192"
    assert ds.ConceptNameCodeSequence[0].CodeMeaning == "Für die Lehre"


def test_objects_without_the_keys_return_them_empty(archive, tmp_path):
    found, log = _image_query(
        archive,
        tmp_path,
        MR_SERIES,
        "InstanceNumber=1",
        "ContentCreatorName",
        "PresentationCreationDate",
        "ObservationDateTime",
        "ReferencedSeriesSequence",
        "ReferencedRequestSequence",
        "ConceptNameCodeSequence",
    )
    assert len(found) == 1, log
    (ds,) = found
    for keyword in (
        "ContentCreatorName",
        "PresentationCreationDate",
        "ObservationDateTime",
    ):
        assert keyword in ds and not ds[keyword].value, keyword
    for keyword in (
        "ReferencedSeriesSequence",
        "ReferencedRequestSequence",
        "ConceptNameCodeSequence",
    ):
        assert keyword in ds and len(ds[keyword].value) == 0, keyword


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        (["RequestAttributesSequence[0].RequestedProcedureID=RP1026"], {MR_SERIES}),
        (["RequestAttributesSequence[0].ScheduledProcedureStepID=SPS*"], {MR_SERIES}),
        (
            [
                "RequestAttributesSequence[0].RequestedProcedureID=RP1026",
                "RequestAttributesSequence[0].ScheduledProcedureStepID=SPS2032",
            ],
            {MR_SERIES},
        ),
        (
            [
                "RequestAttributesSequence[0].RequestedProcedureID=RP1026",
                "RequestAttributesSequence[0].ScheduledProcedureStepID=SPS9",
            ],
            set(),
        ),
        (["RequestAttributesSequence[0].RequestedProcedureID=RP9999"], set()),
        (["RequestAttributesSequence"], {MR_SERIES, PR_SERIES, KO_SERIES}),
    ],
)
def test_series_level_request_attributes(archive, tmp_path, keys, expected):
    found, log = findscu(
        archive,
        tmp_path,
        "QueryRetrieveLevel=SERIES",
        f"StudyInstanceUID={MR_STUDY}",
        "SeriesInstanceUID",
        *keys,
    )
    assert {str(ds.SeriesInstanceUID) for ds in found} == expected, log


def test_series_level_request_attributes_come_back(archive, tmp_path):
    found, log = findscu(
        archive,
        tmp_path,
        "QueryRetrieveLevel=SERIES",
        f"StudyInstanceUID={MR_STUDY}",
        "SeriesInstanceUID",
        "RequestAttributesSequence",
    )
    by_series = {str(ds.SeriesInstanceUID): ds for ds in found}
    (item,) = by_series[MR_SERIES].RequestAttributesSequence
    assert (item.RequestedProcedureID, item.ScheduledProcedureStepID) == (
        "RP1026",
        "SPS2032",
    )
    assert len(by_series[KO_SERIES].RequestAttributesSequence) == 0
    # Only what the item asks for.
    found, log = findscu(
        archive,
        tmp_path,
        "QueryRetrieveLevel=SERIES",
        f"StudyInstanceUID={MR_STUDY}",
        f"SeriesInstanceUID={MR_SERIES}",
        "RequestAttributesSequence[0].ScheduledProcedureStepID",
    )
    assert len(found) == 1, log
    (item,) = found[0].RequestAttributesSequence
    assert list(item.keys()) == [0x00400009] and item.ScheduledProcedureStepID == (
        "SPS2032"
    )


@pytest.mark.parametrize(
    ("keys", "comment"),
    [
        # A DT key whose value is neither a date-time nor a range.
        (
            [f"SeriesInstanceUID={KO_SERIES}", "ObservationDateTime=yesterday"],
            "is not a date-time or a range",
        ),
        # A range that ends before it begins (PS3.4 C.2.2.2.5); a partial
        # upper bound covers its whole year, day or minute.
        (
            [
                f"SeriesInstanceUID={KO_SERIES}",
                "ObservationDateTime=20170720-201707191200",
            ],
            "ObservationDateTime range ends before it begins",
        ),
        # A sequence matching key holds one item (PS3.4 C.2.2.2.6).
        (
            [
                f"SeriesInstanceUID={KO_SERIES}",
                "ConceptNameCodeSequence[1].CodeValue=1",
            ],
            "holds 2 items; a key holds one",
        ),
    ],
)
def test_bad_keys_get_a900_with_a_comment(archive, tmp_path, keys, comment):
    found, log = findscu(
        archive,
        tmp_path,
        "QueryRetrieveLevel=IMAGE",
        f"StudyInstanceUID={MR_STUDY}",
        *keys,
    )
    assert not found
    assert "a900" in log.lower() or "DataSetDoesNotMatchSOPClass" in log, log
    assert comment in archive.log()
    # The SCP keeps serving.
    again, _ = _image_query(
        archive, tmp_path, KO_SERIES, "ConceptNameCodeSequence[0].CodeValue=113000"
    )
    assert {int(ds.InstanceNumber) for ds in again} == {1}


def test_an_image_key_at_series_level_gets_a900(archive, tmp_path):
    found, log = findscu(
        archive,
        tmp_path,
        "QueryRetrieveLevel=SERIES",
        f"StudyInstanceUID={MR_STUDY}",
        "ConceptNameCodeSequence[0].CodeValue=113000",
    )
    assert not found
    assert "ConceptNameCodeSequence is below the SERIES level" in archive.log(), log
