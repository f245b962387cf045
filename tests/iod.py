"""dicom3tools' dciodvfy on the objects the product creates.

Objects are written exactly as the store writes them: our File Meta
(:func:`jivex_core.store.dicomfile.encode_file_meta`) in front of the data
set's Explicit VR Little Endian bytes.
"""

from __future__ import annotations

import subprocess
from io import BytesIO
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset

from jivex_core.imaging.created import ENCODED_SYNTAX, encode
from jivex_core.store.dicomfile import encode_file_meta

#: Warnings dciodvfy may give on our objects, each with why it stays.
ALLOWED_WARNINGS = {
    # General Series' Laterality is type 2C: required for a paired body
    # part. Only the image can say whether it shows one; when its own
    # Laterality or Image Laterality does not say R or L we write it empty
    # ("unknown"), which dciodvfy accepts but reminds of.
    "attribute <Laterality>": "Laterality empty: the image does not say",
    # Patient and study attributes are the referenced image's (tables 49
    # and 50, source IMG; type 2). An image without a Study ID or Patient
    # ID gives an object with them empty, which a DICOMDIR would miss.
    "needed to build DICOMDIR": "copied empty from an image without it",
}


def file_bytes(ds: Dataset) -> bytes:
    """*ds* as the store would write it (our File Meta, explicit VR LE)."""
    meta = encode_file_meta(ds.SOPClassUID, ds.SOPInstanceUID, ENCODED_SYNTAX)
    return meta + encode(ds)


def reread(ds: Dataset) -> Dataset:
    """*ds* as a reader of its file sees it."""
    return pydicom.dcmread(BytesIO(file_bytes(ds)))


def write(ds: Dataset, path: Path) -> Path:
    """Write *ds* as the store would."""
    path.write_bytes(file_bytes(ds))
    return path


def dciodvfy(path: Path) -> tuple[list[str], list[str]]:
    """dciodvfy's errors and warnings for a file."""
    run = subprocess.run(
        ["dciodvfy", str(path)], capture_output=True, text=True, timeout=60
    )
    lines = (run.stdout + run.stderr).splitlines()
    errors = [line for line in lines if line.startswith("Error")]
    warnings = [line for line in lines if line.startswith("Warning")]
    return errors, warnings


def check(ds: Dataset, path: Path) -> list[str]:
    """Write *ds* and verify it; fail on errors and unexplained warnings.

    Returns the (allowed) warnings, so a test can say which it saw.
    """
    errors, warnings = dciodvfy(write(ds, path))
    assert not errors, (path.name, errors)
    unexplained = [w for w in warnings if not any(key in w for key in ALLOWED_WARNINGS)]
    assert not unexplained, (path.name, unexplained)
    return warnings


def check_file(path: Path) -> list[str]:
    """Verify a file as stored (by the archive, or another system)."""
    errors, warnings = dciodvfy(Path(path))
    assert not errors, (Path(path).name, errors)
    unexplained = [w for w in warnings if not any(key in w for key in ALLOWED_WARNINGS)]
    assert not unexplained, (Path(path).name, unexplained)
    return warnings
