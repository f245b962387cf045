"""Applying a presentation state: on synthetic images where every pixel's
place and value is known by hand."""

from __future__ import annotations

import numpy as np
import pytest

from jivex_core.imaging.presentation import (
    Annotation,
    DisplayedArea,
    Graphic,
    GraphicLayer,
    GraphicTypeValues,
    ImageRef,
    LookupTable,
    ModalityTransform,
    PresentationState,
    Shutter,
    TextLabel,
    VoiSetting,
)
from jivex_core.imaging.render import Window, render
from tests.synthetic import image

# 3 rows x 4 columns of distinct values; window 128/256 maps 0..255 onto
# itself (PS3.3 C.11.2.1.2.1: y = x), so the output shows the values.
VALUES = (np.arange(12, dtype=np.uint8) * 20 + 5).reshape(3, 4)


def picture(values: np.ndarray = VALUES, **attributes):
    return image(
        values,
        bits_allocated=8,
        WindowCenter=128,
        WindowWidth=256,
        **attributes,
    )


def test_identity_window_shows_the_values() -> None:
    np.testing.assert_array_equal(render(picture()), VALUES)
    np.testing.assert_array_equal(render(picture(), state=PresentationState()), VALUES)


@pytest.mark.parametrize(
    ("flip", "rotation", "shape", "where"),
    [
        # (row 0, column 1) of a 3 x 4 image lands at:
        (False, 90, (4, 3), (1, 2)),  # clockwise: (r, c) -> (c, 2 - r)
        (False, 180, (3, 4), (2, 2)),
        (False, 270, (4, 3), (2, 0)),
        (True, 0, (3, 4), (0, 2)),
        # Rotate first: (0, 1) -> (1, 2), then flip: (1, 0) (PS3.3 C.10.6.1).
        # Flipping first would give (0, 2) rotated to (2, 2).
        (True, 90, (4, 3), (1, 0)),
        (True, 270, (4, 3), (2, 2)),
    ],
)
def test_rotate_clockwise_then_flip_moves_a_known_pixel(
    flip, rotation, shape, where
) -> None:
    out = render(picture(), state=PresentationState(flip=flip, rotation=rotation))
    assert out.shape == shape
    assert out[where] == VALUES[0, 1]
    assert sorted(out.ravel().tolist()) == sorted(VALUES.ravel().tolist())


def test_rectangular_shutter_shows_its_value_outside() -> None:
    # Columns 2..3 and rows 1..2 (1-based, inclusive) stay visible.
    shutter = Shutter(rectangle=(2, 3, 1, 2), value=65535)
    out = render(picture(), state=PresentationState(shutter=shutter))
    visible = np.zeros((3, 4), dtype=bool)
    visible[0:2, 1:3] = True
    np.testing.assert_array_equal(out[visible], VALUES[visible])
    assert (out[~visible] == 255).all()
    grey = Shutter(rectangle=(2, 3, 1, 2), value=32768)
    assert (
        render(picture(), state=PresentationState(shutter=grey))[~visible] == 128
    ).all()


def test_circular_and_polygonal_shutters() -> None:
    values = np.full((21, 21), 200, np.uint8)
    circle = Shutter(circle=((11, 11), 5), value=0)
    out = render(picture(values), state=PresentationState(shutter=circle))
    assert out[10, 10] == 200 and out[10, 15] == 200  # centre, on the radius
    assert out[10, 16] == 0 and out[0, 0] == 0  # outside
    triangle = Shutter(polygon=((1, 1), (21, 1), (1, 21)), value=0)
    out = render(picture(values), state=PresentationState(shutter=triangle))
    assert out[2, 2] == 200 and out[20, 20] == 0
    both = Shutter(rectangle=(1, 21, 1, 21), circle=((11, 11), 5), value=0)
    out = render(picture(values), state=PresentationState(shutter=both))
    assert out[10, 16] == 0  # the intersection stays visible


def test_displayed_area_crops_and_pads() -> None:
    crop = PresentationState(displayed_areas=[DisplayedArea((2, 2), (3, 3))])
    np.testing.assert_array_equal(render(picture(), state=crop), VALUES[1:3, 1:3])
    # From column 0, row 0 to column 5, row 4: one black pixel around the
    # image on the top and left, two on the right, one below.
    pad = PresentationState(displayed_areas=[DisplayedArea((0, 0), (5, 4))])
    out = render(picture(), state=pad)
    assert out.shape == (5, 6)
    np.testing.assert_array_equal(out[1:4, 1:5], VALUES)
    assert out[0].sum() == 0 and out[:, 0].sum() == 0 and out[:, 5].sum() == 0
    # The corners are in the image's own frame: rotated afterwards.
    rotated = PresentationState(
        rotation=90, displayed_areas=[DisplayedArea((1, 1), (2, 3))]
    )
    np.testing.assert_array_equal(
        render(picture(), state=rotated), np.rot90(VALUES[0:3, 0:2], k=-1)
    )


