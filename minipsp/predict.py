"""Run a trained model on image files: a palette PNG of the classes and an overlay on the photo.

    minipsp predict runs/demo/checkpoint.ckpt street.jpg -o out/
    # out/street_pred.png     one byte per pixel (the class), with a colour palette: opens as a picture
    # out/street_overlay.png  the photo with the class colours blended over it (alpha 0.5)

Inputs that share a name get names that keep them apart (output_names): a/x.jpg and b/x.png give
x_jpg_pred.png and x_png_pred.png; a/x.jpg and b/x.jpg give a_x_jpg_pred.png and b_x_jpg_pred.png.

Images are read with Pillow as RGB, normalised with the ImageNet mean and std (0..255 scale, as in
training) and segmented with `minipsp.evaluate.predict_probs` (whole image, sliding window or multi-scale).
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

import minipsp
from minipsp.backend import to_numpy
from minipsp.config import ConfigError
from minipsp.evaluate import predict_probs


def voc_palette(num_classes: int = 256) -> np.ndarray:
    """PASCAL VOC's colour map: class c gets the colour built from the bits of c. (num_classes, 3) uint8."""
    palette = np.zeros((num_classes, 3), dtype=np.uint8)
    for c in range(num_classes):
        label, r, g, b = c, 0, 0, 0
        for shift in range(7, -1, -1):
            r |= ((label >> 0) & 1) << shift
            g |= ((label >> 1) & 1) << shift
            b |= ((label >> 2) & 1) << shift
            label >>= 3
        palette[c] = (r, g, b)
    return palette


def palette_for(cfg) -> np.ndarray:
    """SyntheticScenes' own colours for its classes, otherwise VOC's colour map."""
    if cfg.dataset == "synthetic":
        from minipsp.data import SyntheticScenes

        palette = np.asarray(SyntheticScenes.palette, dtype=np.uint8).reshape(-1, 3)
        if len(palette) >= cfg.classes:
            return palette
    return voc_palette(max(cfg.classes, 256))


def load_image(path: str) -> np.ndarray:
    """An RGB image as (H, W, 3) uint8 (16-bit grey scaled to 0..255; see minipsp.data.images)."""
    from minipsp.data.images import read_rgb

    return read_rgb(path)


def output_names(paths) -> list:
    """A distinct NAME for each input path, for NAME_pred.png and NAME_overlay.png.

    NAME is the file name without its extension; where inputs share one, the extension is kept
    (x_jpg, x_png), then the parent folders too (a_x_jpg, b_x_jpg), and a number as the last resort
    (the same file given twice)."""
    def name(path, parents, extension):
        stem, ext = os.path.splitext(os.path.basename(path))
        parts = os.path.normpath(os.path.abspath(path)).split(os.sep)[-1 - parents:-1] if parents else []
        return "_".join([p for p in parts if p] + [stem + (("_" + ext.lstrip(".")) if extension and ext else "")])

    names = [name(p, 0, False) for p in paths]
    for parents, extension in ((0, True), (1, True), (2, True), (3, True)):
        # a name shared by different files (the same file given twice only gets a number below)
        clashes = {n for n in names if len({os.path.abspath(p) for p, m in zip(paths, names) if m == n}) > 1}
        names = [name(p, parents, extension) if n in clashes else n for p, n in zip(paths, names)]
    seen = {}
    unique = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        unique.append(n if seen[n] == 1 else f"{n}_{seen[n]}")
    return unique


def normalize(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> (3, H, W) float32 with the training normalisation."""
    from minipsp.train import MEAN, STD

    x = (rgb.astype(np.float32) - np.asarray(MEAN, np.float32)) / np.asarray(STD, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def segment(model, rgb: np.ndarray, num_classes: int, mode="whole", crop_size=473, device="cpu") -> np.ndarray:
    """The class of every pixel of an (H, W, 3) uint8 image: (H, W) int64."""
    image = minipsp.tensor(normalize(rgb), device=device).data
    with model.eval_mode():
        probs = predict_probs(model, image, num_classes, mode=mode, crop_size=crop_size)
    return to_numpy(probs.argmax(axis=0)).astype(np.int64)


def palette_image(pred: np.ndarray, palette: np.ndarray) -> Image.Image:
    """A mode "P" Pillow image: the class indices with their colours attached."""
    im = Image.fromarray(pred.astype(np.uint8), mode="P")
    flat = np.zeros((256, 3), dtype=np.uint8)
    flat[:min(len(palette), 256)] = palette[:256]
    im.putpalette(flat.reshape(-1).tolist())
    return im


def overlay(rgb: np.ndarray, pred: np.ndarray, palette: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """The photo with class colours blended over it: (H, W, 3) uint8."""
    colours = palette[np.clip(pred, 0, len(palette) - 1)].astype(np.float32)
    return (alpha * colours + (1 - alpha) * rgb.astype(np.float32)).round().astype(np.uint8)


def predict_files(cfg, checkpoint_state, paths, out_dir, mode="whole"):
    """Segment each image file; write NAME_pred.png and NAME_overlay.png into out_dir; yield the paths."""
    from minipsp.train import load_trained_model

    cfg = cfg.with_dataset_classes()
    model = load_trained_model(cfg, checkpoint_state)
    palette = palette_for(cfg)
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise ConfigError(f"-o/--output {out_dir!r} is a file; expected a folder for the predictions")
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"-o/--output {out_dir!r}: cannot create the folder ({exc.strerror or exc})") from None
    for path, stem in zip(paths, output_names(paths)):
        rgb = load_image(path)
        pred = segment(model, rgb, cfg.classes, mode=mode, crop_size=cfg.crop_size, device=cfg.device)
        pred_path = os.path.join(out_dir, f"{stem}_pred.png")
        overlay_path = os.path.join(out_dir, f"{stem}_overlay.png")
        palette_image(pred, palette).save(pred_path)
        Image.fromarray(overlay(rgb, pred, palette)).save(overlay_path)
        yield pred_path
        yield overlay_path
