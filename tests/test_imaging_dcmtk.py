"""Every image of the corpus rendered by our pipeline and by DCMTK, compared.

For each file with pixel data in ../shared/data, pydicom's test files and
pydicom-data, some frames (all of them up to four, else the first, middle
and last) are rendered by :mod:`jivex_core.imaging.render` and by DCMTK
3.6.7 (``dcmj2pnm`` for native, RLE and JPEG, ``dcml2pnm`` for JPEG-LS,
``dcm2pnm`` after GDCM's ``gdcmconv --raw`` for what DCMTK cannot decode,
JPEG 2000 above all) with the same window: the file's first window
(``+Wi 1``) or VOI LUT (``+Wl 1``) when it has one, the min-max window
(``+Wm``) when it has none, the window of the frame's functional group
(``+Ww``) for enhanced multi-frame objects (DCMTK does not read those), and
no overlays (``-O``). The 8-bit results may differ by one grey level
(DCMTK truncates where we round).

Where the comparison takes another path, the reason is in this module:

- attributes stored with VR UN are converted to their real VR first
  (``dcmconv +uc``): pydicom reads them, DCMTK's renderers do not;
- lossy JPEG (baseline and extended) decoders differ: the IJG code in DCMTK
  and libjpeg in pylibjpeg round the inverse DCT and upsample chroma
  differently. The pipeline is compared at one grey level on the data
  ``dcmdjpeg`` decompressed, and our own decoding of the original against
  DCMTK's rendering of it at :data:`LOSSY_TOLERANCE` (grey, as stored
  values) or :data:`LOSSY_COLOUR` (colour);
- DCMTK converts native and RLE YCbCr to RGB with chroma centred on 127.5
  and each term truncated, up to two levels from the equations of PS3.3
  C.7.6.3.1.2 that we follow: those files are compared at two levels, and
  at one level against pydicom's conversion (the same equations).

Files not compared at all are listed in :data:`EXCLUDED` with the reason;
files that no renderer should show are in :data:`BAD_INPUT`, where our
``RenderError`` message is checked and DCMTK must refuse them as well.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import subprocess
import tempfile
import warnings
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image

from jivex_core.imaging.frames import frame_group
from jivex_core.imaging.overlays import burn_in
from jivex_core.imaging.render import PreparedFrame, RenderError, prepare_frame
from tests.corpus import corpus_roots
from tests.helpers import SHARED_DATA, dcmtk

pytestmark = pytest.mark.interop

#: Lossy JPEG: largest difference of stored grey values, ours against
#: DCMTK's decoding (``dcmdjpeg``).
LOSSY_TOLERANCE = 1
#: Lossy colour JPEG: largest and mean difference of RGB samples. A second
#: YCbCr to RGB conversion moves them by tens of levels on average.
LOSSY_COLOUR = (12, 0.5)
#: Native and RLE YCbCr against DCMTK (see the module docstring).
YBR_TOLERANCE = 2

LOSSY_JPEG = ("1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51")
JPEG = (*LOSSY_JPEG, "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70")
JPEG_LS = ("1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81")
NATIVE = (
    "",
    "1.2.840.10008.1.2",
    "1.2.840.10008.1.2.1",
    "1.2.840.10008.1.2.1.99",
    "1.2.840.10008.1.2.2",
    "1.2.840.10008.1.2.5",
)

#: Not compared, and why. Keys are "<root>:<path in root>" (see _key).
EXCLUDED: dict[str, str] = {
    "shared:dcm4che/will-jxl.dcm": (
        "JPEG XL (1.2.840.10008.1.2.4.111): neither DCMTK 3.6.7, GDCM 3.0 nor "
        "pylibjpeg decodes it; we raise RenderError naming the syntax "
        "(test_imaging_render)"
    ),
    "shared:cornerstone-wado/CTImage.dcm_JPEGProcess6_8TransferSyntax_"
    "1.2.840.10008.1.2.4.53.dcm": (
        "JPEG spectral selection (processes 6-8): DCMTK decodes it, pylibjpeg "
        "has no decoder; we raise RenderError (docs/limitations.md)"
    ),
    "shared:cornerstone-wado/CTImage.dcm_JPEGProcess10_12TransferSyntax_"
    "1.2.840.10008.1.2.4.55.dcm": (
        "JPEG full progression (processes 10-12): DCMTK decodes it, pylibjpeg "
        "has no decoder; we raise RenderError (docs/limitations.md)"
    ),
    "shared:pylibjpeg-data/JPEGExtended/RG2_JPLY.dcm": (
        "a misplaced JPEG marker that DCMTK tolerates and pylibjpeg's libjpeg "
        "refuses; we raise RenderError (docs/limitations.md)"
    ),
    "pydicom:JPEG-lossy.dcm": (
        "a misplaced JPEG marker that DCMTK tolerates and pylibjpeg's libjpeg "
        "refuses; we raise RenderError (docs/limitations.md)"
    ),
    "shared:fo-dicom/GH1376.dcm": (
        "16-bit lossless JPEG under a File Meta that says Explicit VR Little "
        "Endian: we find the codec from the codestream, but pylibjpeg's libjpeg "
        "decodes it as a blank image where DCMTK shows the breast "
        "(docs/limitations.md)"
    ),
    "pydicom:JPEG2000-embedded-sequence-delimiter.dcm": (
        "a JPEG 2000 codestream that neither GDCM nor pylibjpeg's OpenJPEG "
        "decodes (DCMTK has no JPEG 2000 codec)"
    ),
    "shared:fo-dicom/FreezePattern.dcm": (
        "DCMTK stops at an item tag it cannot parse in the data set; pydicom "
        "reads past it"
    ),
    "pydicom:MR_truncated.dcm": (
        "Pixel Data ends 62 bytes early: DCMTK refuses the file, we show it "
        "with the missing pixels black (test_imaging_render tests it)"
    ),
    "pydicom:SC_rgb_jpeg.dcm": (
        "DCMTK cannot parse the data set (a non-standard VR in (0008,0008))"
    ),
    "pydicom-data:SC_rgb_32bit.dcm": (
        "32-bit RGB in an OB value: DCMTK 3.6.7 refuses Pixel Data that is OB "
        "with more than 16 bits allocated"
    ),
    "pydicom-data:SC_rgb_32bit_2frame.dcm": (
        "32-bit RGB in an OB value: DCMTK 3.6.7 refuses Pixel Data that is OB "
        "with more than 16 bits allocated"
    ),
    "pydicom-data:SC_rgb_expb_32bit.dcm": (
        "32-bit RGB in an OB value: DCMTK 3.6.7 refuses Pixel Data that is OB "
        "with more than 16 bits allocated"
    ),
    "pydicom-data:SC_rgb_expb_32bit_2frame.dcm": (
        "32-bit RGB in an OB value: DCMTK 3.6.7 refuses Pixel Data that is OB "
        "with more than 16 bits allocated"
    ),
    "pydicom-data:gdcm-US-ALOKA-16.dcm": (
        "a segmented palette, which DCMTK 3.6.7 does not support; compared "
        "with pydicom's palette lookup in test_imaging_render"
    ),
    "pydicom-data:gdcm-US-ALOKA-16_big.dcm": (
        "a segmented palette, which DCMTK 3.6.7 does not support; compared "
        "with pydicom's palette lookup in test_imaging_render"
    ),
    "shared:orthanc-tests/2026-05-26-oob-monochrome-65535.dcm": (
        "65535 x 65535 pixels with 128 bytes of data: we refuse it as too "
        "large (RenderError), DCMTK pads it out to 4 billion pixels"
    ),
}

#: Files that must not render: our RenderError message, and DCMTK refuses
#: them too.
BAD_INPUT: dict[str, str] = {
    "shared:dwv/dwv-test_no-number-rows.dcm": "Rows (0028,0010) is missing",
    "shared:fo-dicom/GH1146.dcm": "Pixel Data (7FE0,0010) is empty",
    "shared:dcm4che/3gb-bulk-data-truncated": "Rows (0028,0010) has 2 values",
    "pydicom:meta_missing_tsyntax.dcm": "Rows (0028,0010) is missing",
    "pydicom:nested_priv_SQ.dcm": "Rows (0028,0010) is missing",
}

#: DCMTK refuses these unless a missing attribute is added to a copy
#: (dcmodify arguments); we render them as the standard's default reads.
AMEND: dict[str, list[str]] = {
    # Pixel Representation is Type 1; unsigned is what the data holds.
    "shared:orthanc-tests/MultiframeWindowing.dcm": ["-i", "(0028,0103)=0"],
}


def _key(path: Path) -> str:
    """Stable name of a corpus file: root label and path inside it."""
    for label, root in _roots():
        try:
            return f"{label}:{path.relative_to(root).as_posix()}"
        except ValueError:
            continue
    return str(path)


def _roots() -> list[tuple[str, Path]]:
    labels = []
    for root in corpus_roots():
        if root == SHARED_DATA:
            labels.append(("shared", root))
        elif root.name == "test_files":
            labels.append(("pydicom", root))
        elif root.name == "charset_files":
            labels.append(("pydicom-charset", root))
        else:
            labels.append(("pydicom-data", root))
    return labels


_SKIP_SUFFIXES = (".py", ".pyc", ".txt", ".tsv", ".md", ".json", ".gz", ".icc", ".dump")


def _image_files() -> tuple[list[Path], list[Path]]:
    """Every corpus file that has a pixel data element, and those pydicom
    cannot read at all."""
    found, unreadable = [], []
    for _label, root in _roots():
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            if path.suffix in _SKIP_SUFFIXES:
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    ds = pydicom.dcmread(path, force=True, defer_size=256)
                    keys = set(ds.keys())
                except Exception:
                    unreadable.append(path)
                    continue
            if keys & {0x7FE00010, 0x7FE00008, 0x7FE00009}:
                found.append(path)
    return found, unreadable


IMAGE_FILES, UNREADABLE_FILES = _image_files()

#: Files pydicom cannot read, so that no image hides among them.
UNREADABLE: dict[str, str] = {
    "shared:orthanc-tests/2026-05-06-Deeply-Nested-Sequence.dcm": (
        "sequences nested deeper than Python's recursion limit before a one-byte "
        "Pixel Data: pydicom cannot read it (jivex render names it, "
        "test_cli_render) and DCMTK's dcm2pnm crashes on it"
    ),
}


# -- running DCMTK --------------------------------------------------------


def _run(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    for attempt in range(3):
        try:
            return subprocess.run(
                args, capture_output=True, timeout=timeout, check=False
            )
        except OSError as exc:
            # Starting a process from a worker thread while another thread
            # remaps memory fails now and then with EFAULT on this machine;
            # the next attempt works.
            if exc.errno != errno.EFAULT or attempt == 2:
                raise
    raise AssertionError("unreachable")


def _gdcmconv() -> str:
    found = shutil.which("gdcmconv")
    if found is None:
        raise RuntimeError(
            "GDCM's gdcmconv is not installed (make test installs libgdcm-tools)"
        )
    return found


def _has_un_image_attributes(path: Path) -> bool:
    """Whether an element of group 0028 is written with VR UN (its explicit
    VR Little Endian header: group, element, "UN", two zero bytes)."""
    return re.search(rb"\x28\x00..UN\x00\x00", path.read_bytes(), re.DOTALL) is not None


def _png(tool: str, options: list[str], source: Path, out: Path) -> np.ndarray:
    if out.exists():
        out.unlink()
    done = _run([dcmtk(tool), "+on", "+Ma", *options, str(source), str(out)])
    if done.returncode or not out.exists():
        raise RuntimeError(
            f"{tool} {' '.join(options)} failed: "
            + done.stderr.decode(errors="replace")[-400:]
        )
    return np.asarray(Image.open(out))


def _window_options(ds: pydicom.Dataset, frame: PreparedFrame) -> list[str]:
    """DCMTK's options for the window the viewer shows first."""
    if frame.is_color:
        return []
    if frame_group(ds, frame.index, "FrameVOILUTSequence") is not None:
        window = frame.default_window
        assert window is not None
        options = ["+Ww", repr(window.center), repr(window.width)]
        return [*options, "+Wfs"] if frame.voi_function == "SIGMOID" else options
    if not frame.windows:
        return ["+Wm"]
    return ["+Wi", "1"] if frame.windows[0].window is not None else ["+Wl", "1"]


