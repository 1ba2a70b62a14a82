"""``run.sampler_workers``: one run's RL sampling over several CPU threads.

The cheetah families step a meta-batch's simulations on that many threads (``mujoco.batch.Batch`` with
MuJoCo >= 4, a loop of ``mj_step`` split over a thread pool otherwise); the episodes are bitwise the same for
any number of workers.  The field is validated like every other, shows in the GUI's run form, and reaches the
environments of every RL learner through ``family.make_env(..., workers=...)``; families stepped as tensors,
plug-ins written before the keyword included, take it and ignore it."""
import functools
import threading

import pytest
import torch

from conftest import PRESETS
from workbench.core.config import ExperimentConfig, RunConfig
from workbench.core.errors import ConfigError
from workbench.core.registry import FAMILIES
from workbench.rl.policies import GaussianPolicy
from workbench.rl.rollout import collect
from workbench.tasks import cheetah as ch
from workbench.tasks.rl_base import RLFamily

MUJOCO_OK, MUJOCO_WHY = ch.mujoco_status()
needs_mujoco = pytest.mark.skipif(not MUJOCO_OK, reason=f"MuJoCo is not usable here: {MUJOCO_WHY}")


def _has_batch() -> bool:
    try:
        import mujoco.batch  # noqa: F401
    except ImportError:
        return False
    return True


BACKENDS = ["loop", pytest.param("batch", marks=pytest.mark.skipif(
    not (MUJOCO_OK and _has_batch()), reason="mujoco.batch (MuJoCo >= 4) is not installed"))]


def _meta_batch(backend: str, workers: int, monkeypatch, seed: int = 3):
    """Two meta-batches' episodes (3 tasks x 3 trajectories, 25 steps, one MuJoCo step per control step,
    9 simulations: an uneven split over the workers) from seed ``seed`` on ``backend`` with ``workers``."""
    monkeypatch.setattr(ch, "make_sims", functools.partial(ch.make_sims, backend=backend))
    cls = FAMILIES.get("cheetah-vel")
    family = cls(cls.Config(horizon=25, frame_skip=1))
    gen = torch.Generator().manual_seed(seed)
    tasks = family.sample_task_params(3, gen)
    policy = GaussianPolicy(ch.OBS_DIM, ch.ACT_DIM, (16,), "tanh")
    params = policy.init(gen)
    env = family.make_env(tasks, workers=workers)
    episodes = [collect(env, policy, params, 3, gen) for _ in range(2)]
    assert env.sims.nthread == workers
    return episodes


@needs_mujoco
@pytest.mark.parametrize("backend", BACKENDS)
def test_two_workers_sample_bitwise_the_same_episodes_as_one(backend, monkeypatch):
    serial = _meta_batch(backend, 1, monkeypatch)
    for workers in (2, 3):
        parallel = _meta_batch(backend, workers, monkeypatch)
        for a, b in zip(serial, parallel):
            for name in ("obs", "actions", "rewards", "mask"):
                assert torch.equal(getattr(a, name), getattr(b, name)), (workers, name)
            assert torch.equal(a.returns, b.returns)
    assert serial[0].returns.abs().sum() > 0 and not torch.equal(serial[0].obs, serial[1].obs)


@needs_mujoco
def test_the_loop_backend_steps_its_chunks_on_several_threads():
    sims = ch.make_sims(9, 2, backend="loop")
    assert [list(rows) for rows in sims.chunks] == [[0, 1, 2, 3], [4, 5, 6, 7, 8]]
    seen = []
    step_chunk = sims._step_chunk

    def spy(rows, ctrl, nstep):
        seen.append((rows[0], threading.current_thread() is threading.main_thread()))
        step_chunk(rows, ctrl, nstep)

    sims._step_chunk = spy
    model = ch.cheetah_model()
    sims.reset_to(torch.zeros(9, model.nq).numpy() + model.qpos0, torch.zeros(9, model.nv).numpy())
    sims.step(torch.zeros(9, model.nu).numpy(), 1)
    assert sorted(seen) == [(0, True), (4, False)]  # the caller steps one chunk, the pool the other


# -- the config field ---------------------------------------------------------------------------------------
def test_the_field_is_validated_and_defaults_to_automatic():
    assert RunConfig().sampler_workers == 0
    cfg = ExperimentConfig.load(PRESETS / "maml-trpo-navigation.toml", ["run.sampler_workers=2"])
    assert cfg.run.sampler_workers == 2
    for bad in ("-1", "257", "1.5", "many"):
        with pytest.raises(ConfigError, match=r"run\.sampler_workers") as err:
            ExperimentConfig.load(PRESETS / "maml-trpo-navigation.toml", [f"run.sampler_workers={bad}"])
        assert "sampler_workers" in str(err.value).split("[run]")[-1], str(err.value)
    with pytest.raises(ConfigError, match=r"\[run\]: sampler_workers = -1: out of range, allowed \[0, 256\]"):
        ExperimentConfig.from_dict({"task": {"family": "navigation"}, "algorithm": {"name": "maml-trpo"},
                                    "run": {"sampler_workers": -1}})


def test_the_gui_run_form_has_the_field(qtbot):
    from workbench.gui.forms import ConfigForm

    form = ConfigForm(RunConfig, skip=("device",))
    qtbot.addWidget(form)
    box = form.editors["sampler_workers"]
    assert (box.minimum(), box.maximum(), box.value()) == (0, 256, 0)
    assert "threads" in box.toolTip() and "0: automatic" in box.toolTip()
    box.setValue(2)
    assert form.values()["sampler_workers"] == 2


