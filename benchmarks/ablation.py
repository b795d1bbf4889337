"""The paper's ablation (Tables 1 and 2) at laptop scale, on the built-in SyntheticScenes.

    python -m benchmarks.ablation                                  # the default budget (about an hour on 2 cores)
    python -m benchmarks.ablation --iters 60 --seeds 2 --quick     # a few minutes: a smoke run, noisy
    python -m benchmarks.ablation --device cuda --iters 2000 --layers 50 --crop 129

Every variant trains with one budget (iterations x batch x crop) from scratch, for several seeds,
and is evaluated on the same validation scenes (whole image). The table prints mean +- std of
mIoU and pixel accuracy over the seeds, in the paper's layout:

Table 1 (the pyramid):  ResNet-FCN baseline (no PPM) | B1-MAX | B1-AVE | B1236-MAX | B1236-AVE |
                        B1236-MAX+DR | B1236-AVE+DR.  "B1236" = bins 1, 2, 3, 6; MAX/AVE = the pooling in
                        the pyramid; "DR" = dimension reduction: each branch's 1x1 conv reduces to
                        C / (number of bins) channels (without DR each branch keeps all C).
Table 2 (deep supervision): aux loss weight 0 vs 0.4 (and any others given), on B1236-AVE+DR.

    python -m benchmarks.ablation --seeds 2 --only B1236-MAX+DR --no-table2 \
        --json benchmarks/results/ablation-129px.json --merge      # add one row to a committed record

The paper's numbers (ResNet-50, ADE20K val) are printed next to ours; they come from minipsp.paper
(Table 1: baseline 37.23 ... B1236-AVE+DR 41.68 mIoU; Table 2: aux weight 0.4 best). What this script
measures is on a toy dataset with a tiny budget: read it as a sanity check of the trends.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time

from minipsp.config import TrainConfig
from minipsp.paper import TABLE1, TABLE2

EXPANSION = {18: 1, 34: 1, 50: 4, 101: 4, 152: 4}   # channels of layer4 = 8 * width * expansion


def table1_variants(layers, width=64):
    """name -> config changes. Without DR a branch keeps all C channels (reduction_dim = C)."""
    c = 8 * width * EXPANSION[layers]
    return {
        "ResNet-FCN": dict(use_ppm=False),
        "B1-MAX": dict(bins=(1,), pooling="max", reduction_dim=c),
        "B1-AVE": dict(bins=(1,), pooling="avg", reduction_dim=c),
        "B1236-MAX": dict(bins=(1, 2, 3, 6), pooling="max", reduction_dim=c),
        "B1236-AVE": dict(bins=(1, 2, 3, 6), pooling="avg", reduction_dim=c),
        "B1236-MAX+DR": dict(bins=(1, 2, 3, 6), pooling="max", reduction_dim=None),
        "B1236-AVE+DR": dict(bins=(1, 2, 3, 6), pooling="avg", reduction_dim=None),
    }


def base_config(args, out) -> TrainConfig:
    from minipsp.data import SyntheticScenes

    return TrainConfig(layers=args.layers, width=args.width, classes=SyntheticScenes.num_classes,
                       synthetic_size=args.size, synthetic_train=args.train_images, synthetic_val=args.val_images,
                       crop_size=args.crop, scale_min=args.scale[0], scale_max=args.scale[1], batch_size=args.batch,
                       iters=args.iters, base_lr=args.lr, eval_every=args.iters, checkpoint_every=0,
                       log_every=args.iters, progress=False, device=args.device, out=out)


def run_one(cfg: TrainConfig) -> dict:
    from minipsp.train import train

    return train(cfg, overwrite=True)["eval"]


def mean_std(values):
    m = statistics.mean(values)
    s = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * m:6.2f} +- {100 * s:5.2f}"


def print_table(title, rows, seeds, paper=None):
    """rows: name -> list of result dicts (one per seed); paper: name -> minipsp.paper.PaperResult."""
    print(f"\n{title}  (mean +- std over {seeds} seed{'s' if seeds > 1 else ''}, in %)")
    header = f"{'method':<18} {'mIoU':>16} {'pixel acc':>16}"
    if paper:
        header += f" {'paper mIoU / acc':>17}"
    print(header)
    print("-" * len(header))
    for name, results in rows.items():
        line = (f"{name:<18} {mean_std([r['miou'] for r in results]):>16} "
                f"{mean_std([r['pixel_acc'] for r in results]):>16}")
        if paper and name in paper:
            line += f" {paper[name].miou:>8.2f} / {paper[name].pixel_acc:.2f}"
        print(line)


def table2_paper():
    """Table 2's rows under this script's names ("aux weight 0.4"); the paper's are on the FCN, ours on B1236-AVE+DR."""
    return {f"aux weight {alpha:g}": result for alpha, result in TABLE2.items()}


