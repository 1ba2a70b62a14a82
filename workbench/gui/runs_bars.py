"""The Runs page's two bars: which folder is listed (above the table) and what to do with the selection
(below it), with the page's message line.  Neither widens the page: the folder's path is elided in the
middle (full path as tooltip) and the message wraps within the width it is given."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QSizePolicy, QWidget

from workbench.gui.elide import ElidedLabel

OPEN_TIP = "Evaluate the selected run's model on fresh tasks in the main views"


def _button(text: str, name: str, tip: str = "") -> QPushButton:
    b = QPushButton(text)
    b.setObjectName(name)
    b.setToolTip(tip)
    return b


class FolderBar(QWidget):
    """"Runs folder: <path>  [Folder…] [Refresh]"."""

    def __init__(self, folder: str = "", parent=None):
        super().__init__(parent)
        self.folder_label = ElidedLabel(folder, mode=Qt.TextElideMode.ElideMiddle, min_chars=10)
        self.folder_label.setObjectName("runsFolderLabel")
        self.folder_button = _button("Folder…", "runsFolderButton",
                                     "Choose the folder the runs are listed from (and new runs go to)")
        self.refresh_button = _button("Refresh", "runsRefreshButton",
                                      "Read the runs folder again (it is also re-read every few seconds)")
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(QLabel("Runs folder:"))
        lay.addWidget(self.folder_label, 1)
        lay.addWidget(self.folder_button)
        lay.addWidget(self.refresh_button)

    def set_folder(self, folder: str) -> None:
        self.folder_label.setText(folder)


class ActionBar(QWidget):
    """Open, rename and delete the selected runs; the message line says what happened (and why not)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.open_button = _button("Open model", "openRunModelButton", OPEN_TIP)
        self.rename_button = _button("Rename…", "renameRunButton", "Rename the selected run's folder")
        self.delete_button = _button("Delete…", "deleteRunButton", "Delete the selected runs' folders (asks first)")
        self.message = QLabel("")
        self.message.setObjectName("runsMessage")
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        # its text (run names, paths) never asks for width: it wraps, or is cut, within what the row leaves
        self.message.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.message.setMinimumWidth(0)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        for b in (self.open_button, self.rename_button, self.delete_button):
            lay.addWidget(b)
        lay.addSpacing(8)
        lay.addWidget(self.message, 1)

    def say(self, text: str, warn: bool = False) -> None:
        """Show ``text`` in the message line (amber when ``warn``); a long one is also its tooltip."""
        m = self.message
        m.setProperty("warn", warn)
        m.style().unpolish(m)
        m.style().polish(m)
        m.setText(text)
        m.setToolTip(text if len(text) > 80 else "")
