"""`jivex render`: file names, frames, window, formats, failures, exit codes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file

from jivex_core.cli import main
from jivex_core.imaging.render import Window, render
from tests.helpers import SHARED_DATA, run_jivex
from tests.synthetic import image, save

CT = get_testdata_file("CT_small.dcm")
NM = SHARED_DATA / "dcm4che/NM-MONO2-16-13x-heart"  # 13 frames


def _pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


def test_single_frame_is_named_by_its_uid_with_the_first_window(tmp_path) -> None:
    run = run_jivex("render", CT, "--out", str(tmp_path / "out"))
    assert run.returncode == 0, run.stderr
    uid = pydicom.dcmread(CT).SOPInstanceUID
    target = tmp_path / "out" / f"{uid}.png"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [target.name]
    assert f"-> {target}" in run.stdout
    np.testing.assert_array_equal(_pixels(target), render(pydicom.dcmread(CT)))


def test_multi_frame_gives_one_image_per_frame(tmp_path, capsys) -> None:
    assert main(["render", str(NM), "--out", str(tmp_path)]) == 0
    uid = pydicom.dcmread(NM, stop_before_pixels=True).SOPInstanceUID
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(f"{uid}-{n}.png" for n in range(1, 14))
    ds = pydicom.dcmread(NM)
    np.testing.assert_array_equal(_pixels(tmp_path / f"{uid}-7.png"), render(ds, 6))


def test_one_frame_and_a_window(tmp_path, capsys) -> None:
    code = main(
        ["render", str(NM), "--out", str(tmp_path), "--frame", "3", "--window", "40,80"]
    )
    assert code == 0
    uid = pydicom.dcmread(NM, stop_before_pixels=True).SOPInstanceUID
    [written] = list(tmp_path.iterdir())
    assert written.name == f"{uid}-3.png"
    expected = render(pydicom.dcmread(NM), 2, Window(40, 80))
    np.testing.assert_array_equal(_pixels(written), expected)
    # Negative centres are numbers, not options.
    assert main(["render", CT, "--out", str(tmp_path), "--window", "-600,1500"]) == 0


def test_jpeg_format(tmp_path, capsys) -> None:
    assert main(["render", CT, "--out", str(tmp_path), "--format", "jpeg"]) == 0
    [written] = list(tmp_path.iterdir())
    assert written.suffix == ".jpg"
    with Image.open(written) as picture:
        assert picture.format == "JPEG" and picture.size == (128, 128)
        ours = np.asarray(picture).astype(int)
    assert np.abs(ours - render(pydicom.dcmread(CT)).astype(int)).mean() < 3


def test_colour_image(tmp_path, capsys) -> None:
    path = get_testdata_file("SC_rgb.dcm")
    assert main(["render", path, "--out", str(tmp_path)]) == 0
    [written] = list(tmp_path.iterdir())
    assert _pixels(written)[5, 50].tolist() == [255, 0, 0]


def test_bad_files_are_reported_and_skipped(tmp_path, capsys) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not DICOM")
    jxl = SHARED_DATA / "dcm4che/will-jxl.dcm"
    out = tmp_path / "out"
    code = main(
        [
            "render",
            str(jxl),
            CT,
            str(text),
            str(tmp_path / "missing.dcm"),
            "--out",
            str(out),
        ]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert (
        f"failed: {jxl}: no decoder for transfer syntax 1.2.840.10008.1.2.4.111" in err
    )
    # As `jivex import` says it, not "the object has no pixel data".
    assert f"failed: {text}: not a DICOM file" in err
    assert f"failed: {tmp_path / 'missing.dcm'}: cannot be read as DICOM" in err
    assert "1 images rendered, 3 files failed" in err
    assert len(list(out.iterdir())) == 1  # CT_small still rendered


def test_a_file_pydicom_cannot_read_is_named(tmp_path, capsys) -> None:
    deep = SHARED_DATA / "orthanc-tests/2026-05-06-Deeply-Nested-Sequence.dcm"
    assert main(["render", str(deep), "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert f"failed: {deep}: cannot be read as DICOM: maximum recursion depth" in err


def test_frame_beyond_the_object_fails_that_file(tmp_path, capsys) -> None:
    assert main(["render", CT, "--out", str(tmp_path), "--frame", "2"]) == 1
    assert "frame 2 does not exist; the object has 1" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--window", "40"], "is not CENTER,WIDTH"),
        (["--window", "40,0"], "is not CENTER,WIDTH with a width of 1 or more"),
        (["--window", "a,b"], "is not CENTER,WIDTH: the center 'a' is not a number"),
        (["--window", "nan,400"], "the center 'nan' is not a finite number"),
        (["--window", "inf,400"], "the center 'inf' is not a finite number"),
        (["--window", "1e309,5"], "the center '1e309' is not a finite number"),
        (["--window", "40,inf"], "the width 'inf' is not a finite number"),
        (["--window", "40,nan"], "the width 'nan' is not a finite number"),
        (["--window", "-inf,400"], "the center '-inf' is not a finite number"),
        (["--frame", "0"], "0 is not 1 or more"),
        (["--format", "gif"], "invalid choice: 'gif'"),
    ],
)
def test_bad_arguments_exit_2(tmp_path, capsys, arguments, message) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["render", CT, "--out", str(tmp_path), *arguments])
    assert stop.value.code == 2
    assert message in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_missing_out_and_unusable_out_exit_2(tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["render", CT])
    assert stop.value.code == 2
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["render", CT, "--out", str(blocker / "sub")]) == 2
    assert f"--out {blocker / 'sub'}" in capsys.readouterr().err


def _gsps(tmp_path: Path, state) -> Path:
    from jivex_core.imaging.gsps import build_presentation_state

    path = tmp_path / "state.dcm"
    ds = build_presentation_state(state, [pydicom.dcmread(CT)])
    ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    ds.save_as(path, enforce_file_format=True)
    return path


def test_a_presentation_state_is_applied(tmp_path) -> None:
    from jivex_core.imaging.gsps import presentation_from_dataset
    from jivex_core.imaging.presentation import (
        ImageRef,
        PresentationState,
        Shutter,
        VoiSetting,
    )

    ct = pydicom.dcmread(CT)
    state = PresentationState(
        images=[ImageRef(ct.SOPClassUID, ct.SOPInstanceUID, ct.SeriesInstanceUID)],
        label="TURNED",
        voi=[VoiSetting(window=Window(100, 500))],
        rotation=90,
        flip=True,
        shutter=Shutter(rectangle=(8, 56, 4, 60), value=65535),
    )
    gsps = _gsps(tmp_path, state)
    run = run_jivex(
        "render", CT, "--out", str(tmp_path / "out"), "--presentation", gsps
    )
    assert run.returncode == 0, run.stderr
    got = _pixels(tmp_path / "out" / f"{ct.SOPInstanceUID}.png")
    # What the file holds, applied by the pipeline; and by hand: the window,
    # the shutter white outside, a clockwise turn, then the mirror.
    read = presentation_from_dataset(pydicom.dcmread(gsps))
    np.testing.assert_array_equal(got, render(ct, state=read))
    plain = render(ct, window=Window(100, 500))
    plain[:, :7] = plain[:, 56:] = plain[:3, :] = plain[60:, :] = 255
    np.testing.assert_array_equal(got, np.rot90(plain, k=-1)[:, ::-1])


def test_a_presentation_state_renders_only_the_images_it_references(
    tmp_path, capsys
) -> None:
    from jivex_core.imaging.presentation import ImageRef, PresentationState

    ct = pydicom.dcmread(CT)
    gsps = _gsps(
        tmp_path,
        PresentationState(images=[ImageRef(ct.SOPClassUID, ct.SOPInstanceUID)]),
    )
    code = main(
        [
            "render",
            CT,
            str(NM),
            "--out",
            str(tmp_path / "o"),
            "--presentation",
            str(gsps),
        ]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert f"{NM}: the presentation state does not reference" in err
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == [
        f"{ct.SOPInstanceUID}.png"
    ]


def test_a_presentation_that_is_not_a_gsps_is_refused(tmp_path, capsys) -> None:
    code = main(["render", CT, "--out", str(tmp_path), "--presentation", CT])
    assert code == 2
    assert "is not Grayscale Softcopy Presentation State Storage" in (
        capsys.readouterr().err
    )
    missing = tmp_path / "nowhere.dcm"
    assert (
        main(["render", CT, "--out", str(tmp_path), "--presentation", str(missing)])
        == 2
    )
    assert f"--presentation {missing}: cannot be read" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_pixels_missing_from_the_file_are_said_and_exit_1(tmp_path) -> None:
    pixels = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64)
    cut = image(None, data=pixels.tobytes()[:4096], rows=64, columns=64)
    path = save(cut, tmp_path / "cut.dcm")
    whole = save(image(pixels), tmp_path / "whole.dcm")
    run = run_jivex("render", str(path), str(whole), "--out", str(tmp_path / "out"))
    assert run.returncode == 1
    assert (
        f"warning: {path}: Pixel Data holds 4096 of 8192 bytes: the rest shows black"
        in run.stderr
    )
    target = tmp_path / "out" / f"{cut.SOPInstanceUID}.png"
    assert f"rendered: {path} -> {target} (incomplete)" in run.stdout
    assert (
        "2 images rendered (1 incomplete: pixels missing from the file), 0 files "
        "failed" in run.stderr
    )
    got = _pixels(target)
    assert not got[32:].any() and got[:32].any()


def test_other_warnings_are_printed_without_failing(tmp_path, capsys) -> None:
    pixels = np.array([[0, 100], [1000, 2000]], dtype=np.uint16)
    path = save(image(pixels, RescaleSlope="0"), tmp_path / "slope.dcm")
    assert main(["render", str(path), "--out", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    assert f"warning: {path}: Rescale Slope (0028,1053) is 0: read as 1" in err
    assert "1 images rendered, 0 files failed" in err


def test_a_corrupt_compressed_file_is_one_line_without_traceback(tmp_path) -> None:
    lossy = get_testdata_file("JPEG-lossy.dcm")
    run = run_jivex("render", lossy, "--out", str(tmp_path))
    assert run.returncode == 1
    assert "Traceback" not in run.stderr
    lines = run.stderr.splitlines()
    assert lines[0].startswith(
        f"failed: {lossy}: the pixel data cannot be decoded (JPEG Extended"
    )
    assert "pylibjpeg: libjpeg error code" in lines[0]
    assert lines[1:] == ["0 images rendered, 1 files failed"]


def test_a_presentation_state_on_a_colour_image_fails_that_file(
    tmp_path, capsys
) -> None:
    from jivex_core.imaging.presentation import ImageRef, PresentationState

    ct = pydicom.dcmread(CT)
    gsps = _gsps(
        tmp_path,
        PresentationState(images=[ImageRef(ct.SOPClassUID, ct.SOPInstanceUID)]),
    )
    # Another system's state that points at a colour image.
    colour_path = get_testdata_file("SC_rgb.dcm")
    colour = pydicom.dcmread(colour_path)
    ds = pydicom.dcmread(gsps)
    [series] = ds.ReferencedSeriesSequence
    series.SeriesInstanceUID = colour.SeriesInstanceUID
    series.ReferencedImageSequence[0].ReferencedSOPClassUID = colour.SOPClassUID
    series.ReferencedImageSequence[0].ReferencedSOPInstanceUID = colour.SOPInstanceUID
    ds.save_as(gsps)
    out = tmp_path / "out"
    code = main(["render", colour_path, "--out", str(out), "--presentation", str(gsps)])
    assert code == 1
    assert (
        f"failed: {colour_path}: a Grayscale Softcopy Presentation State applies to "
        "grey images only (this image is RGB)"
    ) in capsys.readouterr().err
    assert not out.exists() or not list(out.iterdir())
