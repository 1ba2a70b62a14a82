"""The rollout view of few-shot image classification ('classified-images').

One held-out task at a time (a task selector): a row per class with its label and name, its support images,
and the query images of that class with the label predicted before adaptation and after the selected step
under each, green when right and red when wrong; the task's accuracy; and a confusion matrix over all the
shown tasks' queries for the selected step.

Nothing here is rebuilt per evaluation: the image grid is one widget that paints its images (QImages made
from the payload's pixels) and captions, and is laid out again only when its size or the shapes change;
the confusion matrix is one ImageItem and N² text items, made again only when N changes.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QRect, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QImage, QPainter, QPen
from PySide6.QtWidgets import (QBoxLayout, QComboBox, QHBoxLayout, QLabel, QScrollArea, QSlider, QToolTip,
                               QVBoxLayout, QWidget)

from workbench.core.payloads import ClassifiedImages
from workbench.core.plotting import step_names

RIGHT, WRONG = QColor("#6cc25f"), QColor("#f06a6c")  # a prediction's caption: right / wrong
FAINT, TEXT = QColor("#8a8f9c"), QColor("#dcdde1")
ONE_STEP_NOTE = "no inner steps: one prediction from the prototypes"
NARROW = 760  # px: a tall area narrower than this has the confusion matrix under the images, not beside them


def step_name(payload: ClassifiedImages, s: int) -> str:
    """The name of entry ``s`` of the payload's steps: the algorithm's own, or 'before adaptation' / 'after n steps'."""
    return step_names(payload.steps, payload.step_names)[s]


def to_qimages(pixels: np.ndarray) -> list[QImage]:
    """(M, H, W) or (M, H, W, 3) intensities in [0, 1] -> M QImages that own their pixels."""
    u8 = np.ascontiguousarray((np.clip(np.nan_to_num(pixels), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8))
    h, w = u8.shape[1:3]
    rgb = u8.ndim == 4
    fmt, bpl = (QImage.Format.Format_RGB888, 3 * w) if rgb else (QImage.Format.Format_Grayscale8, w)
    return [QImage(im.tobytes(), w, h, bpl, fmt).copy() for im in u8]


class ImageMosaic(QWidget):
    """Rows of images, a row per class: its label and name at the left, its support images, then its query
    images, each with a caption of coloured marks under it and a frame in the colour of its last mark.
    Query images wrap within their row; images are as large as lets everything fit the available height
    (the viewport of the scroll area around it), but not smaller than MIN_CELL (then it scrolls)."""

    MIN_CELL, MAX_CELL, NAME_W, GAP, SEP = 36, 84, 104, 5, 14

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("classificationImages")
        self.rows: list[tuple[str, str, list[QImage], list[QImage]]] = []  # (label, name, support, queries)
        self.marks: list[list[list[tuple[str, QColor]]]] = []  # per row, per query: [(text, colour), ...]
        self.tips: list[list[str]] = []  # per row, per query: its tooltip
        self.header = ("", "")  # titles above the support and the query columns
        self.cell = self.MAX_CELL
        self._caption_w = 0
        self._query_rects: list[tuple[QRect, int, int]] = []
        self._laid_out_for = None
        self._per_s, self._per_q, self._heights, self._head, self._line_h = 1, [], [], 0, 0
        self.name_w = self.NAME_W  # the label and name column: narrower in a narrow widget
        self._advances: dict[str, int] = {}  # caption pieces' widths in the small font
        font = QFont(self.font())
        font.setPointSizeF(max(7.5, font.pointSizeF() - 0.5))
        self.small = font
        self.bold = QFont(self.font())
        self.bold.setBold(True)

    def set_rows(self, rows, widest_caption: str) -> None:
        """New images (a task or a payload): lay out again."""
        self.rows = rows
        self._caption_w = QFontMetrics(self.small).horizontalAdvance(widest_caption) + 4
        self._layout()
        self.update()

    def set_marks(self, marks, tips, header: tuple[str, str]) -> None:
        """New captions (a step): only a repaint."""
        self.marks, self.tips, self.header = marks, tips, header
        self.update()

    # -- layout: pure arithmetic on the widget's width and the viewport's height --------------------------
    def _geometry(self, c: int, width: int):
        """At image size ``c``: support images per line, each row's queries per line (its lines balanced:
        15 on two lines is 8 + 7, not 14 + 1), each row's height, the header's height, and the query lines."""
        self.name_w = self.NAME_W if width >= 700 else self.NAME_W * 2 // 3
        k = max((len(r[2]) for r in self.rows), default=0)
        line_h = QFontMetrics(self.small).height()
        per_s = max(1, min(k, 5))
        qw = max(c, self._caption_w) + self.GAP
        fit = max(1, (width - self.name_w - per_s * (c + self.GAP) - self.SEP) // qw)
        per_q, heights, lines = [], [], 0
        for _, _, support, queries in self.rows:
            n_lines = max(1, -(-len(queries) // fit))
            per_q.append(max(1, -(-len(queries) // n_lines)))
            hs = -(-len(support) // per_s) * (c + self.GAP)
            hq = n_lines * (c + line_h + self.GAP + 2)
            heights.append(max(hs, hq, 2 * line_h + 4) + self.GAP)
            lines += n_lines
        return per_s, per_q, heights, line_h + 6, lines

    def _layout(self) -> None:
        """The largest image size whose layout fits the viewport's height, unless one up to 15% smaller
        needs fewer lines of queries; MIN_CELL (and a scroll bar) when none fits."""
        parent = self.parentWidget()
        avail = parent.height() if parent is not None else self.height()
        key = (self.width(), avail, self._caption_w, tuple((len(r[2]), len(r[3])) for r in self.rows))
        if key == self._laid_out_for:
            return
        self._laid_out_for = key
        best = None  # (lines, c) of the chosen size
        for c in range(self.MAX_CELL, self.MIN_CELL - 1, -2):
            *_, heights, head, lines = self._geometry(c, self.width())
            if head + sum(heights) > avail:
                continue
            if best is None:
                best = (lines, c)
            elif c < 0.85 * best[1]:
                break
            elif lines < best[0]:
                best = (lines, c)
        self.cell = best[1] if best else self.MIN_CELL
        per_s, per_q, heights, head, _ = self._geometry(self.cell, self.width())
        self._per_s, self._per_q, self._heights, self._head = per_s, per_q, heights, head
        self._line_h = QFontMetrics(self.small).height()
        total = head + sum(heights)
        self.setMinimumHeight(total if total > avail else 0)  # the scroll area scrolls when it does not fit

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._layout()

    def _support_rect(self, y: int, k: int) -> QRect:
        c, per_s = self.cell, self._per_s
        return QRect(self.name_w + (k % per_s) * (c + self.GAP), y + (k // per_s) * (c + self.GAP), c, c)

    def _query_rect(self, y: int, j: int, per_q: int = 1) -> QRect:
        c = self.cell
        qw = max(c, self._caption_w) + self.GAP
        line = c + self._line_h + self.GAP + 2
        x0 = self.name_w + self._per_s * (c + self.GAP) + self.SEP
        return QRect(x0 + (j % per_q) * qw + (qw - self.GAP - c) // 2, y + (j // per_q) * line, c, c)

    # -- painting ------------------------------------------------------------------------------------------
    def paintEvent(self, event) -> None:
        if not self.rows:
            return
        self._layout()
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        p.setRenderHint(QPainter.RenderHint.TextAntialiasing, True)
        p.setFont(self.small)
        p.setPen(FAINT)
        fm = QFontMetrics(self.small)
        p.drawText(QRect(self.name_w, 0, 400, self._head), Qt.AlignmentFlag.AlignLeft, self.header[0])
        x = self._query_rect(0, 0).x()
        p.drawText(QRect(x, 0, max(1, self.width() - x), self._head), Qt.AlignmentFlag.AlignLeft,
                   fm.elidedText(self.header[1], Qt.TextElideMode.ElideRight, max(1, self.width() - x)))
        y = self._head
        self._query_rects = []
        for i, ((label, name, support, queries), h, per_q) in enumerate(zip(self.rows, self._heights, self._per_q)):
            p.setPen(QPen(QColor("#3a3d46")))
            p.drawLine(0, y - 3, self.width(), y - 3)
            p.setFont(self.bold)
            p.setPen(TEXT)
            p.drawText(QRect(2, y, self.name_w - 8, fm.height() + 4), Qt.AlignmentFlag.AlignLeft, label)
            p.setFont(self.small)
            p.setPen(FAINT)
            p.drawText(QRect(2, y + fm.height() + 4, self.name_w - 8, h - fm.height() - 8),
                       Qt.AlignmentFlag.AlignLeft | Qt.TextFlag.TextWordWrap, name)
            for k, im in enumerate(support):
                r = self._support_rect(y, k)
                p.drawImage(r, im)
                p.setPen(QColor("#4e9af1"))
                p.drawRect(r.adjusted(-1, -1, 0, 0))
            marks = self.marks[i] if i < len(self.marks) else []
            for j, im in enumerate(queries):
                r = self._query_rect(y, j, per_q)
                p.drawImage(r, im)
                m = marks[j] if j < len(marks) else []
                if m:
                    p.setPen(QPen(m[-1][1], 2))
                    p.drawRect(r.adjusted(-1, -1, 0, 0))
                self._paint_caption(p, fm, r, m)
                self._query_rects.append((r, i, j))
            y += h
        p.end()

    def _paint_caption(self, p: QPainter, fm: QFontMetrics, r: QRect, marks) -> None:
        """The marks centred under image rect ``r``: 'before → after', each in its colour."""
        parts = []
        for n, (text, colour) in enumerate(marks):
            if n:
                parts.append((" → ", FAINT))
            parts.append((text, colour))
        widths = [self._advance(fm, t) for t, _ in parts]
        x = r.center().x() - sum(widths) // 2
        base = r.bottom() + 3 + fm.ascent()
        for (text, colour), w in zip(parts, widths):
            p.setPen(colour)
            p.drawText(x, base, text)
            x += w

    def _advance(self, fm: QFontMetrics, text: str) -> int:
        w = self._advances.get(text)
        if w is None:
            w = self._advances[text] = fm.horizontalAdvance(text)
        return w

    def event(self, e) -> bool:
        if e.type() == QEvent.Type.ToolTip:
            pos = e.position().toPoint() if hasattr(e, "position") else e.pos()
            for r, i, j in self._query_rects:
                if r.adjusted(0, 0, 0, QFontMetrics(self.small).height() + 4).contains(pos):
                    if i < len(self.tips) and j < len(self.tips[i]):
                        QToolTip.showText(e.globalPos(), self.tips[i][j], self)
                        return True
            QToolTip.hideText()
            e.ignore()
            return True
        return super().event(e)


class ConfusionPlot(pg.GraphicsLayoutWidget):
    """An N×N confusion matrix as a heatmap (rows: true label, columns: predicted) with the counts written in
    the cells (up to 12 classes).  Its items are made again only when N changes."""

    MAX_COUNTS = 12

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("classificationConfusion")
        self.plot = self.addPlot()
        self.plot.setMenuEnabled(False)
        self.plot.setMouseEnabled(False, False)
        self.plot.hideButtons()
        self.plot.setLabel("left", "true label")
        self.plot.setLabel("bottom", "predicted label")
        self.plot.getViewBox().invertY(True)
        self.plot.getViewBox().setAspectLocked(True)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.image.setColorMap(pg.ColorMap([0.0, 1.0], [(30, 31, 36), (78, 154, 241)]))
        self.plot.addItem(self.image)
        self.texts: list[pg.TextItem] = []
        self.n = 0
        self._every = None  # classes between two tick labels
        self.plot.vb.sigResized.connect(self._set_ticks)
        self._title = ""

    def _set_ticks(self, *_) -> None:
        """A label every 1, 2, 5, 10 ... classes: as many as fit the matrix's side without overlapping (20-way
        tasks on a small matrix: 0 5 10 15, not twenty labels on top of each other)."""
        n = self.n
        if not n:
            return
        side = min(self.plot.vb.width(), self.plot.vb.height()) or 150.0
        pitch = 1.5 * QFontMetrics(self.font()).height()  # a label and a gap, along either axis
        every = next(e for e in (1, 2, 5, 10, 20, 50, 100, 10 ** 9) if -(-n // e) * pitch <= side)
        if every != self._every:
            self._every = every
            ticks = [[(k + 0.5, str(k)) for k in range(0, n, min(every, n))]]
            self.plot.getAxis("left").setTicks(ticks)
            self.plot.getAxis("bottom").setTicks(ticks)

    def set_matrix(self, m: np.ndarray, title: str) -> None:
        n = m.shape[0]
        if n != self.n:
            self._every = None
            for t in self.texts:
                self.plot.removeItem(t)
            self.texts = []
            if n <= self.MAX_COUNTS:
                for i in range(n * n):
                    t = pg.TextItem("", anchor=(0.5, 0.5))
                    t.setPos(i % n + 0.5, i // n + 0.5)
                    self.plot.addItem(t)
                    self.texts.append(t)
            self.plot.setRange(xRange=(0, n), yRange=(0, n), padding=0.02)
            self.n = n
            self._set_ticks()
        top = max(1, int(m.max()) if m.size else 1)
        self.image.setImage(m.astype(np.float32), autoLevels=False, levels=(0, top))
        for t, v in zip(self.texts, m.ravel()):
            t.setText(str(int(v)))
            t.setColor("#101114" if v > 0.6 * top else "#dcdde1")
        if title != self._title:
            self._title = title
            self.plot.setTitle(title, size="9pt")


class ClassificationRenderer(QWidget):
    """'classified-images': one shown task's classes, support and query images with the predicted labels
    before adaptation and after the selected step, its accuracy, and the confusion matrix of all shown tasks."""

    view = ClassifiedImages.view

    def __init__(self, parent=None):
        super().__init__(parent)
        self.payload: ClassifiedImages | None = None
        self.task = QComboBox()
        self.task.setObjectName("classificationTaskSelector")
        self.task.setToolTip("Which held-out task the images are of")
        self.step = QSlider(Qt.Orientation.Horizontal)
        self.step.setObjectName("classificationStepSelector")
        self.step.setToolTip("The adaptation step whose predictions are shown after the arrow")
        self.step.setMaximumWidth(180)
        self.step.setPageStep(1)
        self.step.setRange(0, 0)
        self.step_label = QLabel("")
        self.step_label.setObjectName("classificationStepLabel")
        self.accuracy = QLabel("")
        self.accuracy.setObjectName("classificationAccuracy")
        self.mosaic = ImageMosaic()
        self.scroll = QScrollArea()
        self.scroll.setWidget(self.mosaic)
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.confusion = ConfusionPlot()
        bar = QHBoxLayout()
        bar.addWidget(self.task)
        bar.addSpacing(12)
        bar.addWidget(self.step)
        bar.addWidget(self.step_label)
        bar.addStretch(1)
        self.body = QBoxLayout(QBoxLayout.Direction.LeftToRight)
        self.body.addWidget(self.scroll, 1)
        self.body.addWidget(self.confusion, 0, Qt.AlignmentFlag.AlignTop)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(bar)
        lay.addWidget(self.accuracy)
        lay.addLayout(self.body, 1)
        self._arranged, self._wide = None, True
        self._arrange(1000, 600)
        self.task.currentIndexChanged.connect(self._show_task)
        self.step.valueChanged.connect(self._show_step)

    def _arrange(self, width: int, height: int) -> None:
        """The confusion matrix beside the images, 30% of the width (190 to 300 px), or, in a narrow area taller
        than wide, under them, 240 px high."""
        wide = width >= NARROW or height < width
        side = int(min(300, max(190, 0.3 * width)))
        key = (wide, side if wide else 0)
        if key == self._arranged:
            return
        self._arranged, self._wide = key, wide
        self.body.setDirection(QBoxLayout.Direction.LeftToRight if wide else QBoxLayout.Direction.TopToBottom)
        if wide:
            self.confusion.setFixedSize(side, side + 20)
        else:
            self.confusion.setMinimumSize(0, 240)
            self.confusion.setMaximumSize(16777215, 240)
        self._show_step()  # the confusion matrix's title: two lines beside the images, one under them

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._arrange(self.width(), self.height())

    def show_payload(self, payload: ClassifiedImages) -> None:
        self.payload = payload
        t, last = payload.query.shape[0], len(payload.steps) - 1
        if self.task.count() != t:
            keep = min(max(0, self.task.currentIndex()), t - 1)
            self.task.blockSignals(True)
            self.task.clear()
            self.task.addItems([f"task {i + 1} of {t}" for i in range(t)])
            self.task.setCurrentIndex(keep)
            self.task.blockSignals(False)
        at_end = self.step.value() == self.step.maximum()
        self.step.blockSignals(True)
        self.step.setRange(0, last)
        if at_end:
            self.step.setValue(last)  # one who follows the last step (the default) keeps following it
        self.step.blockSignals(False)
        self.step.setVisible(last > 0)
        self._show_task()

    def _show_task(self, *_) -> None:
        pl = self.payload
        if pl is None:
            return
        t = max(0, self.task.currentIndex())
        labels = pl.query_labels[t]
        n = pl.support.shape[1]
        self._order = [np.flatnonzero(labels == c) for c in range(n)]  # the queries of each true class
        support, queries = to_qimages(pl.support[t].reshape(-1, *pl.support.shape[3:])), to_qimages(pl.query[t])
        k = pl.support.shape[2]
        rows = [(f"{c}", pl.class_names[t][c] if c < len(pl.class_names[t]) else "",
                 support[c * k:(c + 1) * k], [queries[j] for j in self._order[c]]) for c in range(n)]
        widest = f"{n - 1} → {n - 1}" if len(pl.steps) > 1 else f"{n - 1}"
        self.mosaic.set_rows(rows, widest)
        self._show_step()

    def _show_step(self, *_) -> None:
        pl = self.payload
        if pl is None:
            return
        t, s = max(0, self.task.currentIndex()), self.step.value()
        shown = [0, s] if len(pl.steps) > 1 else [0]
        marks, tips = [], []
        for c, order in enumerate(self._order):
            marks.append([[(str(int(pl.predicted[t, i, j])), RIGHT if pl.predicted[t, i, j] == c else WRONG)
                           for i in shown] for j in order])
            tips.append([f"true label {c} ({pl.class_names[t][c] if c < len(pl.class_names[t]) else ''})\n"
                         + "\n".join(f"{step_name(pl, i)}: {int(pl.predicted[t, i, j])} "
                                     f"(p = {float(pl.probability[t, i, j]):.2f})" for i in shown) for j in order])
        right = pl.accuracy[t]  # (S+1,) this task's accuracy after each step
        conf = np.asarray(pl.confusion)
        overall = np.asarray(pl.accuracy).mean(0)  # every shown task has as many queries
        tasks = pl.query.shape[0]
        if len(pl.steps) == 1:
            note = ONE_STEP_NOTE if not pl.step_names else f"no inner steps: {pl.step_names[0]}"
            self.step_label.setText("")
            text = f"{note} · this task {right[0]:.0%} right (all {tasks} shown tasks: {overall[0]:.0%})"
            header = ("support", "queries · predicted label")
        else:
            name = step_name(pl, s)
            self.step_label.setText(name)
            text = (f"this task: {right[0]:.0%} right {step_name(pl, 0)} → {right[s]:.0%} {name}   "
                    f"(all {tasks} shown tasks: {overall[0]:.0%} → {overall[s]:.0%})")
            header = ("support", f"queries · predicted label {step_name(pl, 0)} → {name}")
        self.accuracy.setText(text)
        self.mosaic.set_marks(marks, tips, header)
        label = step_name(pl, s) if len(pl.steps) > 1 else "no inner steps"
        self.confusion.set_matrix(conf[s], f"confusion over {tasks} task{'s' if tasks > 1 else ''}"
                                           f"{'<br>' if self._wide else ', '}{label}")

    def plot_items(self) -> list:
        return [self.confusion.plot]
