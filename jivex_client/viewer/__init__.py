"""The image viewer: one series, slice by slice."""
