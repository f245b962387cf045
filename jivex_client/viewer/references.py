"""Which images a presentation state can apply to, without Qt.

A Grayscale Softcopy Presentation State applies to MONOCHROME1 and
MONOCHROME2 images only (PS3.3 A.33.1, C.11.6); the core refuses to write
one that names any other image. The viewer therefore works out, before it
saves or applies a state, which of the images in question are grey and
readable, leaves the others out, and says so: a series with one colour or
broken image is saved for the rest, a state naming only colour images or
images not stored here is not applied at all.
"""

from __future__ import annotations

import copy
import logging
import threading
from dataclasses import dataclass, field, replace

import pydicom
from pydicom.dataset import Dataset

from jivex_core.imaging.presentation import ImageRef, PresentationState

logger = logging.getLogger(__name__)

#: Attributes :func:`gsps_problem` looks at.
HEADER_TAGS = [
    "SOPInstanceUID",
    "PhotometricInterpretation",
    "SamplesPerPixel",
    "Rows",
    "Columns",
    "BitsAllocated",
    "BitsStored",
]

MONOCHROME = ("MONOCHROME1", "MONOCHROME2")


def gsps_problem(header: Dataset | None) -> str:
    """Why a grayscale presentation state cannot apply to the image whose
    header is *header*; empty when it can.

    The image must be grey (Photometric Interpretation MONOCHROME1 or
    MONOCHROME2, one sample per pixel), have Rows and Columns (a state's
    displayed area is given in its pixels, PS3.3 C.10.4) and a Bits Stored
    no larger than Bits Allocated (PS3.3 C.7.6.3.1). None (a header that
    could not be read) is a problem too.
    """
    if header is None or len(header) == 0:
        return "cannot be read"
    photometric = str(header.get("PhotometricInterpretation", "") or "").strip()
    if photometric not in MONOCHROME:
        return f"{photometric or 'no Photometric Interpretation'}, not grey"
    try:
        samples = int(header.get("SamplesPerPixel", 1) or 1)
        rows = int(header.get("Rows") or 0)
        columns = int(header.get("Columns") or 0)
        allocated = int(header.get("BitsAllocated") or 0)
        stored = int(header.get("BitsStored") or 0)
    except (TypeError, ValueError) as exc:
        return f"malformed Image Pixel attributes ({exc})"
    if samples != 1:
        return f"{samples} samples per pixel, not grey"
    if rows <= 0 or columns <= 0:
        return "no Rows and Columns"
    if allocated and stored > allocated:
        return f"Bits Stored {stored} above Bits Allocated {allocated}"
    return ""


def read_header(path: str) -> Dataset | None:
    """The attributes :func:`gsps_problem` needs, None when the file cannot
    be read. Runs in a worker."""
    try:
        return pydicom.dcmread(path, stop_before_pixels=True, specific_tags=HEADER_TAGS)
    except Exception as exc:  # whatever the reader trips on: unreadable
        logger.info("Cannot read the header of '%s': %s", path, exc)
        return None


def read_headers(
    paths: list[str], stop: threading.Event | None = None
) -> dict[str, Dataset | None]:
    """:func:`read_header` of every path (each once), until *stop* is set."""
    out: dict[str, Dataset | None] = {}
    for path in paths:
        if stop is not None and stop.is_set():
            break
        if path not in out:
            out[path] = read_header(path)
    return out


@dataclass
class ImageCheck:
    """The images a state can apply to, and those left out with why.

    *missing* are referenced images that are not stored here.
    """

    usable: list[ImageRef] = field(default_factory=list)
    left_out: list[tuple[ImageRef, str]] = field(default_factory=list)
    missing: list[ImageRef] = field(default_factory=list)

    @property
    def total(self) -> int:
        """How many images were asked about."""
        return len(self.usable) + len(self.left_out) + len(self.missing)


def check_images(
    images: list[ImageRef],
    paths: dict[str, str],
    headers: dict[str, Dataset | None],
    failures: dict[str, str] | None = None,
) -> ImageCheck:
    """Sort *images* into usable, left out (with the reason) and missing.

    *paths* maps SOP Instance UIDs to the stored files (an image without
    one is missing); *headers* maps paths to :func:`read_header` results;
    *failures* maps SOP Instance UIDs to why the viewer could not show the
    image (an image never seen with the state is not saved with it).
    """
    failures = failures or {}
    check = ImageCheck()
    for ref in images:
        path = paths.get(ref.SOPInstanceUID)
        if path is None:
            check.missing.append(ref)
            continue
        problem = gsps_problem(headers.get(path))
        if not problem and ref.SOPInstanceUID in failures:
            problem = f"cannot be shown: {failures[ref.SOPInstanceUID]}"
        if problem:
            check.left_out.append((ref, problem))
        else:
            check.usable.append(ref)
    return check


def _kept(refs: tuple[ImageRef, ...], keep: set[str]) -> tuple[ImageRef, ...] | None:
    """*refs* restricted to *keep*; None when a restriction lost them all."""
    if not refs:
        return refs
    kept = tuple(r for r in refs if r.SOPInstanceUID in keep)
    return kept or None


def restrict_state(
    state: PresentationState, images: list[ImageRef]
) -> PresentationState:
    """A copy of *state* applying to *images* only: settings and annotations
    that named other images lose them, those left with none are dropped."""
    keep = {r.SOPInstanceUID for r in images}
    out = copy.deepcopy(state)
    out.images = list(images)
    voi = []
    for item in out.voi:
        refs = _kept(item.images, keep)
        if refs is not None:
            voi.append(replace(item, images=refs))
    out.voi = voi
    areas = []
    for area in out.displayed_areas:
        refs = _kept(area.images, keep)
        if refs is not None:
            areas.append(replace(area, images=refs))
    out.displayed_areas = areas
    annotations = []
    for annotation in out.annotations:
        refs = _kept(annotation.images, keep)
        if refs is not None:
            annotation.images = refs
            annotations.append(annotation)
    out.annotations = annotations
    return out


def left_out_text(left_out: list[tuple[ImageRef, str]], limit: int = 2) -> str:
    """A short account of images left out: ``3 (MONOCHROME… not grey; …)``."""
    reasons = []
    for _ref, reason in left_out:
        if reason not in reasons:
            reasons.append(reason)
    shown = "; ".join(reasons[:limit])
    if len(reasons) > limit:
        shown += f"; and {len(reasons) - limit} more"
    return f"{len(left_out)} ({shown})"
