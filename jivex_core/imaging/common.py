"""Types and small helpers shared by the modules of the rendering pipeline.

They live apart from :mod:`jivex_core.imaging.render` so that the pipeline's
modules can use them without importing each other in a circle;
:mod:`~jivex_core.imaging.render` re-exports them.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

logger = logging.getLogger(__name__)


class RenderError(Exception):
    """The pixel data of an object cannot be turned into an image.

    The message names what is wrong (an attribute, a decoder, a frame); the
    viewer shows it in place of the image.
    """


@dataclass(frozen=True)
class Window:
    """A VOI window in modality units (PS3.3 C.11.2.1.2).

    Parameters
    ----------
    center : float
        Window Center (0028,1050), a finite number.
    width : float
        Window Width (0028,1051); finite, at least 1.

    Raises
    ------
    ValueError
        For a width below 1, or a center or width that is not finite (NaN
        or infinite: no window can be computed from it).
    """

    center: float
    width: float

    def __post_init__(self) -> None:
        if not math.isfinite(self.center):
            raise ValueError(f"window center {self.center!r} is not a finite number")
        if not math.isfinite(self.width):
            raise ValueError(f"window width {self.width!r} is not a finite number")
        if not self.width >= 1:
            raise ValueError(f"window width {self.width!r} is below 1")


def number_of_frames(ds: Dataset) -> int:
    """Return the number of frames of *ds* (1 when Number of Frames is absent)."""
    try:
        return max(1, int(ds.get("NumberOfFrames", 1) or 1))
    except (TypeError, ValueError):
        return 1


def values_of(value: object) -> list[object]:
    """The values of a possibly multi-valued element, as a list."""
    if value is None or value == "":
        return []
    if isinstance(value, MultiValue | list | tuple):
        return list(value)
    return [value]


def as_float(value: object) -> float | None:
    """*value* as a finite float, or None when it is empty or not a number."""
    if isinstance(value, MultiValue | list | tuple):
        value = value[0] if len(value) else None
    if value is None or value == "":
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    if number != number or number in (float("inf"), float("-inf")):
        return None
    return number


def as_text(value: object) -> str:
    """*value* as stripped text ('' for None); the first of several values."""
    if isinstance(value, MultiValue | list | tuple):
        value = value[0] if len(value) else ""
    return "" if value is None else str(value).strip()


def element_get(ds: Dataset, keyword: str) -> object:
    """``ds.get(keyword)`` that never raises on a malformed value.

    pydicom converts values lazily; a value that does not fit its VR raises
    on first access. The pipeline treats such a value as absent and says so
    in the log, rather than failing the whole image on a cosmetic attribute.
    """
    try:
        return ds.get(keyword)
    except Exception as exc:
        logger.debug("Ignoring unreadable %s: %s", keyword, exc)
        return None
