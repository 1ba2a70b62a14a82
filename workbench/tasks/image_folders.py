"""Omniglot and mini-ImageNet, read from folders the user already has (nothing is downloaded or unpickled).

**omniglot** (Lake, Salakhutdinov & Tenenbaum 2015, "Human-level concept learning through probabilistic
program induction", Science 350; github.com/brendenlake/omniglot): 1,623 handwritten characters of 50
alphabets, each drawn once by 20 people, as 105×105 binary PNGs, black ink on white.  The layout is
torchvision's (``torchvision.datasets.Omniglot`` unpacks it into its ``omniglot-py`` folder)::

    ROOT/images_background/<alphabet>/<character>/*.png    background classes (964 characters, 30 alphabets)
    ROOT/images_evaluation/<alphabet>/<character>/*.png    evaluation classes (659 characters, 20 alphabets)

A class is one (alphabet, character) folder, named ``"Latin/character01"``.  Each image is converted to
grayscale, resized to ``size`` × ``size`` with Pillow's LANCZOS filter (antialiased; the MAML code's
``resize_images.py`` does the same to 28×28) and inverted, so that ink is 1.0 and paper 0.0 as in
``glyphs``: x (1, size, size).  The split is Lake et al.'s background / evaluation one, not the random
1,200 / 423 split of characters of Vinyals et al. 2016 (which the MAML code also uses).

**miniimagenet** (Vinyals et al. 2016, "Matching Networks for One Shot Learning"; the class split of Ravi
& Larochelle 2017, "Optimization as a Model for Few-Shot Learning", github.com/twitter/meta-learning-lstm):
100 ImageNet classes of 600 images each, 64 / 16 / 20 classes for train / validation / test::

    ROOT/images/<filename>    the images (Ravi's images.zip holds ImageNet's own sizes; a copy already
                              resized to 84×84 works the same)
    ROOT/train.csv            header "filename,label", then one "n0153282900000005.jpg,n01532829" row per
                              image: the background classes
    ROOT/val.csv              optional: the validation classes; checked when present, never sampled
    ROOT/test.csv             the evaluation classes

A class is a label (an ImageNet wnid such as ``"n01532829"``).  Each image is converted to RGB and resized
to ``size`` × ``size`` with LANCZOS, its aspect ratio not kept (the MAML code's ``proc_images.py`` does the
same to 84×84): x (3, size, size).  Source images may differ in size.

**Checks** (each a one-line :class:`ConfigError` naming the ``[task]`` key and the folder or file), made
when the family is built: by the trainer before it makes the run folder, by a bundle when it loads, never
when a preset is read, so a shipped preset with ``root = ""`` still loads and is refused only when a run
is built from it.  An empty ``root``, a missing folder, subfolder or CSV; a split with no classes, or fewer
than ``ways`` (rotations count four per class); a class with fewer images than ``shots + query``
(background) or ``shots + eval_query`` (evaluation); a file Pillow cannot identify; Omniglot images of
mixed sizes; a CSV with a bad header, a malformed row, a file name that is not a plain name in
``images/``, a row naming a missing image or an image listed twice, or a class in two CSVs.

**Stray files**: hidden files and folders (a leading ".": ``.DS_Store``, macOS's ``._*``) and the usual
junk of file managers (``Thumbs.db``, ``desktop.ini``, ``__MACOSX``) are skipped; any other file among an
Omniglot data set's folders must be an image (a ``notes.txt`` is refused, named), and only folders may sit
where alphabets and characters are expected.

**Lazy decoding**: building the family lists the folders and reads every image's header (Pillow's
``Image.open`` reads format and size, not pixels).  A class's pixels are decoded, resized and kept as
uint8 the first time a task draws it, all its images at once (on the run's ``torch.get_num_threads()``
threads when the source images are large, 256×256 or more); a file whose header reads but whose pixels do
not decode is reported then, naming it (the run stops with that message).
Memory once every class has been used: Omniglot at 28×28, 32,460 images × 784 B = 25 MB; mini-ImageNet
at 84×84, train and test, 50,400 × 21,168 B = 1.07 GB.
"""
from __future__ import annotations

import csv
import io
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from workbench.core.config import param
from workbench.core.errors import ConfigError
from workbench.core.registry import FAMILIES
from workbench.core.storage import UnreadableFile, file_kind, open_regular, read_regular_bytes

from .classification import ROTATIONS, ClassificationFamily, ImagePool, NWayKShotConfig

