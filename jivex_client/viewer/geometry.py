"""Image planes in patient space: reference lines and synchronized scrolling.

Everything here is plain numpy on values read from the headers, so tests
check it on known geometry without a window.

The patient coordinate system and the plane of an image come from PS3.3
C.7.6.2.1.1: Image Position (Patient) (0020,0032) is the centre of the first
transmitted pixel, Image Orientation (Patient) (0020,0037) holds the
direction cosines of the first row (towards increasing column) and of the
first column (towards increasing row), and Pixel Spacing (0028,0030) is
*row spacing* (between the centres of adjacent rows) then *column spacing*.
Image coordinates are those of :mod:`jivex_core.imaging.presentation`:
``(x, y)`` with ``(0, 0)`` the top left corner of the first pixel, so the
centre of the pixel in column ``i``, row ``j`` is ``(i + 0.5, j + 0.5)``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydicom.dataset import Dataset

logger = logging.getLogger(__name__)

#: Planes whose normals are closer than this angle are treated as parallel:
#: they have no reference line, and scroll together.
PARALLEL_DEGREES = 30.0


@dataclass(frozen=True)
class ImagePlane:
    """The plane of one frame in the patient coordinate system (mm).

    Attributes
    ----------
    position : numpy.ndarray
        Centre of the first pixel, (3,).
    row_direction : numpy.ndarray
        Unit vector along a row (increasing column), (3,).
    column_direction : numpy.ndarray
        Unit vector along a column (increasing row), (3,).
    spacing : tuple of float
        (row spacing, column spacing) in mm, as Pixel Spacing orders them.
    rows, columns : int
        Size of the frame.
    frame_of_reference : str
        Frame of Reference UID; planes of different ones are unrelated.
    """

    position: np.ndarray
    row_direction: np.ndarray
    column_direction: np.ndarray
    spacing: tuple[float, float]
    rows: int
    columns: int
    frame_of_reference: str = ""

    @property
    def normal(self) -> np.ndarray:
        """Unit normal: row direction x column direction."""
        n = np.cross(self.row_direction, self.column_direction)
        length = float(np.linalg.norm(n))
        return n / length if length else n

    def to_patient(self, x: float, y: float) -> np.ndarray:
        """Patient coordinates of the image point (*x*, *y*)."""
        return (
            self.position
            + self.row_direction * self.spacing[1] * (x - 0.5)
            + self.column_direction * self.spacing[0] * (y - 0.5)
        )

    def to_image(self, point: np.ndarray) -> tuple[float, float]:
        """Image coordinates of the projection of *point* onto the plane."""
        d = np.asarray(point, dtype=float) - self.position
        x = float(np.dot(d, self.row_direction)) / self.spacing[1] + 0.5
        y = float(np.dot(d, self.column_direction)) / self.spacing[0] + 0.5
        return x, y

    def distance(self, point: np.ndarray) -> float:
        """Signed distance of *point* from the plane, along :attr:`normal`."""
        return float(
            np.dot(np.asarray(point, dtype=float) - self.position, self.normal)
        )

    def corners(self) -> list[np.ndarray]:
        """The four corners of the frame's rectangle, in drawing order."""
        c, r = self.columns, self.rows
        return [
            self.to_patient(0, 0),
            self.to_patient(c, 0),
            self.to_patient(c, r),
            self.to_patient(0, r),
        ]

    def center(self) -> np.ndarray:
        """Patient coordinates of the centre of the frame."""
        return self.to_patient(self.columns / 2, self.rows / 2)


def _floats(value: Any, count: int) -> list[float] | None:
    try:
        values = [float(v) for v in value]
    except (TypeError, ValueError):
        return None
    if len(values) != count or not np.isfinite(values).all():
        return None
    return values


def _item(ds: Dataset, sequence: str) -> Dataset | None:
    seq = ds.get(sequence)
    if seq is None or len(seq) == 0:
        return None
    return seq[0]


def _find(
    ds: Dataset, frame: int, group: str, keyword: str
) -> Any:  # the element's value, from the frame's item, the shared one or the top
    for sequence in ("PerFrameFunctionalGroupsSequence",):
        items = ds.get(sequence)
        if items is not None and 0 <= frame < len(items):
            inner = _item(items[frame], group)
            if inner is not None and keyword in inner:
                return inner.get(keyword)
    shared = _item(ds, "SharedFunctionalGroupsSequence")
    if shared is not None:
        inner = _item(shared, group)
        if inner is not None and keyword in inner:
            return inner.get(keyword)
    return ds.get(keyword)


