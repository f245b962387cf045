"""One error taxonomy for the core, mapped to protocol status codes here.

Services raise a :class:`JivexError` subclass; the boundary that answers the
peer (a DIMSE handler, later the web service) turns it into a status with
:func:`dimse_status`. Nothing else invents status numbers.
"""

from __future__ import annotations

import enum


class ErrorCode(enum.Enum):
    """What went wrong, independent of the protocol that reports it."""

    OUT_OF_RESOURCES = "out_of_resources"
    CANNOT_UNDERSTAND = "cannot_understand"
    SOP_CLASS_NOT_SUPPORTED = "sop_class_not_supported"
    CONFIG_INVALID = "config_invalid"
    STORE_FAILED = "store_failed"
    NOT_FOUND = "not_found"
    DATASET_MISMATCH = "dataset_mismatch"


#: PS3.4 B.2.3 (C-STORE) and PS3.7 C status codes.
_DIMSE_STATUS = {
    ErrorCode.OUT_OF_RESOURCES: 0xA700,
    ErrorCode.CANNOT_UNDERSTAND: 0xC000,
    ErrorCode.SOP_CLASS_NOT_SUPPORTED: 0x0122,
    ErrorCode.STORE_FAILED: 0xC001,
    ErrorCode.NOT_FOUND: 0xC002,
    ErrorCode.CONFIG_INVALID: 0xC003,
    ErrorCode.DATASET_MISMATCH: 0xA900,
}


class JivexError(Exception):
    """Base of every error the core reports to a peer, a user or a script."""

    code: ErrorCode = ErrorCode.STORE_FAILED

    def __init__(self, message: str, code: ErrorCode | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class OutOfResourcesError(JivexError):
    """The store has no room for the object (disk reserve reached)."""

    code = ErrorCode.OUT_OF_RESOURCES


class CannotUnderstandError(JivexError):
    """The received bytes are not a DICOM data set we can parse."""

    code = ErrorCode.CANNOT_UNDERSTAND


class DataSetMismatchError(JivexError):
    """The data set is not what the request said it is (PS3.4 B.2.3, A900)."""

    code = ErrorCode.DATASET_MISMATCH


class StoreError(JivexError):
    """The data folder or its index cannot be used."""

    code = ErrorCode.STORE_FAILED


class ConfigError(JivexError):
    """The configuration is malformed or contradictory; names the key."""

    code = ErrorCode.CONFIG_INVALID


def dimse_status(error: BaseException) -> int:
    """Return the DIMSE status for *error* (C001 for anything unexpected)."""
    if isinstance(error, JivexError):
        return _DIMSE_STATUS[error.code]
    return _DIMSE_STATUS[ErrorCode.STORE_FAILED]
