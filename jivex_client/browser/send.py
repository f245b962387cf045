"""The "Send to…" dialog: which configured remote gets the chosen studies."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QCoreApplication
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QLabel,
    QVBoxLayout,
    QWidget,
)

from jivex_client.text import count_text, patients_text


def _tr(text: str) -> str:
    return QCoreApplication.translate("SendDialog", text)


def send_summary(studies: list[dict[str, Any]]) -> str:
    """One line naming what is about to be sent: how many studies and
    images, and whose (the first two patients, then how many more)."""
    images = sum(int(s.get("NumberOfStudyRelatedInstances") or 0) for s in studies)
    who = patients_text(studies, _tr)
    return _tr("{studies} ({images}) of {who}").format(
        studies=count_text(len(studies), _tr("{n} study"), _tr("{n} studies")),
        images=count_text(images, _tr("{n} image"), _tr("{n} images")),
        who=who,
    )


class SendDialog(QDialog):
    """Choose the destination of a send among the core's remotes."""

    def __init__(
        self,
        remotes: list[dict[str, Any]],
        studies: list[dict[str, Any]],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle(self.tr("Send to"))
        self.setMinimumWidth(380)
        self.studies = list(studies)
        self.remote_combo = QComboBox()
        for remote in remotes:
            self.remote_combo.addItem(
                f"{remote['ae_title']} ({remote['host']}:{remote['port']})",
                remote["ae_title"],
            )
        self.summary_label = QLabel(send_summary(self.studies))
        self.summary_label.setWordWrap(True)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        send_button = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        send_button.setText(self.tr("Send"))
        send_button.setEnabled(bool(remotes))
        layout = QVBoxLayout(self)
        layout.addWidget(self.summary_label)
        layout.addWidget(QLabel(self.tr("Destination")))
        layout.addWidget(self.remote_combo)
        layout.addWidget(self.buttons)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)

    def destination(self) -> str:
        """The AE title chosen."""
        return str(self.remote_combo.currentData() or "")

    def set_destination(self, ae_title: str) -> bool:
        """Choose a destination by AE title; False when it is not offered."""
        index = self.remote_combo.findData(ae_title)
        if index >= 0:
            self.remote_combo.setCurrentIndex(index)
        return index >= 0

    def uids(self) -> list[str]:
        """The Study Instance UIDs to send."""
        return [str(s["StudyInstanceUID"]) for s in self.studies]