def test_displayed_area_for_one_image_only() -> None:
    ds = picture()
    other = ImageRef("1.2.840.10008.5.1.4.1.1.7", "1.2.3.4")
    mine = ImageRef(str(ds.SOPClassUID), str(ds.SOPInstanceUID))
    areas = [
        DisplayedArea((1, 1), (1, 1), images=(other,)),
        DisplayedArea((2, 2), (3, 2), images=(mine,)),
    ]
    out = render(ds, state=PresentationState(displayed_areas=areas))
    np.testing.assert_array_equal(out, VALUES[1:2, 1:3])


def _layered(rgb=None, grey=65535) -> PresentationState:
    return PresentationState(layers=[GraphicLayer("L1", 1, grey=grey, rgb=rgb)])


def test_polyline_is_drawn_in_the_layers_grey() -> None:
    values = np.zeros((32, 32), np.uint8)
    state = _layered(grey=65535)
    # From the centre of pixel (row 10, column 4) to that of (10, 27).
    line = Graphic(GraphicTypeValues.POLYLINE, ((4.5, 10.5), (27.5, 10.5)))
    state.annotations = [Annotation("L1", graphics=[line])]
    out = render(picture(values), state=state)
    assert (out[10, 4:28] == 255).all()
    assert out.sum() == 255 * 24
    # Rotated by 90 degrees the line becomes column 32 - 1 - 10 = 21.
    state.rotation = 90
    out = render(picture(values), state=state)
    assert (out[4:28, 21] == 255).all() and out.sum() == 255 * 24


def test_circle_ellipse_point_and_filled_polyline() -> None:
    values = np.zeros((40, 40), np.uint8)
    state = _layered(grey=32768)
    state.annotations = [
        Annotation(
            "L1",
            graphics=[
                Graphic(GraphicTypeValues.CIRCLE, ((10.5, 10.5), (15.5, 10.5))),
                Graphic(
                    GraphicTypeValues.ELLIPSE,
                    ((20.5, 30.5), (36.5, 30.5), (28.5, 27.5), (28.5, 33.5)),
                ),
                Graphic(GraphicTypeValues.POINT, ((30.5, 5.5),)),
                Graphic(
                    GraphicTypeValues.POLYLINE,
                    ((2.5, 25.5), (8.5, 25.5), (8.5, 31.5), (2.5, 31.5), (2.5, 25.5)),
                    filled=True,
                ),
            ],
        )
    ]
    out = render(picture(values), state=state)
    assert out[10, 15] == 128 and out[10, 5] == 128  # on the circle
    assert out[10, 10] == 0  # its centre stays
    assert out[30, 20] == 128 and out[30, 36] == 128 and out[27, 28] == 128
    assert out[30, 28] == 0
    assert out[5, 30] == 128  # the point
    assert (out[26:31, 3:8] == 128).all()  # inside the filled square


def test_text_and_colour_layers() -> None:
    values = np.zeros((40, 60), np.uint8)
    state = _layered(rgb=(255, 0, 0))
    state.annotations = [
        Annotation("L1", texts=[TextLabel("AB", box=((5.0, 5.0), (55.0, 35.0)))])
    ]
    out = render(picture(values), state=state)
    assert out.shape == (40, 60, 3)
    # Text is antialiased: red of any strength, nothing else.
    red = out[..., 0] > 0
    rows, cols = np.nonzero(red)
    assert len(rows) > 10 and out[..., 0].max() > 200
    assert rows.min() >= 4 and cols.min() >= 4  # drawn from the box's corner
    assert not out[..., 1:].any()


def test_annotations_for_other_images_are_not_drawn() -> None:
    values = np.zeros((16, 16), np.uint8)
    state = _layered()
    other = ImageRef("1.2.840.10008.5.1.4.1.1.7", "9.9.9")
    line = Graphic(GraphicTypeValues.POLYLINE, ((0.5, 0.5), (15.5, 0.5)))
    state.annotations = [Annotation("L1", images=(other,), graphics=[line])]
    assert render(picture(values), state=state).sum() == 0


