"""Forms generated from the config dataclasses: one typed, range-checked editor per field.

float -> QDoubleSpinBox, int -> QSpinBox, bool -> QCheckBox, str with choices -> QComboBox,
list[int] -> a line edit that only accepts comma-separated integers in range, dict -> a line edit holding
a TOML inline table, a learning-rate schedule (float or list of floats) -> a line edit of comma-separated numbers.  Ranges and tooltips come
from the field metadata, so a new family or algorithm needs no GUI code.
"""
from __future__ import annotations

import dataclasses
import math
import tomllib
import typing

from PySide6.QtCore import QLocale, Signal
from PySide6.QtGui import QValidator
from PySide6.QtWidgets import (QAbstractSpinBox, QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QLineEdit,
                               QPushButton, QSpinBox, QWidget)

from workbench.core.config import choices_of, describe_range, inline_toml, is_schedule_type
from workbench.core.errors import ConfigError

INT_MAX = 2**31 - 1  # Qt spin boxes hold 32-bit ints


def _decimals_for(default: float, low: float | None) -> int:
    candidates = [abs(v) for v in (default, low or 0.0) if v]
    smallest = min(candidates) if candidates else 1.0
    return max(3, min(8, 3 - int(math.floor(math.log10(smallest))) if smallest < 1 else 3))


class _IntListValidator(QValidator):
    """Comma-separated integers (or one integer), each within [low, high]: anything else is refused as
    typed; a half-typed list ("40,") is Intermediate, so the field does not accept it."""

    def __init__(self, low: int, high: int, single: bool = False):
        super().__init__()
        self.low, self.high, self.single = low, high, single

    def validate(self, text: str, pos: int):
        items = [t.strip() for t in text.split(",")]
        if self.single and len(items) > 1:
            return QValidator.State.Invalid, text, pos
        for i, item in enumerate(items):
            if item == "":
                return QValidator.State.Intermediate, text, pos
            if not item.isdigit() or int(item) > self.high:
                return QValidator.State.Invalid, text, pos
            if int(item) < self.low:
                return QValidator.State.Intermediate, text, pos
        return QValidator.State.Acceptable, text, pos


def button(text: str, name: str, tip: str) -> QPushButton:
    """A push button with its objectName (what tests and scripts find it by) and tooltip."""
    b = QPushButton(text)
    b.setObjectName(name)
    b.setToolTip(tip)
    return b


def _numbers_locale() -> QLocale:
    """How number fields read and write: "0.5" is one half whatever the desktop's locale (a decimal-comma
    locale would read the dot as a thousands separator and make it 5), no group separators, like presets."""
    locale = QLocale.c()
    locale.setNumberOptions(QLocale.NumberOption.OmitGroupSeparator | QLocale.NumberOption.RejectGroupSeparator)
    return locale


NUMBERS = _numbers_locale()


