"""One module per DICOM service of the conformance statement."""
