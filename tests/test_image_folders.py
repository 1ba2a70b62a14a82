"""Omniglot and mini-ImageNet from folders on disk: tiny fake data sets drawn with Pillow, the batches they
give, the split kept apart, and every kind of bad folder refused in one line naming the file."""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from conftest import PRESETS, REPO
from workbench.core.config import ExperimentConfig, build_section
from workbench.core.errors import ConfigError
from workbench.tasks.image_folders import MiniImageNet, MiniImageNetConfig, Omniglot, OmniglotConfig

ALPHABETS = {"images_background": ("Latin", "Greek"), "images_evaluation": ("Tengwar", "Korean")}
CHARACTERS, DRAWINGS, SIDE = 3, 6, 105
TRAIN_CLASSES = [f"n0{i}" for i in range(6)]
TEST_CLASSES = [f"n9{i}" for i in range(5)]
PER_CLASS = 6


# -- fake data sets ---------------------------------------------------------------------------------------
def character(split: str, a: int, c: int, k: int, side: int = SIDE) -> Image.Image:
    """Black ink on white, as Omniglot: a thick stroke whose angle and place tell the class, moved a little
    by the drawing ``k``."""
    im = Image.new("1", (side, side), 1)
    d = ImageDraw.Draw(im)
    s = side / SIDE
    n = 2 * a + (split == "images_evaluation") + 4 * c  # a different stroke for every class of both splits
    x0, y0 = (10 + 6 * n + k) * s, 15 * s
    d.line([(x0, y0), ((95 - 4 * n) * s, (90 - 3 * k) * s)], fill=0, width=int(14 * s))
    d.rectangle([(5 + 3 * n) * s, 70 * s, (25 + 3 * n) * s, 95 * s], fill=0)
    return im


def make_omniglot(root):
    for split, alphabets in ALPHABETS.items():
        for a, alphabet in enumerate(alphabets):
            for c in range(CHARACTERS):
                folder = root / split / alphabet / f"character{c + 1:02d}"
                folder.mkdir(parents=True)
                for k in range(DRAWINGS):
                    character(split, a, c, k).save(folder / f"{c:04d}_{k + 1:02d}.png")
    return root


def color(label: str) -> tuple[int, int, int]:
    i = (TRAIN_CLASSES + TEST_CLASSES).index(label) if label in TRAIN_CLASSES + TEST_CLASSES else 99
    return (20 * i, 255 - 20 * i, (97 * i) % 256)


