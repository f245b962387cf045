"""Pure imaging functions on pydicom datasets and numpy arrays (no Qt)."""
