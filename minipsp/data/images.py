"""Reading image and label files with Pillow, so that a bad file is one error naming it, never a wrong array.

    read_rgb(path)        -> (H, W, 3) uint8 RGB       photos: 8-bit as stored, 16-bit scaled to 0..255
    read_label_values(path) -> (H, W) int64            label maps: the stored values, never scaled

What can go wrong, and what happens:
- not an image, truncated or corrupt (JPEG or PNG cut short): ImageFileError naming the file. Pillow
  decodes lazily, so the pixels are decoded here, inside the check, not later inside a transform.
- more pixels than Image.MAX_IMAGE_PIXELS x 2 (a "decompression bomb", a small file that inflates to
  gigabytes): Pillow refuses it before decoding; the error names the file, the size and the limit.
- 16-bit grey (mode I;16 and its byte orders, or I holding 16-bit values, as 16-bit PNGs open):
  `convert("RGB")` would clip every value above 255 to white; photos are scaled by 255 / 65535
  instead. Labels keep their values (a class index is not a brightness).
- 32-bit float (mode F, e.g. a float TIFF): its range is not stated in the file (0..1? 0..255?), so it
  is refused with what to do instead. 32-bit integer photos (mode I beyond 16 bits) likewise.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from minipsp.data.dataset import DatasetError

SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N")
LABEL_MODES = ("L", "P", "I", "F") + SIXTEEN_BIT       # F only to refuse it with a clear reason


class ImageFileError(DatasetError):
    """An image file that cannot be read correctly: the message names it and says why."""


def open_image(path):
    """Image.open and a full decode, with one ImageFileError for every way the file can be bad.

    Returns a loaded PIL image (no file left open)."""
    path = Path(path)
    if path.is_dir():
        raise ImageFileError(f"{path} is a directory; expected an image file")
    if not path.is_file():
        raise FileNotFoundError(f"image file not found: {path}")
    try:
        with warnings.catch_warnings():
            # between 1x and 2x the limit Pillow only warns; treat it like the error above 2x
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                img.load()
                return img
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageFileError(f"{path} is refused as a possible decompression bomb ({exc}); if the image is "
                             "genuine, raise PIL.Image.MAX_IMAGE_PIXELS") from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError) as exc:
        # UnidentifiedImageError is an OSError; a truncated file gives OSError("image file is truncated")
        # or SyntaxError("broken PNG file"); odd headers give the others.
        reason = str(exc) or type(exc).__name__
        raise ImageFileError(f"{path} is not an image file Pillow can read: {reason}") from None


def read_rgb(path) -> np.ndarray:
    """An image file -> (H, W, 3) uint8 RGB; grey, palette, RGBA, CMYK and 16-bit grey are converted."""
    img = open_image(path)
    if img.mode in SIXTEEN_BIT or img.mode == "I":
        grey = np.asarray(img).astype(np.int64)
        if grey.size and (grey.min() < 0 or grey.max() > 65535):
            raise ImageFileError(f"{path} is a 32-bit integer image (mode {img.mode}, values {grey.min()}.."
                                 f"{grey.max()}); expected 8-bit or 16-bit: convert it to 8-bit RGB first")
        scaled = (grey * 255 + 32767) // 65535                             # 0..65535 -> 0..255, rounded
        return np.repeat(scaled.astype(np.uint8)[..., None], 3, axis=2)
    if img.mode == "F":
        raise ImageFileError(f"{path} is a 32-bit float image (mode F), whose range (0..1 or 0..255?) the file "
                             "does not say; expected an 8- or 16-bit image: save it as 8-bit (e.g. scaled to "
                             "0..255) first")
    return np.asarray(img.convert("RGB"))


def read_label_values(path) -> np.ndarray:
    """A single-channel label file (grey or palette indices, 8 or 16 bits) -> (H, W) int64, values as stored."""
    img = open_image(path)
    if img.mode == "F":
        raise ImageFileError(f"label {path} is a 32-bit float image (mode F); expected a single-channel PNG of "
                             "integer class indices (mode L, P or 16-bit)")
    if img.mode not in LABEL_MODES:
        raise ImageFileError(f"label {path} is a {img.mode} image; expected a single-channel PNG of class "
                             "indices (mode L or P), not a colour rendering")
    return np.asarray(img).astype(np.int64)


__all__ = ["ImageFileError", "open_image", "read_label_values", "read_rgb"]