JUNK = frozenset({"thumbs.db", "ehthumbs.db", "ehthumbs_vista.db", "desktop.ini", "__macosx", "$recycle.bin"})
MAX_IMAGE_BYTES = 64 * 2**20  # one image file (an Omniglot PNG is ~1 kB, an ImageNet JPEG ~100 kB)
MAX_CSV_BYTES = 64 * 2**20  # a split file (mini-ImageNet's train.csv is 1.3 MB)
PARALLEL_DECODE = 32  # images decoded per thread at least (fewer: on the calling thread)
LARGE_IMAGE = 256 * 256  # source pixels from which decoding, not Python, dominates: worth several threads
CSV_HEADER = ["filename", "label"]


def is_junk(name: str) -> bool:
    """Whether a folder entry is a hidden file or a file manager's litter, skipped by the scan."""
    return name.startswith(".") or name.lower() in JUNK


# -- the two configs ---------------------------------------------------------------------------------------
ROOT_HELP = ("'~' is expanded; a relative path is taken from the folder the workbench is started in (so is "
             "a resumed run's: give an absolute path to resume from elsewhere).  Required: empty is refused "
             "when a run is built.")


@dataclass
class OmniglotConfig(NWayKShotConfig):
    root: str = param("", "Folder holding images_background/<alphabet>/<character>/*.png and images_evaluation/"
                          "... (torchvision's omniglot-py folder).  " + ROOT_HELP)
    size: int = param(28, "Image height and width in pixels after resizing (Omniglot's own: 105).", low=8, high=256)

    def validate(self, where: str) -> None:
        # The folder is checked when the family is built (a shipped preset's root is empty); its errors name
        # the preset and section this config was read from, remembered here (not a field: never saved).
        self._where = where


@dataclass
class MiniImageNetConfig(OmniglotConfig):
    root: str = param("", "Folder holding images/ and the Ravi & Larochelle split files train.csv, test.csv "
                          "(and, optional, val.csv), each with the header 'filename,label'.  " + ROOT_HELP)
    query: int = param(15, "Query images per class of a training task (15: Ravi & Larochelle, MAML).",
                       low=1, high=1000)
    eval_query: int = param(15, "Query images per class of a held-out task.", low=1, high=1000)
    rotations: bool = param(False, "Rotations by 90°, 180° and 270° are classes of their own (four times the "
                                   "classes, both pools).")
    size: int = param(84, "Image height and width in pixels after resizing (mini-ImageNet's usual: 84).",
                      low=8, high=512)


