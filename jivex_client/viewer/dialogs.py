"""Small dialogs of the viewer: saving a presentation state or key images."""

from __future__ import annotations

import re

from PySide6.QtCore import QRegularExpression
from PySide6.QtGui import QRegularExpressionValidator
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLineEdit,
    QPlainTextEdit,
    QWidget,
)

from jivex_core.imaging.presentation import KEY_OBJECT_TITLES, Code

#: Content Label (0070,0080) is a CS: upper case letters, digits, space and
#: underscore, at most 16 characters (PS3.5 6.2); lower case typed is raised.
LABEL_PATTERN = r"[A-Za-z0-9_ ]{0,16}"


def label_text(text: str) -> str:
    """*text* made a valid Content Label: upper case, allowed characters
    only, at most 16; ``UNNAMED`` when nothing is left."""
    cleaned = re.sub(r"[^A-Z0-9_ ]", "_", text.upper()).strip()[:16].strip()
    return cleaned or "UNNAMED"


class SavePresentationDialog(QDialog):
    """Asks for the label and description of a presentation state."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(self.tr("Save presentation"))
        self.label_edit = QLineEdit()
        self.label_edit.setMaxLength(16)
        self.label_edit.setValidator(
            QRegularExpressionValidator(QRegularExpression(LABEL_PATTERN), self)
        )
        self.label_edit.setPlaceholderText(self.tr("UPPER CASE, 16 characters"))
        self.label_edit.textEdited.connect(self._on_label_edit_text_edited)
        self.description_edit = QLineEdit()
        self.description_edit.setMaxLength(64)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save
            | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form = QFormLayout(self)
        form.addRow(self.tr("Label"), self.label_edit)
        form.addRow(self.tr("Description"), self.description_edit)
        form.addRow(buttons)

    def _on_label_edit_text_edited(self, text: str) -> None:
        upper = text.upper()
        if upper != text:
            position = self.label_edit.cursorPosition()
            self.label_edit.setText(upper)
            self.label_edit.setCursorPosition(position)

    def values(self) -> tuple[str, str]:
        """(label, description) as entered, the label made valid."""
        return label_text(self.label_edit.text()), self.description_edit.text().strip()


class SaveKeyImagesDialog(QDialog):
    """Asks for the title (CID 7010) and an optional text of key images."""

    def __init__(self, count: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(self.tr("Save key images ({n})").format(n=count))
        self.title_box = QComboBox()
        for code in KEY_OBJECT_TITLES:
            self.title_box.addItem(code.meaning, code.value)
        self.text_edit = QPlainTextEdit()
        self.text_edit.setPlaceholderText(self.tr("Optional comment"))
        self.text_edit.setFixedHeight(90)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save
            | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form = QFormLayout(self)
        form.addRow(self.tr("Title"), self.title_box)
        form.addRow(self.tr("Text"), self.text_edit)
        form.addRow(buttons)

    def values(self) -> tuple[Code, str]:
        """(title, text) as chosen."""
        return (
            KEY_OBJECT_TITLES[self.title_box.currentIndex()],
            self.text_edit.toPlainText().strip(),
        )
