"""How much memory a config needs, estimated from its shapes before anything is allocated.

    check_training_fits(cfg)     # raises ConfigError naming the estimate and what the machine has
    check_model_fits(cfg)        # the weights alone (eval, predict)

`--width 100000000` or `--crop-size 100001` would otherwise be found out by the operating system's
OOM killer (no message at all) or by a MemoryError deep inside a kernel. The estimate is a lower
bound, so it never refuses a config that fits:

    weights      P float32 numbers, P counted from the layer shapes (convs and the classifiers)
    training     3 P  (weights, gradients, SGD momentum)
               + N x A  activations: every conv's output (C x H x W at its stride) and the input,
                 each counted once, though backward also keeps batch norm's and ReLU's outputs
               + N x 2 K H W  the main and aux logits, upsampled to the crop

The shallow backbone (`backbone = "shallow"`) is counted from its own six convs, not a ResNet's.
The estimate is compared with the memory available now: MemAvailable from /proc/meminfo (or the pages
sysconf reports), lowered to a cgroup's limit when the process runs in one; on the GPU, CUDA's
free memory. Where neither can be read nothing is refused.
"""

from __future__ import annotations

import os

from minipsp.config import ConfigError

BLOCKS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}
BYTES = 4                                  # float32


def _shallow_parameter_count(cfg) -> int:
    """minipsp.models.shallow's six 3x3 convs (widths w/2, w, w, 2w, 2w, 2w) and PSPNet's heads on them."""
    w = cfg.width
    count = 9 * (3 * w // 2 + w // 2 * w + w * w + w * 2 * w + 2 * (2 * w) ** 2)
    features = 2 * w
    if cfg.use_ppm:
        reduction = cfg.reduction_dim or max(features // len(cfg.bins), 1)
        count += len(cfg.bins) * features * reduction
        features += len(cfg.bins) * reduction
    classes = cfg.classes or 1
    count += 9 * features * w + w * classes                               # cls: hidden width w
    if cfg.aux:
        count += 9 * 2 * w * (w // 2) + w // 2 * classes                  # aux: hidden width w / 2
    return count


def _shallow_activation_count(cfg) -> int:
    w, side = cfg.width, cfg.crop_size
    at = {stride: (-(-side // stride)) ** 2 for stride in (2, 4, 8)}
    count = 3 * side * side + (w // 2 + w) * at[2] + w * at[4] + 3 * 2 * w * at[8]   # input, the six convs
    count += w * at[8]                                                   # the head's 3x3 conv
    if cfg.use_ppm:
        reduction = cfg.reduction_dim or max(2 * w // len(cfg.bins), 1)
        count += sum(reduction * b * b for b in cfg.bins)
    count += (2 if cfg.aux else 1) * (cfg.classes or 1) * side * side
    return count


def parameter_count(cfg) -> int:
    """The convolution and classifier weights of PSPNet as `cfg` describes it (BN's few are left out)."""
    if getattr(cfg, "backbone", "resnet") == "shallow":
        return _shallow_parameter_count(cfg)
    w, bottleneck = cfg.width, cfg.layers >= 50
    expansion = 4 if bottleneck else 1
    count = 9 * (3 * w + w * w + w * 2 * w) if cfg.deep_stem else 49 * 3 * w
    inplanes = 2 * w if cfg.deep_stem else w
    for stage, blocks in enumerate(BLOCKS[cfg.layers]):
        planes = w * 2 ** stage
        for block in range(blocks):
            if bottleneck:
                count += inplanes * planes + 9 * planes * planes + planes * planes * expansion
            else:
                count += 9 * inplanes * planes + 9 * planes * planes
            if block == 0 and inplanes != planes * expansion or block == 0 and stage > 0:
                count += inplanes * planes * expansion                    # the downsample 1x1
            inplanes = planes * expansion
    features = 8 * w * expansion
    if cfg.use_ppm:
        reduction = cfg.reduction_dim or max(features // len(cfg.bins), 1)
        count += len(cfg.bins) * features * reduction
        features += len(cfg.bins) * reduction
    classes = cfg.classes or 1
    count += 9 * features * 8 * w + 8 * w * classes
    if cfg.aux:
        count += 9 * 4 * w * expansion * 4 * w + 4 * w * classes
    return count


def activation_count(cfg) -> int:
    """Numbers kept for backward per image of crop_size x crop_size (a lower bound; see the docstring)."""
    if getattr(cfg, "backbone", "resnet") == "shallow":
        return _shallow_activation_count(cfg)
    w, bottleneck = cfg.width, cfg.layers >= 50
    expansion = 4 if bottleneck else 1
    side = cfg.crop_size
    at = {stride: (-(-side // stride)) ** 2 for stride in (2, 4, 8)}      # pixels at each stride
    count = 3 * side * side                                              # the input
    count += (4 * w if cfg.deep_stem else w) * at[2]                     # the stem's convs
    for stage, blocks in enumerate(BLOCKS[cfg.layers]):
        planes = w * 2 ** stage
        per_block = planes * (2 + expansion) if bottleneck else 2 * planes
        count += blocks * per_block * at[4 if stage == 0 else 8]          # stages 2-4 stay at stride 8
    count += 8 * w * at[8]                                               # the head's 3x3 conv
    if cfg.use_ppm:      # each bin's pooled map: bins=1,2,3,1000000 would pool to 10^12 cells per channel
        reduction = cfg.reduction_dim or max(8 * w * expansion // len(cfg.bins), 1)
        count += sum(reduction * b * b for b in cfg.bins)
    count += (2 if cfg.aux else 1) * (cfg.classes or 1) * side * side     # logits upsampled to the crop
    return count


def training_bytes(cfg) -> int:
    return BYTES * (3 * parameter_count(cfg) + cfg.batch_size * activation_count(cfg))


def model_bytes(cfg) -> int:
    return BYTES * parameter_count(cfg)


def _cgroup_room():
    """Bytes left under a cgroup v2 memory limit, or None."""
    try:
        with open("/sys/fs/cgroup/memory.max") as f:
            limit = f.read().strip()
        with open("/sys/fs/cgroup/memory.current") as f:
            used = int(f.read())
    except (OSError, ValueError):
        return None
    return None if limit == "max" else max(int(limit) - used, 0)


def available_bytes(device="cpu"):
    """Memory available to this process now, in bytes, or None when it cannot be read."""
    if device == "cuda":
        try:
            import cupy

            return int(cupy.cuda.runtime.memGetInfo()[0])
        except Exception:           # no CuPy or no GPU: require_cuda reports that, not this check
            return None
    room = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    room = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    if room is None:
        try:
            room = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return None
    cgroup = _cgroup_room()
    return room if cgroup is None else min(room, cgroup)


def human(n: float) -> str:
    n = min(n, 10**307)     # an int beyond a float (eval_scales=1e300, squared): "at least" holds for the bound
    for unit in ("bytes", "KB", "MB", "GB", "TB", "PB", "EB"):
        if n < 1000 or unit == "EB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}" if n < 1000 else f"{n:.3g} {unit}"
        n /= 1000
    return f"{n:.3g} ZB"


def _refuse(cfg, what, needed, available):
    shape = f", batch {cfg.batch_size} of {cfg.crop_size} x {cfg.crop_size} crops" if what == "a training step" else ""
    # the classes too: --classes 10**9 alone makes the head's logits too big, and the advice must name it
    side = -(-cfg.crop_size // 8)           # the feature map's side, which the pyramid's bins divide
    bins = (f", or the pyramid's bins {list(cfg.bins)} (--set bins=...: {max(cfg.bins)} bins on a {side} x {side} "
            f"feature map)" if shape and cfg.use_ppm and max(cfg.bins) > side else "")
    raise ConfigError(f"{what} of {cfg.model_name} at width {cfg.width}, {cfg.classes} classes{shape} needs at "
                      f"least {human(needed)}, but {cfg.device} has {human(available)} available; lower --width, "
                      + ("--classes, --batch-size or --crop-size" if shape else "--classes") + bins)


def check_training_fits(cfg, available=None) -> None:
    """Raise ConfigError when a training step of `cfg` cannot fit in the memory available."""
    available = available_bytes(cfg.device) if available is None else available
    needed = training_bytes(cfg)
    if available is not None and needed > available:
        _refuse(cfg, "a training step", needed, available)


def check_model_fits(cfg, available=None) -> None:
    """Raise ConfigError when the weights of `cfg`'s model alone cannot fit."""
    available = available_bytes(cfg.device) if available is None else available
    needed = model_bytes(cfg)
    if available is not None and needed > available:
        _refuse(cfg, "the weights", needed, available)


__all__ = ["check_model_fits", "check_training_fits", "parameter_count", "training_bytes"]
