import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
REPO = Path(__file__).resolve().parents[1]
PRESETS = REPO / "presets"


@pytest.fixture(autouse=True)
def _one_thread():
    import torch

    torch.set_num_threads(1)
    yield


def tiny_config(algorithm="maml", iterations=50, **run):
    """A small, fast experiment built from the shipped preset of that algorithm."""
    from workbench.core.config import ExperimentConfig

    overrides = [f"run.iterations={iterations}", "run.eval_tasks=20", "run.eval_steps=3", "run.eval_interval=25",
                 "run.checkpoint_interval=25", "run.threads=1"]
    overrides += [f"run.{k}={v!r}".replace("'", '"') for k, v in run.items()]
    return ExperimentConfig.load(PRESETS / f"{algorithm}-sinusoid.toml", overrides)


sys.path.insert(0, str(Path(__file__).parent))
