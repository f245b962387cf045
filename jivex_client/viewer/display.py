"""What a viewport shows, kept in a :class:`PresentationState`.

A viewport's window, inversion, rotation, flip, zoom and pan, annotations
and shutter all live in one :class:`~jivex_core.imaging.presentation.
PresentationState`, so that saving a Grayscale Softcopy Presentation State
is sending that object, and applying one read from a file is adopting it.

Zoom and pan are a Displayed Area (PS3.3 C.10.4): the part of the image that
fills the viewport (SCALE TO FIT), or that is shown at a fixed number of
screen pixels per image pixel (MAGNIFY, used for 1:1). The area stored in
the state has integer corners, as the GSPS does; the viewport keeps the
exact floating-point area next to it so that small pans and zooms do not
drift. A view that shows margin beyond the image's first row or column is
stored as the part of the image it shows, at its scale (MAGNIFY): corners
stay at 1 or above (Displayed Area corners are SL, but readers such as
dicom3tools take negative ones for huge unsigned numbers), and the image
comes back at the same size.

Spatial transformation follows PS3.3 C.10.6: the image is rotated
clockwise, then flipped horizontally. The buttons act on what the screen
shows, so in these terms a horizontal flip on screen toggles the flip, a
vertical one toggles it and turns the image by 180 degrees, and a rotation
of a flipped image turns it the other way.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np

from jivex_client.viewer.measure import ANNOTATION_LAYER, MEASUREMENT_LAYER
from jivex_core.imaging.presentation import (
    Annotation,
    DisplayedArea,
    GraphicLayer,
    ImageRef,
    LookupTable,
    PresentationSizeModeValues,
    PresentationState,
    Shutter,
    VoiSetting,
)
from jivex_core.imaging.render import Window, apply_window

#: Layers the viewer draws in, with their screen colours and P-values.
DEFAULT_LAYERS = (
    GraphicLayer(MEASUREMENT_LAYER, 1, grey=65535, rgb=(255, 220, 0)),
    GraphicLayer(ANNOTATION_LAYER, 2, grey=65535, rgb=(0, 220, 255)),
)

#: Allowed range of screen pixels per image pixel.
MIN_SCALE = 0.02
MAX_SCALE = 64.0

#: Explanation of a window the user set, written as the VOI's explanation.
USER_WINDOW = "USER"

Matrix = tuple[float, float, float, float, float, float]


@dataclass(frozen=True)
class Affine:
    """``screen = (a*x + c*y + e, b*x + d*y + f)`` for an image point (x, y).

    The coefficient names are those of a 2D affine matrix (and of Qt's
    QTransform: m11=a, m12=b, m21=c, m22=d, dx=e, dy=f).
    """

    a: float
    b: float
    c: float
    d: float
    e: float
    f: float

    def map(self, x: float, y: float) -> tuple[float, float]:
        """Screen position of the image point (*x*, *y*)."""
        return (self.a * x + self.c * y + self.e, self.b * x + self.d * y + self.f)

    def inverse(self) -> Affine:
        """The mapping from screen to image."""
        det = self.a * self.d - self.b * self.c
        if det == 0:
            raise ZeroDivisionError("singular transform")
        a, b, c, d = self.d / det, -self.b / det, -self.c / det, self.a / det
        e = -(a * self.e + c * self.f)
        f = -(b * self.e + d * self.f)
        return Affine(a, b, c, d, e, f)

    @property
    def scale(self) -> float:
        """Screen pixels per image pixel along a column (the x axis)."""
        return math.hypot(self.a, self.b)


def _rotation_matrix(rotation: int, flip: bool) -> np.ndarray:
    """Screen direction of the image axes: flip after rotation."""
    f = np.array([[-1.0, 0.0], [0.0, 1.0]]) if flip else np.eye(2)
    # Clockwise on a screen whose y axis points down.
    turns = (rotation // 90) % 4
    r = np.eye(2)
    quarter = np.array([[0.0, -1.0], [1.0, 0.0]])
    for _ in range(turns):
        r = quarter @ r
    return f @ r


def _clip_span(low: float, high: float, size: int) -> tuple[float, float]:
    """[*low*, *high*] within [0, *size*], at least one pixel wide."""
    low, high = max(low, 0.0), min(high, float(size))
    if high - low < 1.0:
        # Nothing of the image in view: the pixel nearest to it.
        low = min(max(low, 0.0), size - 1.0)
        high = low + 1.0
    return low, high


def fresh_state() -> PresentationState:
    """A state with the viewer's layers and nothing else."""
    return PresentationState(layers=[copy.copy(layer) for layer in DEFAULT_LAYERS])


