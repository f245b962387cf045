"""Window presets: per modality, the file's own windows, and an automatic one."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from jivex_core.imaging.render import Window


@dataclass(frozen=True)
class WindowPreset:
    """A named window; *shortcut* is the key that selects it (``"1"``…)."""

    name: str
    window: Window
    shortcut: str = ""


#: Standard CT windows (width/level in HU), as radiology teaching gives them.
CT_PRESETS: tuple[WindowPreset, ...] = (
    WindowPreset("Lung", Window(-600, 1500), "1"),
    WindowPreset("Mediastinum", Window(50, 350), "2"),
    WindowPreset("Bone", Window(400, 1800), "3"),
    WindowPreset("Brain", Window(40, 80), "4"),
    WindowPreset("Abdomen", Window(50, 400), "5"),
)

#: Presets per modality; other modalities have only their files' windows.
MODALITY_PRESETS: dict[str, tuple[WindowPreset, ...]] = {"CT": CT_PRESETS}


def _floats(value: object) -> list[float]:
    if value is None or value == "":
        return []
    items = list(value) if isinstance(value, list | tuple | MultiValue) else [value]
    out = []
    for item in items:
        try:
            out.append(float(item))
        except (TypeError, ValueError):
            out.append(float("nan"))
    return out


def file_windows(ds: Dataset) -> list[WindowPreset]:
    """Every usable Window Center/Width pair of *ds*, with its explanation
    (PS3.3 C.11.2.1.2); widths below 1 are left out."""
    centers = _floats(ds.get("WindowCenter"))
    widths = _floats(ds.get("WindowWidth"))
    raw = ds.get("WindowCenterWidthExplanation")
    if raw is None:
        explanations: list[str] = []
    elif isinstance(raw, str):
        explanations = [raw]
    else:
        explanations = [str(v) for v in raw]
    presets = []
    for i, (c, w) in enumerate(zip(centers, widths, strict=False)):
        if not (np.isfinite(c) and np.isfinite(w)) or w < 1:
            continue
        name = explanations[i].strip() if i < len(explanations) else ""
        presets.append(WindowPreset(name or f"File window {i + 1}", Window(c, w)))
    return presets


def presets_for(modality: str) -> tuple[WindowPreset, ...]:
    """The standard presets of a modality (empty for most)."""
    return MODALITY_PRESETS.get(modality.upper(), ())


def auto_window(values: np.ndarray, low: float = 1.0, high: float = 99.0) -> Window:
    """A window spanning the bulk of the values: percentiles *low* to *high*.

    Large images are sampled (every fourth pixel each way) so that this
    stays fast on the GUI thread. Values equal to the minimum of an image
    with a large uniform border (padding, air outside the scanner's field)
    are left out when they are most of the image, so that they do not pull
    the window down.
    """
    sample = values[::4, ::4] if values.ndim == 2 and values.size > 65536 else values
    flat = np.asarray(sample, dtype=np.float64).ravel()
    flat = flat[np.isfinite(flat)]
    if flat.size == 0:
        return Window(0.5, 1.0)
    floor = flat.min()
    body = flat[flat > floor]
    if body.size > flat.size * 0.05:
        flat = body
    lo, hi = np.percentile(flat, [low, high])
    width = max(float(hi - lo), 1.0)
    return Window(round(float(lo + hi) / 2, 2), round(width, 2))
