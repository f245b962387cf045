"""Applying a presentation state to a rendered frame, and encoding images.

:func:`present` runs the display steps of a Grayscale Softcopy Presentation
State (PS3.4 N.2) after the grey pipeline, in this order:

1. grey levels through the state's VOI (per image and frame) and
   presentation LUT (shape or table);
2. the display shutter (PS3.3 C.7.6.11): pixels outside the rectangle,
   circle and polygon (their intersection stays visible) take the Shutter
   Presentation Value, a P-value;
3. the displayed area (PS3.3 C.10.4): the image is cut to, or padded black
   up to, the rectangle between the top left and the bottom right hand
   corner, both 1-based and in the frame of the image before any rotation
   or flip (they name the pixels shown top left and bottom right after it);
4. the spatial transformation (PS3.3 C.10.6): the rotation, clockwise,
   then the horizontal flip;
5. the graphic annotations (PS3.3 C.10.5) in layer order, in the layer's
   grey or colour (an image with colour annotations becomes RGB): their
   image coordinates are carried through steps 3 and 4, so that they land
   on the same pixels while text stays upright.

The size modes of the displayed area (SCALE TO FIT, TRUE SIZE, MAGNIFY)
are the display's business: the output keeps one pixel per image pixel.
"""

from __future__ import annotations

import functools
import io
import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from jivex_core.imaging.common import RenderError, Window
from jivex_core.imaging.luts import Lut, VoiPreset, pvalue_to_byte

if TYPE_CHECKING:
    from jivex_core.imaging.presentation import (
        Annotation,
        DisplayedArea,
        GraphicLayer,
        PresentationState,
        Shutter,
    )
    from jivex_core.imaging.render import PreparedFrame

logger = logging.getLogger(__name__)

#: A point in continuous image coordinates, (column, row).
Point = tuple[float, float]


def present(
    frame: PreparedFrame,
    state: PresentationState,
    window: Window | VoiPreset | None = None,
) -> np.ndarray:
    """Render *frame* as *state* shows it (see the module for the order).

    *window* overrides the state's VOI, as a reader's drag does on screen.
    The frame must already carry the state's modality transform
    (:func:`jivex_core.imaging.render.render` sees to it).

    Raises
    ------
    RenderError
        For a colour frame: a Grayscale Softcopy Presentation State applies
        to grey images only.
    """
    uid, number = frame.sop_instance_uid, frame.index + 1
    if frame.is_color:
        # A GSPS is a grayscale pipeline (PS3.3 A.33.1);
        # render.check_grey_for_state names the file's own interpretation.
        raise RenderError(
            "a Grayscale Softcopy Presentation State applies to grey images only "
            "(this image is colour)"
        )
    else:
        preset = _state_voi(state, uid, number) if window is None else None
        table = None
        if state.presentation_lut is not None:
            table = Lut.from_model(state.presentation_lut)
        inverse = str(state.presentation_shape).upper() == "INVERSE"
        image = frame.render(
            window if window is not None else preset,
            inverse=inverse,
            presentation_lut=table,
        )
    if state.shutter is not None:
        image = apply_shutter(image, state.shutter)
    area = state.area_for(uid, number)
    offset = (0, 0)
    if area is not None:
        image, offset = displayed_area(image, area)
    height, width = image.shape[:2]
    image = spatial(image, state.flip, state.rotation)
    annotations = state.annotations_for(uid, number)
    if annotations:

        def mapping(point: Point) -> Point:
            x, y = point[0] - offset[0], point[1] - offset[1]
            return transform_point((x, y), width, height, state.flip, state.rotation)

        image = draw_annotations(image, annotations, state.layers, mapping)
    return image


def _state_voi(state: PresentationState, uid: str, number: int) -> VoiPreset | None:
    setting = state.voi_for(uid, number)
    if setting is None:
        return None
    if setting.lut is not None:
        return VoiPreset(
            setting.explanation, None, "LINEAR", Lut.from_model(setting.lut)
        )
    if setting.window is None:
        return None
    function = str(setting.function or "LINEAR").upper()
    return VoiPreset(setting.explanation, setting.window, function)