class DisplayState:
    """One viewport's display state over the frames of one series.

    Parameters
    ----------
    state : PresentationState, optional
        A state to show (from a GSPS); a fresh one otherwise.
    """

    def __init__(self, state: PresentationState | None = None) -> None:
        self.state = state or fresh_state()
        #: Exact area (x0, y0, x1, y1) in image coordinates; None = whole image
        #: (or the state's own per-image areas, when it came from a file).
        self._area: tuple[float, float, float, float] | None = None
        self._mode = PresentationSizeModeValues.SCALE_TO_FIT
        self._magnification = 1.0
        #: Screen pixels per image pixel when the area was last stored, and
        #: the size of the image it was stored for (columns, rows).
        self._scale = 1.0
        self._size = (0, 0)
        #: Whether the presentation shape still follows the images (no file
        #: and no user said otherwise).
        self.shape_from_images = state is None
        self._ensure_layers()

    # -- the state ---------------------------------------------------------

    def adopt(self, state: PresentationState) -> None:
        """Show *state* (applying a GSPS): everything it says replaces ours."""
        self.state = state
        self._area = None
        self._mode = PresentationSizeModeValues.SCALE_TO_FIT
        self.shape_from_images = False
        self._ensure_layers()

    def _ensure_layers(self) -> None:
        names = {layer.name for layer in self.state.layers}
        order = max((layer.order for layer in self.state.layers), default=0)
        for layer in DEFAULT_LAYERS:
            if layer.name not in names:
                order += 1
                self.state.layers.append(
                    GraphicLayer(layer.name, order, layer.grey, layer.rgb)
                )

    def set_images(self, images: list[ImageRef]) -> None:
        """The images the state applies to (the series shown)."""
        self.state.images = list(images)

    def layer_color(self, name: str) -> tuple[int, int, int]:
        """Screen colour of a layer: its RGB, else its grey, else yellow."""
        for layer in self.state.layers:
            if layer.name == name:
                if layer.rgb is not None:
                    return layer.rgb
                if layer.grey is not None:
                    g = round(layer.grey / 65535 * 255)
                    return (g, g, g)
        return (255, 220, 0)

    # -- grey levels ---------------------------------------------------------

    def voi_for(self, sop_instance_uid: str, frame: int) -> VoiSetting | None:
        """The state's VOI for a frame (1-based), None for the image's own."""
        return self.state.voi_for(sop_instance_uid, frame)

    def window_for(
        self, sop_instance_uid: str, frame: int, default: Window | None
    ) -> Window | None:
        """The window to show a frame with, *default* when the state has none."""
        voi = self.voi_for(sop_instance_uid, frame)
        if voi is not None and voi.window is not None:
            return voi.window
        return default

    @property
    def user_window(self) -> Window | None:
        """The window that applies to every image, when there is one."""
        for item in self.state.voi:
            if not item.images and item.window is not None:
                return item.window
        return None

    def set_window(self, window: Window, explanation: str = USER_WINDOW) -> None:
        """Show every image of the series with *window*."""
        self.state.voi = [
            VoiSetting((), window, "LINEAR", explanation or USER_WINDOW, None)
        ]

    def reset_window(self) -> None:
        """Back to each image's own window."""
        self.state.voi = []

    @property
    def inverse(self) -> bool:
        """Whether P-values are inverted (Presentation LUT Shape INVERSE)."""
        return self.state.presentation_shape == "INVERSE"

    def follow_photometric(self, photometric: str, inverse: bool | None = None) -> None:
        """For a fresh state, show MONOCHROME1 as its modality meant it.

        PS3.4 N.2.1.1: a GSPS showing MONOCHROME1 images the usual way says
        INVERSE; a state made here says so from the first image on. *inverse*
        (the image's own inversion, MONOCHROME1 or its Presentation LUT Shape)
        wins over the photometric interpretation when given.
        """
        if self.shape_from_images:
            if inverse is None:
                inverse = photometric == "MONOCHROME1"
            self.state.presentation_shape = "INVERSE" if inverse else "IDENTITY"
            self.shape_from_images = False

    def toggle_invert(self) -> None:
        """Invert the grey levels shown."""
        self.shape_from_images = False
        self.state.presentation_shape = "IDENTITY" if self.inverse else "INVERSE"
        self.state.presentation_lut = None

    # -- spatial -------------------------------------------------------------

    def rotate(self, degrees: int) -> None:
        """Rotate the display by *degrees* (multiple of 90, clockwise > 0)."""
        # The flip comes after the rotation: under it, the image turns the
        # other way.
        turn = -degrees if self.state.flip else degrees
        self.state.rotation = (self.state.rotation + turn) % 360
        self._restore_area()

    def _restore_area(self) -> None:
        # The corners written depend on the rotation and flip.
        if self._area is not None:
            self._store(self._area)

    def flip_horizontal(self) -> None:
        """Mirror the display left to right, whatever its rotation."""
        self.state.flip = not self.state.flip
        self._restore_area()

    def flip_vertical(self) -> None:
        """Mirror the display top to bottom: a horizontal flip and a turn by
        180 degrees, as a GSPS says it."""
        self.state.rotation = (self.state.rotation + 180) % 360
        self.state.flip = not self.state.flip
        self._restore_area()

    def _state_area(
        self, sop_instance_uid: str, frame: int, size: tuple[int, int]
    ) -> tuple[tuple[float, float, float, float], DisplayedArea | None]:
        if self._area is not None:
            return self._area, None
        item = self.state.area_for(sop_instance_uid, frame)
        if item is None:
            return (0.0, 0.0, float(size[0]), float(size[1])), None
        # The corners are those shown top left and bottom right, which after
        # a rotation or flip are other corners of the image's rectangle.
        (c0, r0), (c1, r1) = item.top_left, item.bottom_right
        c0, c1 = sorted((c0, c1))
        r0, r1 = sorted((r0, r1))
        return (float(c0 - 1), float(r0 - 1), float(c1), float(r1)), item

    def transform(
        self,
        sop_instance_uid: str,
        frame: int,
        size: tuple[int, int],
        view: tuple[int, int],
        aspect: float = 1.0,
        screen_mm_per_pixel: float | None = None,
    ) -> Affine:
        """Image-to-screen mapping of a frame of *size* (columns, rows).

        Parameters
        ----------
        view : (width, height)
            The viewport, in screen pixels.
        aspect : float
            Row spacing / column spacing: non-square pixels are stretched
            so that the image keeps its true proportions.
        screen_mm_per_pixel : float, optional
            For TRUE SIZE areas: the size of a screen pixel.
        """
        if size[0] > 0 and size[1] > 0:
            self._size = (int(size[0]), int(size[1]))
        (x0, y0, x1, y1), item = self._state_area(sop_instance_uid, frame, size)
        mode, magnification = self._mode, self._magnification
        if item is not None:
            mode = item.size_mode
            magnification = item.magnification or 1.0
            if item.pixel_spacing is not None and item.pixel_spacing[1] > 0:
                aspect = item.pixel_spacing[0] / item.pixel_spacing[1]
            elif item.aspect_ratio is not None and item.aspect_ratio[1] > 0:
                aspect = item.aspect_ratio[0] / item.aspect_ratio[1]
        m = _rotation_matrix(self.state.rotation, self.state.flip) @ np.diag(
            [1.0, aspect]
        )
        w, h = max(x1 - x0, 1e-6), max(y1 - y0, 1e-6)
        extent = np.abs(m) @ np.array([w, h])
        if mode == PresentationSizeModeValues.MAGNIFY:
            scale = magnification
        elif (
            mode == PresentationSizeModeValues.TRUE_SIZE
            and screen_mm_per_pixel
            and item is not None
            and item.pixel_spacing is not None
        ):
            scale = item.pixel_spacing[1] / screen_mm_per_pixel
        else:
            scale = min(view[0] / extent[0], view[1] / extent[1])
        scale = min(max(scale, MIN_SCALE), MAX_SCALE)
        a = m * scale
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        e = view[0] / 2 - (a[0, 0] * cx + a[0, 1] * cy)
        f = view[1] / 2 - (a[1, 0] * cx + a[1, 1] * cy)
        return Affine(a[0, 0], a[1, 0], a[0, 1], a[1, 1], e, f)

    def _store(
        self, area: tuple[float, float, float, float], scale: float | None = None
    ) -> None:
        """Keep *area* exactly and write it to the state.

        The corners written are those shown top left and bottom right after
        the rotation and flip, as pixel positions of the unrotated image
        (PS3.3 C.10.4, Displayed Area Top Left Hand Corner). *scale* is the
        screen pixels per image pixel the area is shown at.
        """
        self._area = area
        if scale is not None:
            self._scale = scale
        mode, magnification = self._mode, self._magnification
        x0, y0, x1, y1 = area
        columns_total, rows_total = self._size
        if (x0 < -0.5 or y0 < -0.5) and columns_total > 0 and rows_total > 0:
            # Margin beyond the first column or row: the part of the image
            # shown, at the scale it is shown at.
            x0, x1 = _clip_span(x0, x1, columns_total)
            y0, y1 = _clip_span(y0, y1, rows_total)
            mode = PresentationSizeModeValues.MAGNIFY
            magnification = self._scale
        # Inclusive 1-based pixels inside the edges.
        columns = (round(x0) + 1, max(round(x1), round(x0) + 1))
        rows = (round(y0) + 1, max(round(y1), round(y0) + 1))
        m = _rotation_matrix(self.state.rotation, self.state.flip)
        corners = []
        for i, x in enumerate((x0, x1)):
            for j, y in enumerate((y0, y1)):
                sx, sy = m @ np.array([x - (x0 + x1) / 2, y - (y0 + y1) / 2])
                corners.append((sx + sy, (columns[i], rows[j])))
        corners.sort()
        self.state.displayed_areas = [
            DisplayedArea(
                corners[0][1],
                corners[-1][1],
                mode,
                None,
                (1, 1),
                magnification if mode == PresentationSizeModeValues.MAGNIFY else None,
                (),
            )
        ]

    def _visible_area(
        self, transform: Affine, view: tuple[int, int]
    ) -> tuple[float, float, float, float]:
        inverse = transform.inverse()
        corners = [
            inverse.map(x, y) for x, y in ((0, 0), (view[0], 0), (0, view[1]), view)
        ]
        xs = [c[0] for c in corners]
        ys = [c[1] for c in corners]
        return (min(xs), min(ys), max(xs), max(ys))

    def zoom_at(
        self,
        factor: float,
        point: tuple[float, float],
        current: Affine,
        view: tuple[int, int],
    ) -> None:
        """Zoom by *factor* keeping the image point under screen *point* still.

        *current* is the transform in use (from :meth:`transform`).
        """
        scale = current.scale
        factor = min(max(scale * factor, MIN_SCALE), MAX_SCALE) / scale
        px, py = current.inverse().map(*point)
        x0, y0, x1, y1 = self._visible_area(current, view)
        # Every image point moves away from (px, py) by the factor.
        area = (
            px + (x0 - px) / factor,
            py + (y0 - py) / factor,
            px + (x1 - px) / factor,
            py + (y1 - py) / factor,
        )
        if self._mode == PresentationSizeModeValues.MAGNIFY:
            self._magnification = scale * factor
        self._store(area, scale * factor)

    def pan_by(
        self, dx: float, dy: float, current: Affine, view: tuple[int, int]
    ) -> None:
        """Move the image by (*dx*, *dy*) screen pixels."""
        inverse = current.inverse()
        ox, oy = inverse.map(0.0, 0.0)
        mx, my = inverse.map(dx, dy)
        x0, y0, x1, y1 = self._visible_area(current, view)
        shift = (mx - ox, my - oy)
        self._store(
            (x0 - shift[0], y0 - shift[1], x1 - shift[0], y1 - shift[1]),
            current.scale,
        )

    def fit(self) -> None:
        """Show the whole image, as large as the viewport allows."""
        self._mode = PresentationSizeModeValues.SCALE_TO_FIT
        self._area = None
        self.state.displayed_areas = []

    def one_to_one(self, current: Affine, view: tuple[int, int]) -> None:
        """One image pixel per screen pixel, around the centre shown now."""
        inverse = current.inverse()
        cx, cy = inverse.map(view[0] / 2, view[1] / 2)
        self._mode = PresentationSizeModeValues.MAGNIFY
        self._magnification = 1.0
        half_w, half_h = view[0] / 2, view[1] / 2
        if self.state.rotation in (90, 270):
            half_w, half_h = half_h, half_w
        self._store((cx - half_w, cy - half_h, cx + half_w, cy + half_h), 1.0)

    @property
    def zoom_mode(self) -> PresentationSizeModeValues:
        """SCALE TO FIT or MAGNIFY."""
        return self._mode

    # -- annotations and shutter ---------------------------------------------

    def annotations_for(self, sop_instance_uid: str, frame: int) -> list[Annotation]:
        """What is drawn on a frame (1-based), in layer order."""
        return self.state.annotations_for(sop_instance_uid, frame)

    def add_annotation(self, annotation: Annotation) -> None:
        """Keep a finished measurement or annotation."""
        self.state.annotations.append(annotation)

    def remove_annotation(self, annotation: Annotation) -> bool:
        """Delete an annotation; True when it was there."""
        for i, item in enumerate(self.state.annotations):
            if item is annotation:
                del self.state.annotations[i]
                return True
        return False

    def set_shutter(self, shutter: Shutter | None) -> None:
        """Replace the shutter (None removes it)."""
        self.state.shutter = shutter


def lut_to_bytes(lut: LookupTable, values: np.ndarray, inverse: bool) -> np.ndarray:
    """Map modality values through a VOI LUT to 8-bit grey (PS3.3 C.11.2.1.1).

    The LUT's output range (its bits) is scaled to 0..255.
    """
    out = lut.apply(values)
    top = float(2 ** max(lut.bits, 1) - 1)
    grey = np.clip(out * (255.0 / top) + 0.5, 0, 255).astype(np.uint8)
    return 255 - grey if inverse else grey


def render_grey(
    values: np.ndarray,
    window: Window,
    voi: VoiSetting | None,
    inverse: bool,
    function: str = "LINEAR",
    scratch: np.ndarray | None = None,
) -> np.ndarray:
    """8-bit grey of modality *values* through the state's VOI and shape.

    A VOI LUT of the state wins over windows; then *window* with the
    state's function (else the image's *function*).
    """
    if voi is not None and voi.lut is not None:
        return lut_to_bytes(voi.lut, values, inverse)
    if voi is not None and voi.window is not None:
        function = voi.function or function
    return apply_window(values, window, function, inverse, scratch)