def frame_plane(ds: Dataset, frame: int = 0) -> ImagePlane | None:
    """The plane of frame *frame* (0-based) of *ds*, or None without geometry.

    Enhanced multi-frame objects give Plane Position, Plane Orientation and
    Pixel Measures per frame or shared (PS3.3 C.7.6.16.2); classic images at
    the top level. An object without Image Orientation/Position (Patient),
    or with a degenerate orientation, has no plane: no reference lines or
    synchronized scrolling for it.
    """
    position = _floats(
        _find(ds, frame, "PlanePositionSequence", "ImagePositionPatient"), 3
    )
    orientation = _floats(
        _find(ds, frame, "PlaneOrientationSequence", "ImageOrientationPatient"), 6
    )
    spacing = _floats(_find(ds, frame, "PixelMeasuresSequence", "PixelSpacing"), 2)
    try:
        rows = int(ds.get("Rows") or 0)
        columns = int(ds.get("Columns") or 0)
    except (TypeError, ValueError):
        return None
    if position is None or orientation is None or spacing is None:
        return None
    if rows <= 0 or columns <= 0 or min(spacing) <= 0:
        return None
    row_dir = np.asarray(orientation[:3])
    col_dir = np.asarray(orientation[3:])
    if np.linalg.norm(row_dir) < 1e-6 or np.linalg.norm(col_dir) < 1e-6:
        return None
    row_dir = row_dir / np.linalg.norm(row_dir)
    col_dir = col_dir / np.linalg.norm(col_dir)
    if abs(float(np.dot(row_dir, col_dir))) > 0.01:
        logger.debug("Image Orientation (Patient) is not orthogonal: %s", orientation)
        return None
    return ImagePlane(
        np.asarray(position),
        row_dir,
        col_dir,
        (spacing[0], spacing[1]),
        rows,
        columns,
        str(ds.get("FrameOfReferenceUID") or ""),
    )


def parallel(a: ImagePlane, b: ImagePlane, degrees: float = PARALLEL_DEGREES) -> bool:
    """Whether the planes' normals are within *degrees* of each other."""
    cos = abs(float(np.dot(a.normal, b.normal)))
    return cos >= float(np.cos(np.radians(degrees)))


def _clip(
    p: tuple[float, float], q: tuple[float, float], width: float, height: float
) -> tuple[tuple[float, float], tuple[float, float]] | None:
    """Liang-Barsky clipping of segment *p* to *q* within [0, width] x [0, height]."""
    t0, t1 = 0.0, 1.0
    dx, dy = q[0] - p[0], q[1] - p[1]
    for edge_p, edge_q in (
        (-dx, p[0]),
        (dx, width - p[0]),
        (-dy, p[1]),
        (dy, height - p[1]),
    ):
        if edge_p == 0:
            if edge_q < 0:
                return None
            continue
        t = edge_q / edge_p
        if edge_p < 0:
            t0 = max(t0, t)
        else:
            t1 = min(t1, t)
        if t0 > t1:
            return None
    return (
        (p[0] + t0 * dx, p[1] + t0 * dy),
        (p[0] + t1 * dx, p[1] + t1 * dy),
    )


def reference_line(
    target: ImagePlane, other: ImagePlane
) -> tuple[tuple[float, float], tuple[float, float]] | None:
    """Where the frame *other* cuts the image *target*, in *target*'s image
    coordinates, clipped to it; None when there is no such line.

    There is none for another frame of reference, for (nearly) parallel
    planes, and when *other*'s rectangle does not reach *target*'s plane.
    """
    if not target.frame_of_reference or (
        target.frame_of_reference != other.frame_of_reference
    ):
        return None
    if parallel(target, other, 1.0):
        return None
    corners = other.corners()
    distances = [target.distance(c) for c in corners]
    points: list[np.ndarray] = []
    for i in range(4):
        a, b = corners[i], corners[(i + 1) % 4]
        da, db = distances[i], distances[(i + 1) % 4]
        if da == 0:
            points.append(a)
        if (da < 0 < db) or (db < 0 < da):
            t = da / (da - db)
            points.append(a + (b - a) * t)
    if len(points) < 2:
        return None
    # The two points furthest apart span the intersection.
    best = (points[0], points[1])
    span = -1.0
    for i, p in enumerate(points):
        for q in points[i + 1 :]:
            d = float(np.linalg.norm(p - q))
            if d > span:
                span, best = d, (p, q)
    p2 = target.to_image(best[0])
    q2 = target.to_image(best[1])
    return _clip(p2, q2, float(target.columns), float(target.rows))


def nearest_slice(
    source: ImagePlane, planes: list[ImagePlane | None], tolerance: float | None = None
) -> int | None:
    """The index in *planes* of the slice at the position of *source*.

    Positions are compared along the normal of the target planes, at the
    centre of *source*; only planes of the same frame of reference and
    (nearly) parallel to *source* take part. *tolerance* (mm) defaults to
    the larger of the target's slice spacing and 1 mm: a source beyond the
    target stack by more gives None, so that a series does not jump to its
    last slice for a position it does not cover.
    """
    center = source.center()
    best: tuple[float, int] | None = None
    positions: list[float] = []
    for index, plane in enumerate(planes):
        if plane is None:
            continue
        if plane.frame_of_reference != source.frame_of_reference:
            continue
        if not source.frame_of_reference or not parallel(source, plane):
            continue
        d = abs(plane.distance(center))
        positions.append(float(np.dot(plane.position, plane.normal)))
        if best is None or d < best[0]:
            best = (d, index)
    if best is None:
        return None
    if tolerance is None:
        steps = np.diff(np.sort(np.asarray(positions)))
        steps = steps[steps > 1e-3]
        tolerance = max(float(np.median(steps)) if steps.size else 0.0, 1.0)
    return best[1] if best[0] <= tolerance else None