# -- shutter --------------------------------------------------------------


def shutter_mask(shape: tuple[int, int], shutter: Shutter) -> np.ndarray:
    """True where the image stays visible behind *shutter*.

    Positions are 1-based (column, row) pixels as in the Display Shutter
    module; a pixel is inside the circle when its centre is within the
    radius of the circle's centre, inside the polygon when its centre is.
    """
    rows, columns = shape
    visible = np.ones(shape, dtype=bool)
    row = np.arange(1, rows + 1)[:, None]
    col = np.arange(1, columns + 1)[None, :]
    if shutter.rectangle is not None:
        left, right, upper, lower = shutter.rectangle
        visible &= (col >= left) & (col <= right) & (row >= upper) & (row <= lower)
    if shutter.circle is not None:
        (cx, cy), radius = shutter.circle
        visible &= (col - cx) ** 2 + (row - cy) ** 2 <= radius**2
    if shutter.polygon is not None and len(shutter.polygon) >= 3:
        canvas = Image.new("1", (columns, rows), 0)
        # Pixel centres: 1-based position p is 0-based index p - 1.
        points = [(float(c) - 1.0, float(r) - 1.0) for c, r in shutter.polygon]
        ImageDraw.Draw(canvas).polygon(points, fill=1, outline=1)
        visible &= np.asarray(canvas, dtype=bool)
    return visible


def apply_shutter(image: np.ndarray, shutter: Shutter) -> np.ndarray:
    """*image* with the pixels outside *shutter* set to its presentation
    value (a P-value, 0 black to 65535 white)."""
    if not shutter.shapes:
        return image
    visible = shutter_mask(image.shape[:2], shutter)
    out = image.copy()
    out[~visible] = pvalue_to_byte(shutter.value)
    return out


# -- displayed area and spatial transformation ------------------------------


def displayed_area(image: np.ndarray, area: DisplayedArea) -> tuple[np.ndarray, Point]:
    """Cut or pad *image* to a displayed area; the outside is black.

    Returns the new image and the offset (columns, rows) of its top left
    corner in the original image's coordinates.
    """
    # The corners are the pixels shown top left and bottom right after the
    # rotation and flip (PS3.3 C.10.4), in the untransformed image: under a
    # transformation they are other corners of the same rectangle.
    (c0, r0), (c1, r1) = area.top_left, area.bottom_right
    left, right = sorted((c0, c1))
    top, bottom = sorted((r0, r1))
    width, height = right - left + 1, bottom - top + 1
    if width * height > 2**28:
        raise RenderError("the displayed area is too large to render")
    rows, columns = image.shape[:2]
    out = np.zeros((height, width, *image.shape[2:]), dtype=image.dtype)
    r0, c0 = max(top - 1, 0), max(left - 1, 0)
    r1, c1 = min(bottom, rows), min(right, columns)
    if r0 < r1 and c0 < c1:
        out[r0 - (top - 1) : r1 - (top - 1), c0 - (left - 1) : c1 - (left - 1)] = image[
            r0:r1, c0:c1
        ]
    return out, (float(left - 1), float(top - 1))


def _check_rotation(rotation: int) -> int:
    if rotation % 90:
        raise RenderError(f"image rotation {rotation} is not a multiple of 90 degrees")
    return rotation % 360


