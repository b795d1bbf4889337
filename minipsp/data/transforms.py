"""Paired (image, label) transforms: PSPNet's augmentation, in hszhao/semseg's order and parameters.

    train = Compose([RandScale(0.5, 2.0), RandRotate((-10, 10)), RandomGaussianBlur(),
                     RandomHorizontalFlip(), Crop(473, crop_type="rand"), ToTensor(), Normalize()])
    image, label = train(image, label)          # image HxWx3 RGB 0..255, label HxW int

Geometric transforms move image and label together: the image is resampled bilinearly, the label
with nearest neighbour (a class index must never be averaged); where new pixels appear (rotation
corners, crop padding) the image gets the ImageNet mean and the label `ignore_label` (255), so they
count neither in the loss nor in the metrics.

Every transform is called as `t(image, label, rng=None)`. Random choices come from `rng` (a
`numpy.random.Generator`) when given — the DataLoader passes one seeded by (seed, epoch, index) —
or else from the transform's own generator, seeded by its `seed` argument, so results are
reproducible either way. Images may be uint8 or float32 (the readers give float32); outputs of the
geometric transforms are float32 images and int64 labels.
"""

from __future__ import annotations

import numbers

import numpy as np
from PIL import Image

# ImageNet statistics on the 0..255 scale (semseg's value_scale = 255).
IMAGENET_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)   # (123.675, 116.28, 103.53)
IMAGENET_STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)    # (58.395, 57.12, 57.375)


class Transform:
    """Base: `__call__(image, label, rng=None)`; `self.rng` is the transform's own seeded generator."""

    def __init__(self, seed: int = 0):
        self.rng = np.random.default_rng(seed)

    def _rng(self, rng):
        return self.rng if rng is None else rng


class Compose:
    """Apply transforms in order, passing the same generator down (semseg's `Compose`)."""

    def __init__(self, transforms, seed: int = 0):
        self.transforms = list(transforms)
        self.rng = np.random.default_rng(seed)

    def __call__(self, image, label, rng=None):
        rng = self.rng if rng is None else rng
        for t in self.transforms:
            image, label = t(image, label, rng=rng)
        return image, label

    def __repr__(self):
        return "Compose([\n" + "".join(f"    {t!r},\n" for t in self.transforms) + "])"


# -- resampling helpers: Pillow does the interpolation, one channel at a time in float32 -----------
def _check_pair(image, label, where):
    image, label = np.asarray(image), np.asarray(label)
    if image.ndim != 3 or label.ndim != 2 or image.shape[:2] != label.shape:
        raise ValueError(f"{where}: expected image (H, W, C) and label (H, W) of the same H, W; got image "
                         f"{image.shape} and label {label.shape}")
    return image, label


def _resize_image(image, width, height):
    channels = [Image.fromarray(np.ascontiguousarray(image[:, :, c], dtype=np.float32))
                .resize((width, height), Image.BILINEAR) for c in range(image.shape[2])]
    return np.stack([np.asarray(c) for c in channels], axis=2)


def _resize_label(label, width, height):
    out = Image.fromarray(label.astype(np.int32)).resize((width, height), Image.NEAREST)
    return np.asarray(out).astype(np.int64)


def _padding_values(padding, channels, where):
    if padding is None:
        raise ValueError(f"{where}: padding is needed (the image must grow) but padding=None; pass the "
                         "mean colour, e.g. padding=IMAGENET_MEAN")
    values = [float(padding)] * channels if isinstance(padding, numbers.Number) else [float(v) for v in padding]
    if len(values) != channels:
        raise ValueError(f"{where}: padding has {len(values)} values but the image has {channels} channels")
    return values


def _as_size(size, where):
    if isinstance(size, numbers.Integral):
        size = (size, size)
    if len(size) != 2 or not all(isinstance(s, numbers.Integral) and s > 0 for s in size):
        raise ValueError(f"{where}: size must be an int > 0 or (height, width); got {size!r}")
    return int(size[0]), int(size[1])


