"""Key Object Selection Documents: TID 2010 built from real images, checked by
dciodvfy, read back as exactly the flagged images.

Sources: dcm4che's MR series (its images carry a Request Attributes
Sequence, so the document gets a Referenced Request Sequence), fo-dicom's
enhanced MR of 19 frames, a colour ultrasound loop of 34 frames (key images
may be in colour), and a presentation state we build on the MR.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from jivex_core.imaging.gsps import build_presentation_state
from jivex_core.imaging.ko import (
    KEY_OBJECT_DESCRIPTION,
    KO_SOP_CLASS,
    build_key_object_selection,
    complete_selection,
    find_title,
    key_objects_from_dataset,
    reference_value_type,
)
from jivex_core.imaging.presentation import (
    KEY_OBJECT_TITLES,
    Code,
    ImageRef,
    KeyObjectSelection,
    PresentationState,
)
from jivex_core.uids import INSTANCE_ARC
from tests import iod
from tests.helpers import SHARED_DATA

MR = [SHARED_DATA / "dcm4che" / f"MR0{n}.dcm" for n in (1, 2, 3)]
KNEE = SHARED_DATA / "fo-dicom" / "MOVEKNEE.dcm"
ECHO = SHARED_DATA / "orthanc-tests" / "Issue16.dcm"  # US, 34 frames, YBR
NOW = dt.datetime(2026, 3, 14, 9, 30, 0)
TEACHING = find_title("113004")


@pytest.fixture(scope="module")
def mr() -> list[Dataset]:
    return [pydicom.dcmread(p, stop_before_pixels=True) for p in MR]


@pytest.fixture(scope="module")
def knee() -> Dataset:
    return pydicom.dcmread(KNEE, stop_before_pixels=True)


@pytest.fixture(scope="module")
def state_on_mr(mr) -> Dataset:
    """A presentation state on the first two MR images."""
    state = PresentationState(images=[ref(mr[0]), ref(mr[1])], label="KEY")
    return iod.reread(build_presentation_state(state, mr))


def ref(ds: Dataset, *frames: int) -> ImageRef:
    return ImageRef("", str(ds.SOPInstanceUID), "", frames)


def build_and_check(selection, sources, tmp_path, name="ko.dcm"):
    ds = build_key_object_selection(selection, sources, now=NOW)
    iod.check(ds, tmp_path / name)
    again = key_objects_from_dataset(pydicom.dcmread(tmp_path / name))
    assert again == complete_selection(selection, sources)
    return ds, again


def test_a_document_with_every_part(mr, knee, state_on_mr, tmp_path):
    # Knee and MR series belong to different patients in the data; a
    # document documents one patient, so the knee's frames are flagged in a
    # document of their own below.
    selection = KeyObjectSelection(
        [ref(mr[0]), ref(mr[2])],
        TEACHING,
        "Lesion in the left frontal lobe",
        [ImageRef("", str(state_on_mr.SOPInstanceUID)), None],
        "Doe^Jane",
    )
    ds, again = build_and_check(selection, [*mr, state_on_mr], tmp_path)
    assert ds.SOPClassUID == KO_SOP_CLASS and ds.Modality == "KO"
    assert ds.SOPInstanceUID.startswith(INSTANCE_ARC)
    assert (ds.ContentDate, ds.ContentTime) == ("20260314", "093000")
    assert (ds.SeriesNumber, ds.InstanceNumber) == (9101, 1)
    # TID 2010 at the root.
    assert ds.ValueType == "CONTAINER" and ds.ContinuityOfContent == "SEPARATE"
    assert ds.ConceptNameCodeSequence[0].CodeValue == "113004"
    template = ds.ContentTemplateSequence[0]
    assert (template.MappingResource, template.TemplateIdentifier) == ("DCMR", "2010")
    kinds = [(item.RelationshipType, item.ValueType) for item in ds.ContentSequence]
    assert kinds == [
        ("HAS OBS CONTEXT", "CODE"),
        ("HAS OBS CONTEXT", "PNAME"),
        ("CONTAINS", "TEXT"),
        ("CONTAINS", "IMAGE"),
        ("CONTAINS", "IMAGE"),
    ]
    text = ds.ContentSequence[2]
    assert text.ConceptNameCodeSequence[0].CodeValue == KEY_OBJECT_DESCRIPTION.value
    first_image = ds.ContentSequence[3].ReferencedSOPSequence[0]
    assert first_image.ReferencedSOPInstanceUID == mr[0].SOPInstanceUID
    assert (
        first_image.ReferencedSOPSequence[0].ReferencedSOPInstanceUID
        == state_on_mr.SOPInstanceUID
    )
    # The evidence lists the images and the presentation state, by series.
    (study,) = ds.CurrentRequestedProcedureEvidenceSequence
    listed = {
        series.SeriesInstanceUID: [
            r.ReferencedSOPInstanceUID for r in series.ReferencedSOPSequence
        ]
        for series in study.ReferencedSeriesSequence
    }
    assert listed == {
        mr[0].SeriesInstanceUID: [mr[0].SOPInstanceUID, mr[2].SOPInstanceUID],
        state_on_mr.SeriesInstanceUID: [state_on_mr.SOPInstanceUID],
    }
    # The images' request, from their Request Attributes Sequence.
    (request,) = ds.ReferencedRequestSequence
    assert request.RequestedProcedureID == "RP1026"
    assert request.StudyInstanceUID == mr[0].StudyInstanceUID
    assert again.text == "Lesion in the left frontal lobe"
    assert again.creator == "Doe^Jane"
    assert again.presentation_states[0].SOPInstanceUID == state_on_mr.SOPInstanceUID


def test_frames_a_presentation_state_and_text_in_one_document(knee, tmp_path):
    state = PresentationState(images=[ref(knee, 2, 5)], label="KNEE", rotation=90)
    on_knee = iod.reread(build_presentation_state(state, [knee]))
    selection = KeyObjectSelection(
        [ref(knee, 2), ref(knee, 5, 9)],
        find_title("For Surgery"),
        "Meniscal tear, frames 2 and 5",
        [None, ImageRef("", str(on_knee.SOPInstanceUID))],
        "Doe^Jane",
    )
    ds, again = build_and_check(selection, [knee, on_knee], tmp_path)
    image = ds.ContentSequence[-1].ReferencedSOPSequence[0]
    assert list(image.ReferencedFrameNumber) == [5, 9]
    assert image.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == (
        on_knee.SOPInstanceUID
    )
    assert [r.frames for r in again.images] == [(2,), (5, 9)]
    assert again.presentation_states[1].SeriesInstanceUID == on_knee.SeriesInstanceUID


def test_frames_of_a_multi_frame_image(knee, tmp_path):
    selection = KeyObjectSelection([ref(knee, 3, 7), ref(knee, 12)], TEACHING)
    ds, again = build_and_check(selection, [knee], tmp_path)
    numbers = [
        item.ReferencedSOPSequence[0].ReferencedFrameNumber
        for item in ds.ContentSequence
    ]
    assert [list(n) if not isinstance(n, int) else [n] for n in numbers] == [
        [3, 7],
        [12],
    ]
    assert [r.frames for r in again.images] == [(3, 7), (12,)]


def test_a_single_frame_image_is_referenced_without_a_frame_number(mr, tmp_path):
    selection = KeyObjectSelection([ref(mr[0], 1)], TEACHING)
    ds, again = build_and_check(selection, mr, tmp_path)
    assert "ReferencedFrameNumber" not in ds.ContentSequence[0].ReferencedSOPSequence[0]
    assert again.images[0].frames == ()


def test_colour_images_may_be_key_images(tmp_path):
    echo = pydicom.dcmread(ECHO, stop_before_pixels=True)
    selection = KeyObjectSelection([ref(echo, 4)], find_title("For Conference"))
    build_and_check(selection, [echo], tmp_path)


@pytest.mark.parametrize("title", KEY_OBJECT_TITLES[:12], ids=lambda c: c.value)
def test_titles_of_cid_7010(mr, tmp_path, title):
    selection = KeyObjectSelection([ref(mr[1])], title)
    _ds, again = build_and_check(selection, mr, tmp_path)
    assert again.title == title


@pytest.mark.parametrize(
    ("text", "charset"),
    [("Für die Lehre", "ISO_IR 100"), ("教育用の画像", "ISO_IR 192"), ("plain", None)],
)
def test_non_ascii_text_names_its_character_set(mr, tmp_path, text, charset):
    selection = KeyObjectSelection([ref(mr[0])], TEACHING, text, [], "Doe^Jane")
    ds, again = build_and_check(selection, mr, tmp_path)
    assert ds.get("SpecificCharacterSet") == charset
    assert again.text == text


def test_find_title_by_code_or_meaning():
    assert find_title("113000") == Code("113000", "DCM", "Of Interest")
    assert find_title("for teaching") == TEACHING
    with pytest.raises(ValueError, match=r"'Interesting' is not .* CID 7010"):
        find_title("Interesting")


# -- Pitfalls ----------------------------------------------------------------


def test_each_key_image_is_an_image_item_not_only_evidence(mr, tmp_path):
    selection = KeyObjectSelection([ref(mr[2]), ref(mr[0])], TEACHING)
    ds, _again = build_and_check(selection, mr, tmp_path)
    images = [
        item.ReferencedSOPSequence[0].ReferencedSOPInstanceUID
        for item in ds.ContentSequence
        if item.ValueType == "IMAGE"
    ]
    assert images == [mr[2].SOPInstanceUID, mr[0].SOPInstanceUID]


def test_reading_back_shows_only_the_flagged_images(mr, tmp_path):
    selection = KeyObjectSelection([ref(mr[1])], TEACHING)
    ds = build_key_object_selection(selection, mr)
    # Evidence may list more than was flagged (another system's document,
    # or the presentation states a document refers to): not key images.
    extra = Dataset()
    extra.ReferencedSOPClassUID = mr[0].SOPClassUID
    extra.ReferencedSOPInstanceUID = mr[0].SOPInstanceUID
    series = ds.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0]
    series.ReferencedSOPSequence.append(extra)
    again = key_objects_from_dataset(iod.reread(ds))
    assert [r.SOPInstanceUID for r in again.images] == [mr[1].SOPInstanceUID]
    assert again.images[0].SeriesInstanceUID == mr[1].SeriesInstanceUID


# -- Bad input ---------------------------------------------------------------


def _bad(mr, knee, state_on_mr, how):
    selection = KeyObjectSelection([ref(mr[0])], TEACHING)
    sources = [*mr, knee, state_on_mr]
    if how == "no images":
        selection.images = []
    elif how == "unknown image":
        selection.images = [ImageRef("", "1.2.3.4.5")]
    elif how == "frame out of range":
        selection.images = [ref(knee, 20)]
    elif how == "flagged twice":
        selection.images = [ref(mr[0]), ref(mr[0])]
    elif how == "two patients":
        selection.images = [ref(mr[0]), ref(knee, 1)]
    elif how == "title":
        selection.title = Code("999", "99X", "Made up")
    elif how == "state of other images":
        selection.images = [ref(mr[2])]
        selection.presentation_states = [ImageRef("", str(state_on_mr.SOPInstanceUID))]
    elif how == "state that is an image":
        selection.presentation_states = [ref(mr[1])]
    elif how == "wrong class":
        selection.images = [dataclasses.replace(ref(mr[0]), SOPClassUID="1.2.3")]
    return selection, sources


@pytest.mark.parametrize(
    ("how", "named"),
    [
        ("no images", "at least one image"),
        ("unknown image", "'1.2.3.4.5' is not among the source objects"),
        ("frame out of range", "frame 20 does not exist"),
        ("flagged twice", "flagged twice"),
        ("two patients", "different patients"),
        ("title", "not one of CID 7010"),
        ("state of other images", "does not apply to image"),
        ("state that is an image", "not a presentation state"),
        ("wrong class", "given as SOP Class '1.2.3'"),
    ],
)
def test_a_selection_the_document_cannot_say_is_refused_by_name(
    mr, knee, state_on_mr, how, named
):
    selection, sources = _bad(mr, knee, state_on_mr, how)
    with pytest.raises(ValueError, match=named):
        build_key_object_selection(selection, sources)


def test_reading_refuses_what_is_no_key_object_document(mr):
    ds = build_key_object_selection(KeyObjectSelection([ref(mr[0])], TEACHING), mr)
    no_title = iod.reread(ds)
    del no_title.ConceptNameCodeSequence
    with pytest.raises(ValueError, match="no title"):
        key_objects_from_dataset(no_title)
    broken = iod.reread(ds)
    del broken.ContentSequence[0].ReferencedSOPSequence
    with pytest.raises(ValueError, match="IMAGE item without Referenced SOP Sequence"):
        key_objects_from_dataset(broken)
    with pytest.raises(ValueError, match="not Key Object Selection Document"):
        key_objects_from_dataset(mr[0])


def test_a_document_that_flags_nothing_names_what_is_missing(mr):
    # The viewer shows these messages instead of "none of the key images is
    # stored here".
    ds = build_key_object_selection(KeyObjectSelection([ref(mr[0])], TEACHING), mr)
    without = iod.reread(ds)
    del without.ContentSequence
    with pytest.raises(ValueError, match="the key object document has no Content "):
        key_objects_from_dataset(without)
    empty = iod.reread(ds)
    empty.ContentSequence = Sequence()
    with pytest.raises(
        ValueError,
        match=r"Content Sequence \(0 items\) has no IMAGE, WAVEFORM or COMPOSITE",
    ):
        key_objects_from_dataset(empty)
    text_only = iod.reread(ds)
    note = Dataset()
    note.RelationshipType, note.ValueType, note.TextValue = "CONTAINS", "TEXT", "x"
    text_only.ContentSequence = Sequence([note])
    with pytest.raises(ValueError, match=r"\(1 items\) has no IMAGE, WAVEFORM"):
        key_objects_from_dataset(text_only)


# -- Objects that are not images: WAVEFORM and COMPOSITE items ------------------

ECG = get_testdata_file("waveform_ecg.dcm")
PDF = SHARED_DATA / "orthanc-tests" / "sample-pdf.dcm"
SR = SHARED_DATA / "orthanc-tests" / "MarekLatin2.dcm"


@pytest.mark.parametrize(
    ("sop_class", "value_type"),
    [
        ("1.2.840.10008.5.1.4.1.1.2", "IMAGE"),  # CT
        ("1.2.840.10008.5.1.4.1.1.1.1", "IMAGE"),  # DX, For Presentation
        ("1.2.840.10008.5.1.4.1.1.66.4", "IMAGE"),  # Segmentation
        ("1.2.840.10008.5.1.4.1.1.481.2", "IMAGE"),  # RT Dose
        ("1.2.840.10008.5.1.4.1.1.9.1.1", "WAVEFORM"),  # 12-lead ECG
        ("1.2.840.10008.5.1.4.1.1.9.4.2", "WAVEFORM"),  # General Audio
        ("1.2.840.10008.5.1.4.1.1.9", "COMPOSITE"),  # Standalone Curve (retired)
        ("1.2.840.10008.5.1.4.1.1.104.1", "COMPOSITE"),  # Encapsulated PDF
        ("1.2.840.10008.5.1.4.1.1.88.11", "COMPOSITE"),  # Basic Text SR
        ("1.2.840.10008.5.1.4.1.1.88.77", "COMPOSITE"),  # Waveform Annotation SR
        ("1.2.840.10008.5.1.4.1.1.11.1", "COMPOSITE"),  # GSPS
        ("1.2.840.10008.5.1.4.1.1.481.5", "COMPOSITE"),  # RT Plan
    ],
)
def test_the_value_type_follows_the_sop_class(sop_class, value_type):
    assert reference_value_type(sop_class) == value_type


def test_a_private_class_is_judged_by_its_header():
    header = Dataset()
    assert reference_value_type("1.2.3.4.5", header) == "COMPOSITE"
    header.Rows, header.Columns = 10, 10
    assert reference_value_type("1.2.3.4.5", header) == "IMAGE"
    wave = Dataset()
    wave.WaveformSequence = Sequence()
    assert reference_value_type("1.2.3.4.5", wave) == "WAVEFORM"


@pytest.fixture(scope="module")
def others(mr) -> list[Dataset]:
    """An ECG, a PDF and an SR of the MR's patient and study (the files are
    of other patients; a document documents one)."""
    out = []
    for path in (ECG, PDF, SR):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        for keyword in ("PatientID", "PatientName", "StudyInstanceUID"):
            setattr(ds, keyword, mr[0].get(keyword))
        out.append(ds)
    return out


def test_waveforms_and_other_objects_get_their_own_value_types(mr, others, tmp_path):
    ecg, pdf, sr = others
    selection = KeyObjectSelection(
        [ref(mr[0]), ref(ecg, 1), ref(pdf), ref(sr)], TEACHING, "ECG and report"
    )
    ds, again = build_and_check(selection, [*mr, *others], tmp_path)
    items = [i for i in ds.ContentSequence if i.ValueType != "TEXT"]
    assert [(i.RelationshipType, i.ValueType) for i in items] == [
        ("CONTAINS", "IMAGE"),
        ("CONTAINS", "WAVEFORM"),
        ("CONTAINS", "COMPOSITE"),
        ("CONTAINS", "COMPOSITE"),
    ]
    classes = [i.ReferencedSOPSequence[0].ReferencedSOPClassUID for i in items]
    assert classes == [
        mr[0].SOPClassUID,
        "1.2.840.10008.5.1.4.1.1.9.1.1",
        "1.2.840.10008.5.1.4.1.1.104.1",
        "1.2.840.10008.5.1.4.1.1.88.11",
    ]
    # No frame numbers outside IMAGE items (the ECG's frame 1 is itself).
    assert all("ReferencedFrameNumber" not in i.ReferencedSOPSequence[0] for i in items)
    # Read back: every flagged object, in order, with its class.
    assert [(r.SOPClassUID, r.SOPInstanceUID) for r in again.images] == [
        (c, str(d.SOPInstanceUID))
        for c, d in zip(classes, [mr[0], *others], strict=True)
    ]


def test_another_systems_waveform_and_composite_items_are_read(mr, others):
    ecg, pdf, _sr = others
    ds = build_key_object_selection(
        KeyObjectSelection([ref(mr[0]), ref(ecg), ref(pdf)], TEACHING),
        [*mr, *others],
    )
    again = key_objects_from_dataset(iod.reread(ds))
    assert [r.SOPInstanceUID for r in again.images] == [
        str(mr[0].SOPInstanceUID),
        str(ecg.SOPInstanceUID),
        str(pdf.SOPInstanceUID),
    ]
    assert again.images[1].SeriesInstanceUID == str(ecg.SeriesInstanceUID)


def test_frames_or_a_state_for_an_object_that_is_not_an_image_are_refused(
    mr, others, state_on_mr
):
    ecg, pdf, _sr = others
    sources = [*mr, *others, state_on_mr]
    with pytest.raises(ValueError, match="is a waveform: it has no frames to flag"):
        build_key_object_selection(KeyObjectSelection([ref(ecg, 2)], TEACHING), sources)
    with pytest.raises(
        ValueError, match=r"is not an image .*: a presentation state applies to images"
    ):
        build_key_object_selection(
            KeyObjectSelection(
                [ref(pdf)],
                TEACHING,
                "",
                [ImageRef("", str(state_on_mr.SOPInstanceUID))],
            ),
            sources,
        )
