"""The services the command line, the app and Ray use: the trainer and its run folder (recorder, lock,
checkpoints, TensorBoard), model bundles and their ONNX export, the run history, sweeps, the
playgrounds' sessions, presets and the memory budget.  They import the kernel (:mod:`workbench.core`) and
the built-in plug-ins through the registries; nothing in the kernel, the families, the algorithms or the
networks imports them (an import-linter contract in pyproject.toml, checked by the tests).
"""