# -- the transforms, in the order semseg applies them -------------------------------------------
class RandScale(Transform):
    """Resize by a factor s ~ U(scale): (H, W) -> (round(s * H), round(s * W)).

    With `aspect_ratio=(lo, hi)` the height and width factors are s / sqrt(a) and s * sqrt(a), a ~ U(lo, hi).
    """

    def __init__(self, scale=(0.5, 2.0), aspect_ratio=None, seed=0):
        super().__init__(seed)
        if len(scale) != 2 or not 0 < scale[0] <= scale[1]:
            raise ValueError(f"RandScale: scale must be (low, high) with 0 < low <= high; got {scale!r}")
        self.scale, self.aspect_ratio = tuple(scale), aspect_ratio

    def __call__(self, image, label, rng=None):
        image, label = _check_pair(image, label, "RandScale")
        rng = self._rng(rng)
        s = self.scale[0] + (self.scale[1] - self.scale[0]) * rng.random()
        aspect = 1.0
        if self.aspect_ratio is not None:
            lo, hi = self.aspect_ratio
            aspect = np.sqrt(lo + (hi - lo) * rng.random())
        h, w = label.shape
        height, width = max(1, round(h * s / aspect)), max(1, round(w * s * aspect))
        if height * width > 2 * Image.MAX_IMAGE_PIXELS:    # scale_max=1e300: PIL's OverflowError, or a MemoryError
            from minipsp.data.dataset import DatasetError

            raise DatasetError(f"RandScale: a scale of {s:.3g} makes a {h} x {w} image {height:.3g} x {width:.3g} "
                               f"pixels, more than PIL's limit of {2 * Image.MAX_IMAGE_PIXELS:,} (2 x "
                               f"Image.MAX_IMAGE_PIXELS); lower the scale range {self.scale} (config keys scale_min "
                               f"and scale_max; semseg's is 0.5 to 2)")
        return _resize_image(image, width, height), _resize_label(label, width, height)

    def __repr__(self):
        return f"RandScale(scale={self.scale}, aspect_ratio={self.aspect_ratio})"


class RandRotate(Transform):
    """With probability p, rotate by an angle ~ U(rotate) degrees (counter-clockwise) about the centre.

    The size is kept; corners are filled with `padding` (image) and `ignore_label` (label).
    """

    def __init__(self, rotate=(-10, 10), padding=IMAGENET_MEAN, ignore_label=255, p=0.5, seed=0):
        super().__init__(seed)
        if len(rotate) != 2 or rotate[0] > rotate[1]:
            raise ValueError(f"RandRotate: rotate must be (low, high) degrees with low <= high; got {rotate!r}")
        self.rotate, self.padding, self.ignore_label, self.p = tuple(rotate), padding, ignore_label, p

    def __call__(self, image, label, rng=None):
        image, label = _check_pair(image, label, "RandRotate")
        rng = self._rng(rng)
        if rng.random() >= self.p:
            return image, label
        angle = self.rotate[0] + (self.rotate[1] - self.rotate[0]) * rng.random()
        fill = _padding_values(self.padding, image.shape[2], "RandRotate")
        channels = [np.asarray(Image.fromarray(np.ascontiguousarray(image[:, :, c], dtype=np.float32))
                               .rotate(angle, resample=Image.BILINEAR, fillcolor=fill[c]))
                    for c in range(image.shape[2])]
        label = Image.fromarray(label.astype(np.int32)).rotate(
            angle, resample=Image.NEAREST, fillcolor=int(self.ignore_label))
        return np.stack(channels, axis=2), np.asarray(label).astype(np.int64)

    def __repr__(self):
        return f"RandRotate(rotate={self.rotate}, ignore_label={self.ignore_label}, p={self.p})"


def gaussian_kernel1d(ksize: int) -> np.ndarray:
    """OpenCV's getGaussianKernel(ksize, sigma=0): fixed tables for 1, 3, 5, 7 taps, else a Gaussian
    with sigma = 0.3 * ((ksize - 1) / 2 - 1) + 0.8."""
    tables = {1: [1.0], 3: [0.25, 0.5, 0.25], 5: [0.0625, 0.25, 0.375, 0.25, 0.0625],
              7: [0.03125, 0.109375, 0.21875, 0.28125, 0.21875, 0.109375, 0.03125]}
    if ksize in tables:
        return np.array(tables[ksize])
    sigma = 0.3 * ((ksize - 1) * 0.5 - 1) + 0.8
    x = np.arange(ksize) - (ksize - 1) / 2
    kernel = np.exp(-x * x / (2 * sigma * sigma))
    return kernel / kernel.sum()


class RandomGaussianBlur(Transform):
    """With probability p, blur the image (not the label) with a radius x radius Gaussian.

    semseg calls cv2.GaussianBlur(image, (5, 5), 0): a separable [1, 4, 6, 4, 1] / 16 filter with
    mirrored borders (BORDER_REFLECT_101, which is NumPy's mode="reflect"). Same here, in NumPy.
    """

    def __init__(self, radius=5, p=0.5, seed=0):
        super().__init__(seed)
        if not isinstance(radius, numbers.Integral) or radius < 1 or radius % 2 == 0:
            raise ValueError(f"RandomGaussianBlur: radius must be an odd int >= 1; got {radius!r}")
        self.radius, self.p = int(radius), p

    def __call__(self, image, label, rng=None):
        image, label = _check_pair(image, label, "RandomGaussianBlur")
        if self._rng(rng).random() >= self.p:
            return image, label
        kernel, r = gaussian_kernel1d(self.radius), self.radius // 2
        h, w = label.shape
        x = np.pad(image.astype(np.float32), ((r, r), (r, r), (0, 0)), mode="reflect" if min(h, w) > r else "edge")
        x = sum(k * x[i:i + h] for i, k in enumerate(kernel))            # along H: (H, W + 2r, C)
        x = sum(k * x[:, i:i + w] for i, k in enumerate(kernel))         # along W: (H, W, C)
        return x.astype(np.float32), label

    def __repr__(self):
        return f"RandomGaussianBlur(radius={self.radius}, p={self.p})"


