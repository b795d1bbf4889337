"""Resizing feature maps: `interpolate` (torch.nn.functional.interpolate), bilinear and nearest.

PSPNet upsamples every pyramid level and the final logits bilinearly with align_corners=True;
labels are resized with 'nearest'. The arithmetic is in kernels/interpolate (its docstring has
the formulas for where each output pixel samples the input).
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from minipsp import kernels
from minipsp.autograd.function import Function
from minipsp.nn.functional.dtypes import check_float
from minipsp.tensor import Tensor

__all__ = ["interpolate"]

MODES = ("nearest", "bilinear")


class Bilinear(Function):
    """y = bilinear resize of x (N,C,H,W) to (OH,OW);  dx = dy scattered to the 4 source pixels."""

    @staticmethod
    def forward(ctx, x, size, align_corners, scales):
        ctx.input_size, ctx.align_corners, ctx.scales = x.shape[2:], align_corners, scales
        return kernels.variant("interpolate", x).bilinear_forward(x, size, align_corners, scales)

    @staticmethod
    def backward(ctx, dy):
        k = kernels.variant("interpolate", dy)
        return k.bilinear_backward(dy, ctx.input_size, ctx.align_corners, ctx.scales), None, None, None


class Nearest(Function):
    """y = x at the nearest source pixel;  dx = dy summed over the outputs that copied each pixel."""

    @staticmethod
    def forward(ctx, x, size, scales):
        ctx.input_size, ctx.scales = x.shape[2:], scales
        return kernels.variant("interpolate", x).nearest_forward(x, size, scales)

    @staticmethod
    def backward(ctx, dy):
        k = kernels.variant("interpolate", dy)
        return k.nearest_backward(dy, ctx.input_size, ctx.scales), None, None


def interpolate(input, size=None, scale_factor=None, mode="nearest", align_corners=None,
                recompute_scale_factor=None, antialias=False):
    """Resize a batch of images or feature maps (N,C,H,W) -> (N,C,OH,OW), as torch does.

    size: int or (OH, OW). scale_factor: float or (sh, sw); then OH = floor(H * sh), and the
    sample spacing is 1 / sh (torch's behaviour when recompute_scale_factor is None or False).
    Give exactly one of the two.
    recompute_scale_factor: True samples as if size=(OH, OW) had been given (spacing H / OH), as in
        torch; only with scale_factor.
    antialias: only False (the default) is implemented; it changes nothing when upsampling, which is
        all PSPNet does.
    mode: 'nearest' (torch's default; also works on integer tensors such as label maps) or
        'bilinear'.
    align_corners: bilinear only. True aligns the corner pixels of input and output
        (src = dst * (H-1)/(OH-1)); False or None aligns the pixel areas
        (src = (dst + 0.5) * H/OH - 0.5). PSPNet uses True.
    """
    if not isinstance(input, Tensor):
        raise TypeError(f"interpolate: input must be a Tensor; got {type(input).__name__}")
    if input.ndim != 4:
        raise ValueError(f"interpolate: input must be 4-D (N, C, H, W); got shape {input.shape} "
                         f"({input.ndim}-D)")
    if mode not in MODES:
        raise ValueError(f"interpolate: mode must be one of {MODES}; got {mode!r} "
                         "(minipsp implements only the modes PSPNet uses)")
    if align_corners is not None and mode != "bilinear":
        raise ValueError(f"interpolate: align_corners can only be set with mode 'bilinear'; got mode {mode!r} "
                         f"with align_corners={align_corners!r}")
    if (size is None) == (scale_factor is None):
        raise ValueError("interpolate: give exactly one of size and scale_factor; "
                         f"got size={size!r}, scale_factor={scale_factor!r}")
    if recompute_scale_factor not in (None, False, True):
        raise TypeError(f"interpolate: recompute_scale_factor must be None, False or True; "
                        f"got {recompute_scale_factor!r}")
    if recompute_scale_factor and size is not None:
        raise ValueError("interpolate: recompute_scale_factor is not meaningful with an explicit size "
                         "(as in torch); leave it None, or give scale_factor instead of size")
    if antialias is not False:
        raise NotImplementedError(f"interpolate: only antialias=False is implemented; got antialias={antialias!r}. "
                                  "Write antialias=False (the same result when upsampling), or blur the input "
                                  "before downsampling")
    if input.dtype == np.float16 or input.dtype.kind not in "biuf":
        check_float("interpolate", "input", input.dtype)
    H, W = input.shape[2:]
    if size is not None:
        out_size = _pair("size", size, numbers.Integral)
        if min(out_size) < 1:
            raise ValueError(f"interpolate: size must be positive; got {size!r}")
        scales = None
    else:
        scales = tuple(float(s) for s in _pair("scale_factor", scale_factor, numbers.Real))
        if not all(math.isfinite(s) and s > 0 for s in scales):
            raise ValueError(f"interpolate: scale_factor must be positive and finite (a number or a pair of them); "
                             f"got {scale_factor!r}")
        out_size = (math.floor(H * scales[0]), math.floor(W * scales[1]))
        if min(out_size) < 1:
            raise ValueError(f"interpolate: scale_factor {scale_factor!r} on an input of size {(H, W)} "
                             f"gives an empty output {out_size}")
    if min(H, W) < 1:
        raise ValueError(f"interpolate: input's spatial size must be positive; got {(H, W)}")
    if recompute_scale_factor:
        scales = None  # sample by the sizes, as if size=out_size had been given

    if mode == "nearest":
        return Nearest.apply(input, out_size, scales)
    if input.dtype.kind != "f":
        raise TypeError(f"interpolate: mode 'bilinear' needs a floating-point input; got dtype {input.dtype} "
                        "(use mode 'nearest' for labels, or .float())")
    return Bilinear.apply(input, out_size, bool(align_corners), scales)


def _pair(name, value, kind):
    """An int/float or a sequence of two -> a tuple of two, with a clear error otherwise."""
    if isinstance(value, kind) and not isinstance(value, bool):
        return (value, value)
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(
            isinstance(v, kind) and not isinstance(v, bool) for v in value):
        return tuple(value)
    expected = "an int or a pair of ints" if kind is numbers.Integral else "a number or a pair of numbers"
    raise TypeError(f"interpolate: {name} must be {expected} (for H and W); got {value!r}")
