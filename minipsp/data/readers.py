"""Readers for the real datasets PSPNet was trained on, and for hszhao/semseg's list files.

Each is a `Dataset` whose samples are (image H x W x 3 float32 RGB 0..255, label H x W int64), read
with Pillow, with labels already mapped to training ids (0..K-1, and 255 = ignore):

    ADE20K(root, split="train")          ADEChallengeData2016/images|annotations/training|validation
                                         labels 1..150 -> 0..149, 0 ("other") -> 255
    VOCSegmentation(root, split="train", aug=False)
                                         VOC2012 JPEGImages + SegmentationClass (or SegmentationClassAug,
                                         the SBD-augmented set), lists in ImageSets; 255 borders kept
    Cityscapes(root, split="train")      leftImg8bit + gtFine *_labelIds.png -> the 19 train ids
    SemsegList(data_root, list_file)     lines "image_path label_path", relative to data_root

A missing folder or file raises FileNotFoundError naming the path and the layout that was expected;
a file that is not a readable image (truncated, a decompression bomb, a float TIFF) or a label value
that is not a class of the dataset raises DatasetError naming the file (and the value) when the sample
is read (minipsp.data.images says what is converted and what is refused).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from minipsp.data import images
from minipsp.data.dataset import Dataset, DatasetError

IGNORE = 255


def label_table(mapping: dict) -> np.ndarray:
    """A 256-entry lookup table: table[raw] = train id, 255 for every raw value not in `mapping`."""
    table = np.full(256, IGNORE, np.int64)
    for raw, train_id in mapping.items():
        table[raw] = train_id
    return table


# ADE20K (SceneParsing): 0 is "other objects", not a class.
ADE20K_LABEL_MAP = label_table({k: k - 1 for k in range(1, 151)})
# Cityscapes labelIds -> trainIds (cityscapesScripts' labels.py); the 19 evaluated classes.
CITYSCAPES_LABEL_MAP = label_table({7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9,
                                    23: 10, 24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18})


open_image = images.open_image     # a decoded PIL image, or DatasetError naming the file


def read_image(path) -> np.ndarray:
    """An image file -> (H, W, 3) float32 RGB in 0..255 (grey, palette and 16-bit grey are converted)."""
    return images.read_rgb(path).astype(np.float32)


def read_label(path, label_map=None) -> np.ndarray:
    """A single-channel label PNG (grey or palette indices, 8 or 16 bits) -> (H, W) int64, through `label_map`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"label file not found: {path}")
    label = images.read_label_values(path)
    if label_map is not None:
        if label.max() >= len(label_map):
            raise DatasetError(f"label {path} holds value {label.max()}, beyond the {len(label_map)}-entry label map")
        label = label_map[label]
    return label


def check_label_values(label, path, num_classes, ignore_index=IGNORE):
    """Raise DatasetError when `label` holds a value that is neither a class (0..K-1) nor ignore_index."""
    bad = (label != ignore_index) & ((label < 0) | (label >= num_classes))
    if bad.any():
        row, column = np.argwhere(bad)[0]
        raise DatasetError(f"label {path} holds value {label[row, column]} (row {row}, column {column}), but the "
                           f"dataset has {num_classes} classes: expected 0..{num_classes - 1} or {ignore_index} "
                           "(ignore); wrong --classes, or labels not mapped to train ids?")


class SegmentationFiles(Dataset):
    """A list of (image path, label path) pairs, read on demand; the readers below fill the list.

    Each label read is checked against `num_classes` (when known): a value that is neither a class nor
    `ignore_index` is an error naming the file, not a crash later in the loss or the metrics."""

    label_map = None
    num_classes = None
    ignore_index = IGNORE

    def __init__(self, pairs, transform=None, label_map=None, source="the list"):
        self.pairs = list(pairs)
        self.transform = transform
        if label_map is not None:
            self.label_map = np.asarray(label_map, np.int64)
        if not self.pairs:
            raise DatasetError(f"{type(self).__name__}: no samples found in {source}")

    def __len__(self):
        return len(self.pairs)

    def load(self, index):
        image_path, label_path = self.pairs[index]
        image, label = read_image(image_path), read_label(label_path, self.label_map)
        if image.shape[:2] != label.shape:
            raise DatasetError(f"image {image_path} is {image.shape[1]}x{image.shape[0]} but its label "
                             f"{label_path} is {label.shape[1]}x{label.shape[0]}")
        if self.num_classes is not None:
            check_label_values(label, label_path, self.num_classes, self.ignore_index)
        return image, label

    def __repr__(self):
        return f"{type(self).__name__}({len(self)} samples)"


def _require_dir(path: Path, expected: str) -> Path:
    if not path.is_dir():
        raise FileNotFoundError(f"folder not found: {path}\nexpected layout:\n{expected}")
    return path


def _require_file(path: Path, expected: str) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"file not found: {path}\nexpected layout:\n{expected}")
    return path


def _check_split(split, allowed):
    if split not in allowed:
        raise DatasetError(f"split must be one of {sorted(allowed)}; got {split!r}")


ADE20K_LAYOUT = """  ADEChallengeData2016/
    images/training/ADE_train_00000001.jpg ...      images/validation/ADE_val_00000001.jpg ...
    annotations/training/ADE_train_00000001.png ... annotations/validation/ADE_val_00000001.png ..."""


