"""The practitioner's path on real files: train, evaluate and predict from an ADE20K-layout folder of
JPEG images and PNG label maps (written here, 48 x 40 pixels), all through the `minipsp` command line."""

import json

import numpy as np
from PIL import Image

from minipsp.cli import main

SIDES = (48, 40)  # width, height: not square, and larger than the 33 x 33 crop, so the crop really crops


def write_ade20k(root, split, names, rng):
    """Images with two coloured halves; labels 1 (left) and 2 (right), a strip of 0 ("other") at the top."""
    folder = "training" if split == "train" else "validation"
    for name in names:
        w, h = SIDES
        split_at = int(rng.integers(16, 32))
        image = np.zeros((h, w, 3), np.uint8)
        image[:, :split_at] = (200, 60, 40)
        image[:, split_at:] = (40, 90, 210)
        label = np.where(np.arange(w)[None, :] < split_at, 1, 2).repeat(h, 0).astype(np.uint8)
        label[:3] = 0
        (root / "images" / folder).mkdir(parents=True, exist_ok=True)
        (root / "annotations" / folder).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(root / "images" / folder / f"{name}.jpg", quality=95)
        Image.fromarray(label).save(root / "annotations" / folder / f"{name}.png")


def test_train_eval_predict_on_an_ade20k_folder(tmp_path, capsys):
    rng = np.random.default_rng(0)
    root = tmp_path / "ADEChallengeData2016"
    write_ade20k(root, "train", [f"ADE_train_{i:08d}" for i in range(1, 5)], rng)
    write_ade20k(root, "val", [f"ADE_val_{i:08d}" for i in range(1, 3)], rng)
    out = tmp_path / "run"

    assert main(["train", "--data", f"ade20k:{root}", "--classes", "150", "--layers", "18", "--width", "8",
                 "--crop-size", "33", "--batch-size", "2", "--iters", "2", "--out", str(out), "--no-progress",
                 "--set", "eval_every=2", "--set", "checkpoint_every=0"]) == 0
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    evaluation = [row["eval"] for row in log if "eval" in row][-1]
    assert len(evaluation["iou"]) == 150
    # ADE20K's label 0 ("other") is ignored and labels 1, 2 become classes 0, 1: only they have pixels
    assert evaluation["target"][0] > 0 and evaluation["target"][1] > 0 and sum(evaluation["target"][2:]) == 0
    assert sum(evaluation["target"]) == 2 * (SIDES[1] - 3) * SIDES[0]

    capsys.readouterr()
    assert main(["eval", str(out / "checkpoint.mpsp"), "--data", f"ade20k:{root}", "--mode", "slide",
                 "--no-progress"]) == 0
    assert "mIoU" in capsys.readouterr().out

    photo = root / "images" / "validation" / "ADE_val_00000001.jpg"
    assert main(["predict", str(out / "checkpoint.mpsp"), str(photo), "-o", str(tmp_path / "pred")]) == 0
    pred = Image.open(tmp_path / "pred" / "ADE_val_00000001_pred.png")
    assert pred.size == SIDES and np.asarray(pred).max() < 150
