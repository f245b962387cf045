"""Grayscale Softcopy Presentation States: built from real images, checked by
dciodvfy, read back into the same model; real GSPS of other systems read.

The sources are real files of the shared data and of pydicom: a CT with a
rescale, an MR series, a MONOCHROME1 chest CR, a CR with a Modality LUT
Sequence, an enhanced MR of 19 frames with per-frame windows, a CT whose
patient name is in UTF-8, and colour images that a GSPS must refuse.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from jivex_core.imaging.gsps import (
    GSPS_SOP_CLASS,
    build_presentation_state,
    cielab_to_rgb,
    complete_state,
    content_label,
    presentation_from_dataset,
    rgb_to_cielab,
)
from jivex_core.imaging.presentation import (
    Annotation,
    DisplayedArea,
    Graphic,
    GraphicLayer,
    GraphicTypeValues,
    ImageRef,
    LookupTable,
    ModalityTransform,
    PresentationSizeModeValues,
    PresentationState,
    Shutter,
    TextLabel,
    VoiSetting,
    displayed_corners,
)
from jivex_core.imaging.render import Window
from jivex_core.uids import INSTANCE_ARC
from tests import iod
from tests.helpers import SHARED_DATA

D = SHARED_DATA
FILES = {
    "ct": get_testdata_file("CT_small.dcm"),
    "mr1": D / "dcm4che" / "MR01.dcm",
    "mr2": D / "dcm4che" / "MR02.dcm",
    "mr3": D / "dcm4che" / "MR03.dcm",
    "mono1": D / "highdicom" / "dx_image.dcm",
    "cr_lut": D / "fo-dicom" / "CR-ModalitySequenceLUT.dcm",
    "knee": D / "fo-dicom" / "MOVEKNEE.dcm",
    "utf8": D / "orthanc-tests" / "2024-05-30-GuillemVela.dcm",
    "sc": D / "weasis-dicom-tools" / "imageForPrLUTs.dcm",
    "rgb": D / "orthanc-tests" / "ColorTestMalaterre.dcm",
    "palette": D / "fo-dicom" / "TestPattern_Palette.dcm",
}
PR_HIP = (
    D / "orthanc-tests" / "HierarchicalAnonymization" / "2019-03-28" / "PR000000.dcm"
)
PR_LUTS = D / "weasis-dicom-tools" / "prLUTs.dcm"
NOW = dt.datetime(2026, 3, 14, 15, 9, 26)


@pytest.fixture(scope="module")
def src() -> dict[str, Dataset]:
    return {
        name: pydicom.dcmread(path, stop_before_pixels=True)
        for name, path in FILES.items()
    }


def ref(ds: Dataset, *frames: int) -> ImageRef:
    return ImageRef(str(ds.SOPClassUID), str(ds.SOPInstanceUID), "", frames)


def build_and_check(state, sources, tmp_path, name="pr.dcm"):
    """Build, verify with dciodvfy, read back; return (dataset, read state)."""
    ds = build_presentation_state(state, sources, now=NOW)
    iod.check(ds, tmp_path / name)
    again = presentation_from_dataset(pydicom.dcmread(tmp_path / name))
    assert again == complete_state(state, sources)
    return ds, again


LAYERS = [
    GraphicLayer("MEASURE", 2, 65535, (255, 255, 0), "lengths and areas"),
    GraphicLayer("NOTES", 1, 32768, (0, 128, 255)),
    GraphicLayer("ARROWS", 3, None, (255, 0, 0)),
]


def _shutters():
    return {
        "rectangular": Shutter(rectangle=(10, 100, 20, 110)),
        "circular": Shutter(circle=((64, 60), 50)),
        "polygonal": Shutter(polygon=((1, 1), (128, 10), (64, 120))),
        "all three, white": Shutter(
            (5, 120, 5, 120), ((64, 64), 60), ((1, 1), (128, 1), (64, 128)), 65535
        ),
        "rectangle and circle": Shutter((5, 120, 5, 120), ((64, 64), 60), None, 200),
    }


@pytest.mark.parametrize("name", list(_shutters()))
def test_each_shutter_shape_and_their_combinations(src, tmp_path, name):
    shutter = _shutters()[name]
    state = PresentationState(images=[ref(src["ct"])], label="SHUTTER", shutter=shutter)
    ds, again = build_and_check(state, [src["ct"]], tmp_path)
    shapes = ds.ShutterShape
    shapes = [shapes] if isinstance(shapes, str) else list(shapes)
    assert shapes == [s.value for s in shutter.shapes]
    assert again.shutter == shutter
    if shutter.circle is not None:
        # DICOM says row\column; the model (column, row).
        assert list(ds.CenterOfCircularShutter) == [
            60 if name == "circular" else 64,
            64,
        ]


GRAPHICS = {
    "point": Graphic(GraphicTypeValues.POINT, ((10.5, 20.25),)),
    "open polyline": Graphic(GraphicTypeValues.POLYLINE, ((1.5, 2.0), (30.0, 40.25))),
    "rectangle": Graphic.rectangle((10.0, 10.0), (50.5, 60.0)),
    "filled polygon": Graphic.polygon(((5.0, 5.0), (60.0, 8.0), (30.0, 50.0)), True),
    "interpolated": Graphic(
        GraphicTypeValues.INTERPOLATED, ((1.0, 1.0), (20.0, 30.0), (40.0, 5.0))
    ),
    "circle": Graphic(GraphicTypeValues.CIRCLE, ((64.0, 64.0), (64.0, 100.0)), True),
    "ellipse": Graphic(
        GraphicTypeValues.ELLIPSE,
        ((10.0, 50.0), (110.0, 50.0), (60.0, 30.0), (60.0, 70.0)),
    ),
}


@pytest.mark.parametrize("name", list(GRAPHICS))
def test_each_graphic_type(src, tmp_path, name):
    graphic = GRAPHICS[name]
    state = PresentationState(
        images=[ref(src["ct"])],
        label="GRAPHIC",
        layers=[LAYERS[0]],
        annotations=[Annotation("MEASURE", (), [graphic])],
    )
    ds, again = build_and_check(state, [src["ct"]], tmp_path)
    item = ds.GraphicAnnotationSequence[0].GraphicObjectSequence[0]
    assert item.GraphicType == graphic.type.value
    assert item.NumberOfGraphicPoints == len(graphic.points)
    assert ("GraphicFilled" in item) == graphic.closed
    assert again.annotations[0].graphics == [graphic]


def test_text_with_anchor_with_box_and_with_both(src, tmp_path):
    texts = [
        TextLabel("42.1 mm", (30.0, 40.25)),
        TextLabel("hidden anchor", (5.0, 5.0), anchor_visible=False),
        TextLabel("boxed", None, ((1.0, 1.0), (40.0, 10.0)), justification="CENTER"),
        TextLabel("both", (60.0, 60.0), ((61.0, 40.0), (120.0, 55.0)), True, "RIGHT"),
    ]
    state = PresentationState(
        images=[ref(src["ct"])],
        label="TEXT",
        layers=[LAYERS[1]],
        annotations=[Annotation("NOTES", (), [], texts)],
    )
    ds, again = build_and_check(state, [src["ct"]], tmp_path)
    items = ds.GraphicAnnotationSequence[0].TextObjectSequence
    assert "BoundingBoxAnnotationUnits" not in items[0]
    assert items[1].AnchorPointVisibility == "N"
    assert "AnchorPoint" not in items[2]
    assert items[3].BoundingBoxTextHorizontalJustification == "RIGHT"
    assert again.annotations[0].texts == texts


def test_several_layers_with_colours_on_some_images(src, tmp_path):
    images = [src["mr1"], src["mr2"], src["mr3"]]
    a, b, c = (ref(ds) for ds in images)
    state = PresentationState(
        images=[a, b, c],
        label="LAYERS",
        layers=LAYERS,
        annotations=[
            Annotation("MEASURE", (a,), [GRAPHICS["open polyline"]]),
            Annotation("NOTES", (b, c), [], [TextLabel("note", (3.0, 4.0))]),
            Annotation("ARROWS", (), [GRAPHICS["open polyline"]]),
        ],
    )
    ds, again = build_and_check(state, images, tmp_path)
    layers = {item.GraphicLayer: item for item in ds.GraphicLayerSequence}
    assert list(layers["MEASURE"].GraphicLayerRecommendedDisplayCIELabValue) == list(
        rgb_to_cielab((255, 255, 0))
    )
    assert layers["NOTES"].GraphicLayerRecommendedDisplayGrayscaleValue == 32768
    assert "GraphicLayerRecommendedDisplayGrayscaleValue" not in layers["ARROWS"]
    assert [x.layer for x in again.annotations_for(a.SOPInstanceUID)] == [
        "MEASURE",
        "ARROWS",
    ]
    assert [x.layer for x in again.annotations_for(c.SOPInstanceUID)] == [
        "NOTES",
        "ARROWS",
    ]
    assert again.layers == LAYERS


def test_cielab_colours_survive_the_round_trip():
    assert rgb_to_cielab((255, 255, 255)) == (65535, 32896, 32896)
    assert rgb_to_cielab((0, 0, 0)) == (0, 32896, 32896)
    for rgb in [
        (r, g, b) for r in range(0, 256, 15) for g in (0, 77, 255) for b in (0, 200)
    ]:
        assert cielab_to_rgb(rgb_to_cielab(rgb)) == rgb


def test_windows_functions_and_a_voi_lut(src, tmp_path):
    images = [src["mr1"], src["mr2"], src["mr3"]]
    a, b, c = (ref(ds) for ds in images)
    lut = LookupTable(0, 16, tuple(range(0, 65536, 256)), "ramp")
    state = PresentationState(
        images=[a, b, c],
        label="VOI",
        voi=[
            VoiSetting((a,), Window(600, 1200), "LINEAR", "SOFT"),
            VoiSetting((b,), Window(600.5, 1200.25), "SIGMOID"),
            VoiSetting((c,), None, lut=lut),
        ],
    )
    ds, again = build_and_check(state, images, tmp_path)
    items = ds.SoftcopyVOILUTSequence
    assert items[0].WindowCenterWidthExplanation == "SOFT"
    assert items[1].VOILUTFunction == "SIGMOID"
    assert list(items[2].VOILUTSequence[0].LUTDescriptor) == [256, 0, 16]
    assert again.voi == state.voi


def test_an_eight_bit_voi_lut_is_packed_two_entries_to_a_word(src, tmp_path):
    lut = LookupTable(0, 8, tuple(range(255, -1, -1)), "inverted")
    state = PresentationState(
        images=[ref(src["mr1"])], label="LUT8", voi=[VoiSetting((), None, lut=lut)]
    )
    ds, again = build_and_check(state, [src["mr1"]], tmp_path)
    assert len(ds.SoftcopyVOILUTSequence[0].VOILUTSequence[0].LUTData) == 256  # bytes
    assert again.voi[0].lut == lut


def test_a_state_without_window_carries_the_images_own(src, tmp_path):
    state = PresentationState(images=[ref(src["mr1"])], label="OWN")
    _ds, again = build_and_check(state, [src["mr1"]], tmp_path)
    window = Window(float(src["mr1"].WindowCenter), float(src["mr1"].WindowWidth))
    assert again.voi == [VoiSetting((), window)]


def test_per_frame_windows_of_an_enhanced_image_are_kept_frame_by_frame(src, tmp_path):
    knee = ref(src["knee"], 2, 3, 5)
    state = PresentationState(images=[knee], label="KNEE")
    _ds, again = build_and_check(state, [src["knee"]], tmp_path)
    per_frame = src["knee"].PerFrameFunctionalGroupsSequence
    for frame in (2, 3, 5):
        item = per_frame[frame - 1].FrameVOILUTSequence[0]
        expected = Window(float(item.WindowCenter), float(item.WindowWidth))
        assert again.voi_for(knee.SOPInstanceUID, frame).window == expected


@pytest.mark.parametrize(
    "modality",
    [
        ModalityTransform(2.0, -1024.0, "HU"),
        ModalityTransform(lut=LookupTable(-1024, 16, tuple(range(0, 65536, 64)), "ct")),
        None,
    ],
    ids=["rescale", "lut", "the image's own"],
)
def test_modality_rescale_and_lut(src, tmp_path, modality):
    state = PresentationState(
        images=[ref(src["ct"])], label="MODALITY", modality=modality
    )
    ds, again = build_and_check(state, [src["ct"]], tmp_path)
    if modality is None:
        # CT_small rescales with intercept -1024 and no type: HU for a CT.
        assert again.modality == ModalityTransform(
            float(src["ct"].RescaleSlope), float(src["ct"].RescaleIntercept), "HU"
        )
        assert ds.RescaleType == "HU"
    elif modality.lut is not None:
        assert ds.ModalityLUTSequence[0]["LUTDescriptor"].VR == "SS"
        assert again.modality == modality


@pytest.mark.filterwarnings("ignore:Invalid value for VR UI")
def test_a_modality_lut_sequence_of_the_image_is_carried(src, tmp_path):
    # fo-dicom's CR with a Modality LUT Sequence: copied as it is (table 60,
    # source IMG). The file itself fails dciodvfy (its SOP Instance UID is
    # not a valid UID and its LUT says 16 bits for 10-bit data), so the
    # object is checked below on a CT given such a sequence instead.
    state = PresentationState(
        images=[ref(src["cr_lut"])], label="CRLUT", presentation_shape="INVERSE"
    )
    ds = build_presentation_state(state, [src["cr_lut"]])
    source_lut = src["cr_lut"].ModalityLUTSequence[0]
    assert list(ds.ModalityLUTSequence[0].LUTDescriptor) == list(
        source_lut.LUTDescriptor
    )
    again = presentation_from_dataset(iod.reread(ds))
    assert again.modality.lut.data == tuple(
        int(v) for v in np.frombuffer(source_lut.LUTData, dtype="<u2")
    )
    assert again.modality.type == source_lut.ModalityLUTType


def test_an_images_modality_lut_sequence_passes_dciodvfy(src, tmp_path):
    ct = Dataset()
    ct.update(src["ct"])
    for keyword in ("RescaleSlope", "RescaleIntercept"):
        delattr(ct, keyword)
    item = Dataset()
    item.add_new(0x00283002, "US", [4096, 0, 16])
    item.ModalityLUTType = "HU"
    item.add_new(0x00283006, "OW", bytes(range(256)) * 32)
    ct.ModalityLUTSequence = Sequence([item])
    state = PresentationState(images=[ref(ct)], label="CTLUT")
    _ds, again = build_and_check(state, [ct], tmp_path)
    assert again.modality.type == "HU" and len(again.modality.lut.data) == 4096


@pytest.mark.parametrize("shape", ["IDENTITY", "INVERSE", "lut"])
def test_presentation_shapes_and_lut(src, tmp_path, shape):
    lut = LookupTable(0, 12, tuple(range(4095, -1, -16)), "inverted")
    state = PresentationState(
        images=[ref(src["mr1"])],
        label="SHAPE",
        presentation_shape="IDENTITY" if shape == "lut" else shape,
        presentation_lut=lut if shape == "lut" else None,
    )
    ds, again = build_and_check(state, [src["mr1"]], tmp_path)
    if shape == "lut":
        assert "PresentationLUTShape" not in ds
        assert again.presentation_lut == lut
    else:
        assert ds.PresentationLUTShape == shape


def test_monochrome1_is_shown_right_by_an_inverse_state(src, tmp_path):
    state = PresentationState(
        images=[ref(src["mono1"])], label="CHEST", presentation_shape="INVERSE"
    )
    ds, again = build_and_check(state, [src["mono1"]], tmp_path)
    assert ds.PresentationLUTShape == "INVERSE"
    assert again.presentation_shape == "INVERSE"


AREAS = {
    "scale to fit": DisplayedArea((20, 30), (100, 110)),
    "true size": DisplayedArea(
        (1, 1), (128, 128), PresentationSizeModeValues.TRUE_SIZE, (0.661468, 0.661468)
    ),
    "true size from the image": DisplayedArea(
        (1, 1), (128, 128), PresentationSizeModeValues.TRUE_SIZE
    ),
    # Beyond the image on the right and below. (Corners left of or above
    # it are negative, which dciodvfy reads as unsigned and refuses.)
    "magnify": DisplayedArea(
        (20, 10), (150, 140), PresentationSizeModeValues.MAGNIFY, None, (1, 1), 2.5
    ),
}


@pytest.mark.parametrize("name", list(AREAS))
def test_displayed_area_modes(src, tmp_path, name):
    area = AREAS[name]
    state = PresentationState(
        images=[ref(src["ct"])], label="AREA", displayed_areas=[area]
    )
    ds, _again = build_and_check(state, [src["ct"]], tmp_path)
    (item,) = ds.DisplayedAreaSelectionSequence
    assert item.PresentationSizeMode == area.size_mode.value
    if area.size_mode is PresentationSizeModeValues.TRUE_SIZE:
        assert [float(v) for v in item.PresentationPixelSpacing] == [0.661468] * 2
        assert "PresentationPixelAspectRatio" not in item
    if name == "magnify":
        assert item.PresentationPixelMagnificationRatio == 2.5


def test_displayed_areas_per_image_and_a_default_for_the_rest(src, tmp_path):
    images = [src["mr1"], src["mr2"], src["mr3"]]
    a, b, c = (ref(ds) for ds in images)
    zoom = DisplayedArea((50, 50), (200, 200), images=(a,))
    state = PresentationState(images=[a, b, c], label="ZOOM", displayed_areas=[zoom])
    _ds, again = build_and_check(state, images, tmp_path)
    assert again.area_for(a.SOPInstanceUID).top_left == (50, 50)
    whole = again.area_for(c.SOPInstanceUID)
    assert whole.bottom_right == (int(src["mr3"].Columns), int(src["mr3"].Rows))
    assert {r.SOPInstanceUID for r in whole.images} == {
        b.SOPInstanceUID,
        c.SOPInstanceUID,
    }


@pytest.mark.parametrize("rotation", [0, 90, 180, 270])
@pytest.mark.parametrize("flip", [False, True])
def test_rotation_and_flip(src, tmp_path, rotation, flip):
    state = PresentationState(
        images=[ref(src["ct"])], label="TURN", rotation=rotation, flip=flip
    )
    ds, _again = build_and_check(state, [src["ct"]], tmp_path)
    if rotation or flip:
        assert ds.ImageRotation == rotation
        assert ds.ImageHorizontalFlip == ("Y" if flip else "N")
    else:
        assert "ImageRotation" not in ds  # the module only when applied
    # The whole image, named by the corners shown top left and bottom right.
    (item,) = ds.DisplayedAreaSelectionSequence
    corners = displayed_corners(1, 1, 128, 128, rotation, flip)
    assert tuple(item.DisplayedAreaTopLeftHandCorner) == corners[0]
    assert tuple(item.DisplayedAreaBottomRightHandCorner) == corners[1]
    # A zoomed region, given by its corners as shown.
    zoom = DisplayedArea(*displayed_corners(10, 20, 60, 90, rotation, flip))
    state.displayed_areas = [zoom]
    build_and_check(state, [src["ct"]], tmp_path, "zoom.dcm")


@pytest.mark.parametrize(
    ("given", "written"),
    [
        # SCALE TO FIT, no scale given: the part inside the image, same mode.
        (
            DisplayedArea((0, 0), (0, 0), magnification=None),
            (PresentationSizeModeValues.SCALE_TO_FIT, None),
        ),
        # SCALE TO FIT with the scale it had on screen: MAGNIFY at that scale.
        (
            DisplayedArea((0, 0), (0, 0), magnification=4.9),
            (PresentationSizeModeValues.MAGNIFY, 4.9),
        ),
        (
            DisplayedArea(
                (0, 0), (0, 0), PresentationSizeModeValues.MAGNIFY, magnification=2.0
            ),
            (PresentationSizeModeValues.MAGNIFY, 2.0),
        ),
        (
            DisplayedArea((0, 0), (0, 0), PresentationSizeModeValues.TRUE_SIZE),
            (PresentationSizeModeValues.TRUE_SIZE, None),
        ),
    ],
    ids=["scale to fit", "scale to fit at 4.9", "magnify", "true size"],
)
@pytest.mark.parametrize(
    ("region", "inside"),
    [
        # Panned past the top left edge (the tester's zoom: -44\24).
        ((-44, -10, 60, 90), (1, 1, 60, 90)),
        # Zoomed out: beyond every edge.
        ((-20, -30, 150, 160), (1, 1, 128, 128)),
    ],
    ids=["past top left", "beyond every edge"],
)
def test_an_area_reaching_left_of_or_above_the_image_is_cut_to_it(
    src, tmp_path, caplog, given, written, region, inside
):
    # Rotated and flipped, so that the corners named are not the region's
    # top left and bottom right (PS3.3 C.10.4).
    rotation, flip = 90, True
    area = dataclasses.replace(
        given,
        **dict(
            zip(
                ("top_left", "bottom_right"),
                displayed_corners(*region, rotation, flip),
                strict=True,
            )
        ),
    )
    state = PresentationState(
        images=[ref(src["ct"])],
        label="PANNED",
        rotation=rotation,
        flip=flip,
        displayed_areas=[area],
    )
    with caplog.at_level(logging.INFO, logger="jivex_core.imaging.gsps"):
        ds, again = build_and_check(state, [src["ct"]], tmp_path)
    (item,) = ds.DisplayedAreaSelectionSequence
    corners = displayed_corners(*inside, rotation, flip)
    assert tuple(item.DisplayedAreaTopLeftHandCorner) == corners[0]
    assert tuple(item.DisplayedAreaBottomRightHandCorner) == corners[1]
    assert min(*corners[0], *corners[1]) >= 1
    mode, magnification = written
    assert item.PresentationSizeMode == mode.value
    if magnification is None:
        assert "PresentationPixelMagnificationRatio" not in item
    else:
        assert item.PresentationPixelMagnificationRatio == magnification
    assert "reaches beyond the image: written as its part inside" in caplog.text
    if given.size_mode is PresentationSizeModeValues.SCALE_TO_FIT and not (
        given.magnification
    ):
        assert "the view's margin beyond the image is dropped" in caplog.text
    assert again.displayed_areas[0].top_left == corners[0]


def test_an_area_inside_the_image_keeps_its_corners_and_mode(src, tmp_path):
    area = DisplayedArea((10, 20), (140, 150), magnification=3.0)
    state = PresentationState(
        images=[ref(src["ct"])], label="WIDE", displayed_areas=[area]
    )
    ds, _again = build_and_check(state, [src["ct"]], tmp_path)
    (item,) = ds.DisplayedAreaSelectionSequence
    # Beyond the right and bottom edges is fine for every reader.
    assert list(item.DisplayedAreaBottomRightHandCorner) == [140, 150]
    assert item.PresentationSizeMode == "SCALE TO FIT"
    assert "PresentationPixelMagnificationRatio" not in item


def test_displayed_area_corners_must_match_the_rotation(src):
    state = PresentationState(
        images=[ref(src["ct"])],
        label="TURN",
        rotation=90,
        displayed_areas=[DisplayedArea((10, 20), (60, 90))],
    )
    with pytest.raises(ValueError, match=r"are \(10, 90\) and \(60, 20\)"):
        build_presentation_state(state, [src["ct"]])


def test_multi_frame_references_name_their_frames(src, tmp_path):
    knee = src["knee"]
    frames = ref(knee, 2, 5, 9)
    on_frame_5 = ref(knee, 5)
    state = PresentationState(
        images=[frames],
        label="FRAMES",
        voi=[VoiSetting((), Window(1500, 2800))],
        layers=[LAYERS[0]],
        annotations=[Annotation("MEASURE", (on_frame_5,), [GRAPHICS["rectangle"]])],
    )
    ds, again = build_and_check(state, [knee], tmp_path)
    image = ds.ReferencedSeriesSequence[0].ReferencedImageSequence[0]
    assert list(image.ReferencedFrameNumber) == [2, 5, 9]
    item = ds.GraphicAnnotationSequence[0].ReferencedImageSequence[0]
    assert item.ReferencedFrameNumber == 5
    assert again.annotations_for(knee.SOPInstanceUID, 5)
    assert not again.annotations_for(knee.SOPInstanceUID, 2)


@pytest.mark.parametrize(
    ("text", "charset"),
    [("Grüße, Knie", "ISO_IR 100"), ("膝の所見", "ISO_IR 192"), ("plain", None)],
)
def test_non_ascii_text_names_its_character_set(src, tmp_path, text, charset):
    state = PresentationState(
        images=[ref(src["ct"])],
        label="TEXT",
        description=text,
        creator="Müller^Jürgen" if charset else "Doe^Jane",
        layers=[LAYERS[1]],
        annotations=[Annotation("NOTES", (), [], [TextLabel(text, (3.0, 4.0))])],
    )
    ds, again = build_and_check(state, [src["ct"]], tmp_path)
    assert ds.get("SpecificCharacterSet") == charset
    assert again.description == text
    assert again.annotations[0].texts[0].text == text


def test_patient_attributes_come_from_the_image_in_our_character_set(src, tmp_path):
    source = src["utf8"]
    state = PresentationState(images=[ref(source)], label="CT")
    _ds, _again = build_and_check(state, [source], tmp_path)
    written = pydicom.dcmread(tmp_path / "pr.dcm")
    assert str(written.PatientName) == str(source.PatientName)
    assert written.PatientID == source.PatientID
    assert written.StudyInstanceUID == source.StudyInstanceUID
    assert written.Laterality == "L"  # the image's own
    assert written.file_meta.ImplementationClassUID.startswith(
        "1.2.826.0.1.3680043.8.498.7461."
    )


def test_identity_and_creation_attributes(src, tmp_path):
    state = PresentationState(
        images=[ref(src["ct"])], label="LUNG", description="Nodule", creator="Doe^Jane"
    )
    ds = build_presentation_state(
        state, [src["ct"]], series_number=9002, instance_number=7, now=NOW
    )
    assert ds.SOPClassUID == GSPS_SOP_CLASS
    assert ds.SOPInstanceUID.startswith(INSTANCE_ARC)
    assert ds.SeriesInstanceUID.startswith(INSTANCE_ARC)
    assert (ds.Modality, ds.SeriesNumber, ds.InstanceNumber) == ("PR", 9002, 7)
    assert (ds.PresentationCreationDate, ds.PresentationCreationTime) == (
        "20260314",
        "150926",
    )
    assert (ds.ContentLabel, ds.ContentDescription, str(ds.ContentCreatorName)) == (
        "LUNG",
        "Nodule",
        "Doe^Jane",
    )
    assert ds.Manufacturer == "JiveX-Py"
    series = ds.ReferencedSeriesSequence[0]
    assert series.SeriesInstanceUID == src["ct"].SeriesInstanceUID


def test_a_fully_specified_state_is_written_as_it_is(src, tmp_path):
    images = [src["mr1"], src["mr2"]]
    a, b = (ref(ds) for ds in images)
    a = dataclasses.replace(a, SeriesInstanceUID=str(src["mr1"].SeriesInstanceUID))
    b = dataclasses.replace(b, SeriesInstanceUID=str(src["mr2"].SeriesInstanceUID))
    state = PresentationState(
        images=[a, b],
        label="ALL",
        description="everything",
        creator="Doe^Jane",
        modality=ModalityTransform(1.5, -10.0, "US"),
        voi=[VoiSetting((), Window(300, 600), "LINEAR_EXACT", "W")],
        presentation_shape="INVERSE",
        rotation=270,
        flip=True,
        displayed_areas=[
            DisplayedArea(
                *displayed_corners(1, 1, 256, 256, 270, True), aspect_ratio=(1, 1)
            )
        ],
        shutter=_shutters()["all three, white"],
        layers=LAYERS,
        annotations=[
            Annotation("MEASURE", (a,), list(GRAPHICS.values())),
            Annotation("NOTES", (), [], [TextLabel("x", (1.0, 2.0))]),
        ],
    )
    assert complete_state(state, images) == state
    build_and_check(state, images, tmp_path)


# -- Pitfalls ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["rgb", "palette"])
def test_colour_images_get_no_grayscale_state(src, name):
    state = PresentationState(images=[ref(src[name])], label="COLOUR")
    with pytest.raises(ValueError, match="MONOCHROME1 or MONOCHROME2 images only"):
        build_presentation_state(state, [src[name]])


def test_closed_graphics_repeat_their_first_point(src, tmp_path):
    rectangle = Graphic.rectangle((10.0, 20.0), (30.0, 40.0))
    assert rectangle.points[0] == rectangle.points[-1] and len(rectangle.points) == 5
    # A filled polygon given open is closed before it is written.
    open_filled = Graphic(
        GraphicTypeValues.POLYLINE, ((1.0, 1.0), (9.0, 1.0), (5.0, 7.0)), True
    )
    state = PresentationState(
        images=[ref(src["ct"])],
        label="CLOSED",
        layers=[LAYERS[0]],
        annotations=[Annotation("MEASURE", (), [rectangle, open_filled])],
    )
    ds, again = build_and_check(state, [src["ct"]], tmp_path)
    for item in ds.GraphicAnnotationSequence[0].GraphicObjectSequence:
        data = [float(v) for v in item.GraphicData]
        assert data[:2] == data[-2:]
        assert item.NumberOfGraphicPoints * 2 == len(data)
        assert "GraphicFilled" in item
    assert again.annotations[0].graphics[1].points[-1] == (1.0, 1.0)
    assert again.annotations[0].graphics[1].filled


# -- Real presentation states of other systems -------------------------------


def test_a_real_gsps_with_an_ellipse_and_a_text_reads_as_dcmdump_shows_it():
    # Values checked by hand with dcmdump (Softneta's PR on a MONOCHROME1 CR).
    state = presentation_from_dataset(pydicom.dcmread(PR_HIP))
    assert [r.SOPInstanceUID for r in state.images] == [
        "1.2.276.0.7230010.3.1.4.665618.6496.1546453790.314808"
    ]
    assert state.images[0].SeriesInstanceUID.endswith("314807")
    assert (state.label, state.description, state.creator) == (
        "PRESENTATION",
        "hip",
        "",
    )
    assert state.voi == [VoiSetting((), Window(2048, 4096))]
    assert state.modality == ModalityTransform()
    assert state.presentation_shape == "IDENTITY"
    (area,) = state.displayed_areas
    assert (area.top_left, area.bottom_right) == ((0, 0), (2688, 2688))
    assert state.layers == [
        GraphicLayer("MEASUREMENT_1", 0, None, None, "Measurement oval")
    ]
    (annotation,) = state.annotations
    (ellipse,) = annotation.graphics
    assert ellipse.type is GraphicTypeValues.ELLIPSE
    assert ellipse.points[0] == (1714.3682, 991.4224)
    assert ellipse.points[3] == (2110.6138, 1366.6426)
    (text,) = annotation.texts
    assert text.text.startswith("Mean: 2651.41  SD: 344.29")
    assert text.anchor == (1714.3682, 1366.6426) and not text.anchor_visible
    assert text.box == ((1714.3682, 1398.9891), (2605.0708, 1554.2527))


def test_a_real_gsps_with_modality_voi_and_presentation_luts():
    state = presentation_from_dataset(pydicom.dcmread(PR_LUTS))
    assert (state.label, state.creator) == ("XLUT_P03", "Riesmeier^Joerg")
    lut = state.modality.lut
    assert (lut.first_mapped, lut.bits, len(lut.data)) == (0, 8, 256)
    assert (
        lut.data[:4] == (0, 147, 83, 174)
        and lut.explanation == "scrambled modality lut"
    )
    assert state.modality.type == "US"
    (voi,) = state.voi
    assert voi.window is None and voi.lut.data[:4] == (0, 233, 103, 3)
    assert state.presentation_lut.data[:4] == (8, 141, 171, 173)
    assert state.displayed_areas[0].bottom_right == (512, 512)
    assert state.annotations == [] and state.shutter is None


# -- Reading what other systems write ----------------------------------------


@pytest.fixture
def built(src) -> Dataset:
    state = PresentationState(
        images=[ref(src["ct"])],
        label="BASE",
        rotation=90,
        displayed_areas=[DisplayedArea((1, 50), (100, 1))],
        layers=[LAYERS[0]],
        annotations=[
            Annotation(
                "MEASURE", (), [GRAPHICS["open polyline"]], [TextLabel("t", (1.0, 1.0))]
            )
        ],
        shutter=Shutter(rectangle=(1, 10, 1, 10)),
    )
    ds = build_presentation_state(state, [src["ct"]])
    return iod.reread(ds)


def test_an_undeclared_graphic_layer_is_read_into_a_layer_of_its_name(
    built, src, caplog, tmp_path
):
    # PS3.3 C.10.5: an annotation's Graphic Layer must be declared in the
    # Graphic Layer Sequence. Another system's state that forgets it:
    built.GraphicAnnotationSequence[0].GraphicLayer = "FORGOTTEN"
    with caplog.at_level(logging.WARNING, logger="jivex_core.imaging.gsps"):
        state = presentation_from_dataset(built)
    assert "Graphic layer 'FORGOTTEN' is used by an annotation but not declared" in (
        caplog.text
    )
    assert [a.layer for a in state.annotations] == ["FORGOTTEN"]
    assert state.layers == [LAYERS[0], GraphicLayer("FORGOTTEN", 3)]
    # Saved again, the layer is declared (the builder writes no other kind).
    ds, _again = build_and_check(state, [src["ct"]], tmp_path)
    assert [x.GraphicLayer for x in ds.GraphicLayerSequence] == [
        "MEASURE",
        "FORGOTTEN",
    ]


def test_the_builder_never_writes_an_undeclared_layer(src):
    state = PresentationState(
        images=[ref(src["ct"])],
        label="LAYERS",
        layers=[LAYERS[0]],
        annotations=[Annotation("OTHER", (), [GRAPHICS["open polyline"]])],
    )
    with pytest.raises(ValueError, match="layer 'OTHER', which the state does not"):
        build_presentation_state(state, [src["ct"]])


def test_display_units_are_mapped_through_area_rotation_and_flip(built):
    graphic = built.GraphicAnnotationSequence[0].GraphicObjectSequence[0]
    graphic.GraphicAnnotationUnits = "DISPLAY"
    # Screen top left, screen bottom right: with a 90 degree clockwise turn
    # the screen's top left is the image's bottom left.
    graphic.GraphicData = [0.0, 0.0, 1.0, 1.0]
    state = presentation_from_dataset(built)
    assert state.annotations[0].graphics[0].points == ((0.0, 50.0), (100.0, 0.0))
    # The flip comes after the rotation: the screen's top left is then the
    # image's top left.
    built.ImageHorizontalFlip = "Y"
    state = presentation_from_dataset(built)
    assert state.annotations[0].graphics[0].points == ((0.0, 0.0), (100.0, 50.0))


def test_what_cannot_be_shown_is_dropped_with_a_warning(built, caplog):
    built.ShutterShape = ["RECTANGULAR", "BITMAP"]
    built.ShutterOverlayGroup = 0x6000
    built.GraphicAnnotationSequence[0].GraphicObjectSequence[
        0
    ].GraphicAnnotationUnits = "MATRIX"
    built.GraphicAnnotationSequence[0].TextObjectSequence[
        0
    ].AnchorPointAnnotationUnits = "MATRIX"
    with caplog.at_level(logging.WARNING, logger="jivex_core.imaging.gsps"):
        state = presentation_from_dataset(built)
    assert state.shutter.rectangle == (1, 10, 1, 10)
    assert state.annotations == []
    messages = caplog.text
    assert "BITMAP" in messages and "MATRIX units" in messages
    assert "bitmap shutter" in messages


def test_optional_modules_may_be_absent(built):
    for keyword in (
        "GraphicAnnotationSequence",
        "GraphicLayerSequence",
        "ShutterShape",
        "ShutterLeftVerticalEdge",
        "ShutterRightVerticalEdge",
        "ShutterUpperHorizontalEdge",
        "ShutterLowerHorizontalEdge",
        "ShutterPresentationValue",
        "ImageRotation",
        "ImageHorizontalFlip",
        "SoftcopyVOILUTSequence",
        "RescaleSlope",
        "RescaleIntercept",
        "RescaleType",
    ):
        if keyword in built:
            delattr(built, keyword)
    state = presentation_from_dataset(built)
    assert state.annotations == [] and state.shutter is None and state.voi == []
    assert state.rotation == 0 and state.modality == ModalityTransform()


def _break(ds: Dataset, how: str) -> None:
    if how == "no references":
        del ds.ReferencedSeriesSequence
    elif how == "no displayed area":
        del ds.DisplayedAreaSelectionSequence
    elif how == "odd graphic data":
        graphic = ds.GraphicAnnotationSequence[0].GraphicObjectSequence[0]
        graphic.GraphicData = [1.0, 2.0, 3.0]
    elif how == "short LUT data":
        item = Dataset()
        item.LUTDescriptor = [256, 0, 12]
        item.add_new(0x00283006, "OW", b"\x00\x01" * 100)
        ds.PresentationLUTSequence = Sequence([item])
    elif how == "window width 0":
        voi = Dataset()
        voi.WindowCenter, voi.WindowWidth = 40, 0
        ds.SoftcopyVOILUTSequence = Sequence([voi])
    elif how == "rectangle without edge":
        del ds.ShutterLeftVerticalEdge
    elif how == "layer without order":
        del ds.GraphicLayerSequence[0].GraphicLayerOrder
    elif how == "not a GSPS":
        ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"


@pytest.mark.parametrize(
    ("how", "named"),
    [
        ("no references", "Referenced Series Sequence"),
        ("no displayed area", "Displayed Area Selection Sequence"),
        ("odd graphic data", "Graphic Data"),
        ("short LUT data", "LUT Data has 200 bytes for 256 entries"),
        ("window width 0", "window"),
        ("rectangle without edge", "ShutterLeftVerticalEdge"),
        ("layer without order", "GraphicLayerOrder"),
        ("not a GSPS", "not Grayscale Softcopy Presentation State"),
    ],
)
def test_malformed_required_content_is_named(built, how, named):
    _break(built, how)
    with pytest.raises(ValueError, match=named):
        presentation_from_dataset(built)


# -- Bad states -------------------------------------------------------------


def _bad(src, how):
    ct = ref(src["ct"])
    state = PresentationState(images=[ct], label="BAD", layers=[LAYERS[0]])
    sources = [src["ct"]]
    if how == "no images":
        state.images = []
    elif how == "unknown image":
        state.images = [ImageRef(ct.SOPClassUID, "1.2.3.4.5")]
    elif how == "undefined layer":
        state.annotations = [Annotation("OTHER", (), [GRAPHICS["point"]])]
    elif how == "label":
        state.label = "Lung window"
    elif how == "circle with three points":
        state.annotations = [
            Annotation(
                "MEASURE",
                (),
                [Graphic(GraphicTypeValues.CIRCLE, ((1, 1), (2, 2), (3, 3)))],
            )
        ]
    elif how == "text without position":
        state.annotations = [Annotation("MEASURE", (), [], [TextLabel("lost")])]
    elif how == "rotation":
        state.rotation = 45
    elif how == "two patients":
        state.images = [ct, ref(src["mr1"])]
        sources.append(src["mr1"])
    elif how == "voi on another image":
        state.voi = [VoiSetting((ref(src["mr1"]),), Window(1, 2))]
    elif how == "true size without spacing":
        state.images = [ref(src["sc"])]
        sources = [src["sc"]]
        state.displayed_areas = [
            DisplayedArea((1, 1), (5, 5), PresentationSizeModeValues.TRUE_SIZE)
        ]
    elif how == "long description":
        state.description = "x" * 65
    elif how == "backslash in creator":
        state.creator = "Doe\\Jane"
    elif how == "odd 8-bit LUT":
        state.voi = [VoiSetting((), None, lut=LookupTable(0, 8, tuple(range(255))))]
    elif how == "frame out of range":
        state.images = [ref(src["knee"], 20)]
        sources = [src["knee"]]
    return state, sources


@pytest.mark.parametrize(
    ("how", "named"),
    [
        ("no images", "at least one image"),
        ("unknown image", "'1.2.3.4.5' is not among the source objects"),
        ("undefined layer", "layer 'OTHER'"),
        ("label", "Content Label 'Lung window' is not a Code String"),
        ("circle with three points", "CIRCLE graphic needs 2 points, not 3"),
        ("text without position", "'lost' has neither an anchor nor a box"),
        ("rotation", "rotation 45"),
        ("two patients", "different patients"),
        ("voi on another image", "which the state does not reference"),
        ("true size without spacing", "TRUE SIZE"),
        ("frame out of range", "frame 20 does not exist"),
        ("odd 8-bit LUT", "odd number of 8-bit entries"),
        ("long description", "Content Description is 65 characters long; LO"),
        ("backslash in creator", "Content Creator's Name must not contain a backslash"),
    ],
)
def test_a_state_the_gsps_cannot_say_is_refused_by_name(src, how, named):
    state, sources = _bad(src, how)
    with pytest.raises(ValueError, match=named):
        build_presentation_state(state, sources)


def test_content_label_from_free_text():
    assert content_label("Lung window") == "LUNG WINDOW"
    assert content_label("Größe/ROI #2 and more text") == "GR_SSE_ROI _2 AN"
    assert content_label("  ") == "UNNAMED"
