"""The attribute list of one object, sequences included (a header dump)."""

from __future__ import annotations

from dataclasses import dataclass

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.valuerep import PersonName
from PySide6.QtWidgets import QTreeWidget, QTreeWidgetItem, QWidget

from jivex_client.text import format_person_name

#: Longest value text shown; bulk data is summarised instead.
MAX_VALUE_CHARS = 200


@dataclass(frozen=True)
class AttributeRow:
    """One element as shown: nesting depth, tag, keyword, VR and value."""

    depth: int
    tag: str
    keyword: str
    VR: str
    value: str


def _value_text(elem: DataElement) -> str:
    if elem.VR == "SQ":
        return f"{len(elem.value)} item(s)"
    if elem.VR in ("OB", "OW", "OF", "OD", "OL", "OV", "UN") or elem.tag == 0x7FE00010:
        length = len(elem.value) if elem.value is not None else 0
        return f"<{length} bytes>"
    value = elem.value
    if elem.VR == "PN":
        # pydicom decodes PN with the character set in force for the item:
        # its own Specific Character Set, else the enclosing data set's.
        values = value if isinstance(value, list | tuple) else [value]
        parts = [
            format_person_name(str(v))
            for v in values
            if isinstance(v, PersonName | str)
        ]
        return "; ".join(parts)
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        text = "\\".join(str(v) for v in value)
    else:
        text = "" if value is None else str(value)
    if len(text) > MAX_VALUE_CHARS:
        text = text[:MAX_VALUE_CHARS] + "…"
    return text


def attribute_rows(ds: Dataset, depth: int = 0) -> list[AttributeRow]:
    """Flatten *ds* into rows, items of sequences following their element.

    Text values are decoded by pydicom under the Specific Character Set
    that applies to each item, so nested names read right too.
    """
    rows: list[AttributeRow] = []
    for elem in ds:
        rows.append(
            AttributeRow(
                depth,
                f"({elem.tag.group:04X},{elem.tag.element:04X})",
                elem.keyword or elem.name,
                str(elem.VR),
                _value_text(elem),
            )
        )
        if elem.VR == "SQ":
            for number, item in enumerate(elem.value, start=1):
                rows.append(AttributeRow(depth + 1, "", f"Item {number}", "", ""))
                rows.extend(attribute_rows(item, depth + 2))
    return rows


class AttributesView(QTreeWidget):
    """A tree of the elements of one object."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setColumnCount(4)
        self.setHeaderLabels(
            [self.tr("Tag"), self.tr("Keyword"), self.tr("VR"), self.tr("Value")]
        )
        self.setAlternatingRowColors(True)
        self.setUniformRowHeights(True)

    def show_rows(self, rows: list[AttributeRow]) -> None:
        """Replace the tree by *rows* (as :func:`attribute_rows` builds them)."""
        self.clear()
        parents: list[QTreeWidgetItem | None] = [None]
        for row in rows:
            item = QTreeWidgetItem([row.tag, row.keyword, row.VR, row.value])
            level = min(row.depth, len(parents) - 1)
            parent = parents[level]
            if parent is None:
                self.addTopLevelItem(item)
            else:
                parent.addChild(item)
            del parents[level + 1 :]
            parents.append(item)
        self.expandAll()
        for column in range(3):
            self.resizeColumnToContents(column)

    def values(self) -> list[str]:
        """Every value text in the tree, depth first (for tests and search)."""
        out: list[str] = []

        def walk(item: QTreeWidgetItem) -> None:
            out.append(item.text(3))
            for i in range(item.childCount()):
                walk(item.child(i))

        for i in range(self.topLevelItemCount()):
            walk(self.topLevelItem(i))
        return out