def test_state_voi_for_one_frame_and_presentation_luts() -> None:
    frames = np.stack([VALUES, VALUES])
    ds = picture(frames.reshape(6, 4), rows=3, columns=4, NumberOfFrames=2)
    ref = ImageRef(str(ds.SOPClassUID), str(ds.SOPInstanceUID), frames=(2,))
    state = PresentationState(voi=[VoiSetting(images=(ref,), window=Window(100, 2))])
    np.testing.assert_array_equal(render(ds, 0, state=state), VALUES)
    threshold = np.where(VALUES > 99, 255, 0)
    np.testing.assert_array_equal(render(ds, 1, state=state), threshold)
    inverse = PresentationState(presentation_shape="INVERSE")
    np.testing.assert_array_equal(render(ds, 0, state=inverse), 255 - VALUES)
    # A presentation LUT of 256 entries of 12 bits that halves the output.
    table = LookupTable(0, 12, tuple(round(i * 4095 / 255 / 2) for i in range(256)))
    halved = render(ds, 0, state=PresentationState(presentation_lut=table))
    assert np.abs(halved.astype(int) - VALUES // 2).max() <= 1
    # The caller's window wins over the state's, as a reader's drag does.
    np.testing.assert_array_equal(render(ds, 1, Window(128, 256), state=state), VALUES)


def test_state_modality_transform_and_voi_lut() -> None:
    ds = picture()
    state = PresentationState(
        modality=ModalityTransform(slope=2.0, intercept=-10.0),
        voi=[VoiSetting(window=Window(245, 491))],
    )
    # Modality values 2x - 10 in 0..500; window 245/491 maps -0.5..490 onto
    # 0..255, so y = (2x - 10 + 0.5) * 255 / 490.
    out = render(ds, state=state)
    expected = np.clip(np.floor((2.0 * VALUES - 9.5) * 255 / 490 + 0.5), 0, 255)
    assert np.abs(out.astype(int) - expected).max() <= 1
    lut = LookupTable(0, 8, tuple(255 - i for i in range(256)))
    out = render(ds, state=PresentationState(voi=[VoiSetting(lut=lut)]))
    np.testing.assert_array_equal(out, 255 - VALUES)


def test_monochrome1_with_a_state_follows_the_state_shape() -> None:
    ds = picture(PhotometricInterpretation="MONOCHROME1")
    np.testing.assert_array_equal(render(ds), 255 - VALUES)
    identity = render(ds, state=PresentationState(presentation_shape="IDENTITY"))
    np.testing.assert_array_equal(identity, VALUES)
    inverse = render(ds, state=PresentationState(presentation_shape="INVERSE"))
    np.testing.assert_array_equal(inverse, 255 - VALUES)


# -- burnt-in text ------------------------------------------------------------

#: Not a character (unassigned in Unicode): every font draws its box for it.
NO_GLYPH = "\u0378"


def _text(size: int, text: str) -> np.ndarray:
    from jivex_core.imaging.output import draw_annotations

    layer = GraphicLayer("T", 1, grey=65535)
    annotation = Annotation("T", texts=[TextLabel(text, anchor=(10.0, 10.0))])
    blank = np.zeros((size, size), np.uint8)
    return draw_annotations(blank, [annotation], [layer], lambda point: point)


def test_burnt_in_text_has_glyphs_for_latin_greek_cyrillic_and_symbols() -> None:
    from jivex_core.imaging.output import FONT_PATHS, annotation_font, font_path

    # make run / make test install fonts-dejavu-core (the first path).
    assert font_path() == FONT_PATHS[0]
    font = annotation_font(40)
    box = bytes(font.getmask(NO_GLYPH))
    for character in "mm²Läsion Ωμέγα Жёлтый".replace(" ", ""):
        assert bytes(font.getmask(character)) != box, character
    # Drawn: each text differs from the same text with boxes in its place.
    for text, boxed in (
        ("mm²", f"mm{NO_GLYPH}"),
        ("Läsion Ωμέγα", f"L{NO_GLYPH}sion {NO_GLYPH * 4}"),
    ):
        drawn = _text(512, text)
        assert drawn.any()
        assert not np.array_equal(drawn, _text(512, boxed)), text


def test_burnt_in_text_grows_with_the_image() -> None:
    def height(size: int) -> int:
        rows = np.nonzero(_text(size, "H").any(axis=1))[0]
        return int(rows.max() - rows.min() + 1)

    small, large = height(512), height(3000)
    assert small >= 9  # a capital letter readable on a 512 x 512 image
    assert 0.8 < (large / small) / (3000 / 512) < 1.25


def test_a_grayscale_state_is_refused_for_a_colour_frame() -> None:
    from jivex_core.imaging.output import present
    from jivex_core.imaging.render import RenderError, prepare_frame

    rgb = image(np.zeros((4, 4, 3), np.uint8), photometric="RGB", bits_allocated=8)
    state = PresentationState(images=[ImageRef(rgb.SOPClassUID, rgb.SOPInstanceUID)])
    message = "a Grayscale Softcopy Presentation State applies to grey images only"
    with pytest.raises(RenderError, match=f"{message} \\(this image is RGB\\)"):
        render(rgb, state=state)
    # The viewer's path, on a frame it prepared itself.
    with pytest.raises(RenderError, match=f"{message} \\(this image is colour\\)"):
        present(prepare_frame(rgb), state)
