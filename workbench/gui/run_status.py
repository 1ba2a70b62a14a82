"""The status bar of a run: iteration, speed or seconds per iteration, ETA, device, elapsed, progress.

Every label has a fixed width measured once from its widest text, so a changing number never widens the
status bar, and with it the window (a run that reached five-digit iterations made the window 1419 px wide
on a 1400 px screen).  Text that does not fit is elided, the full text in its tooltip.
"""
from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QProgressBar, QStatusBar

from workbench.services import rundir

from .elide import elided

__all__ = ["RunClock", "RunStatus", "bundle_label", "fmt_speed", "fmt_time"]


def fmt_time(seconds: float) -> str:
    """``h:mm:ss`` of a duration in seconds (negative counts as 0)."""
    seconds = int(max(0, seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def fmt_speed(its_per_sec: float) -> str:
    """Iterations per second, or seconds per iteration when one takes longer than a second (meta-RL)."""
    if its_per_sec >= 1.0:
        return f"{its_per_sec:,.0f} it/s"
    return f"{1.0 / its_per_sec:,.1f} s/it" if its_per_sec > 0 else ""


def bundle_label(path: Path) -> str:
    """How a bundle is named to the user: its run's folder for a run's ``model.safetensors`` (every run's
    bundle has that name), else its file name without the suffix."""
    path = Path(path)
    return path.parent.name if path.name == rundir.BUNDLE and path.parent.name else path.stem


class RunClock:
    """Training time of a run in seconds: pauses left out, frozen once the run ends (monotonic clock)."""

    def __init__(self):
        self.started_at = 0.0
        self.paused_at: float | None = None
        self.paused_for = 0.0
        self.ended_at: float | None = None

    def start(self) -> None:
        self.started_at = time.monotonic()
        self.paused_at = self.ended_at = None
        self.paused_for = 0.0

    def pause(self) -> None:
        if self.paused_at is None:
            self.paused_at = time.monotonic()

    def resume(self) -> None:
        if self.paused_at is not None:
            self.paused_for += time.monotonic() - self.paused_at
            self.paused_at = None

    def end(self) -> None:
        if self.ended_at is None:
            self.ended_at = self.paused_at or time.monotonic()

    def elapsed(self) -> float:
        end = self.ended_at if self.ended_at is not None else (
            self.paused_at if self.paused_at is not None else time.monotonic())
        return max(0.0, end - self.started_at - self.paused_for)


class RunStatus:
    """The permanent widgets of the main window's status bar and how a run's progress fills them."""

    # the widest text each label shows, measured once: the labels never grow with what they show
    _WIDEST = {"iterationLabel": "iteration 99999999 / 99999999", "speedLabel": "99,999 it/s",
               "etaLabel": "ETA 999:59:59", "deviceLabel": "device cuda:0", "elapsedLabel": "elapsed 999:59:59"}

    def __init__(self, bar: QStatusBar):
        self.bar = bar
        self.labels: dict[str, QLabel] = {}
        for name, widest in self._WIDEST.items():
            label = QLabel("")
            label.setObjectName(name)
            label.setFixedWidth(label.fontMetrics().horizontalAdvance(widest) + 8)
            label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.labels[name] = label
            bar.addPermanentWidget(label)
            label.setVisible(False)  # shown when it has something to say (set)
        self.progress = QProgressBar()
        self.progress.setObjectName("progressBar")
        self.progress.setFixedWidth(160)
        self.progress.setRange(0, 1000)
        bar.addPermanentWidget(self.progress)
        self.clear()

    def __getitem__(self, name: str) -> QLabel:
        return self.labels[name]

    def set(self, name: str, text: str) -> None:
        """Show ``text`` in a label, elided to its width (full text in the tooltip); no repaint if unchanged."""
        label = self.labels[name]
        shown = elided(text, label, label.width() - 4, Qt.TextElideMode.ElideRight)
        if label.text() != shown:
            label.setText(shown)
            label.setToolTip(text if shown != text else "")
        if label.isVisibleTo(self.bar) != bool(text):  # an empty label leaves its room to the bar's messages
            label.setVisible(bool(text))

    def clear(self) -> None:
        self.set("iterationLabel", "iteration –")
        for name in ("speedLabel", "etaLabel", "elapsedLabel"):
            self.set(name, "")
        self.progress.setValue(0)

    def show_iteration(self, last, total: int, running: bool) -> None:
        """Fill the labels from the newest ``IterationMetrics`` (speed and ETA only while ``running``)."""
        self.set("iterationLabel", f"iteration {last.iteration} / {total}")
        if running:
            self.set("speedLabel", fmt_speed(last.its_per_sec))
            eta = (total - last.iteration) / max(last.its_per_sec, 1e-9)
            self.set("etaLabel", f"ETA {fmt_time(eta)}")
        self.progress.setValue(int(1000 * last.iteration / max(1, total)))

    def show_elapsed(self, seconds: float) -> None:
        self.set("elapsedLabel", f"elapsed {fmt_time(seconds)}")