class RandomHorizontalFlip(Transform):
    """With probability p, mirror image and label left-right."""

    def __init__(self, p=0.5, seed=0):
        super().__init__(seed)
        self.p = p

    def __call__(self, image, label, rng=None):
        image, label = _check_pair(image, label, "RandomHorizontalFlip")
        if self._rng(rng).random() >= self.p:
            return image, label
        return np.ascontiguousarray(image[:, ::-1]), np.ascontiguousarray(label[:, ::-1])

    def __repr__(self):
        return f"RandomHorizontalFlip(p={self.p})"


class Crop(Transform):
    """Cut a (crop_h, crop_w) window: random ("rand") or centred ("center").

    A side shorter than the crop is first padded equally on both sides (the extra pixel at the
    bottom / right), the image with `padding`, the label with `ignore_label`, as semseg does.
    """

    def __init__(self, size, crop_type="center", padding=IMAGENET_MEAN, ignore_label=255, seed=0):
        super().__init__(seed)
        self.size = _as_size(size, "Crop")
        if crop_type not in ("center", "rand"):
            raise ValueError(f"Crop: crop_type must be 'center' or 'rand'; got {crop_type!r}")
        self.crop_type, self.padding, self.ignore_label = crop_type, padding, ignore_label

    def __call__(self, image, label, rng=None):
        image, label = _check_pair(image, label, "Crop")
        crop_h, crop_w = self.size
        h, w = label.shape
        pad_h, pad_w = max(crop_h - h, 0), max(crop_w - w, 0)
        if pad_h or pad_w:
            fill = _padding_values(self.padding, image.shape[2], "Crop")
            top, left = pad_h // 2, pad_w // 2
            padded = np.empty((h + pad_h, w + pad_w, image.shape[2]), np.float32)
            padded[:] = np.asarray(fill, np.float32)
            padded[top:top + h, left:left + w] = image
            padded_label = np.full((h + pad_h, w + pad_w), self.ignore_label, np.int64)
            padded_label[top:top + h, left:left + w] = label
            image, label, (h, w) = padded, padded_label, padded_label.shape
        if self.crop_type == "rand":
            rng = self._rng(rng)
            top, left = int(rng.integers(0, h - crop_h + 1)), int(rng.integers(0, w - crop_w + 1))
        else:
            top, left = (h - crop_h) // 2, (w - crop_w) // 2
        return (np.ascontiguousarray(image[top:top + crop_h, left:left + crop_w]),
                np.ascontiguousarray(label[top:top + crop_h, left:left + crop_w]).astype(np.int64))

    def __repr__(self):
        return f"Crop(size={self.size}, crop_type={self.crop_type!r}, ignore_label={self.ignore_label})"


class Resize(Transform):
    """Resize to `size` ((height, width) or an int for a square): image bilinear, label nearest."""

    def __init__(self, size):
        super().__init__()
        self.size = _as_size(size, "Resize")

    def __call__(self, image, label, rng=None):
        image, label = _check_pair(image, label, "Resize")
        height, width = self.size
        return _resize_image(image, width, height), _resize_label(label, width, height)

    def __repr__(self):
        return f"Resize(size={self.size})"


class ToTensor(Transform):
    """image (H, W, C) -> (C, H, W) float32; label (H, W) -> int64. (Arrays, not Tensors: the DataLoader
    stacks them and the training loop wraps the batch.)"""

    def __call__(self, image, label, rng=None):
        image, label = _check_pair(image, label, "ToTensor")
        return np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32), label.astype(np.int64)

    def __repr__(self):
        return "ToTensor()"


class Normalize(Transform):
    """image (C, H, W): (image - mean[c]) / std[c]. Defaults: ImageNet statistics on the 0..255 scale."""

    def __init__(self, mean=IMAGENET_MEAN, std=IMAGENET_STD):
        super().__init__()
        if len(mean) != len(std) or any(s <= 0 for s in std):
            raise ValueError(f"Normalize: mean and std need one value per channel, std > 0; got mean={mean!r}, "
                             f"std={std!r}")
        self.mean = np.asarray(mean, np.float32)[:, None, None]
        self.std = np.asarray(std, np.float32)[:, None, None]

    def __call__(self, image, label, rng=None):
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[0] != len(self.mean):
            raise ValueError(f"Normalize expects a (C, H, W) image with C = {len(self.mean)}; got shape "
                             f"{image.shape} (apply ToTensor first)")
        return ((image - self.mean) / self.std).astype(np.float32), label

    def __repr__(self):
        return f"Normalize(mean={self.mean.ravel().tolist()}, std={self.std.ravel().tolist()})"
