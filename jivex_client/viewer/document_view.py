"""Widgets for objects that are not images: PDF pages, report text, waveforms."""

from __future__ import annotations

import html
import logging
import math

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPaintEvent, QPen, QPixmap, QPolygonF
from PySide6.QtWidgets import (
    QComboBox,
    QLabel,
    QScrollArea,
    QSizePolicy,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from jivex_client.viewer.documents import ReportLine, WaveformGroup
from jivex_client.viewer.image_view import to_qimage

logger = logging.getLogger(__name__)


class PdfView(QScrollArea):
    """The pages of a PDF, one under the other."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWidgetResizable(True)
        self.setAlignment(Qt.AlignmentFlag.AlignHCenter)
        self._inner = QWidget()
        self._layout = QVBoxLayout(self._inner)
        self._layout.setAlignment(Qt.AlignmentFlag.AlignHCenter)
        self.setWidget(self._inner)
        self.pages: list[QLabel] = []

    def set_pages(self, pages: list) -> None:
        """Show RGB page arrays (as :func:`documents.render_pdf` gives)."""
        for label in self.pages:
            label.deleteLater()
        self.pages = []
        for array in pages:
            label = QLabel()
            label.setPixmap(QPixmap.fromImage(to_qimage(array)))
            label.setFrameShape(QLabel.Shape.Box)
            self._layout.addWidget(label)
            self.pages.append(label)


class ReportView(QTextBrowser):
    """A structured report as text: headings for containers, indented items."""

    def set_lines(self, lines: list[ReportLine]) -> None:
        """Show the lines of :func:`documents.report_lines`."""
        parts = []
        for line in lines:
            text = html.escape(line.text).replace("\n", "<br>")
            margin = 18 * line.depth
            if line.heading:
                size = "h2" if line.depth == 0 else "h4"
                parts.append(f'<{size} style="margin-left:{margin}px">{text}</{size}>')
            else:
                parts.append(f'<p style="margin:2px 0 2px {margin}px">{text}</p>')
        self.setHtml("\n".join(parts))


class WaveformPlot(QWidget):
    """The channels of one waveform group, stacked, on an ECG-like grid.

    Time runs across the whole width; each channel gets a band scaled to
    its own peak-to-peak range, labelled with its name and unit.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.group: WaveformGroup | None = None
        self.setMinimumSize(160, 100)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def set_group(self, group: WaveformGroup | None) -> None:
        """Plot *group*."""
        self.group = group
        self.update()

    def paintEvent(self, _event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor(255, 250, 245))
        group = self.group
        if group is None or not group.channels:
            painter.end()
            return
        left, top = 130.0, 8.0
        width = self.width() - left - 8
        height = self.height() - top - 24
        duration = group.duration or 1.0
        # Grid: thin lines every 0.04 s, thick every 0.2 s, as on ECG paper.
        for step, alpha in ((0.04, 50), (0.2, 120)):
            if width / duration * step < 3:
                continue
            painter.setPen(QPen(QColor(230, 120, 120, alpha), 1))
            count = int(duration / step)
            for k in range(count + 1):
                x = left + k * step / duration * width
                painter.drawLine(QPointF(x, top), QPointF(x, top + height))
        band = height / len(group.channels)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        for number, channel in enumerate(group.channels):
            y0 = top + number * band
            samples = channel.samples
            if samples.size == 0:
                continue
            low, high = float(samples.min()), float(samples.max())
            span = (high - low) or 1.0
            step = max(1, samples.size // max(int(width) * 2, 1))
            values = samples[::step]
            n = len(values)
            xs = left + np.arange(n) / max(n - 1, 1) * width
            ys = y0 + band * 0.9 - (values - low) / span * band * 0.8
            painter.setPen(QPen(QColor(20, 20, 20), 1.2))
            painter.drawPolyline(
                QPolygonF([QPointF(x, y) for x, y in zip(xs, ys, strict=True)])
            )
            painter.setPen(QColor(60, 60, 120))
            metrics = painter.fontMetrics()
            label = metrics.elidedText(
                channel.label, Qt.TextElideMode.ElideRight, int(left - 10)
            )
            painter.drawText(
                QRectF(4, y0, left - 8, band),
                Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft,
                f"{label}\n{math.ceil(span)} {channel.unit} p-p",
            )
        painter.setPen(QColor(60, 60, 120))
        painter.drawText(
            QRectF(left, top + height + 4, width, 18),
            Qt.AlignmentFlag.AlignRight,
            self.tr("{seconds:.1f} s at {rate:g} Hz").format(
                seconds=duration, rate=group.frequency
            ),
        )
        painter.end()


class WaveformView(QWidget):
    """A waveform object: a chooser of its multiplex groups and the plot."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.groups: list[WaveformGroup] = []
        self.chooser = QComboBox()
        self.plot = WaveformPlot()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.chooser)
        layout.addWidget(self.plot, 1)
        self.chooser.currentIndexChanged.connect(self._on_chooser_current_index_changed)

    def set_groups(self, groups: list[WaveformGroup]) -> None:
        """Show the groups of :func:`documents.waveforms`, the first plotted."""
        self.groups = groups
        self.chooser.blockSignals(True)
        self.chooser.clear()
        for group in groups:
            self.chooser.addItem(
                self.tr("{label}: {n} channels, {seconds:.1f} s").format(
                    label=group.label, n=len(group.channels), seconds=group.duration
                )
            )
        self.chooser.blockSignals(False)
        self.chooser.setVisible(len(groups) > 1)
        self.plot.set_group(groups[0] if groups else None)

    def _on_chooser_current_index_changed(self, index: int) -> None:
        if 0 <= index < len(self.groups):
            self.plot.set_group(self.groups[index])
