"""The installation itself: a Qt binding that does not corrupt None, a Qt-free core, README == CI."""
import os
import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path


REPO = Path(__file__).resolve().parents[1]


def test_pyside_version_is_not_the_broken_one():
    v = tuple(int(x) for x in version("PySide6-Essentials").split(".")[:2])
    if sys.version_info < (3, 12):
        assert v < (6, 12), "PySide6-Essentials 6.12 on Python < 3.12 corrupts None's refcount; pin < 6.12"


def test_void_qt_calls_keep_none_alive(qapp):
    """6.12.0 on Python 3.11 dropped a reference to None on every void Qt call (then aborted)."""
    from PySide6.QtCore import QTimer

    timer = QTimer()
    before = sys.getrefcount(None)
    for _ in range(3000):
        timer.setInterval(5)
        qapp.processEvents()
    lost = before - sys.getrefcount(None)
    assert lost < 100, f"None lost {lost} references over 6000 void Qt calls: a broken PySide6 binding"


def _python(code: str, **env) -> None:
    """Run ``code`` in a fresh interpreter (with ``env`` added); it must exit 0."""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **env})
    assert r.returncode == 0, r.stdout + r.stderr


def test_core_never_imports_qt():
    code = ("import sys, workbench, workbench.cli, workbench.services.trainer, workbench.services.bundle, "
            "workbench.algorithms, workbench.tasks; workbench.cli.build_parser(); "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('PySide6', 'pyqtgraph', 'shiboken6')]; "
            "print(bad); sys.exit(1 if bad else 0)")
    _python(code)  # at run time; the imports in the files are import-linter's (the next test)


def test_the_layering_contracts_hold(monkeypatch, capsys):
    """pyproject.toml's import-linter contracts: no Qt or app code below gui/; task families and algorithms
    independent of each other (the registries import neither: the built-ins are a plug-in); the kernel,
    families, algorithms, networks and RL pieces import no service; networks know no family."""
    from importlinter.cli import lint_imports

    monkeypatch.chdir(REPO)
    code = lint_imports(config_filename=str(REPO / "pyproject.toml"), no_cache=True, no_logo=True)
    out = capsys.readouterr().out
    assert code == 0, out
    assert "4 kept, 0 broken" in out
    for name in ("imports no Qt", "do not import each other", "import no service", "know no family"):
        assert name in out


def test_the_registries_load_the_builtins_as_a_plugin():
    code = ("import sys; from workbench.core.registry import ALGORITHMS, FAMILIES; "
            "assert 'workbench.algorithms' not in sys.modules and 'workbench.tasks' not in sys.modules; "
            "assert 'maml' in ALGORITHMS.names() and 'sinusoid' in FAMILIES.names(); "
            "assert 'workbench.plugins' in sys.modules")
    _python(code)


def test_another_package_adds_algorithms_as_a_plugin_and_a_broken_one_is_skipped(tmp_path):
    (tmp_path / "myplugin.py").write_text(
        "from workbench.core.registry import ALGORITHMS\n"
        "def register():\n"
        "    @ALGORITHMS.register\n"
        "    class Mine:\n"
        "        name = 'my-algorithm'\n"
        "def broken():\n"
        "    raise ImportError('needs a package that is not installed')\n")
    code = ("import importlib.metadata as md, warnings\n"
            "real = md.entry_points\n"
            "def fake(**select):\n"
            "    found = list(real(**select))\n"
            "    if select.get('group') != 'workbench.plugins':\n"
            "        return found\n"
            "    return [*found, md.EntryPoint('mine', 'myplugin:register', 'workbench.plugins'),\n"
            "            md.EntryPoint('bad', 'myplugin:broken', 'workbench.plugins')]\n"
            "md.entry_points = fake\n"
            "from workbench.core.registry import ALGORITHMS\n"
            "with warnings.catch_warnings(record=True) as caught:\n"
            "    warnings.simplefilter('always')\n"
            "    names = ALGORITHMS.names()\n"
            "assert 'my-algorithm' in names and 'maml' in names, names\n"
            "assert any('bad' in str(w.message) and 'not installed' in str(w.message) for w in caught), caught\n")
    _python(code, PYTHONPATH=str(tmp_path))


def test_ci_runs_exactly_the_readme_test_command():
    readme = (REPO / "README.md").read_text()
    m = re.search(r"<!-- test-command -->\s*```(?:sh|bash)?\n(.+?)\n```", readme, re.S)
    assert m, "README.md must show the test command after <!-- test-command -->"
    command = m.group(1).strip()
    ci = (REPO / ".ci" / "run").read_text()
    assert command in ci


def test_cpu_install_does_not_pull_a_cuda_torch():
    text = (REPO / "pyproject.toml").read_text()
    assert re.search(r'"torch>=[\d.]+,<=2\.13\.0"', text), "torch must stay capped at the CPU wheel's release"
    import torch

    if not torch.cuda.is_available():
        assert torch.version.cuda is None, f"a CUDA build of torch ({version('torch')}) on a machine without a GPU"