def _frames(count: int) -> list[int]:
    return list(range(count)) if count <= 4 else [0, count // 2, count - 1]


@dataclass
class Outcome:
    """What comparing one file found."""

    key: str
    checks: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    skipped: str = ""


def _read(path: Path) -> pydicom.Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(path, force=True)


def _compare(
    outcome: Outcome, what: str, ours: np.ndarray, theirs: np.ndarray, limit: int
) -> None:
    if ours.shape != theirs.shape:
        outcome.failures.append(f"{what}: shape {ours.shape} against {theirs.shape}")
        return
    diff = int(np.abs(ours.astype(int) - theirs.astype(int)).max())
    outcome.checks.append(f"{what}: max difference {diff}")
    if diff > limit:
        count = int((np.abs(ours.astype(int) - theirs.astype(int)) > limit).sum())
        outcome.failures.append(
            f"{what}: {count} pixels differ by more than {limit} (up to {diff})"
        )


def _compare_file(path: Path, work: Path) -> Outcome:
    key = _key(path)
    outcome = Outcome(key)
    ds = _read(path)
    meta = getattr(ds, "file_meta", None)
    syntax = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
    photometric = str(ds.get("PhotometricInterpretation", "")).strip()
    frames = _frames(prepare_count(ds))
    source = path
    if key in AMEND:
        source = work / "amended.dcm"
        shutil.copy(path, source)
        done = _run([dcmtk("dcmodify"), "-nb", *AMEND[key], str(source)])
        assert done.returncode == 0, done.stderr
    if _has_un_image_attributes(source):
        converted = work / "converted.dcm"
        done = _run([dcmtk("dcmconv"), "+uc", str(source), str(converted)])
        assert done.returncode == 0, done.stderr
        source = converted

    if syntax in LOSSY_JPEG:
        return _compare_lossy(ds, source, frames, work, outcome)
    tool = "dcmj2pnm"
    if syntax in JPEG_LS:
        tool = "dcml2pnm"
    elif syntax not in NATIVE and syntax not in JPEG:
        raw = work / "raw.dcm"
        done = _run([_gdcmconv(), "--raw", str(source), str(raw)])
        if done.returncode:
            outcome.failures.append(f"gdcmconv --raw failed: {done.stderr[-300:]!r}")
            return outcome
        tool, source = "dcm2pnm", raw
    limit = 1
    if photometric in ("YBR_FULL", "YBR_FULL_422") and syntax in NATIVE:
        limit = YBR_TOLERANCE
    for index in frames:
        frame = prepare_frame(ds, index)
        options = ["-O", "+F", str(index + 1), *_window_options(ds, frame)]
        theirs = _png(tool, options, source, work / "out.png")
        _compare(outcome, f"frame {index + 1}", frame.render(), theirs, limit)
        if limit > 1:
            _compare_ybr(outcome, ds, index, frame)
        if frame.overlays:
            _compare_overlays(outcome, ds, frame, tool, source, work)
    return outcome


def prepare_count(ds: pydicom.Dataset) -> int:
    try:
        return max(1, int(ds.get("NumberOfFrames", 1) or 1))
    except (TypeError, ValueError):
        return 1


def _compare_ybr(
    outcome: Outcome, ds: pydicom.Dataset, index: int, frame: PreparedFrame
) -> None:
    """Native YCbCr against pydicom's conversion (PS3.3 C.7.6.3.1.2)."""
    raw = pydicom.pixels.pixel_array(ds, index=index, raw=True)
    reference = pydicom.pixels.convert_color_space(raw, "YBR_FULL", "RGB")
    _compare(outcome, f"frame {index + 1} against pydicom", frame.values, reference, 1)


def _compare_overlays(
    outcome: Outcome,
    ds: pydicom.Dataset,
    frame: PreparedFrame,
    tool: str,
    source: Path,
    work: Path,
) -> None:
    """Overlays burnt in white, against DCMTK's default overlay display."""
    graphics = [o for o in frame.overlays if o.type == "G"]
    if len(graphics) != len(frame.overlays):
        return  # DCMTK shows ROI overlays in another mode
    options = ["+F", str(frame.index + 1), *_window_options(ds, frame)]
    theirs = _png(tool, options, source, work / "overlay.png")
    ours = burn_in(frame.render(), graphics)
    _compare(outcome, f"frame {frame.index + 1} with overlays", ours, theirs, 1)


def _compare_lossy(
    ds: pydicom.Dataset,
    source: Path,
    frames: list[int],
    work: Path,
    outcome: Outcome,
) -> Outcome:
    plain = work / "dcmdjpeg.dcm"
    done = _run([dcmtk("dcmdjpeg"), str(source), str(plain)])
    assert done.returncode == 0, done.stderr
    decompressed = _read(plain)
    for index in frames:
        theirs_frame = prepare_frame(decompressed, index)
        options = ["-O", "+F", str(index + 1), *_window_options(ds, theirs_frame)]
        theirs = _png("dcm2pnm", options, plain, work / "out.png")
        _compare(
            outcome,
            f"frame {index + 1} (decompressed by dcmdjpeg)",
            theirs_frame.render(),
            theirs,
            1,
        )
        ours = prepare_frame(ds, index)
        if ours.is_color:
            original = _png("dcmj2pnm", ["+F", str(index + 1)], source, work / "o.png")
            diff = np.abs(ours.values.astype(int) - original.astype(int))
            peak, mean = LOSSY_COLOUR
            outcome.checks.append(
                f"frame {index + 1} decoded: max {diff.max()}, mean {diff.mean():.2f}"
            )
            if diff.max() > peak or diff.mean() > mean:
                outcome.failures.append(
                    f"frame {index + 1}: our decoding differs from DCMTK's by up to "
                    f"{diff.max()} (mean {diff.mean():.2f})"
                )
        else:
            assert ours.stored is not None and theirs_frame.stored is not None
            _compare(
                outcome,
                f"frame {index + 1} stored values",
                ours.stored,
                theirs_frame.stored,
                LOSSY_TOLERANCE,
            )
    return outcome


def _bad_input(path: Path, work: Path, expected: str) -> Outcome:
    outcome = Outcome(_key(path))
    try:
        ds = _read(path)
        prepare_frame(ds, 0)
    except RenderError as exc:
        outcome.checks.append(f"RenderError: {exc}")
        if expected not in str(exc):
            outcome.failures.append(f"RenderError says {exc!r}, not {expected!r}")
    except Exception as exc:  # any other exception is a failure
        outcome.failures.append(f"{type(exc).__name__} instead of RenderError: {exc}")
    else:
        outcome.failures.append("rendered without RenderError")
    out = work / "bad.png"
    done = _run([dcmtk("dcmj2pnm"), "+on", "+Ma", "+Wm", str(path), str(out)])
    if done.returncode == 0 and out.exists():
        outcome.failures.append("DCMTK rendered it")
    return outcome


def _job(path: Path) -> Outcome:
    key = _key(path)
    with tempfile.TemporaryDirectory(prefix="jivex-dcmtk-") as folder:
        work = Path(folder)
        try:
            if key in BAD_INPUT:
                return _bad_input(path, work, BAD_INPUT[key])
            return _compare_file(path, work)
        except Exception as exc:
            return Outcome(key, failures=[f"{type(exc).__name__}: {exc}"])


@pytest.fixture(scope="module")
def outcomes():
    """All comparisons, run two at a time in the background as tests ask."""
    pool = ThreadPoolExecutor(max_workers=max(2, min(4, os.cpu_count() or 2)))
    futures: dict[Path, Future[Outcome]] = {}
    for path in IMAGE_FILES:
        if _key(path) not in EXCLUDED:
            futures[path] = pool.submit(_job, path)
    yield futures
    pool.shutdown(wait=True, cancel_futures=True)


@pytest.mark.parametrize("path", IMAGE_FILES, ids=_key)
def test_rendering_matches_dcmtk(path: Path, outcomes) -> None:
    key = _key(path)
    if key in EXCLUDED:
        pytest.skip(EXCLUDED[key])
    outcome = outcomes[path].result(timeout=600)
    assert not outcome.failures, "\n".join([key, *outcome.failures, *outcome.checks])


def test_exclusions_name_real_files() -> None:
    """Every listed file exists, so that no exclusion outlives its reason."""
    keys = {_key(p) for p in IMAGE_FILES}
    for listed in (*EXCLUDED, *BAD_INPUT, *AMEND):
        assert listed in keys, listed


def test_files_pydicom_cannot_read_are_known() -> None:
    assert sorted(_key(p) for p in UNREADABLE_FILES) == sorted(UNREADABLE)


def test_the_comparison_covers_the_corpus() -> None:
    """The corpus holds the cases the pipeline must get right."""
    keys = {_key(p) for p in IMAGE_FILES}
    assert len(keys) > 700
    for wanted in (
        "shared:dwv/gdcm-CR-MONO1-10-chest.dcm",  # MONOCHROME1
        "shared:dcm4che/test16signed.dcm",  # signed
        "shared:dcm4che/ovly_p01.dcm",  # overlays
        "pydicom-data:eCT_Supplemental.dcm",  # functional groups
        "pydicom-data:mlut_18.dcm",  # Modality LUT Sequence
        "pydicom-data:vlut_04.dcm",  # VOI LUT Sequence
        "shared:orthanc-tests/Issue16.dcm",  # JPEG YBR_FULL_422 multi-frame
        "pydicom-data:gdcm-US-ALOKA-16.dcm",  # segmented 16-bit palette
    ):
        assert wanted in keys, wanted
