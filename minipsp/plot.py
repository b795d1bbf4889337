"""Pictures of a training run, drawn with matplotlib (Agg backend: no display needed).

    minipsp plot runs/demo
    # runs/demo/curves.png       loss (total, main, aux), learning rate and validation mIoU by iteration
    # runs/demo/predictions.png  validation images: picture | ground truth | prediction
"""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from minipsp.train import read_log  # noqa: E402


def plot_curves(run_dir: str, path: str | None = None) -> str:
    """Loss, LR and (if the run evaluated) mIoU against the iteration, side by side; returns the PNG path."""
    records, evals = read_log(run_dir)
    if not records:
        raise FileNotFoundError(f"the log of {run_dir!r} has no training records yet")
    it = [r["iter"] for r in records]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    axes[0].plot(it, [r["loss"] for r in records], label="loss = main + w * aux")
    axes[0].plot(it, [r["main"] for r in records], label="main", alpha=0.7)
    axes[0].plot(it, [r["aux"] for r in records], label="aux", alpha=0.7)
    axes[0].set(title="training loss", xlabel="iteration")
    axes[0].legend()
    axes[1].plot(it, [r["lr"] for r in records])
    axes[1].set(title="learning rate (backbone; head x10)", xlabel="iteration")
    if evals:
        axes[2].plot([e["iter"] for e in evals], [e["eval"]["miou"] for e in evals], "o-", label="mIoU")
        axes[2].plot([e["iter"] for e in evals], [e["eval"]["pixel_acc"] for e in evals], "s--",
                     label="pixel accuracy")
        axes[2].legend()
    else:
        axes[2].text(0.5, 0.5, "no evaluation in this run\n(set eval_every)", ha="center", va="center")
    axes[2].set(title="validation", xlabel="iteration", ylim=(0, 1))
    fig.tight_layout()
    path = path or os.path.join(run_dir, "curves.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def denormalize(image: np.ndarray) -> np.ndarray:
    """A normalised (3, H, W) float image back to (H, W, 3) uint8 for display."""
    from minipsp.train import MEAN, STD

    rgb = image.transpose(1, 2, 0) * np.asarray(STD) + np.asarray(MEAN)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def colorize(label: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """(H, W) class indices -> (H, W, 3) colours; ignored pixels (255) in white."""
    out = np.full(label.shape + (3,), 255, dtype=np.uint8)
    known = label < len(palette)
    out[known] = palette[label[known]]
    return out


def plot_predictions(model, dataset, palette, count=6, path="predictions.png", mode="whole", crop_size=473,
                     num_classes=None) -> str:
    """A grid with one row per validation image: picture | ground truth | prediction."""
    from minipsp.evaluate import predict_probs

    num_classes = num_classes or len(palette)
    count = min(count, len(dataset))
    device = next(iter(model.parameters())).device
    fig, axes = plt.subplots(count, 3, figsize=(7.5, 2.5 * count), squeeze=False)
    with model.eval_mode():
        for row in range(count):
            image, label = dataset[row]
            image, label = np.asarray(image, dtype=np.float32), np.asarray(label)
            import minipsp

            x = minipsp.tensor(image, device=device).data
            pred = minipsp.backend.to_numpy(predict_probs(model, x, num_classes, mode, crop_size).argmax(axis=0))
            for col, (picture, title) in enumerate([(denormalize(image), "image"),
                                                    (colorize(label, palette), "ground truth"),
                                                    (colorize(pred, palette), "prediction")]):
                axes[row, col].imshow(picture)
                axes[row, col].set_axis_off()
                if row == 0:
                    axes[row, col].set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_run(run_dir: str, count: int = 6) -> list:
    """curves.png, and predictions.png when the run has a checkpoint; returns the paths written.

    A checkpoint that is damaged or not a training checkpoint raises one ConfigError (curves.png is
    written before)."""
    from minipsp.config import from_dict
    from minipsp.predict import palette_for
    from minipsp.run_folder import read_training_checkpoint
    from minipsp.train import CHECKPOINT, build_dataset, build_model, val_transform

    if count < 0:
        raise ValueError(f"plot_run: count must be >= 0 (validation images in the grid); got {count}")
    written = [plot_curves(run_dir)]
    checkpoint = os.path.join(run_dir, CHECKPOINT)
    if count > 0 and os.path.exists(checkpoint):
        state = read_training_checkpoint(checkpoint)
        cfg = from_dict(state["config"])
        model = build_model(cfg.replace(init=""))
        model.load_state_dict(state["model"])
        dataset = build_dataset(cfg, "val", val_transform())
        written.append(plot_predictions(model, dataset, palette_for(cfg), count,
                                        os.path.join(run_dir, "predictions.png"), crop_size=cfg.crop_size,
                                        num_classes=cfg.classes))
    return written
