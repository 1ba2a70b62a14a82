import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
REPO = Path(__file__).resolve().parents[1]
PRESETS = REPO / "presets"


def pytest_configure(config):
    """os._exit in the test process would end the session with exit code 0 and no summary: every later test
    skipped while the run looks green.  In the pytest process it raises; forked children (which leave through
    os._exit) and scripts that import this file still can."""
    real_exit, session_pid = os._exit, os.getpid()

    def guarded_exit(code):
        if os.getpid() == session_pid:
            raise RuntimeError(f"os._exit({code}) called in the test process: it would end the session silently")
        real_exit(code)

    os._exit = guarded_exit


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


GLYPH_TINY = ["task.background_classes=60", "task.evaluation_classes=20", "model.channels=8", "run.iterations=20",
              "run.eval_interval=20", "run.eval_tasks=5", "run.threads=1"]
GLYPH_EXTRA = {"protonet": [], "maml": ["algorithm.meta_batch=2", "run.eval_steps=1"],
               "pretrained": ["algorithm.meta_batch=2", "algorithm.inner_steps=3", "run.eval_steps=3"]}


@pytest.fixture(scope="session")
def glyph_bundles(tmp_path_factory):
    """Paths of tiny trained 5-way 1-shot glyph bundles (ProtoNets, MAML with 1 step, pretrained with 3
    fine-tuning steps), in run folders of one runs folder; trained once for the whole test session."""
    from workbench.core.config import ExperimentConfig
    from workbench.services.trainer import Trainer

    root = tmp_path_factory.mktemp("glyph-runs")
    out = {}
    for name, extra in GLYPH_EXTRA.items():
        cfg = ExperimentConfig.load(PRESETS / f"{name}-glyphs-5w1s.toml", GLYPH_TINY + extra)
        out[name] = Path(Trainer(cfg, root / name).run().bundle_path)
    return out


@pytest.fixture(scope="session")
def navigation_bundle(tmp_path_factory):
    """A MAML-TRPO navigation bundle after one tiny meta-iteration (4 trajectories per task)."""
    from workbench.core.config import ExperimentConfig
    from workbench.services.trainer import Trainer

    cfg = ExperimentConfig.load(PRESETS / "maml-trpo-navigation.toml", [
        "run.iterations=1", "run.eval_interval=1", "run.eval_tasks=2", "run.threads=1", "algorithm.meta_batch=2",
        "algorithm.trajectories=4", "run.render_tasks=0"])
    return Path(Trainer(cfg, tmp_path_factory.mktemp("nav") / "run").run().bundle_path)
