"""The CLI commands that work on a model bundle beyond evaluating it: ``workbench taskmap`` (where in task
space the model adapts well) and ``workbench adapt`` (adapt it to one new task and write the result)."""
from __future__ import annotations

import json
import os
from pathlib import Path

from workbench.core.errors import ConfigError


def add_parsers(sub) -> None:
    m = sub.add_parser("taskmap", help="map a bundle's held-out metric over one or two task parameters",
                       description="Evaluate a model bundle on a grid over one or two task parameters (reaching "
                       "--margin of the training range beyond it; the others drawn as in training): the metric "
                       "before and after adaptation, the gain, and with --baseline the gap to a pretrained "
                       "model.  Prints a summary, the map as JSON (--json), or a picture (--png).")
    m.add_argument("model", help="model bundle (.safetensors) or run directory")
    m.add_argument("--grid", type=int, default=25, metavar="N", help="grid points per parameter (default 25)")
    m.add_argument("--params", metavar="NAME[,NAME]",
                   help="the one or two task parameters to map, e.g. amplitude,phase (default: the family's first "
                   "two; classification: shots)")
    m.add_argument("--steps", type=int, metavar="N", help="inner steps of 'after adaptation' (default: as trained)")
    m.add_argument("--tasks-per-cell", dest="tasks_per_cell", type=int, metavar="N",
                   help="tasks evaluated at each grid point (default: about 2,500 tasks over the map; RL: 640)")
    m.add_argument("--margin", type=float, default=0.4, metavar="F",
                   help="how far the grid reaches beyond the training range, as a fraction of its width (default "
                   "0.4)")
    m.add_argument("--seed", type=int, default=0, help="seed of the tasks' data (default 0): the support and query "
                   "sets, and the task parameters the map does not set (an RL policy's episodes are its "
                   "evaluation's own)")
    m.add_argument("--baseline", metavar="BUNDLE", help="a pretrained bundle of the same family: adds the gap layer")
    m.add_argument("--json", action="store_true", help="print the map as one JSON object")
    m.add_argument("--png", metavar="FILE", help="write the map as a PNG picture (the app's Task map view)")


    a = sub.add_parser("adapt", help="adapt a bundle to a new task from its samples; write the adapted model as "
                       "a bundle and as ONNX",
                       description="Adapt a meta-learned bundle to one new task with its trained inner loop, and "
                       "write the adapted network to a new folder: model.safetensors (a bundle of its own) and "
                       "model.onnx; with --quantize int8 also model.int8.onnx, with its size and metric beside the "
                       "float model's.  Samples: a CSV (input column(s), then target column(s)) for regression; a "
                       "folder of class folders of images for classification; the task's parameters "
                       "(goal_x=0.3,goal_y=-0.2, or a JSON file) for an RL policy, which collects its own "
                       "trajectories.  Prints the files, the folder last.")
    a.add_argument("model", help="model bundle (.safetensors) or run directory")
    a.add_argument("--support", required=True, metavar="FILE",
                   help="the task's samples: a CSV file, a folder of class folders, or NAME=VALUE,... (RL)")
    a.add_argument("--steps", type=int, metavar="N", help="inner steps (default: as trained; 0 for ProtoNets)")
    a.add_argument("--out", required=True, metavar="DIR", help="a new (or empty) folder for the adapted model")
    a.add_argument("--quantize", choices=["int8"], help="also write an int8 ONNX model (onnxruntime's dynamic "
                   "quantisation) and print its size and metric against the float one")
    a.add_argument("--query", metavar="FILE", help="held-out samples of the task (as --support) on which the metrics "
                   "are measured (default: the support samples; RL: fresh episodes in the task)")
    a.add_argument("--seed", type=int, default=0, help="seed of the RL trajectories (default 0)")


def taskmap(args) -> int:
    import workbench
    from workbench.services.taskmap import bundle_map, describe_map

    params = [p.strip() for p in args.params.split(",")] if args.params else None
    if params is not None and not all(params):
        raise ConfigError(f"--params {args.params!r}: names separated by commas, e.g. amplitude,phase")
    if not 0 <= args.seed < 2**63:
        raise ConfigError(f"--seed {args.seed}: expected an integer in [0, 2**63)")
    png = Path(args.png) if args.png else None
    if png is not None:
        if png.suffix.lower() != ".png":
            raise ConfigError(f"--png {args.png}: the picture's file name must end in .png")
        if png.exists() or not png.parent.is_dir() or not os.access(png.parent, os.W_OK):
            why = ("exists: name a new file (nothing of yours is written over)" if png.exists() else
                   "its folder does not exist" if not png.parent.is_dir() else "its folder is not writable")
            raise ConfigError(f"--png {args.png}: {why}")
    model = workbench.load_model(args.model)
    baseline = workbench.load_model(args.baseline) if args.baseline else None
    m = bundle_map(model, params, args.grid, args.steps, args.tasks_per_cell, args.seed, args.margin, baseline)
    if png is not None:
        from workbench.gui.taskmap_view import write_png

        write_png(m, png)
    if args.json:
        doc = {**m.to_dict(), "model": str(model.path), "algorithm": model.algorithm,
               "baseline_model": str(baseline.path) if baseline is not None else None}
        print(json.dumps(doc, allow_nan=False))
        return 0
    for line in describe_map(m):
        print(line)
    if png is not None:
        print(png)
    return 0


def adapt(args) -> int:
    import workbench
    from workbench.services import adapt as ad

    if not 0 <= args.seed < 2**63:
        raise ConfigError(f"--seed {args.seed}: expected an integer in [0, 2**63)")
    out = Path(args.out)
    ad.check_out_dir(out)
    model = workbench.load_model(args.model)
    if model.family.kind == "rl":
        if args.query:
            raise ConfigError("--query: an RL policy is measured on fresh episodes in its task, not on samples")
        support, query = ad.read_task(model, args.support), None
    else:
        support = ad.read_samples(model, args.support)
        query = ad.read_samples(model, args.query, "--query") if args.query else None
    lines, written = ad.adapt_and_export(model, support, out, args.steps, query, args.quantize == "int8", args.seed)
    for line in lines:
        print(line)
    for f in written:
        print(f)
    print(out)
    return 0
