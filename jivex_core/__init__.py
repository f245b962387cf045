"""JiveX-Py core: the DICOM services, the index and the file store.

Nothing in this package imports Qt; the desktop client in ``jivex_client``
talks to it only through :mod:`jivex_core.protocol`.
"""

__version__ = "0.1.0"