def spatial(image: np.ndarray, flip: bool, rotation: int) -> np.ndarray:
    """Rotate clockwise by *rotation* degrees, then flip horizontally (when
    *flip*): Image Horizontal Flip acts "after any Image Rotation has been
    applied" (PS3.3 C.10.6.1)."""
    rotation = _check_rotation(rotation)
    if rotation:
        # numpy.rot90 turns counter-clockwise for positive k.
        image = np.rot90(image, k=-(rotation // 90))
    if flip:
        image = image[:, ::-1]
    return np.ascontiguousarray(image)


def transform_point(
    point: Point, width: int, height: int, flip: bool, rotation: int
) -> Point:
    """Where continuous image coordinates land after :func:`spatial`.

    *width* and *height* are those of the image before the transformation.
    """
    rotation = _check_rotation(rotation)
    x, y = point
    for _ in range(rotation // 90):
        x, y = height - y, x
        width, height = height, width
    if flip:
        x = width - x
    return x, y


# -- annotations ----------------------------------------------------------

_WHITE = (255, 255, 255)


def _layer_colour(layer: GraphicLayer | None) -> tuple[int, int, int] | int:
    if layer is None:
        return 255
    if layer.rgb is not None:
        return tuple(int(min(max(v, 0), 255)) for v in layer.rgb)  # type: ignore[return-value]
    if layer.grey is not None:
        return pvalue_to_byte(layer.grey)
    return 255


def _ellipse_points(points: tuple[Point, ...], steps: int = 96) -> list[Point]:
    """Outline of an ELLIPSE: major axis ends, then minor axis ends."""
    (x1, y1), (x2, y2), (x3, y3), (x4, y4) = points[:4]
    cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0
    a = math.hypot(x2 - x1, y2 - y1) / 2.0
    b = math.hypot(x4 - x3, y4 - y3) / 2.0
    angle = math.atan2(y2 - y1, x2 - x1)
    cos, sin = math.cos(angle), math.sin(angle)
    out = []
    for step in range(steps + 1):
        t = 2.0 * math.pi * step / steps
        ex, ey = a * math.cos(t), b * math.sin(t)
        out.append((cx + ex * cos - ey * sin, cy + ex * sin + ey * cos))
    return out


def _circle_points(points: tuple[Point, ...], steps: int = 96) -> list[Point]:
    """Outline of a CIRCLE: its centre, then a point on it."""
    (cx, cy), (px, py) = points[:2]
    radius = math.hypot(px - cx, py - cy)
    return [
        (
            cx + radius * math.cos(2 * math.pi * s / steps),
            cy + radius * math.sin(2 * math.pi * s / steps),
        )
        for s in range(steps + 1)
    ]


#: TrueType fonts for burnt-in text, the first found is used. DejaVu Sans
#: covers Latin, Greek and Cyrillic (Debian's ``fonts-dejavu-core``, which
#: ``installer/install-system-deps.sh`` installs); the other paths are where
#: other distributions put it.
FONT_PATHS = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
)

Font = ImageFont.ImageFont | ImageFont.FreeTypeFont


@functools.cache
def font_path() -> str | None:
    """The TrueType font burnt-in text uses, or None (a warning is logged
    once: Pillow's own font then draws, which lacks Greek and Cyrillic)."""
    for path in FONT_PATHS:
        if Path(path).is_file():
            return path
    logger.warning(
        "No DejaVu Sans font found (%s; Debian package fonts-dejavu-core): "
        "burnt-in text uses Pillow's default font, which shows Greek, Cyrillic "
        "and some symbols as boxes",
        FONT_PATHS[0],
    )
    return None


@functools.lru_cache(maxsize=16)
def annotation_font(size: int) -> Font:
    """The font of burnt-in text at *size* pixels (see :data:`FONT_PATHS`)."""
    path = font_path()
    if path is not None:
        try:
            return ImageFont.truetype(path, size)
        except OSError as exc:
            logger.warning("Cannot load font %s (%s); using Pillow's", path, exc)
    try:
        return ImageFont.load_default(size=size)
    except Exception:
        return ImageFont.load_default()


def text_size(width: int, height: int) -> int:
    """The height in pixels of burnt-in text on an image of that size.

    A fixed share of the image's shorter side (14 pixels at 512, 83 at
    3000), so that text reads the same once the picture is fitted to a
    page or a screen; never below 12 pixels.
    """
    return max(12, round(min(width, height) / 36))


def line_width(width: int, height: int) -> int:
    """The width of drawn lines: one pixel up to about 768, thicker on
    larger images so that lines survive being shown smaller."""
    return max(1, round(min(width, height) / 512))


def draw_annotations(
    image: np.ndarray,
    annotations: list[Annotation],
    layers: list[GraphicLayer],
    mapping: Callable[[Point], Point],
) -> np.ndarray:
    """Draw graphics and text in their layers' colours.

    Graphic types are those of PS3.3 C.10.5.1.2: POINT (a small cross),
    POLYLINE, INTERPOLATED (drawn through its points), CIRCLE and ELLIPSE,
    filled when asked. *mapping* takes continuous image coordinates
    (PIXEL units) to the output's. Text is Unformatted Text Value (PS3.3
    C.10.5.1.1, any character of the state's character set) in DejaVu Sans
    (:data:`FONT_PATHS`); text size and line width follow the image's size
    (:func:`text_size`, :func:`line_width`).
    """
    by_name = {layer.name: layer for layer in layers}
    colours = [_layer_colour(by_name.get(a.layer)) for a in annotations]
    needs_rgb = image.ndim == 3 or any(isinstance(c, tuple) for c in colours)
    if needs_rgb and image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    canvas = Image.fromarray(np.ascontiguousarray(image), "RGB" if needs_rgb else "L")
    draw = ImageDraw.Draw(canvas)
    font = annotation_font(text_size(*canvas.size))
    thick = line_width(*canvas.size)
    arm = 2 * thick  # of the crosses marking points and anchors

    def pixel(point: Point) -> Point:
        # Continuous coordinates put pixel centres at +0.5; Pillow at 0.
        x, y = mapping(point)
        return (x - 0.5, y - 0.5)

    for annotation, colour in zip(annotations, colours, strict=True):
        ink: tuple[int, int, int] | int
        if needs_rgb and isinstance(colour, int):
            ink = (colour, colour, colour)
        else:
            ink = colour
        for graphic in annotation.graphics:
            kind = str(getattr(graphic.type, "value", graphic.type))
            points = tuple(graphic.points)
            if not points:
                continue
            if kind == "POINT":
                x, y = pixel(points[0])
                draw.line([(x - arm, y), (x + arm, y)], fill=ink, width=thick)
                draw.line([(x, y - arm), (x, y + arm)], fill=ink, width=thick)
                continue
            if kind == "CIRCLE" and len(points) >= 2:
                outline = [pixel(p) for p in _circle_points(points)]
            elif kind == "ELLIPSE" and len(points) >= 4:
                outline = [pixel(p) for p in _ellipse_points(points)]
            else:
                outline = [pixel(p) for p in points]
            if graphic.filled and len(outline) >= 3:
                draw.polygon(outline, fill=ink, outline=ink)
            elif len(outline) == 1:
                draw.point(outline, fill=ink)
            else:
                draw.line(outline, fill=ink, width=thick)
        for text in annotation.texts:
            if text.box is not None:
                corners = [pixel(text.box[0]), pixel(text.box[1])]
                where = (min(c[0] for c in corners), min(c[1] for c in corners))
            elif text.anchor is not None:
                where = pixel(text.anchor)
                if text.anchor_visible:
                    x, y = where
                    draw.line([(x - arm, y), (x + arm, y)], fill=ink, width=thick)
                    draw.line([(x, y - arm), (x, y + arm)], fill=ink, width=thick)
                where = (where[0] + 2 * arm, where[1] + 2 * arm)
            else:
                continue
            draw.text(where, text.text, fill=ink, font=font)
    return np.asarray(canvas)


# -- encoding -------------------------------------------------------------


def encode(image: np.ndarray, image_format: str = "png", quality: int = 92) -> bytes:
    """*image* (uint8 grey or RGB) as PNG or JPEG bytes."""
    mode = "L" if image.ndim == 2 else "RGB"
    picture = Image.fromarray(np.ascontiguousarray(image), mode)
    buffer = io.BytesIO()
    if image_format.lower() in ("jpeg", "jpg"):
        picture.save(buffer, "JPEG", quality=quality)
    elif image_format.lower() == "png":
        picture.save(buffer, "PNG")
    else:
        raise ValueError(f"unknown image format '{image_format}'")
    return buffer.getvalue()
