"""Small dialogs of the viewer: the text of an annotation, saving a
presentation state or key images. What the GSPS cannot hold is said while
it is typed, not when it is saved."""

from __future__ import annotations

import re
import unicodedata

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QVBoxLayout,
    QWidget,
)

from jivex_core.imaging.presentation import KEY_OBJECT_TITLES, Code

#: Content Label (0070,0080) is a CS: upper case letters, digits, space and
#: underscore, at most 16 characters (PS3.5 6.2).
LABEL_LENGTH = 16
#: Unformatted Text Value (0070,0006) of a text annotation is an ST: at most
#: 1024 characters (PS3.5 6.2).
TEXT_LENGTH = 1024


def transliterate_label(text: str) -> tuple[str, list[str]]:
    """*text* as a Content Label, and what was changed to make it one.

    Letters with accents lose them (``ö`` → ``O``, ``é`` → ``E``: Unicode
    NFKD decomposition without the combining marks); lower case is raised;
    what has no A-Z, 0-9, space or underscore form becomes ``_``; the label
    is cut to 16 characters. The changes come back as readable notes
    (``ö → O``), the empty label as ``UNNAMED``.
    """
    notes: list[str] = []
    out = []
    for char in text:
        upper = char.upper()
        if len(upper) == 1 and re.fullmatch(r"[A-Z0-9_ ]", upper):
            out.append(upper)
            continue
        plain = "".join(
            c
            for c in unicodedata.normalize("NFKD", char)
            if not unicodedata.combining(c)
        ).upper()
        if not plain or not re.fullmatch(r"[A-Z0-9_ ]+", plain):
            plain = "_"
        note = f"{char} \u2192 {plain}"
        if note not in notes:
            notes.append(note)
        out.append(plain)
    label = "".join(out).strip()
    if len(label) > LABEL_LENGTH:
        notes.append(f"cut to {LABEL_LENGTH} characters")
        label = label[:LABEL_LENGTH].strip()
    return label or "UNNAMED", notes


def label_text(text: str) -> str:
    """*text* made a valid Content Label (:func:`transliterate_label`)."""
    return transliterate_label(text)[0]


def text_problem(text: str) -> str:
    """Why *text* cannot be an annotation's text, empty when it can."""
    if len(text) > TEXT_LENGTH:
        return (
            f"{len(text)} characters: a text annotation holds at most "
            f"{TEXT_LENGTH} (Unformatted Text Value, ST)"
        )
    return ""


class AnnotationTextDialog(QDialog):
    """Asks for the text of an annotation; refuses more than the GSPS holds
    as it is typed, with a counter."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(self.tr("Text"))
        self.text_edit = QPlainTextEdit()
        self.text_edit.setPlaceholderText(self.tr("Text to show on the image"))
        self.text_edit.setFixedHeight(90)
        self.note = QLabel()
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.text_edit)
        layout.addWidget(self.note)
        layout.addWidget(self.buttons)
        self.text_edit.textChanged.connect(self._on_text_edit_text_changed)
        self._on_text_edit_text_changed()

    def text(self) -> str:
        """The text typed, without surrounding blanks."""
        return self.text_edit.toPlainText().strip()

    def _on_text_edit_text_changed(self) -> None:
        text = self.text()
        problem = text_problem(text)
        ok = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        ok.setEnabled(bool(text) and not problem)
        if problem:
            self.note.setStyleSheet("color: #c33;")
            self.note.setText(self.tr("Too long: {problem}").format(problem=problem))
        else:
            self.note.setStyleSheet("")
            self.note.setText(
                self.tr("{n} of {limit} characters").format(
                    n=len(text), limit=TEXT_LENGTH
                )
            )


class SavePresentationDialog(QDialog):
    """Asks for the label and description of a presentation state."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(self.tr("Save presentation"))
        self.label_edit = QLineEdit()
        self.label_edit.setMaxLength(LABEL_LENGTH)
        self.label_edit.setPlaceholderText(self.tr("A-Z, 0-9, space, _; 16 characters"))
        self.label_edit.textEdited.connect(self._on_label_edit_text_edited)
        #: What the label is saved as, when that differs from what was typed.
        self.label_note = QLabel()
        self.label_note.setWordWrap(True)
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
        form.addRow("", self.label_note)
        form.addRow(self.tr("Description"), self.description_edit)
        form.addRow(buttons)

    def _on_label_edit_text_edited(self, text: str) -> None:
        # Raised letter by letter (ß stays: its capital is two letters).
        upper = "".join(c.upper() if len(c.upper()) == 1 else c for c in text)
        if upper != text:
            position = self.label_edit.cursorPosition()
            self.label_edit.setText(upper)
            self.label_edit.setCursorPosition(position)
        label, notes = transliterate_label(self.label_edit.text())
        if notes:
            self.label_note.setText(
                self.tr(
                    "Saved as {label} (a label is A-Z, 0-9, space, _): {what}"
                ).format(label=label, what=", ".join(notes))
            )
        else:
            self.label_note.setText("")

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
