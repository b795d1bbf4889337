"""The paper's thesis with minipsp: a network that cannot see the scene confuses look-alikes; the PPM fixes it.

    python -m benchmarks.thesis                          # 2 seeds x (FCN, FCN + PPM): 3-5 min per model on 2 cores
    python -m benchmarks.thesis --seeds 0 --iters 100    # a smoke run (noisy)
    python -m benchmarks.thesis --seeds 1 --out /tmp/t1 && python -m benchmarks.thesis --merge /tmp/t1/thesis.json
                                                         # seeds in two processes, then one table

Both models are `PSPNet(backbone="shallow")` (minipsp.models.shallow: six conv-BN-ReLU layers, output
stride 8, dilations 2 and 4; theoretical receptive field 131 pixels with the head), one with
`use_ppm=False` (the FCN baseline) and one with the pyramid (bins 1, 2, 3, 6, average pooling, DR).
They train identically on the same SyntheticScenes (129 x 129, where the cue that names the ground and
the vehicles is 40-100 pixels from the pixels it names, docs/synthetic_scenes.md): SGD with momentum
0.9, weight decay 1e-4, poly LR from 0.02, batch 8, random horizontal flips of whole images, no aux
head (a six-layer net has no optimisation trouble for deep supervision to fix), one learning rate for
every layer (nothing is pretrained). The recipe is benchmarks/synthetic_context_check.py's PyTorch toy
(FCN 0.81 vs FCN + PPM 0.89 mIoU), so the two can be compared.

Scored on held-out `val` scenes: mIoU, per-class IoU, and the share of pixels lost to *context
confusions* (a pixel of a look-alike group, water / road / grass or boat / car / tractor, predicted as
another member of the same group: only the scene can tell them apart).

Measured (the committed notebooks/assets/thesis.json, seeds 0-2 run as three processes and merged): FCN 0.762 /
0.760 / 0.774, FCN + PPM 0.823 / 0.828 / 0.838 mIoU; context confusions 5.85% of the pixels -> 0.

Writes (for notebook 08): notebooks/assets/thesis.json (the budget and every run's figures) and, for
seed 0, notebooks/assets/thesis-fcn.mpsp and thesis-ppm.mpsp ({"model": state_dict, "kwargs": PSPNet's
arguments}; about 0.6 MB each).
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

import minipsp
from minipsp.data import DataLoader, SyntheticScenes
from minipsp.data import transforms as T
from minipsp.data.synthetic import CLASSES
from minipsp.metrics import confusion_matrix, metrics_from_confusion
from minipsp.models import PSPNet
from minipsp.optim import SGD, PolyLR

LOOK_ALIKE = {"grounds": (1, 2, 3), "vehicles": (6, 7, 8)}   # water/road/grass, boat/car/tractor
VARIANTS = {"FCN": False, "FCN+PPM": True}                   # name -> use_ppm


def model_kwargs(width, use_ppm):
    return dict(backbone="shallow", width=width, classes=len(CLASSES), use_ppm=use_ppm, aux=False)


def context_confusion(confusion):
    """Share of all labelled pixels whose truth and prediction are two different members of one group."""
    lost = 0
    for group in LOOK_ALIKE.values():
        block = confusion[np.ix_(group, group)]
        lost += block.sum() - np.trace(block)
    return float(lost / confusion.sum())


def predict(model, images, batch=25):
    """Argmax labels (N, H, W) for normalised images (N, 3, H, W), in eval mode."""
    out = []
    with minipsp.no_grad(), model.eval_mode():
        for i in range(0, len(images), batch):
            out.append(model(minipsp.tensor(images[i:i + batch])).numpy().argmax(1))
    return np.concatenate(out)


def val_arrays(count, size):
    val = SyntheticScenes("val", count=count, size=size, seed=0,
                          transform=T.Compose([T.ToTensor(), T.Normalize(T.IMAGENET_MEAN, T.IMAGENET_STD)]))
    images, labels = zip(*(val[i] for i in range(count)))
    return np.stack([np.asarray(getattr(x, "data", x)) for x in images]).astype(np.float32), np.stack(labels)


def train_one(args, use_ppm, seed):
    """Train one model from scratch; return it and its loss curve."""
    minipsp.manual_seed(seed)
    model = PSPNet(**model_kwargs(args.width, use_ppm))
    train = SyntheticScenes("train", count=args.train_images, size=args.size, seed=0,
                            transform=T.Compose([T.RandomHorizontalFlip(), T.ToTensor(),
                                                 T.Normalize(T.IMAGENET_MEAN, T.IMAGENET_STD)]))
    loader = DataLoader(train, batch_size=args.batch, shuffle=True, drop_last=True, seed=seed)
    optimizer = SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=1e-4)
    scheduler = PolyLR(optimizer, max_iter=args.iters, power=0.9)
    model.train()
    curve, it = [], 0
    while it < args.iters:
        for images, labels in loader:
            _, loss, _ = model(minipsp.tensor(images), minipsp.tensor(labels))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            it += 1
            if it % 10 == 0 or it == 1:
                curve.append([it, round(loss.item(), 4)])
            if it == args.iters:
                break
    return model, curve


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--iters", type=int, default=400)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=129)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.02)
    parser.add_argument("--train-images", type=int, default=600)
    parser.add_argument("--val-images", type=int, default=150)
    parser.add_argument("--out", default="notebooks/assets", help="folder for thesis.json and the seed-0 models")
    parser.add_argument("--merge", metavar="JSON", help="add the runs of another thesis.json (same budget) to the one "
                        "in --out, and train nothing")
    args = parser.parse_args(argv)
    if args.merge:
        return merge(os.path.join(args.out, "thesis.json"), args.merge)

    x_val, y_val = val_arrays(args.val_images, args.size)
    budget = {k: getattr(args, k) for k in ("iters", "batch", "size", "width", "lr", "train_images", "val_images")}
    runs = {name: [] for name in VARIANTS}
    os.makedirs(args.out, exist_ok=True)
    start = time.perf_counter()
    for seed in args.seeds:
        for name, use_ppm in VARIANTS.items():       # interleaved, so machine load hits both alike
            t0 = time.perf_counter()
            model, curve = train_one(args, use_ppm, seed)
            seconds = time.perf_counter() - t0
            confusion = confusion_matrix(predict(model, x_val), y_val, len(CLASSES))
            m = metrics_from_confusion(confusion)
            run = {"seed": seed, "miou": float(m["miou"]), "pixel_acc": float(m["pixel_acc"]),
                   "iou": [round(float(v), 4) for v in m["iou"]], "context_confusion": context_confusion(confusion),
                   "confusion": confusion.tolist(), "seconds": round(seconds, 1), "curve": curve}
            runs[name].append(run)
            print(f"seed {seed} {name:8s} mIoU {run['miou']:.3f}  pixel acc {run['pixel_acc']:.3f}  "
                  f"context confusions {100 * run['context_confusion']:.2f}% of pixels  ({seconds:.0f} s)", flush=True)
            if seed == 0:
                file = os.path.join(args.out, f"thesis-{'ppm' if use_ppm else 'fcn'}.mpsp")
                minipsp.save({"model": model.state_dict(), "kwargs": model_kwargs(args.width, use_ppm),
                              "seed": seed, "iters": args.iters}, file)
            # written after every run, so an interrupted benchmark keeps what it measured
            result = {"budget": budget, "seeds": args.seeds, "classes": list(CLASSES), "look_alike": LOOK_ALIKE,
                      "runs": runs, "seconds": round(time.perf_counter() - start, 1)}
            with open(os.path.join(args.out, "thesis.json"), "w") as f:
                json.dump(result, f)
    for name, rs in runs.items():
        mious = [r["miou"] for r in rs]
        print(f"{name:8s} mIoU " + " / ".join(f"{v:.3f}" for v in mious) + f"   mean {np.mean(mious):.3f}")


def merge(into, other):
    """Add the runs of `other` (a thesis.json measured with the same budget) to `into`."""
    with open(into) as f:
        result = json.load(f)
    with open(other) as f:
        extra = json.load(f)
    if extra["budget"] != result["budget"]:
        raise SystemExit(f"--merge: {other} was measured with another budget: {extra['budget']} vs {result['budget']}")
    for name, runs in extra["runs"].items():
        known = {r["seed"] for r in result["runs"][name]}
        result["runs"][name] += [r for r in runs if r["seed"] not in known]
        result["runs"][name].sort(key=lambda r: r["seed"])
    result["seeds"] = sorted({r["seed"] for runs in result["runs"].values() for r in runs})
    result["seconds"] = round(result["seconds"] + extra["seconds"], 1)
    with open(into, "w") as f:
        json.dump(result, f)
    print(f"{into}: seeds {result['seeds']}")


if __name__ == "__main__":
    main()