def make_mini(root, val=True):
    (root / "images").mkdir(parents=True)
    splits = {"train": TRAIN_CLASSES, "test": TEST_CLASSES, **({"val": ["n55"]} if val else {})}
    for split, labels in splits.items():
        rows = ["filename,label"]
        for label in labels:
            for k in range(PER_CLASS):
                name = f"{label}{k:08d}.png"
                Image.new("RGB", (84, 84), color(label)).save(root / "images" / name)
                rows.append(f"{name},{label}")
        (root / f"{split}.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.fixture(scope="module")
def omni_dir(tmp_path_factory):
    return make_omniglot(tmp_path_factory.mktemp("omniglot") / "omniglot-py")


@pytest.fixture(scope="module")
def mini_dir(tmp_path_factory):
    return make_mini(tmp_path_factory.mktemp("mini") / "mini-imagenet")


@pytest.fixture
def omni_copy(omni_dir, tmp_path):
    return shutil.copytree(omni_dir, tmp_path / "omniglot-py")


@pytest.fixture
def mini_copy(mini_dir, tmp_path):
    return shutil.copytree(mini_dir, tmp_path / "mini-imagenet")


def omniglot(root, **task):
    """The family built as a run builds it: the [task] table validated, named after a preset file."""
    task = {"root": str(root), "query": 2, "eval_query": 3, **task}
    return Omniglot(build_section(OmniglotConfig, task, "p.toml: [task]"))


def mini(root, **task):
    task = {"root": str(root), "query": 2, "eval_query": 3, **task}
    return MiniImageNet(build_section(MiniImageNetConfig, task, "p.toml: [task]"))


# -- batches ----------------------------------------------------------------------------------------------
def check_batch(batch, tasks, ways, shots, query, shape):
    assert batch.xs.shape == (tasks, ways * shots, *shape) and batch.xq.shape == (tasks, ways * query, *shape)
    assert batch.xs.dtype == torch.float32 and batch.ys.dtype == torch.int64 and batch.yq.dtype == torch.int64
    assert torch.equal(batch.ys, torch.arange(ways).repeat_interleave(shots).expand(tasks, -1))  # class-major
    assert torch.equal(batch.yq, torch.arange(ways).repeat_interleave(query).expand(tasks, -1))
    assert batch.params.shape == (tasks, ways)
    for x in (batch.xs, batch.xq):
        assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0


def test_omniglot_batches_have_the_shapes_and_labels_of_n_way_k_shot(omni_dir):
    fam = omniglot(omni_dir, ways=3, shots=2)
    assert fam.in_shape == (1, 28, 28) and fam.out_dim == 3
    assert fam.background.n_classes == fam.evaluation.n_classes == 6
    assert fam.background.per_class.tolist() == [DRAWINGS] * 6
    check_batch(fam.sample_batch(4, torch.Generator().manual_seed(0)), 4, 3, 2, 2, (1, 28, 28))
    check_batch(fam.evaluation_batch(5, seed=1), 5, 3, 2, 3, (1, 28, 28))
    check_batch(fam.evaluation_batch(2, seed=1, shots=1, query=4), 2, 3, 1, 4, (1, 28, 28))


def test_omniglot_ink_is_one_on_paper_zero(omni_dir):
    fam = omniglot(omni_dir, rotations=False)
    x = fam.background.images(torch.zeros(DRAWINGS, dtype=torch.int64), torch.arange(DRAWINGS))
    assert x.shape == (DRAWINGS, 1, 28, 28)
    assert float(x.max()) == 1.0 and float(x[:, :, 0, 27].max()) == 0.0  # the stroke's inside; a paper corner
    assert 0.05 < float(x.mean()) < 0.5  # mostly paper
    assert fam.background.class_name(0) == "Greek/character01"  # classes in name order
    drawn = character("images_background", 1, 0, 0).convert("L").resize((28, 28), Image.Resampling.LANCZOS)
    assert torch.equal(x[0, 0], (255 - torch.from_numpy(np.array(drawn)).float()) / 255)  # Lanczos, inverted


@pytest.mark.parametrize("rotations", [False, True])
def test_labels_images_and_class_indices_agree_and_the_splits_never_mix(omni_dir, rotations):
    fam = omniglot(omni_dir, ways=4, shots=1, rotations=rotations)
    turns = 4 if rotations else 1
    assert fam.classes(fam.background) == fam.classes(fam.evaluation) == 6 * turns
    background = {f"{a}/character{c + 1:02d}" for a in ALPHABETS["images_background"] for c in range(CHARACTERS)}
    evaluation = {f"{a}/character{c + 1:02d}" for a in ALPHABETS["images_evaluation"] for c in range(CHARACTERS)}
    assert {fam.background.class_name(c) for c in range(6)} == background
    assert {fam.evaluation.class_name(c) for c in range(6)} == evaluation
    seen_turns = set()
    for pool, batch in ((fam.background, fam.sample_batch(8, torch.Generator().manual_seed(2))),
                        (fam.evaluation, fam.evaluation_batch(8, seed=3))):
        every = pool.images(torch.arange(6).repeat_interleave(DRAWINGS), torch.arange(DRAWINGS).repeat(6))
        every = every.view(6, DRAWINGS, 1, 28, 28)
        for t in range(len(batch)):
            for label, c in enumerate(batch.params[t].tolist()):
                base, k = divmod(c, turns)
                seen_turns.add(k)
                # the support image of this label is one of the drawings of the class its params name, turned
                drawings = torch.rot90(every[base], k, (-2, -1))
                assert any(torch.equal(batch.xs[t, label], d) for d in drawings), (t, label, c)
                query = batch.xq[t, batch.yq[t] == label]
                assert all(any(torch.equal(q, d) for d in drawings) for q in query)
    assert seen_turns == set(range(turns))


def test_rotations_count_four_classes_towards_ways(omni_dir):
    with pytest.raises(ConfigError, match=r"p\.toml: \[task\] root = .*: the background classes in .*"
                                          r"images_background are 6, fewer than ways = 7"):
        omniglot(omni_dir, ways=7, rotations=False)
    fam = omniglot(omni_dir, ways=7, rotations=True)  # 24 classes with rotations
    batch = fam.sample_batch(3, torch.Generator().manual_seed(0))
    assert all(len(set(row)) == 7 for row in batch.params.tolist())
    with pytest.raises(ConfigError, match=r"are 6 \(24 with rotations\), fewer than ways = 25"):
        omniglot(omni_dir, ways=25)


def test_mini_imagenet_batches_colors_and_splits(mini_dir):
    fam = mini(mini_dir, ways=3, shots=2, size=84)
    assert fam.in_shape == (3, 84, 84)
    assert [fam.background.class_name(c) for c in range(6)] == TRAIN_CLASSES
    assert [fam.evaluation.class_name(c) for c in range(5)] == TEST_CLASSES  # val.csv is checked, never sampled
    for pool, batch in ((fam.background, fam.sample_batch(4, torch.Generator().manual_seed(0))),
                        (fam.evaluation, fam.evaluation_batch(4, seed=0))):
        check_batch(batch, 4, 3, 2, 2 if pool is fam.background else 3, (3, 84, 84))
        for t in range(4):
            for label, c in enumerate(batch.params[t].tolist()):
                want = torch.tensor(color(pool.class_name(c)), dtype=torch.float32) / 255
                got = batch.xs[t, 2 * label]  # (3, 84, 84): the class's own colour, RGB
                assert torch.allclose(got, want.view(3, 1, 1).expand_as(got))


def test_mini_imagenet_resizes_images_of_any_size_and_needs_no_val_csv(mini_copy):
    (mini_copy / "val.csv").unlink()
    Image.new("RGB", (120, 90), color("n00")).save(mini_copy / "images" / "n0000000000.png")  # ImageNet's own size
    fam = mini(mini_copy, size=32, rotations=True)
    assert fam.in_shape == (3, 32, 32) and fam.classes(fam.background) == 24
    x = fam.background.images(torch.zeros(PER_CLASS, dtype=torch.int64), torch.arange(PER_CLASS))
    assert x.shape == (PER_CLASS, 3, 32, 32)
    assert torch.allclose(x[0], torch.tensor(color("n00")).float().div(255).view(3, 1, 1).expand(3, 32, 32),
                          atol=1 / 255)


def test_root_is_taken_from_the_working_folder_and_home(omni_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(omni_dir.parent)
    assert omniglot("omniglot-py").background.n_classes == 6
    monkeypatch.setenv("HOME", str(omni_dir.parent))
    assert omniglot("~/omniglot-py").evaluation.n_classes == 6


# -- bad folders ------------------------------------------------------------------------------------------
def test_an_empty_or_missing_root_is_refused_naming_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"^p\.toml: \[task\] root = '': no data folder given; set it to the "
                                          r"folder that holds images_background"):
        omniglot("")
    with pytest.raises(ConfigError, match=r"^p\.toml: \[task\] root = '.*nowhere': no such folder"):
        omniglot(tmp_path / "nowhere")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match=r"root = '.*file': not a folder"):
        mini(tmp_path / "file")
    with pytest.raises(ConfigError, match=r"^\[task\] root = '': no data folder given"):  # built in code
        MiniImageNet(MiniImageNetConfig())


