"""Synthetic CT series with known geometry and values for the viewer tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

from jivex_core.uids import IMPLEMENTATION_CLASS_UID, new_uid

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"


def ct_slice(
    hu: np.ndarray,
    *,
    study: str,
    series: str,
    frame_of_reference: str,
    number: int,
    position: tuple[float, float, float],
    orientation: tuple[float, ...] = (1, 0, 0, 0, 1, 0),
    spacing: tuple[float, float] = (0.5, 0.5),
    slope: float = 2.0,
    intercept: float = -1024.0,
    series_number: int = 1,
    description: str = "PHANTOM",
) -> Dataset:
    """One CT slice whose modality values are *hu* (stored through the
    rescale *slope* and *intercept*)."""
    stored = np.round((hu - intercept) / slope).astype(np.int16)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = CT_IMAGE
    ds.SOPInstanceUID = new_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    ds.SOPClassUID = CT_IMAGE
    ds.StudyInstanceUID = study
    ds.SeriesInstanceUID = series
    ds.FrameOfReferenceUID = frame_of_reference
    ds.PatientName = "PHANTOM^CT"
    ds.PatientID = "PH-1"
    ds.StudyDate = "20240301"
    ds.StudyTime = "101500"
    ds.Modality = "CT"
    ds.SeriesNumber = series_number
    ds.SeriesDescription = description
    ds.InstanceNumber = number
    ds.ImagePositionPatient = [float(v) for v in position]
    ds.ImageOrientationPatient = [float(v) for v in orientation]
    ds.PixelSpacing = [float(spacing[0]), float(spacing[1])]
    ds.SliceThickness = 2.0
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.RescaleSlope = slope
    ds.RescaleIntercept = intercept
    ds.RescaleType = "HU"
    ds.WindowCenter = 40
    ds.WindowWidth = 400
    ds.PixelData = stored.tobytes()
    return ds


def write_series(
    folder: Path,
    count: int,
    hu: Callable[[int], np.ndarray],
    position: Callable[[int], tuple[float, float, float]],
    **kwargs: object,
) -> list[Path]:
    """Write *count* slices (``hu(i)``, ``position(i)``) and return the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        ds = ct_slice(hu(i), number=i + 1, position=position(i), **kwargs)  # type: ignore[arg-type]
        path = folder / f"{i:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def phantom(rows: int = 256, columns: int = 256) -> np.ndarray:
    """HU values: air (-1000) around a 40 HU disc of radius 100 px, with a
    ramp (2 * column - 200 HU) in rows 50-99, columns 100-199."""
    yy, xx = np.mgrid[0:rows, 0:columns]
    hu = np.full((rows, columns), -1000.0)
    hu[(xx - columns / 2) ** 2 + (yy - rows / 2) ** 2 < 100**2] = 40.0
    hu[50:100, 100:200] = 2.0 * xx[50:100, 100:200] - 200.0
    return hu
