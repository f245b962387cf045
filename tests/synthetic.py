"""Hand-made images for the rendering tests: every value is known."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage

from jivex_core.uids import new_uid


def image(
    pixels: np.ndarray | None = None,
    *,
    data: bytes | None = None,
    photometric: str = "MONOCHROME2",
    bits_allocated: int = 16,
    bits_stored: int | None = None,
    high_bit: int | None = None,
    signed: bool = False,
    rows: int | None = None,
    columns: int | None = None,
    syntax: str = ExplicitVRLittleEndian,
    sop_class: str = SecondaryCaptureImageStorage,
    **attributes: Any,
) -> Dataset:
    """A data set with Image Pixel attributes and Pixel Data.

    *pixels* (rows, columns) or (rows, columns, 3) is written as its bytes
    unless *data* gives the bytes; further keyword arguments become
    attributes (``WindowCenter=40``).
    """
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = syntax
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = new_uid()
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.Modality = "OT"
    if pixels is not None:
        rows = rows or pixels.shape[0]
        columns = columns or pixels.shape[1]
    ds.Rows = rows
    ds.Columns = columns
    ds.SamplesPerPixel = 3 if photometric in ("RGB", "YBR_FULL") else 1
    if ds.SamplesPerPixel == 3:
        ds.PlanarConfiguration = 0
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = bits_allocated
    ds.BitsStored = bits_stored or bits_allocated
    ds.HighBit = high_bit if high_bit is not None else ds.BitsStored - 1
    ds.PixelRepresentation = int(signed)
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    if data is None:
        assert pixels is not None
        data = np.ascontiguousarray(pixels).tobytes()
    ds.PixelData = data
    ds["PixelData"].VR = "OW" if bits_allocated > 8 else "OB"
    return ds


def save(ds: Dataset, path: Path) -> Path:
    """Write *ds* as a DICOM file (for DCMTK or the command line)."""
    ds.save_as(path, enforce_file_format=True)
    return path