class ADE20K(SegmentationFiles):
    """ADE20K(root, split="train"|"val", transform=None): the 150-class SceneParsing benchmark.

    `root` is the ADEChallengeData2016 folder or the folder that contains it.
    """

    num_classes = 150

    def __init__(self, root, split="train", transform=None):
        _check_split(split, {"train", "val"})
        root = Path(root)
        if (root / "ADEChallengeData2016").is_dir():
            root = root / "ADEChallengeData2016"
        folder = {"train": "training", "val": "validation"}[split]
        images = _require_dir(root / "images" / folder, ADE20K_LAYOUT)
        labels = _require_dir(root / "annotations" / folder, ADE20K_LAYOUT)
        pairs = [(p, labels / (p.stem + ".png")) for p in sorted(images.glob("*.jpg"))]
        for _, label in pairs:
            _require_file(label, ADE20K_LAYOUT)
        super().__init__(pairs, transform, ADE20K_LABEL_MAP, source=f"{images} (*.jpg)")


VOC_LAYOUT = """  VOC2012/  (or VOCdevkit/ holding VOC2012/)
    JPEGImages/2007_000032.jpg ...
    SegmentationClass/2007_000032.png ...            (palette PNGs: 0..20, 255 on object borders)
    ImageSets/Segmentation/train.txt, val.txt, trainval.txt   (one image id per line)
  with aug=True (the SBD-augmented 10,582 training images):
    SegmentationClassAug/2007_000032.png ...         (grey PNGs, same indices)
    ImageSets/SegmentationAug/train_aug.txt          (ids, or "/JPEGImages/x.jpg /SegmentationClassAug/x.png")"""


class VOCSegmentation(SegmentationFiles):
    """VOCSegmentation(root, split="train"|"val"|"trainval", aug=False, list_file=None, transform=None).

    21 classes (background + 20); 255 marks object borders and stays ignored. With `aug=True` the
    labels come from SegmentationClassAug and the list from ImageSets/SegmentationAug/{split}_aug.txt
    (or `list_file`); a list line is an image id, or an "image label" pair of paths relative to root.
    """

    num_classes = 21

    def __init__(self, root, split="train", aug=False, list_file=None, transform=None):
        _check_split(split, {"train", "val", "trainval"})
        root = Path(root)
        if (root / "VOCdevkit").is_dir():
            root = root / "VOCdevkit"
        if (root / "VOC2012").is_dir():
            root = root / "VOC2012"
        image_dir = _require_dir(root / "JPEGImages", VOC_LAYOUT)
        label_dir = _require_dir(root / ("SegmentationClassAug" if aug else "SegmentationClass"), VOC_LAYOUT)
        if list_file is None:
            list_file = (root / "ImageSets" / "SegmentationAug" / f"{split}_aug.txt" if aug
                         else root / "ImageSets" / "Segmentation" / f"{split}.txt")
        lines = _require_file(Path(list_file), VOC_LAYOUT).read_text().split("\n")
        pairs = []
        for number, line in enumerate(lines, 1):
            fields = line.split()
            if len(fields) == 1:
                pairs.append((image_dir / f"{fields[0]}.jpg", label_dir / f"{fields[0]}.png"))
            elif len(fields) == 2:
                pairs.append(tuple(root / f.lstrip("/") for f in fields))
            elif fields:
                raise DatasetError(f"{list_file}, line {number}: expected an image id or 'image label'; got {line!r}")
        super().__init__(pairs, transform, source=str(list_file))


CITYSCAPES_LAYOUT = """  cityscapes/
    leftImg8bit/{train,val,test}/<city>/<city>_000000_000019_leftImg8bit.png ...
    gtFine/{train,val,test}/<city>/<city>_000000_000019_gtFine_labelIds.png ..."""


class Cityscapes(SegmentationFiles):
    """Cityscapes(root, split="train"|"val"|"test", transform=None): fine annotations, 19 train ids."""

    num_classes = 19

    def __init__(self, root, split="train", transform=None):
        _check_split(split, {"train", "val", "test"})
        root = Path(root)
        images = _require_dir(root / "leftImg8bit" / split, CITYSCAPES_LAYOUT)
        labels = _require_dir(root / "gtFine" / split, CITYSCAPES_LAYOUT)
        pairs = []
        for image in sorted(images.glob("*/*_leftImg8bit.png")):
            name = image.name.replace("_leftImg8bit.png", "_gtFine_labelIds.png")
            pairs.append((image, _require_file(labels / image.parent.name / name, CITYSCAPES_LAYOUT)))
        super().__init__(pairs, transform, CITYSCAPES_LABEL_MAP, source=f"{images} (*/*_leftImg8bit.png)")


class SemsegList(SegmentationFiles):
    """SemsegList(data_root, list_file, transform=None, label_map=None): hszhao/semseg's data lists.

    Each line of `list_file` is "image_path label_path", relative to `data_root` (e.g. semseg's
    dataset/ade20k/list/training.txt). Labels are read as stored; pass `label_map` (a 256-entry
    table such as ADE20K_LABEL_MAP) when they still need mapping to train ids, and `num_classes` to
    have every label checked against it (values 0..num_classes-1 or ignore_index) as it is read.
    """

    def __init__(self, data_root, list_file, transform=None, label_map=None, num_classes=None,
                 ignore_index=IGNORE):
        self.num_classes, self.ignore_index = num_classes, ignore_index
        data_root = Path(data_root)
        _require_dir(data_root, "  data_root/ holding the paths named in the list file")
        list_file = Path(list_file)
        lines = _require_file(list_file, '  one sample a line: "image_path label_path" (relative to data_root)')
        pairs = []
        for number, line in enumerate(lines.read_text().split("\n"), 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 2:
                raise DatasetError(f"{list_file}, line {number}: expected 'image_path label_path'; got {line!r}")
            pairs.append((data_root / fields[0], data_root / fields[1]))
        super().__init__(pairs, transform, label_map, source=str(list_file))
        for path in self.pairs[0]:  # a wrong data_root shows here, not at the first training batch
            _require_file(path, f"  {list_file} names paths relative to data_root={data_root}")