# -- from the run config to the environments ------------------------------------------------------------------
def _spy_sims(monkeypatch) -> list[int]:
    """The thread count of every set of simulations made from here on."""
    made = []
    real = ch.make_sims

    def spy(nsim, nthread=None, backend="auto"):
        sims = real(nsim, nthread, backend)
        made.append(sims.nthread)
        return sims

    monkeypatch.setattr(ch, "make_sims", spy)
    return made


TINY_CHEETAH = {"task": {"family": "cheetah-vel", "horizon": 5, "frame_skip": 1},
                "model": {"hidden": [8]},
                "run": {"eval_tasks": 2, "eval_steps": 1, "render_tasks": 0, "threads": 1}}
TINY_ALGORITHMS = {"maml-trpo": {"meta_batch": 2, "trajectories": 2, "cg_iters": 2, "ls_max_steps": 2},
                   "rl2": {"meta_batch": 2, "episodes": 2, "eval_trials": 1},
                   "pearl": {"train_tasks": 2, "meta_batch": 2, "collect_tasks": 1, "initial_episodes": 1,
                             "grad_steps": 1, "batch_size": 4, "context_size": 4, "buffer_size": 50,
                             "eval_trials": 1}}


@needs_mujoco
@pytest.mark.parametrize("algorithm", list(TINY_ALGORITHMS))
@pytest.mark.parametrize("workers", [2, 0])
def test_the_run_config_reaches_the_environments_of_every_rl_learner(algorithm, workers, monkeypatch):
    from workbench.services.trainer import Trainer

    data = {**TINY_CHEETAH, "algorithm": {"name": algorithm, **TINY_ALGORITHMS[algorithm]}}
    data["run"] = {**data["run"], "sampler_workers": workers}
    trainer = Trainer(ExperimentConfig.from_dict(data))
    assert trainer.learner.sampler_workers == workers
    made = _spy_sims(monkeypatch)
    torch.set_num_threads(1)  # what 0 (automatic) resolves to here
    trainer.evaluate()
    if algorithm == "maml-trpo":
        trainer.learner.meta_step(trainer.family.sample_batch(2, torch.Generator().manual_seed(0)), 0)
    assert made and set(made) == {workers or 1}, made


# -- families that do not step simulators ------------------------------------------------------------------
def test_tensor_families_and_older_plug_ins_take_the_keyword_and_ignore_it():
    nav = FAMILIES.get("navigation")
    family = nav(nav.Config())
    params = family.sample_task_params(2, torch.Generator().manual_seed(0))
    assert type(family.make_env(params, workers=2)) is type(family.make_env(params))

    class OldPlugIn(RLFamily):  # written against make_env(task_params)
        def make_env(self, task_params):
            """An older plug-in's environment."""
            return ("env", task_params.shape[0])

    plug_in = OldPlugIn(None)
    assert plug_in.make_env(params, workers=3) == ("env", 2) == plug_in.make_env(params)
    assert OldPlugIn.make_env.__doc__ == "An older plug-in's environment."


@needs_mujoco
def test_ray_actors_sample_bitwise_the_same_episodes_as_this_process(monkeypatch):
    """``workbench train --address``: the simulations stepped on Ray actors (a local Ray here, two actors,
    an uneven split) give the episodes of local sampling."""
    ray = pytest.importorskip("ray")
    from workbench.tasks import cheetah_remote

    local = _meta_batch("loop", 1, monkeypatch)
    monkeypatch.undo()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        cheetah_remote.use_ray_actors(2)
        cls = FAMILIES.get("cheetah-vel")
        family = cls(cls.Config(horizon=25, frame_skip=1))
        gen = torch.Generator().manual_seed(3)
        tasks = family.sample_task_params(3, gen)
        policy = GaussianPolicy(ch.OBS_DIM, ch.ACT_DIM, (16,), "tanh")
        params = policy.init(gen)
        env = family.make_env(tasks, workers=1)
        remote = [collect(env, policy, params, 3, gen) for _ in range(2)]
        assert isinstance(env.sims, cheetah_remote.RaySims) and env.sims.chunks == [(0, 4), (4, 9)]
        assert cheetah_remote.ray_sims(9) is env.sims  # kept for the next meta-step
        other = family.make_env(tasks)  # another batch size (an evaluation's) on the same two actors
        other.reset(2, gen)
        assert other.sims.actors == env.sims.actors and other.sims.chunks == [(0, 3), (3, 6)]
    finally:
        cheetah_remote.use_ray_actors(0)
        cheetah_remote.release()
        ray.shutdown()
    for a, b in zip(local, remote):
        for name in ("obs", "actions", "rewards", "mask"):
            assert torch.equal(getattr(a, name), getattr(b, name)), name


def test_train_refuses_a_malformed_cluster_address_in_one_line_writing_nothing(capsys, tmp_path, monkeypatch):
    pytest.importorskip("ray")
    from workbench import cli

    monkeypatch.chdir(tmp_path)
    assert cli.main(["train", "maml-trpo-cheetah-vel-paper", "--address", "nowhere:port", "--iterations", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--address nowhere:port" in err[0]
    assert list(tmp_path.iterdir()) == []
