"""The Playground tab: make a new task by hand and watch a meta-learned model adapt to it, beside the same
adaptation from a pretrained baseline.

The tab holds the model (the current run's, or any bundle the user opens) and its baseline (a pretrained
bundle of the same family, found in the runs folder or opened by hand), and shows the page that fits the
model's family: :class:`~workbench.gui.playground_regression.RegressionPlayground` for sinusoids,
:class:`~workbench.gui.playground_rl.RLPlayground` for the RL families,
:class:`~workbench.gui.playground_classification.ClassificationPlayground` (drawn characters) for
few-shot image classification.  Pages adapt off the GUI thread and
report through their ``message`` signal; everything the user gets wrong is said in the tab's message line.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QComboBox, QFileDialog, QHBoxLayout, QLabel, QPushButton, QSizePolicy, QStackedWidget,
                               QVBoxLayout, QWidget)

from workbench.services import rundir
from workbench.core.errors import WorkbenchError

from .playground_export import AdaptedExport

NO_BASELINE = "none"
OPEN_BASELINE = "Open a bundle…"


def _describe(model) -> str:
    meta = getattr(model, "meta", {}) or {}
    preset = (meta.get("preset") or {}).get("name") or ""
    iters = (meta.get("training") or {}).get("iterations")
    parts = [f"{model.algorithm} on {meta.get('family', '?')}"]
    if preset:
        parts.append(f"preset {preset}")
    if iters is not None:
        parts.append(f"{iters} iterations")
    return ", ".join(parts)


def _bundle_name(path: Path) -> str:
    """A bundle's name as the user knows it: its run folder's for a run's bundle, else its file name."""
    return path.parent.name if path.name == rundir.BUNDLE else path.name