def test_a_missing_split_folder_is_refused_and_torchvisions_parent_hinted(omni_copy):
    with pytest.raises(ConfigError, match=r"no images_background folder in it \(expected images_background/"
                                          r"<alphabet>/<character>/\*\.png.*torchvision keeps it in omniglot-py: "
                                          r"root = '.*omniglot-py'"):
        omniglot(omni_copy.parent)
    shutil.rmtree(omni_copy / "images_evaluation")
    with pytest.raises(ConfigError, match=r"no images_evaluation folder in it"):
        omniglot(omni_copy)
    (omni_copy / "images_evaluation").mkdir()
    with pytest.raises(ConfigError, match=r"images_evaluation holds no classes"):
        omniglot(omni_copy)


def test_a_class_with_too_few_images_is_refused_naming_it(omni_copy):
    omniglot(omni_copy, shots=1, query=5, eval_query=5)  # 6 drawings: just enough
    with pytest.raises(ConfigError, match=r"background class Greek/character01 has 6 image\(s\); a task needs "
                                          r"shots \+ query = 2 \+ 5 = 7 of each class"):
        omniglot(omni_copy, shots=2, query=5, eval_query=1)
    with pytest.raises(ConfigError, match=r"evaluation class Korean/character01 has 6 image\(s\); a task needs "
                                          r"shots \+ eval_query = 1 \+ 15 = 16"):
        omniglot(omni_copy, shots=1, query=1, eval_query=15)
    for p in sorted((omni_copy / "images_evaluation" / "Korean" / "character02").iterdir())[:4]:
        p.unlink()
    with pytest.raises(ConfigError, match=r"evaluation class Korean/character02 has 2 image"):
        omniglot(omni_copy)