# -- the pool ------------------------------------------------------------------------------------------------
class FolderPool(ImagePool):
    """The classes of one split: ``files[c]`` the image paths of class ``c``, decoded on first use into a
    uint8 cache (total images, C, size, size), every class's images in one contiguous block."""

    def __init__(self, label: str, names: list[str], files: list[list[Path]], channels: int, size: int,
                 invert: bool, where: str, source_pixels: int):
        self.label, self.names, self.files = label, names, files
        self.invert, self.where = invert, where
        self.source_pixels = source_pixels  # the largest image's width × height, before resizing
        self.n_classes = len(names)
        self.image_shape = (channels, size, size)
        self.per_class = torch.tensor([len(f) for f in files], dtype=torch.int64)
        self._offset = torch.cumsum(self.per_class, 0) - self.per_class  # first cache row of each class
        total = int(self.per_class.sum())
        try:  # its pages are touched (committed) as classes are decoded
            self._cache = torch.empty(total, channels, size, size, dtype=torch.uint8)
        except RuntimeError:  # the address space is refused outright
            raise ConfigError(f"{where}: its {total} {label} images at size = {size} would take "
                              f"{total * channels * size * size / 2**30:.1f} GiB of memory once decoded; "
                              f"lower size") from None
        self._loaded = torch.zeros(self.n_classes, dtype=torch.bool)

    def class_name(self, c: int) -> str:
        return self.names[c]

    def images(self, classes: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        missing = classes[~self._loaded[classes]].unique()
        if len(missing):
            self._load(missing.tolist())
        return self._cache[self._offset[classes] + index].float().div_(255.0)

    def _load(self, classes: list[int]) -> None:
        """Decode, resize and cache every image of ``classes``.  Large images (an ImageNet JPEG: ~5 ms each)
        are decoded on the run's torch threads, as Pillow decodes and resizes without holding the GIL; small
        ones (an Omniglot PNG: ~0.3 ms, mostly Python) on this thread, which measured faster here."""
        files = [p for c in classes for p in self.files[c]]
        threads = min(torch.get_num_threads(), len(files) // PARALLEL_DECODE)
        if self.source_pixels < LARGE_IMAGE:
            threads = 1
        if threads > 1:
            with ThreadPoolExecutor(threads) as pool:
                arrays = list(pool.map(self._decode, files))
        else:
            arrays = [self._decode(p) for p in files]
        block = torch.from_numpy(np.stack(arrays))
        block = block.unsqueeze(1) if block.dim() == 3 else block.permute(0, 3, 1, 2)  # (n, C, size, size)
        done = 0
        for c in classes:
            start, n = int(self._offset[c]), len(self.files[c])
            self._cache[start:start + n] = block[done:done + n]
            done += n
        self._loaded[classes] = True

    def _decode(self, path: Path) -> np.ndarray:
        return decode_image(path, self.image_shape, self.invert, self.where)


def decode_image(path: Path, shape: tuple[int, int, int], invert: bool, where: str) -> np.ndarray:
    """One image file as a family of ``shape`` (C, H, W) sees it: grey (C = 1) or RGB, resized to W × H with
    LANCZOS, inverted for ink-on-paper data sets; (H, W) or (H, W, 3) uint8.  Only a regular file of at most
    MAX_IMAGE_BYTES is read; anything else is a one-line ConfigError naming ``where`` and the file."""
    from PIL import Image

    c, h, w = shape
    try:
        with open_regular(path, MAX_IMAGE_BYTES) as f, Image.open(f) as im:
            im = im.convert("L" if c == 1 else "RGB")
            if im.size != (w, h):
                im = im.resize((w, h), Image.Resampling.LANCZOS)
            a = np.asarray(im, dtype=np.uint8)
    except UnreadableFile as e:
        raise ConfigError(f"{where}: {path}: {e}") from None
    except Exception as e:  # noqa: BLE001 - whatever Pillow raises on a corrupt file, one line naming it
        raise ConfigError(f"{where}: {path}: not a readable image ({_reason(e)})") from None
    return 255 - a if invert else a


def _reason(e: BaseException) -> str:
    """Why Pillow could not read a file, in a few words (its own message names the file again)."""
    if type(e).__name__ == "UnidentifiedImageError":
        return "Pillow cannot identify its format"
    text = str(e).split("\n")[0].strip()
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def probe(path: Path, where: str) -> tuple[int, int]:
    """(width, height) from the header of image ``path`` (no pixels are decoded); a ConfigError naming it
    when it is not an image Pillow can identify.  The caller's listing has made sure it is a regular file
    (never a FIFO, which would block): opened by name, the check costs 30 µs a file, a third less."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.size
    except Exception as e:  # noqa: BLE001 - UnidentifiedImageError, DecompressionBombError, truncated headers...
        raise ConfigError(f"{where}: {path}: not a readable image ({_reason(e)})") from None


# -- the families ----------------------------------------------------------------------------------------------
class FolderFamily(ClassificationFamily):
    """A classification family over a data set on disk (see the module docstring)."""

    layout = ""  # how a refusal describes the expected layout

    @classmethod
    def available(cls) -> tuple[bool, str]:
        import importlib.util

        if importlib.util.find_spec("PIL") is None:
            return False, "it reads images with Pillow: pip install 'Pillow>=10'"
        return True, ""

    @property
    def where(self) -> str:
        """How an error names the root key: ``"presets/x.toml: [task] root = '/data'"``."""
        return f"{getattr(self.cfg, '_where', '[task]')} root = {self.cfg.root!r}"

    def root(self) -> Path:
        """The data folder, checked: ``root`` expanded and taken from the working directory."""
        if not self.cfg.root.strip():
            raise ConfigError(f"{self.where}: no data folder given; set it to the folder that holds "
                              f"{self.layout} (on the command line: --set task.root=PATH)")
        root = Path(self.cfg.root).expanduser().absolute()
        if not root.exists():
            raise ConfigError(f"{self.where}: no such folder ({root})")
        if not root.is_dir():
            raise ConfigError(f"{self.where}: not a folder ({root})")
        return root

    def need(self, label: str, names: list[str], files: list[list[Path]], query: int, query_key: str,
             folder: Path) -> None:
        """Refuse a split with no classes, fewer classes than ``ways`` or a class with too few images."""
        c = self.cfg
        if not names:
            raise ConfigError(f"{self.where}: {folder} holds no classes (expected {self.layout})")
        turns = ROTATIONS if c.rotations else 1
        if len(names) * turns < c.ways:
            rotated = f" ({len(names) * turns} with rotations)" if turns > 1 else ""
            raise ConfigError(f"{self.where}: the {label} classes in {folder} are {len(names)}{rotated}, fewer "
                              f"than ways = {c.ways}")
        counts = [len(f) for f in files]
        i = int(np.argmin(counts))
        if counts[i] < c.shots + query:
            raise ConfigError(f"{self.where}: {label} class {names[i]} has {counts[i]} image(s); a task needs "
                              f"shots + {query_key} = {c.shots} + {query} = {c.shots + query} of each class")

    def pool(self, label: str, names: list[str], files: list[list[Path]], channels: int, invert: bool,
             sizes: list[tuple[int, int]]) -> FolderPool:
        """The pool of one split; ``sizes`` the (width, height) of its images, as probed."""
        pixels = max((w * h for w, h in sizes), default=0)
        return FolderPool(label, names, files, channels, self.cfg.size, invert, self.where, pixels)


def _scan_dir(folder: Path, where: str, want: str, expected: str) -> list[os.DirEntry]:
    """The entries of ``folder`` that are not junk, sorted by name, all of kind ``want`` ("dir" or "file")."""
    try:
        with os.scandir(folder) as it:
            entries = sorted((e for e in it if not is_junk(e.name)), key=lambda e: e.name)
    except OSError as e:
        raise ConfigError(f"{where}: {folder}: cannot list ({e.strerror or e})") from None
    for e in entries:
        if want == "dir" and not e.is_dir():
            raise ConfigError(f"{where}: {e.path}: a file where only {expected} folders belong")
        if want == "file" and e.is_dir():
            raise ConfigError(f"{where}: {e.path}: a folder where only {expected} belong")
        if want == "file" and not e.is_file():
            raise ConfigError(f"{where}: {e.path}: {_kind(e.path)}, not a regular file")
    return entries


def _kind(path) -> str:
    """What a path that is not a regular file is: "a directory", "a FIFO", ..., "a broken link"."""
    try:
        return file_kind(os.stat(path).st_mode)
    except OSError:
        return "a broken link"


@FAMILIES.register
class Omniglot(FolderFamily):
    """N-way K-shot classification of Omniglot's handwritten characters (Lake et al. 2015), from
    torchvision's folder layout (see the module docstring)."""

    name = "omniglot"
    title = "Omniglot (handwritten characters from your folder, N-way K-shot)"
    Config = OmniglotConfig
    layout = "images_background/<alphabet>/<character>/*.png and images_evaluation/..."
    SPLITS = ("images_background", "images_evaluation")

    def pools(self):
        root, where = self.root(), self.where
        found = []
        for split in self.SPLITS:
            folder = root / split
            if not folder.is_dir():
                hint = ""
                if (root / "omniglot-py" / split).is_dir():
                    hint = f"; torchvision keeps it in omniglot-py: root = {str(root / 'omniglot-py')!r}"
                raise ConfigError(f"{where}: no {split} folder in it (expected {self.layout}){hint}")
            names, files = [], []
            for alphabet in _scan_dir(folder, where, "dir", "alphabet"):
                for character in _scan_dir(Path(alphabet.path), where, "dir", "character"):
                    names.append(f"{alphabet.name}/{character.name}")
                    files.append([Path(e.path) for e in _scan_dir(Path(character.path), where, "file", "images")])
            found.append((folder, names, files))
        c = self.cfg
        (bg_dir, bg_names, bg_files), (ev_dir, ev_names, ev_files) = found
        self.need("background", bg_names, bg_files, c.query, "query", bg_dir)
        self.need("evaluation", ev_names, ev_files, c.eval_query, "eval_query", ev_dir)
        first = None  # (size, path) of the first image: every image of the data set must have its size
        for files in bg_files + ev_files:
            for path in files:
                size = probe(path, where)
                if first is None:
                    first = (size, path)
                elif size != first[0]:
                    raise ConfigError(f"{where}: {path} is {size[0]}×{size[1]} pixels, but {first[1]} is "
                                      f"{first[0][0]}×{first[0][1]}; an Omniglot folder's images all have one size")
        sizes = [first[0]] if first else []
        return (self.pool("background", bg_names, bg_files, 1, True, sizes),
                self.pool("evaluation", ev_names, ev_files, 1, True, sizes))


@FAMILIES.register
class MiniImageNet(FolderFamily):
    """N-way K-shot classification of mini-ImageNet (Vinyals et al. 2016) with Ravi & Larochelle's class
    split, from its images folder and split CSVs (see the module docstring)."""

    name = "miniimagenet"
    title = "mini-ImageNet (photos from your folder, N-way K-shot)"
    Config = MiniImageNetConfig
    layout = "images/ and the split files train.csv, test.csv (val.csv optional)"

    def pools(self):
        root, where = self.root(), self.where
        images = root / "images"
        if not images.is_dir():
            raise ConfigError(f"{where}: no images folder in it (expected {self.layout})")
        try:
            with os.scandir(images) as it:
                present = {e.name: e.is_file() for e in it}
        except OSError as e:
            raise ConfigError(f"{where}: {images}: cannot list ({e.strerror or e})") from None
        seen: dict[str, str] = {}  # file name -> "train.csv line 7", across the split files
        owner: dict[str, str] = {}  # label -> the split file it belongs to
        splits = {}
        for split in ("train", "val", "test"):
            path = root / f"{split}.csv"
            if split == "val" and not path.exists():
                continue
            splits[split] = self._read_split(path, present, images, seen, owner)
        c = self.cfg
        bg_names, bg_files = splits["train"]
        ev_names, ev_files = splits["test"]
        self.need("background", bg_names, bg_files, c.query, "query", root / "train.csv")
        self.need("evaluation", ev_names, ev_files, c.eval_query, "eval_query", root / "test.csv")
        # headers only; val.csv's images are never used, so never opened.  Sizes may differ (Ravi's images.zip
        # holds ImageNet's own): each image is resized to size × size.
        bg_sizes = [probe(p, where) for files in bg_files for p in files]
        ev_sizes = [probe(p, where) for files in ev_files for p in files]
        return (self.pool("background", bg_names, bg_files, 3, False, bg_sizes),
                self.pool("evaluation", ev_names, ev_files, 3, False, ev_sizes))

    def _read_split(self, path: Path, present: dict[str, bool], images: Path, seen: dict[str, str],
                    owner: dict[str, str]) -> tuple[list[str], list[list[Path]]]:
        """(labels sorted, image paths of each label in the file's order) of one split file."""
        where = self.where
        if not path.exists():
            raise ConfigError(f"{where}: no {path.name} in it (expected {self.layout})")
        try:
            text = read_regular_bytes(path, MAX_CSV_BYTES).decode("utf-8-sig")
        except UnreadableFile as e:
            raise ConfigError(f"{where}: {path}: {e}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{where}: {path}: not a text file (invalid UTF-8)") from None
        rows = csv.reader(io.StringIO(text, newline=""))
        by_label: dict[str, list[Path]] = {}
        try:
            for row in rows:
                line = rows.line_num
                if line == 1:
                    if [v.strip() for v in row] != CSV_HEADER:
                        raise ConfigError(f"{where}: {path} line 1: expected the header 'filename,label', found "
                                          f"{','.join(row)[:80]!r}")
                    continue
                if not row or not any(v.strip() for v in row):
                    continue  # a blank line
                if len(row) != 2 or not row[0].strip() or not row[1].strip():
                    raise ConfigError(f"{where}: {path} line {line}: expected 'filename,label', found "
                                      f"{','.join(row)[:80]!r}")
                name, label = row[0].strip(), row[1].strip()
                if "/" in name or "\\" in name or name in (".", ".."):
                    raise ConfigError(f"{where}: {path} line {line}: {name!r} is not a plain file name in "
                                      f"{images}")
                if name not in present:
                    raise ConfigError(f"{where}: {path} line {line}: no image {name} in {images}")
                if not present[name]:
                    raise ConfigError(f"{where}: {path} line {line}: {images / name}: {_kind(images / name)}, "
                                      f"not a regular file")
                if name in seen:
                    raise ConfigError(f"{where}: {path} line {line}: {name} is listed twice (first in {seen[name]})")
                seen[name] = f"{path.name} line {line}"
                if owner.setdefault(label, path.name) != path.name:
                    raise ConfigError(f"{where}: {path} line {line}: class {label} is also in {owner[label]}; "
                                      f"the splits must not share classes")
                by_label.setdefault(label, []).append(images / name)
        except csv.Error as e:
            raise ConfigError(f"{where}: {path} line {rows.line_num}: malformed CSV ({e})") from None
        if rows.line_num == 0:
            raise ConfigError(f"{where}: {path}: empty; expected the header 'filename,label' and a row per image")
        names = sorted(by_label)
        return names, [by_label[n] for n in names]