class ConfigForm(QWidget):
    """Editors for every field of a config dataclass; emits ``changed`` when the user edits one."""

    changed = Signal()

    def __init__(self, cls, values: dict | None = None, skip: tuple[str, ...] = (), parent=None):
        super().__init__(parent)
        self.cls = cls
        self.editors: dict[str, QWidget] = {}
        self._exact: dict[str, float] = {}  # values a spin box would round (e.g. pi): kept unless edited
        self._types = typing.get_type_hints(cls)
        self._tips: dict[str, str] = {}
        layout = QFormLayout(self)
        layout.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        defaults = cls()
        for f in dataclasses.fields(cls):
            if f.name in skip:
                continue
            editor = self._make_editor(f, getattr(defaults, f.name))
            editor.setObjectName(f"field_{f.name}")
            tip = f"{f.metadata.get('help', '')}\nAllowed: {describe_range(f)}\nDefault: {getattr(defaults, f.name)!r}"
            editor.setToolTip(tip)
            self._tips[f.name] = tip
            if type(editor) is QLineEdit and self._types[f.name] is str:  # a long name or description is cut
                editor.textChanged.connect(lambda _, n=f.name: self._whole_text_tip(n))  # by the field
            editor.setAccessibleName(f.name)
            self.editors[f.name] = editor
            label = f.name.replace("_", " ")
            layout.addRow(label, editor)
            layout.labelForField(editor).setToolTip(tip)
        self.set_values(dataclasses.asdict(defaults) if values is None else values)

    def _make_editor(self, f: dataclasses.Field, default):
        tp = self._types[f.name]
        lo, hi = f.metadata.get("low"), f.metadata.get("high")
        if tp is bool:
            w = QCheckBox()
            w.toggled.connect(self.changed)
        elif tp is int and hi is not None and hi > INT_MAX:  # seeds: beyond a 32-bit spin box, still digits only
            w = QLineEdit()
            w.setValidator(_IntListValidator(int(lo or 0), int(hi), single=True))
            w.textEdited.connect(self.changed)
        elif tp is int:
            w = QSpinBox()
            w.setLocale(NUMBERS)
            w.setRange(int(max(lo if lo is not None else -INT_MAX, -INT_MAX)),
                       int(min(hi if hi is not None else INT_MAX, INT_MAX)))
            w.setKeyboardTracking(False)
            w.valueChanged.connect(self.changed)
        elif tp is float:
            w = QDoubleSpinBox()
            w.setLocale(NUMBERS)
            decimals = _decimals_for(float(default), lo)
            w.setDecimals(decimals)
            low = lo if lo is not None else -1e9
            if not f.metadata.get("low_inclusive", True):
                low = low + 10 ** -decimals
            w.setRange(low, hi if hi is not None else 1e9)
            w.setSingleStep(max(10 ** -decimals, abs(float(default)) / 10 or 0.1))
            w.setKeyboardTracking(False)
            w.valueChanged.connect(self.changed)
        elif tp is str and choices_of(f):
            w = QComboBox()
            w.addItems([str(c) for c in choices_of(f)])
            w.currentIndexChanged.connect(self.changed)
        elif is_schedule_type(tp):
            w = QLineEdit()
            w.setPlaceholderText("a number, or comma-separated numbers (one per inner step), e.g. 0.5, 0.25")
            w.textEdited.connect(self.changed)
        elif typing.get_origin(tp) is list:
            w = QLineEdit()
            w.setValidator(_IntListValidator(int(lo if lo is not None else 0), int(hi if hi is not None else INT_MAX)))
            w.setPlaceholderText(f"comma-separated integers in [{lo}, {hi}], e.g. 40, 40")
            w.textEdited.connect(self.changed)
        else:  # free text (names, descriptions, device strings handled elsewhere)
            w = QLineEdit()
            w.editingFinished.connect(self.changed)
        return w

    def set_values(self, values: dict) -> None:
        blockers = [e.blockSignals(True) for e in self.editors.values()]
        try:
            for name, value in values.items():
                e = self.editors.get(name)
                if e is None:
                    continue
                if isinstance(e, QCheckBox):
                    e.setChecked(bool(value))
                elif isinstance(e, QSpinBox):
                    e.setValue(int(min(value, INT_MAX)))
                elif isinstance(e, QDoubleSpinBox):
                    e.setValue(float(value))
                    self._exact[name] = float(value)
                elif isinstance(e, QComboBox):
                    e.setCurrentIndex(max(0, e.findText(str(value))))
                elif isinstance(e, QLineEdit) and self._types[name] is dict:
                    e.setText(inline_toml(value) if value else "")
                elif isinstance(e, QLineEdit):
                    e.setText(", ".join(str(v) for v in value) if isinstance(value, list) else str(value))
        finally:
            for e, b in zip(self.editors.values(), blockers):
                e.blockSignals(b)
        for name in values:
            self._whole_text_tip(name)

    def _whole_text_tip(self, name: str) -> None:
        """A free-text field's tooltip: its whole text (the field may show only the start), then the help."""
        e = self.editors.get(name)
        if type(e) is QLineEdit and self._types[name] is str:
            e.setToolTip(f"{e.text()}\n\n{self._tips[name]}" if e.text() else self._tips[name])

    def values(self) -> dict:
        """The values the form shows, as the config's types.  Text typed into a number field without Enter
        or Tab counts: every read takes it first (whichever way a run, a sweep or a save was started)."""
        out = {}
        for e in self.editors.values():
            if isinstance(e, QAbstractSpinBox):
                e.interpretText()
        for name, e in self.editors.items():
            if isinstance(e, QCheckBox):
                out[name] = e.isChecked()
            elif isinstance(e, QSpinBox):
                out[name] = e.value()
            elif isinstance(e, QDoubleSpinBox):
                exact = self._exact.get(name)
                shown = e.value()
                out[name] = exact if exact is not None and round(exact, e.decimals()) == shown else shown
            elif isinstance(e, QComboBox):
                out[name] = e.currentText()
            elif is_schedule_type(self._types[name]):
                text = e.text().strip()
                try:
                    numbers = [float(v) for v in text.split(",")]
                except ValueError:
                    raise ConfigError(f"{name} = {text!r}: expected a number or comma-separated numbers, "
                                      f"e.g. 0.5, 0.25") from None
                out[name] = numbers[0] if len(numbers) == 1 else numbers
            elif typing.get_origin(self._types[name]) is list or self._types[name] is int:
                if not e.hasAcceptableInput():
                    f = next(f for f in dataclasses.fields(self.cls) if f.name == name)
                    raise ConfigError(f"{name} = {e.text()!r}: incomplete or out of range, allowed "
                                      f"{describe_range(f)}")
                text = e.text()
                numbers = [int(v) for v in text.replace(" ", "").split(",") if v.isdigit()]
                out[name] = numbers if typing.get_origin(self._types[name]) is list else (numbers or [0])[0]
            elif self._types[name] is dict:
                text = e.text().strip()
                try:
                    value = tomllib.loads(f"v = {text}")["v"] if text else {}
                except tomllib.TOMLDecodeError:
                    value = None
                if not isinstance(value, dict):
                    raise ConfigError(f"{name} = {text!r}: expected an inline table, e.g. {{ width = 32 }}")
                out[name] = value
            else:
                out[name] = e.text()
        return out


class ModelForm(ConfigForm):
    """The [model] form: only the keys the chosen network reads are enabled (``hidden`` and ``activation``
    for the MLP, ``channels`` for conv4; ``kwargs`` for one's own ``module``, which replaces ``name``)."""

    COMMON = ("name", "module", "head")

    def __init__(self, values: dict | None = None, parent=None):
        from workbench.core.config import ModelConfig

        super().__init__(ModelConfig, values, parent=parent)
        self.changed.connect(self._sync_enabled)
        self.editors["module"].textChanged.connect(self._sync_enabled)
        self._sync_enabled()

    def set_values(self, values: dict) -> None:
        super().set_values(values)
        if "module" in self.editors:
            self._sync_enabled()

    def _sync_enabled(self) -> None:
        from workbench.core.registry import MODELS

        module = self.editors["module"].text().strip()
        if module:
            used = {"module", "kwargs", "head"}
        else:
            name = self.editors["name"].currentText()
            entry = dict(MODELS.items()).get(name)
            used = {*self.COMMON, *(entry.keys if entry is not None else ())}
        for key, editor in self.editors.items():
            editor.setEnabled(key in used)