def merge_into(path, record):
    """Add `record`'s runs to the JSON record at `path`, which must have been run with the same budget."""
    with open(path) as f:
        old = json.load(f)
    ignore = ("only", "no_table2", "merge", "aux_weights")  # what may differ between the runs of one record
    mine = {k: v for k, v in record["budget"].items() if k not in ignore}
    theirs = {k: v for k, v in old["budget"].items() if k not in ignore}
    if mine != theirs:
        diff = {k: (theirs.get(k), mine.get(k)) for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k)}
        raise SystemExit(f"--merge: {path} was run with another budget (theirs, ours): {diff}")
    for table in ("table1", "table2"):
        old[table].update(record[table])
    order = list(table1_variants(record["budget"]["layers"], record["budget"]["width"]))  # the paper's row order
    old["table1"] = {name: old["table1"][name] for name in order if name in old["table1"]}
    old["seconds"] = old["seconds"] + record["seconds"]
    old.setdefault("merged", []).append({"only": record["budget"]["only"], "seconds": record["seconds"]})
    return old


def main(argv=None):
    parser = argparse.ArgumentParser(description="PSPNet ablation (paper Tables 1 and 2) on SyntheticScenes")
    parser.add_argument("--layers", type=int, default=18)
    parser.add_argument("--width", type=int, default=16, help="backbone base width (64: the standard ResNet)")
    parser.add_argument("--iters", type=int, default=400, help="training iterations per run (the budget)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--crop", type=int, default=129)
    parser.add_argument("--size", type=int, default=129, help="SyntheticScenes image side")
    parser.add_argument("--scale", type=float, nargs=2, default=[0.75, 1.25], help="random scale range")
    parser.add_argument("--train-images", type=int, default=600)
    parser.add_argument("--val-images", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.02)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--aux-weights", type=float, nargs="+", default=[0.0, 0.4])
    parser.add_argument("--only", nargs="+", default=None, help="run only these Table 1 variants")
    parser.add_argument("--no-table2", action="store_true", help="skip the aux-weight table")
    parser.add_argument("--quick", action="store_true", help="smaller data for a smoke run")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--out", default=None, help="keep the runs here (default: a temporary folder)")
    parser.add_argument("--json", default=None, help="also write the budget and every run's result to this file")
    parser.add_argument("--merge", action="store_true",
                        help="add these runs to the --json file's (same budget) instead of replacing it")
    args = parser.parse_args(argv)
    known = list(table1_variants(args.layers, args.width))
    unknown = sorted(set(args.only or ()) - set(known))
    if unknown:
        parser.error(f"--only: unknown variants {unknown}; the variants are {known}")
    if args.merge and not (args.json and os.path.exists(args.json)):
        parser.error(f"--merge needs --json naming an existing record, got {args.json!r}")
    if args.quick:
        args.train_images, args.val_images = min(args.train_images, 128), min(args.val_images, 16)

    root = args.out or tempfile.mkdtemp(prefix="minipsp-ablation-")
    variants = table1_variants(args.layers, args.width)
    if args.only:
        variants = {k: v for k, v in variants.items() if k in args.only}
    print(f"budget: PSPNet-{args.layers} (width {args.width}), {args.iters} iterations x batch {args.batch} "
          f"x crop {args.crop}, "
          f"lr {args.lr}, {args.train_images} training / {args.val_images} validation scenes, "
          f"{args.seeds} seeds, device {args.device}")
    start = time.perf_counter()
    table1, table2 = {}, {}
    base = None
    for seed in range(args.seeds):
        for name, changes in variants.items():
            cfg = base_config(args, os.path.join(root, f"{name}-seed{seed}")).replace(seed=seed, **changes)
            result = run_one(cfg)
            table1.setdefault(name, []).append(result)
            print(f"  seed {seed}  {name:<14} mIoU {100 * result['miou']:6.2f}  pixel acc "
                  f"{100 * result['pixel_acc']:6.2f}   ({time.perf_counter() - start:.0f} s)", flush=True)
        if args.no_table2:
            continue
        for weight in args.aux_weights:
            name = f"aux weight {weight:g}"
            if weight == 0.4 and "B1236-AVE+DR" in variants:       # the same run as Table 1's last row
                result = table1["B1236-AVE+DR"][-1]
            else:
                base = base_config(args, os.path.join(root, f"aux{weight:g}-seed{seed}"))
                result = run_one(base.replace(seed=seed, aux_weight=weight, **table1_variants(args.layers, args.width)[
                    "B1236-AVE+DR"]))
            table2.setdefault(name, []).append(result)
            print(f"  seed {seed}  {name:<14} mIoU {100 * result['miou']:6.2f}  pixel acc "
                  f"{100 * result['pixel_acc']:6.2f}   ({time.perf_counter() - start:.0f} s)", flush=True)

    print_table("Table 1: pyramid pooling settings", table1, args.seeds, paper=TABLE1)
    if table2:
        print_table("Table 2: auxiliary loss weight (ours on B1236-AVE+DR, the paper's on the FCN)", table2,
                    args.seeds, paper=table2_paper())
    total = time.perf_counter() - start
    print(f"\ntotal time {total:.0f} s; runs in {root}")
    if args.json:
        keep = ("miou", "pixel_acc", "mean_acc", "iou")
        record = {"budget": {k: v for k, v in vars(args).items() if k not in ("out", "json")},
                  "seconds": round(total),
                  "table1": {name: [{k: r[k] for k in keep} for r in runs] for name, runs in table1.items()},
                  "table2": {name: [{k: r[k] for k in keep} for r in runs] for name, runs in table2.items()}}
        if args.merge:
            record = merge_into(args.json, record)
        with open(args.json, "w") as f:
            json.dump(record, f, indent=1)
    return table1, table2


if __name__ == "__main__":
    main()
