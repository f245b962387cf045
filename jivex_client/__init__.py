"""The JiveX-Py workstation: a PySide6 client of the core process."""