def test_junk_is_skipped_and_other_stray_files_are_refused(omni_copy):
    char = omni_copy / "images_background" / "Greek" / "character03"
    (char / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (char / "._0001.png").write_bytes(b"\0\5\26\7")  # macOS's AppleDouble twin of a file
    (char / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
    (omni_copy / "images_background" / "__MACOSX" / "Latin").mkdir(parents=True)
    (omni_copy / "images_background" / ".hidden_alphabet").mkdir()
    fam = omniglot(omni_copy)
    assert fam.background.per_class.tolist() == [DRAWINGS] * 6 and fam.background.n_classes == 6
    (char / "notes.txt").write_text("drawn by me")
    with pytest.raises(ConfigError, match=r"^p\.toml: \[task\] root = .*: .*Greek/character03/notes\.txt: not a "
                                          r"readable image \(Pillow cannot identify its format\)$"):
        omniglot(omni_copy)
    (char / "notes.txt").unlink()
    (omni_copy / "images_evaluation" / "README").write_text("x")
    with pytest.raises(ConfigError, match=r"images_evaluation/README: a file where only alphabet folders belong"):
        omniglot(omni_copy)
    (omni_copy / "images_evaluation" / "README").unlink()
    (omni_copy / "images_evaluation" / "Korean" / "list.txt").write_text("x")
    with pytest.raises(ConfigError, match=r"Korean/list\.txt: a file where only character folders belong"):
        omniglot(omni_copy)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX FIFOs")
def test_a_fifo_among_the_images_is_refused_without_blocking(omni_copy):
    os.mkfifo(omni_copy / "images_background" / "Latin" / "character02" / "trap.png")
    with pytest.raises(ConfigError, match=r"character02/trap\.png: a FIFO, not a regular file"):
        omniglot(omni_copy)


def test_a_broken_image_is_refused_naming_it(omni_copy):
    bad = omni_copy / "images_evaluation" / "Tengwar" / "character02" / "0001_03.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 3)
    with pytest.raises(ConfigError, match=r"Tengwar/character02/0001_03\.png: not a readable image \("):
        omniglot(omni_copy)


def test_pixels_that_do_not_decode_are_reported_on_first_use_naming_the_file(omni_copy):
    bad = omni_copy / "images_background" / "Latin" / "character01" / "0000_02.png"
    bad.write_bytes(bad.read_bytes()[:80])  # the header reads, the pixels are cut off
    fam = omniglot(omni_copy, rotations=False)  # the headers are fine
    c = fam.background.names.index("Latin/character01")
    with pytest.raises(ConfigError, match=r"Latin/character01/0000_02\.png: not a readable image"):
        fam.background.images(torch.tensor([c]), torch.tensor([0]))


def test_images_of_mixed_sizes_are_refused_naming_one_and_both_sizes(omni_copy):
    odd = omni_copy / "images_evaluation" / "Korean" / "character03" / "0002_04.png"
    character("images_evaluation", 1, 2, 3).resize((50, 60)).save(odd)
    with pytest.raises(ConfigError, match=r"Korean/character03/0002_04\.png is 50×60 pixels, but .*Greek/"
                                          r"character01/0000_01\.png is 105×105; an Omniglot folder's images all "
                                          r"have one size"):
        omniglot(omni_copy)


@pytest.mark.parametrize("case, expected", [
    ("no_images", r"no images folder in it \(expected images/ and the split files train\.csv, test\.csv"),
    ("no_test", r"no test\.csv in it"),
    ("header", r"train\.csv line 1: expected the header 'filename,label', found 'file,class'"),
    ("missing", r"train\.csv line 3: no image n0000000099\.png in .*images$"),
    ("row", r"test\.csv line 4: expected 'filename,label', found 'n9000000002\.png,n90,extra'"),
    ("traversal", r"train\.csv line 2: '\.\./train\.csv' is not a plain file name in .*images"),
    ("twice", r"train\.csv line 4: n0000000000\.png is listed twice \(first in train\.csv line 2\)"),
    ("shared", r"test\.csv line 32: class n00 is also in train\.csv; the splits must not share classes"),
    ("val", r"val\.csv line 1: expected the header 'filename,label'"),
    ("unreadable", r"images/n0100000002\.png: not a readable image \(Pillow cannot identify its format\)"),
    ("few", r"background class n03 has 2 image\(s\); a task needs shots \+ query = 1 \+ 2 = 3"),
    ("empty", r"test\.csv: empty; expected the header"),
    ("folder", r"train\.csv line 2: .*images/n0000000000\.png: a directory, not a regular file"),
    ("no_classes", r"train\.csv holds no classes \(expected images/ and the split files"),
])
def test_bad_mini_imagenet_folders_are_refused_naming_file_and_line(mini_copy, case, expected):
    images, train, test = mini_copy / "images", mini_copy / "train.csv", mini_copy / "test.csv"
    lines = train.read_text().splitlines()
    if case == "no_images":
        shutil.rmtree(images)
    elif case == "no_test":
        test.unlink()
    elif case == "header":
        train.write_text("file,class\n" + "\n".join(lines[1:]))
    elif case == "missing":
        train.write_text("\n".join(lines[:2] + ["n0000000099.png,n00"] + lines[2:]))
    elif case == "row":
        rows = test.read_text().splitlines()
        test.write_text("\n".join(rows[:3] + [rows[3] + ",extra"] + rows[4:]))
    elif case == "traversal":
        train.write_text("\n".join(lines[:1] + ["../train.csv,n00"] + lines[1:]))
    elif case == "twice":
        train.write_text("\n".join(lines[:3] + [lines[1]] + lines[3:]))
    elif case == "shared":
        Image.new("RGB", (84, 84)).save(images / "n9900000000.png")
        test.write_text(test.read_text() + "n9900000000.png,n00\n")
    elif case == "val":
        (mini_copy / "val.csv").write_text("name;label\n")
    elif case == "unreadable":
        (images / "n0100000002.png").write_text("not a picture")
    elif case == "few":
        train.write_text("\n".join(line for line in lines if not line.startswith(("n030000000", "n030000000"))
                                   or line[10] in "01"))
    elif case == "empty":
        test.write_text("")
    elif case == "folder":
        (images / "n0000000000.png").unlink()
        (images / "n0000000000.png").mkdir()
    elif case == "no_classes":
        train.write_text("filename,label\n")
    with pytest.raises(ConfigError, match=r"^p\.toml: \[task\] root = '.*mini-imagenet': .*" + expected):
        mini(mini_copy, shots=1, query=2, eval_query=2)


def test_mini_imagenet_needs_as_many_classes_as_ways_in_each_split(mini_dir):
    with pytest.raises(ConfigError, match=r"the evaluation classes in .*test\.csv are 5, fewer than ways = 6"):
        mini(mini_dir, ways=6)
    with pytest.raises(ConfigError, match=r"the background classes in .*train\.csv are 6, fewer than ways = 7"):
        mini(mini_dir, ways=7)
    fam = mini(mini_dir, ways=7, rotations=True)
    assert (fam.classes(fam.background), fam.classes(fam.evaluation)) == (24, 20)


# -- presets and the command line ------------------------------------------------------------------------
@pytest.mark.parametrize("preset, family, ways, shots, inner_lr, steps, meta_batch, channels, downsample", [
    ("maml-omniglot-5w1s", "omniglot", 5, 1, 0.4, 1, 32, 64, "stride"),
    ("maml-omniglot-20w1s", "omniglot", 20, 1, 0.1, 5, 16, 64, "stride"),
    ("maml-miniimagenet-5w1s", "miniimagenet", 5, 1, 0.01, 5, 4, 32, "maxpool"),
    ("maml-miniimagenet-5w5s", "miniimagenet", 5, 5, 0.01, 5, 2, 32, "maxpool"),
])
def test_the_maml_paper_presets_load_with_an_empty_root(preset, family, ways, shots, inner_lr, steps, meta_batch,
                                                        channels, downsample):
    cfg = ExperimentConfig.load(PRESETS / f"{preset}.toml")  # the folder is the user's: checked when a run is built
    assert (cfg.family, cfg.task.root, cfg.task.ways, cfg.task.shots) == (family, "", ways, shots)
    a = cfg.algorithm
    assert (cfg.algorithm_name, a.inner_lr, a.inner_steps, a.meta_batch, a.outer_lr, a.first_order) == (
        "maml", inner_lr, steps, meta_batch, 1e-3, False)
    assert (cfg.model.name, cfg.model.channels, cfg.model.downsample) == ("conv4", channels, downsample)
    assert cfg.run.eval_steps >= 10 and "Finn" in cfg.meta.source
    assert cfg.task.query == (1 if family == "omniglot" else 15) and cfg.task.eval_query == 15


def wb(*args, cwd=REPO):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, "-m", "workbench", *map(str, args)], capture_output=True, text=True,
                          timeout=120, env=env, cwd=cwd)


