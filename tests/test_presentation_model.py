"""The presentation model: per-image lookups and the link's plain data."""

import json

import pytest

from jivex_core.imaging.presentation import (
    KEY_OBJECT_TITLES,
    Annotation,
    DisplayedArea,
    Graphic,
    GraphicLayer,
    GraphicTypeValues,
    ImageRef,
    KeyObjectSelection,
    LookupTable,
    ModalityTransform,
    PresentationSizeModeValues,
    PresentationState,
    Shutter,
    TextLabel,
    VoiSetting,
    selection_from_dict,
    selection_to_dict,
    state_from_dict,
    state_to_dict,
)
from jivex_core.imaging.render import Window

CT = "1.2.840.10008.5.1.4.1.1.2"
A = ImageRef(CT, "1.2.3.1", "1.2.3")
B = ImageRef(CT, "1.2.3.2", "1.2.3")
MULTI = ImageRef(CT, "1.2.3.9", "1.2.3", (2, 3))


def full_state() -> PresentationState:
    return PresentationState(
        images=[A, B, MULTI],
        label="LUNG",
        description="Nodule, right upper lobe",
        creator="DOE^JANE",
        modality=ModalityTransform(lut=LookupTable(-1024, 16, (0, 10, 20), "ct")),
        voi=[
            VoiSetting((A,), Window(-600, 1500), "LINEAR", "LUNG"),
            VoiSetting((), Window(40, 400), "SIGMOID"),
        ],
        presentation_shape="INVERSE",
        rotation=90,
        flip=True,
        displayed_areas=[
            DisplayedArea(
                (10, 20),
                (300, 400),
                PresentationSizeModeValues.MAGNIFY,
                (0.7, 0.7),
                None,
                2.0,
                (B,),
            )
        ],
        shutter=Shutter(
            (1, 512, 1, 512), ((256, 256), 200), ((1, 1), (10, 1), (5, 9)), 0
        ),
        layers=[GraphicLayer("MEASURE", 1, 65535, (255, 255, 0), "lengths")],
        annotations=[
            Annotation(
                "MEASURE",
                (A,),
                [Graphic(GraphicTypeValues.POLYLINE, ((1.5, 2.0), (30.0, 40.25)))],
                [TextLabel("42.1 mm", (30.0, 40.25), None, True)],
            )
        ],
    )


def test_a_state_survives_the_trip_through_json():
    state = full_state()
    again = state_from_dict(json.loads(json.dumps(state_to_dict(state))))
    assert again == state


def test_settings_apply_to_the_images_they_name():
    state = full_state()
    assert state.voi_for("1.2.3.1").window == Window(-600, 1500)
    assert state.voi_for("1.2.3.2").window == Window(40, 400)
    assert state.area_for("1.2.3.1") is None
    assert state.area_for("1.2.3.2").magnification == 2.0
    assert [a.layer for a in state.annotations_for("1.2.3.1")] == ["MEASURE"]
    assert state.annotations_for("1.2.3.2") == []


def test_frames_narrow_a_reference():
    assert MULTI.covers("1.2.3.9", 2)
    assert not MULTI.covers("1.2.3.9", 1)
    assert A.covers("1.2.3.1", 7)


def test_a_bad_state_names_what_is_wrong():
    data = state_to_dict(full_state())
    data["annotations"][0]["graphics"][0]["type"] = "SPLINE"
    with pytest.raises(ValueError, match="SPLINE"):
        state_from_dict(data)


def test_a_selection_survives_json_and_refuses_titles_outside_cid_7010():
    selection = KeyObjectSelection([A, MULTI], KEY_OBJECT_TITLES[4], "teaching", [])
    data = json.loads(json.dumps(selection_to_dict(selection)))
    assert selection_from_dict(data) == selection
    data["title"] = ["999999", "99X", "Made up"]
    with pytest.raises(ValueError, match="CID 7010"):
        selection_from_dict(data)