def slice_location(plane: ImagePlane) -> float:
    """Position of the plane along its own normal (mm), for the overlay."""
    return float(np.dot(plane.position, plane.normal))


_LETTERS = (("L", "R"), ("P", "A"), ("H", "F"))


def direction_label(vector: np.ndarray) -> str:
    """Patient orientation letters of a direction (PS3.3 C.7.6.1.1.1).

    The patient coordinate system points to the patient's Left, Posterior
    and Head; the letters of the components larger than a third of the
    largest are given, most important first (``"LP"``, ``"H"``).
    """
    v = np.asarray(vector, dtype=float)
    peak = float(np.max(np.abs(v))) if v.size else 0.0
    if peak < 1e-6:
        return ""
    order = np.argsort(-np.abs(v))
    letters = []
    for axis in order:
        if abs(v[axis]) >= peak / 3:
            positive, negative = _LETTERS[axis]
            letters.append(positive if v[axis] > 0 else negative)
    return "".join(letters)


# -- orientation letters -------------------------------------------------------------

#: Unit vectors of the patient orientation letters (PS3.3 C.7.6.1.1.1).
_LETTER_VECTORS = {
    "L": (1.0, 0.0, 0.0),
    "R": (-1.0, 0.0, 0.0),
    "P": (0.0, 1.0, 0.0),
    "A": (0.0, -1.0, 0.0),
    "H": (0.0, 0.0, 1.0),
    "F": (0.0, 0.0, -1.0),
}


@dataclass(frozen=True)
class Orientation:
    """Where the image's axes point in the patient: what the letters at the
    edges of the viewport say.

    Attributes
    ----------
    row_direction, column_direction : numpy.ndarray
        Along a row (increasing column) and along a column (increasing
        row), in the patient coordinate system, (3,).
    spacing : tuple of float
        (row spacing, column spacing): how long a step along each axis is.
    """

    row_direction: np.ndarray
    column_direction: np.ndarray
    spacing: tuple[float, float] = (1.0, 1.0)

    def label(self, x: float, y: float) -> str:
        """The letters of the direction of the image step (*x*, *y*)."""
        vector = (
            self.row_direction * x * self.spacing[1]
            + self.column_direction * y * self.spacing[0]
        )
        return direction_label(vector)


def letters_vector(text: str) -> np.ndarray | None:
    """The direction one value of Patient Orientation names, or None when it
    is not made of A, P, R, L, H and F (empty, or a quadruped's terms).

    The first letter is the main direction (PS3.3 C.7.6.1.1.1: "the
    direction listed first is the predominant one"); the others weigh a
    little less each, so that :func:`direction_label` gives them back in
    the same order.
    """
    text = str(text or "").strip().upper()
    if not text or any(c not in _LETTER_VECTORS for c in text):
        return None
    vector = np.zeros(3)
    for rank, letter in enumerate(text):
        vector += np.asarray(_LETTER_VECTORS[letter]) * (1.0 - 0.1 * rank)
    return vector if float(np.linalg.norm(vector)) > 1e-6 else None


def patient_orientation(value: Any) -> Orientation | None:
    """The orientation of Patient Orientation (0020,0020): the direction of
    the rows (left to right) then of the columns (top to bottom), as
    letters (``L\\\\F`` for a chest radiograph seen from the front); None
    when it is absent or not two such values."""
    if value is None or isinstance(value, str | bytes):
        values = str(value or "").split("\\")
    else:
        try:
            values = [str(v) for v in value]
        except TypeError:
            return None
    if len(values) != 2:
        return None
    row, column = letters_vector(values[0]), letters_vector(values[1])
    if row is None or column is None:
        return None
    return Orientation(row, column)


def frame_orientation(
    ds: Dataset, frame: int = 0, plane: ImagePlane | None = None
) -> Orientation | None:
    """What the letters of frame *frame* (0-based) say: from its plane
    (Image Orientation (Patient)) when it has one, else from Patient
    Orientation, of the frame's functional groups (Patient Orientation in
    Frame, PS3.3 C.7.6.16.2.15) or the top level, as projection images
    (CR, DX, MG, XA) give it."""
    if plane is not None:
        return Orientation(plane.row_direction, plane.column_direction, plane.spacing)
    value = _find(ds, frame, "PatientOrientationInFrameSequence", "PatientOrientation")
    return patient_orientation(value)