def test_cli_trains_on_a_folder_and_refuses_a_missing_root_in_one_line(omni_dir, tmp_path, capsys):
    out = tmp_path / "run"
    small = ["--set", "model.channels=8", "--set", "algorithm.meta_batch=2", "--set", "task.query=1",
             "--set", "task.eval_query=2", "--set", "run.eval_tasks=4", "--set", "run.eval_steps=2",
             "--set", "run.eval_interval=3", "--set", "run.checkpoint_interval=3", "--set", "run.threads=1"]
    r = wb("train", "maml-omniglot-5w1s", "--out", out, "--iterations", 3, "--quiet",
           "--set", f"task.root={omni_dir}", *small)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == str(out / "model.safetensors")
    assert (out / "model.safetensors").is_file() and "held-out accuracy (4 tasks)" in r.stderr
    refused = tmp_path / "refused"
    r = wb("train", "maml-omniglot-5w1s", "--out", refused, "--iterations", 3, *small)  # the preset's root = ""
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert r.stderr.startswith("workbench: error: ") and "maml-omniglot-5w1s.toml: [task] root = '': no data " \
        "folder given; set it to the folder that holds images_background" in r.stderr, r.stderr
    assert not refused.exists()  # refused before the run folder is made
    from workbench.cli import main

    nowhere = tmp_path / "nowhere"
    assert main(["train", "maml-omniglot-5w1s", "--out", str(refused), "--set", f"task.root={nowhere}", *small]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"workbench: error: {PRESETS / 'maml-omniglot-5w1s.toml'}: [task] root = '{nowhere}': no such " \
                  f"folder ({nowhere})"
    assert not refused.exists()