class PlaygroundTab(QWidget):
    """The Playground: a model, its baseline, and the page for the model's family."""

    modelChanged = Signal(str)  # the bundle's path

    def __init__(self, runs_dir: Path, parent=None):
        super().__init__(parent)
        self.setObjectName("playgroundTab")
        self.runs_dir = Path(runs_dir)
        self.model = None
        self.model_path: Path | None = None
        self.baseline = None
        self.baseline_path: Path | None = None
        self._pages: dict[str, QWidget] = {}
        self._current_page: QWidget | None = None
        self._filling = False
        self._page_error = False
        self._export = AdaptedExport(self)

        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        top = QHBoxLayout()
        top.addWidget(QLabel("Model:"))
        self.model_label = QLabel("none — train a model, or open a bundle")
        self.model_label.setObjectName("playgroundModelLabel")
        self.model_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.model_label.setWordWrap(True)  # a long bundle name must not widen the window
        self.model_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        top.addWidget(self.model_label, 1)
        self.open_button = QPushButton("Open bundle…")
        self.open_button.setObjectName("playgroundOpenButton")
        self.open_button.setToolTip("Play with any model bundle (.safetensors) or run folder")
        self.open_button.clicked.connect(self._open_dialog)
        top.addWidget(self.open_button)
        top.addSpacing(12)
        top.addWidget(QLabel("Baseline:"))
        self.baseline_combo = QComboBox()
        self.baseline_combo.setObjectName("playgroundBaselineCombo")
        self.baseline_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.baseline_combo.setMinimumContentsLength(24)
        self.baseline_combo.setToolTip("A pretrained model of the same family (joint training, then fine-tuning), "
                                       "adapted the same way beside the meta-learned one")
        self.baseline_combo.activated.connect(self._on_baseline_chosen)
        top.addWidget(self.baseline_combo)
        self.export_button = QPushButton("Export adapted model…")
        self.export_button.setObjectName("playgroundExportAdaptedButton")
        self.export_button.setToolTip("Adapt the model to the task on show (its points, drawings or task values) "
                                      "with its trained inner steps, and write it to a new folder as a bundle, "
                                      "as ONNX and as int8 ONNX")
        self.export_button.clicked.connect(lambda: self.export_adapted())
        self.export_button.setEnabled(False)
        top.addWidget(self.export_button)
        lay.addLayout(top)

        self.message_label = QLabel("")
        self.message_label.setObjectName("playgroundMessage")
        self.message_label.setWordWrap(True)
        # two lines, whatever the message: a longer one must not push the page down under the mouse
        self.message_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.message_label.setFixedHeight(2 * self.message_label.fontMetrics().lineSpacing() + 2)
        self.message_label.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        lay.addWidget(self.message_label)

        self.stack = QStackedWidget()
        self.empty = QLabel("The playground adapts a meta-learned model to a task you make.\n\n"
                            "Train a model (it appears here when the run ends), open a run's model from the Runs "
                            "panel, or press Open bundle….")
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty.setWordWrap(True)
        self.stack.addWidget(self.empty)
        lay.addWidget(self.stack, 1)
        self._fill_baselines()

    # -- messages ------------------------------------------------------------------------------------
    def say(self, text: str, error: bool = False) -> None:
        self.message_label.setText(text)
        self.message_label.setToolTip(text)  # all of it, should two lines not hold it
        self.message_label.setStyleSheet("color: #e15759;" if error else "")
        self.message_label.setProperty("error", error)

    def message_text(self) -> str:
        return self.message_label.text()

    # -- the model -----------------------------------------------------------------------------------
    def set_runs_dir(self, path) -> None:
        self.runs_dir = Path(path)
        self._fill_baselines()

    def set_model(self, path) -> bool:
        """Load a bundle (or a run folder) and show the page for its family.  False, with the reason in the
        tab, when it cannot be played with."""
        from workbench.services.bundle import load_bundle

        if self.busy():
            self.say("An adaptation is running: cancel it first", True)
            return False
        path = Path(path)
        try:
            model = load_bundle(path)
        except WorkbenchError as e:
            self.say(f"Cannot open {path.name}: {e}", True)
            return False
        page, why = self._page_for(model)
        if page is None:
            self.say(why, True)
            return False
        self.model, self.model_path = model, path
        self.model_label.setText(f"{path.name if path.is_file() else path} — {_describe(model)}")
        self.model_label.setToolTip(str(path))
        self._current_page = page
        self.stack.setCurrentWidget(page)
        self.export_button.setEnabled(True)
        self._fill_baselines()
        self._apply()
        self.modelChanged.emit(str(path))
        return True

    def _page_for(self, model):
        """(page, "") for the model's family, or (None, why not)."""
        from .playground_classification import ClassificationPlayground
        from .playground_regression import RegressionPlayground
        from .playground_rl import RLPlayground

        reasons = []
        pages = [("regression", RegressionPlayground), ("rl", RLPlayground),
                 ("classification", ClassificationPlayground)]
        if hasattr(model, "learner"):  # an RL model: the RL page's reason is the one that matters
            pages.reverse()
        for key, cls in pages:
            if cls.supports(model):
                if key not in self._pages:
                    page = cls()
                    page.message.connect(self._on_page_message)
                    if getattr(page, "message_label", None) is not None:
                        page.message_label.hide()  # the tab's message line says it, above the page
                    self._pages[key] = page
                    self.stack.addWidget(page)
                return self._pages[key], ""
            why = getattr(cls, "why_not", None)
            if why is not None:
                reasons.append(why(model))
        family = (getattr(model, "meta", {}) or {}).get("family", "?")
        detail = next((r for r in reasons if r), "")
        return None, detail or f"The {family} family has no playground; use File → Open model… to evaluate it"

    def _on_page_message(self, text: str, error: bool) -> None:
        self._page_error = self._page_error or error
        self.say(text, error)

    def _apply(self) -> None:
        if self._current_page is not None and self.model is not None:
            baseline = self.baseline if self._compatible(self.baseline) else None
            self._page_error = False
            self._current_page.set_models(self.model, baseline)
            if self._page_error:  # the page said what is wrong: keep it on show
                return
            if baseline is None:
                self.say("No pretrained baseline of this family: train one (a pretrained preset) or choose one "
                         "under Baseline to compare with")
            else:
                self.say(f"Meta-learned {self.model.algorithm} beside the pretrained baseline "
                         f"{_bundle_name(self.baseline_path) if self.baseline_path else ''}")

    def _compatible(self, baseline) -> bool:
        if baseline is None or self.model is None:
            return False
        return baseline.meta.get("family") == self.model.meta.get("family")

    def export_adapted(self, folder=None) -> bool:
        """Export the model adapted to the page's task into a new folder inside ``folder`` (default: ask), in
        the background (:mod:`workbench.gui.playground_export`); False when nothing was started."""
        return self._export.start(folder)

    def show_task(self, values: dict) -> bool:
        """Show the task ``values`` ({parameter: value}, a Task map cell) on the page, when it makes tasks."""
        page = self._current_page
        if page is None or not hasattr(page, "show_task"):
            self.say(f"The playground of this model does not make tasks by {', '.join(values)}", True)
            return False
        self.say(page.show_task(dict(values)))
        return True

    # -- the baseline --------------------------------------------------------------------------------
    def _candidates(self) -> list[tuple[str, Path]]:
        """Pretrained runs of the model's family in the runs folder that have a bundle, newest first."""
        from workbench.services.runs import pretrained_bundles

        if self.model is None:
            return []
        return [(f"{r.name} ({r.algorithm}, {r.iterations} it)", bundle)
                for r, bundle in pretrained_bundles(self.runs_dir, self.model.meta.get("family"))]

    def _fill_baselines(self) -> None:
        self._filling = True
        try:
            combo = self.baseline_combo
            combo.clear()
            combo.addItem(NO_BASELINE, None)
            keep = None
            if self.baseline_path is not None and self._compatible(self.baseline):
                combo.addItem(_bundle_name(self.baseline_path), str(self.baseline_path))
                keep = combo.count() - 1
            for label, path in self._candidates():
                if self.baseline_path is not None and Path(path) == self.baseline_path:
                    continue
                combo.addItem(label, str(path))
            combo.addItem(OPEN_BASELINE, "__open__")
            if keep is not None:
                combo.setCurrentIndex(keep)
            elif combo.count() > 2 and self.model is not None:  # the newest pretrained run of the family
                combo.setCurrentIndex(1)
                self._load_baseline(Path(combo.itemData(1)), apply=False)
            else:
                combo.setCurrentIndex(0)
                self.baseline, self.baseline_path = None, None
        finally:
            self._filling = False

    def _on_baseline_chosen(self, index: int) -> None:
        if self._filling:
            return
        data = self.baseline_combo.itemData(index)
        if data == "__open__":
            start = str(self.baseline_path.parent if self.baseline_path else self.runs_dir)
            path, _ = QFileDialog.getOpenFileName(self, "Open a pretrained baseline", start,
                                                  "Model bundles (*.safetensors)")
            if path:
                self.set_baseline(path)
            else:
                self._fill_baselines()
            return
        if data is None:
            self.baseline, self.baseline_path = None, None
            self._apply()
            return
        self.set_baseline(data)

    def set_baseline(self, path) -> bool:
        """Use the bundle at ``path`` as the baseline (it must be of the model's family)."""
        if self.busy():
            self.say("An adaptation is running: cancel it first", True)
            return False
        ok = self._load_baseline(Path(path), apply=True)
        self._fill_baselines()
        return ok

    def _load_baseline(self, path: Path, apply: bool) -> bool:
        from workbench.services.bundle import load_bundle

        try:
            baseline = load_bundle(path)
        except WorkbenchError as e:
            self.say(f"Cannot open the baseline {path.name}: {e}", True)
            return False
        if self.model is not None and baseline.meta.get("family") != self.model.meta.get("family"):
            self.say(f"The baseline {path.name} is a {baseline.meta.get('family')} model; the model is "
                     f"{self.model.meta.get('family')}", True)
            return False
        self.baseline, self.baseline_path = baseline, path
        if apply:
            self._apply()
        return True

    # -- adaptation ----------------------------------------------------------------------------------
    def busy(self) -> bool:
        return any(p.busy() for p in self._pages.values())

    def cancel(self) -> None:
        for p in self._pages.values():
            p.cancel()

    def shutdown(self, timeout: float = 5.0) -> bool:
        """Cancel every background job of the playground and wait for them to end (the window is closing);
        True when all have ended within ``timeout`` seconds."""
        return all([p.shutdown(timeout) for p in self._pages.values()] + [self._export.shutdown(timeout)])

    def page(self):
        """The page on show (None before a model is set)."""
        return self._current_page

    def _open_dialog(self) -> None:
        start = str(self.model_path.parent if self.model_path else self.runs_dir)
        path, _ = QFileDialog.getOpenFileName(self, "Open a model bundle", start, "Model bundles (*.safetensors)")
        if path:
            self.set_model(path)
