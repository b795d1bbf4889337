"""`make demo`: train a small PSPNet on SyntheticScenes on the CPU, evaluate it, draw the curves.

    python -m minipsp.demo                  # about 60 s of training on 2 cores
    python -m minipsp.demo --iters 60       # quicker, learns less

What it does, with the same pieces the `minipsp` command uses:
  1. a PSPNet with a ResNet-18 backbone (deep stem, dilated to output stride 8, PPM bins 1, 2, 3, 6,
     aux head), trained from scratch on 65 x 65 crops of the built-in SyntheticScenes: SGD with
     momentum 0.9, poly LR, head at 10x, loss = main + 0.4 x aux;
  2. evaluation on the validation scenes (whole image): mIoU, mean class accuracy, pixel accuracy,
     next to what always answering the most common class would score;
  3. runs/demo/curves.png (loss, learning rate, mIoU) and runs/demo/predictions.png.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from minipsp.config import TrainConfig
from minipsp.metrics import SegmentationMetrics


def demo_config(**changes) -> TrainConfig:
    from minipsp.data import SyntheticScenes

    values = dict(layers=18, classes=SyntheticScenes.num_classes, data="synthetic", synthetic_size=65,
                  synthetic_train=400, synthetic_val=24, crop_size=49, scale_min=0.75, scale_max=1.5,
                  batch_size=8, iters=120, base_lr=0.01, eval_every=40, eval_mode="whole",
                  checkpoint_every=40, log_every=1, out="runs/demo", seed=0)
    values.update(changes)
    return TrainConfig(**values)


def majority_baseline(dataset, classes):
    """Scores of predicting the most common class everywhere: what 'learning nothing' looks like."""
    labels = [np.asarray(dataset[i][1]) for i in range(len(dataset))]
    counts = np.bincount(np.concatenate([lab[lab != 255] for lab in labels]), minlength=classes)
    metrics = SegmentationMetrics(classes)
    for lab in labels:
        metrics.update(np.full_like(lab, counts.argmax()), lab)
    return metrics.compute()


def main(argv=None):
    parser = argparse.ArgumentParser(description="Train a small PSPNet on SyntheticScenes and evaluate it.")
    parser.add_argument("--iters", type=int, default=None)
    parser.add_argument("--out", default=None)
    parser.add_argument("--device", default=None, choices=["cpu", "cuda"])
    args = parser.parse_args(argv)
    changes = {k: v for k, v in (("iters", args.iters), ("out", args.out), ("device", args.device)) if v}
    cfg = demo_config(**changes)
    if args.iters:
        cfg = cfg.replace(eval_every=max(1, args.iters // 3), checkpoint_every=max(1, args.iters // 3))

    from minipsp.plot import plot_run
    from minipsp.train import Trainer, build_dataset, val_transform

    start = time.perf_counter()
    print(f"PSPNet-{cfg.layers} on SyntheticScenes ({cfg.classes} classes, {cfg.synthetic_train} training scenes "
          f"of {cfg.synthetic_size} px), {cfg.iters} iterations of batch {cfg.batch_size}, crop {cfg.crop_size}, "
          f"device {cfg.device}")
    trainer = Trainer(cfg, overwrite=True)   # `make demo` again starts afresh
    summary = trainer.run()
    train_time = time.perf_counter() - start
    result = summary["eval"]
    chance = majority_baseline(build_dataset(cfg, "val", val_transform()), cfg.classes)
    written = plot_run(cfg.out, count=4)
    total = time.perf_counter() - start
    print(f"\ntrained in {train_time:.0f} s; total with evaluation and plots {total:.0f} s")
    print(f"validation ({cfg.synthetic_val} scenes, whole image):")
    print(f"  mIoU           {result['miou']:.3f}   (most-common-class baseline {chance['miou']:.3f})")
    print(f"  mean accuracy  {result['mean_acc']:.3f}   (baseline {chance['mean_acc']:.3f})")
    print(f"  pixel accuracy {result['pixel_acc']:.3f}   (baseline {chance['pixel_acc']:.3f})")
    print("wrote " + ", ".join(written) + f", {summary['checkpoint']}")
    print(f"next: minipsp predict {summary['checkpoint']} IMAGE.png -o predictions/   (or minipsp eval ...)")
    return result


if __name__ == "__main__":
    main()
