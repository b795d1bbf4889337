"""Every setting of a training run in one dataclass, with the paper's defaults.

    cfg = TrainConfig()                                  # PSPNet-50, the paper's ADE20K recipe, on SyntheticScenes
    cfg = load_config("my.toml", {"iters": 100})         # a TOML file plus overrides
    cfg.replace(layers=18, crop_size=65)                 # a checked copy

The defaults are the recipe of the paper and of hszhao/semseg: SGD with momentum 0.9, weight decay
1e-4, base LR 0.01 on the backbone and 10x on the new layers (ppm, cls, aux), poly LR with power
0.9, loss = main + 0.4 x aux, random scale 0.5-2.0, rotation +-10 degrees, crop 473.

A TOML file is flat (`layers = 50`) or grouped in tables (`[model] layers = 50`); table names are
only for the reader and are ignored. An unknown key or a bad value raises one `ConfigError` whose
message names the key, the value and what is expected.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import types
import typing
from dataclasses import dataclass


class ConfigError(ValueError):
    """A bad setting: the message names the key, the value it got and what it expects."""


DATASETS = ("synthetic", "ade20k", "voc", "voc_aug", "cityscapes", "list")
# Classes of each dataset kind, for `classes = 0` ("the dataset's own"); a list dataset has to say.
# tests/train/test_runs_and_errors.py checks these against the readers' own num_classes.
DATASET_CLASSES = {"synthetic": 10, "ade20k": 150, "voc": 21, "voc_aug": 21, "cityscapes": 19}


@dataclass
class TrainConfig:
    # -- model (minipsp.models.PSPNet's arguments) -------------------------------------------------
    backbone: str = "resnet"              # "resnet" (the paper's dilated ResNet) or "shallow" (six dilated
                                          # layers, receptive field 131: minipsp.models.shallow, the thesis)
    layers: int = 50                      # ResNet depth of the backbone: 18, 34, 50, 101, 152 (unused by "shallow")
    width: int = 64                       # backbone base width: 64 is ResNet's; 16 or 32 make a narrow laptop net
    classes: int = 0                      # 0: the dataset's own (synthetic 10, ade20k 150, voc/voc_aug 21,
                                          # cityscapes 19); one that does not match the dataset is an error
    bins: tuple = (1, 2, 3, 6)            # pyramid pooling bins (the paper's B1236)
    pooling: str = "avg"                  # "avg" or "max" inside the pyramid (paper: AVE beats MAX)
    use_ppm: bool = True                  # False gives the dilated-FCN baseline of Table 1
    reduction_dim: int | None = None   # PPM branch width (None: in_channels / len(bins))
    aux: bool = True                      # the auxiliary head on layer3 (deep supervision)
    aux_weight: float = 0.4               # loss = main + aux_weight * aux (paper Table 2)
    dropout: float = 0.1
    zoom_factor: int = 8
    deep_stem: bool = True
    init: str = ""                        # a checkpoint (.pth or minipsp) to start from, "" for none
    # -- optimisation ------------------------------------------------------------------------------
    base_lr: float = 0.01
    head_lr_mult: float = 10.0            # ppm, cls and aux learn 10x faster than the backbone
    momentum: float = 0.9
    weight_decay: float = 1e-4
    nesterov: bool = False
    power: float = 0.9                    # poly LR: lr = base * (1 - it / iters) ** power
    iters: int = 1000
    batch_size: int = 8
    # -- data and augmentation ---------------------------------------------------------------------
    data: str = "synthetic"               # "synthetic" or "ade20k:ROOT", "voc:ROOT", "voc_aug:ROOT" (train on
                                          # SBD's train_aug), "cityscapes:ROOT",
                                          # "list:ROOT:TRAIN_LIST:VAL_LIST" (semseg list files)
    synthetic_size: int = 129             # SyntheticScenes image side
    synthetic_train: int = 512            # SyntheticScenes images in the training split
    synthetic_val: int = 64
    synthetic_seed: int = 0               # which scenes (fixed, so runs with different `seed` see the same data)
    crop_size: int = 473                  # (crop_size - 1) must divide by 8
    scale_min: float = 0.5
    scale_max: float = 2.0
    rotate_min: float = -10.0
    rotate_max: float = 10.0
    blur: bool = True
    flip: bool = True
    ignore_index: int = 255
    # -- evaluation --------------------------------------------------------------------------------
    eval_every: int = 0                   # iterations between evaluations during training (0: never)
    eval_mode: str = "whole"              # "whole", "slide" or "multiscale"
    eval_count: int = 0                   # validation images to use (0: all)
    eval_scales: tuple = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)
    eval_flip: bool = True
    base_size: int = 0                    # multiscale: long side at scale 1.0 (0: the image's own)
    # -- the run -----------------------------------------------------------------------------------
    device: str = "cpu"                   # "cpu" or "cuda"
    seed: int = 0
    out: str = "runs/train"
    checkpoint_every: int = 500           # 0: only at the end
    log_every: int = 10
    progress: bool = True                 # show a tqdm bar

    def __post_init__(self):
        validate(self)

    def replace(self, **changes) -> TrainConfig:
        """A copy with `changes` applied, checked like a new config."""
        return from_dict({**to_dict(self), **changes})

    def with_dataset_classes(self) -> TrainConfig:
        """This config with `classes` = 0 replaced by the number of classes of its dataset."""
        if self.classes:
            return self
        if self.dataset not in DATASET_CLASSES:
            raise ConfigError(f"config key 'classes': got 0 (the dataset's own), but a {self.dataset!r} dataset "
                              f"does not say how many classes it has; set it, e.g. --classes 150")
        return self.replace(classes=DATASET_CLASSES[self.dataset])

    @property
    def model_name(self) -> str:
        """How messages name the network: PSPNet-50, or PSPNet-shallow (which has no depth)."""
        return "PSPNet-shallow" if self.backbone == "shallow" else f"PSPNet-{self.layers}"

    @property
    def dataset(self) -> str:
        """The dataset's kind: the part of `data` before the first colon."""
        return self.data.split(":", 1)[0]


_FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
_HINTS = typing.get_type_hints(TrainConfig)


# -- checking ------------------------------------------------------------------------------------------
def _fail(key, value, expected):
    raise ConfigError(f"config key {key!r}: got {value!r}, expected {expected}")


def _is_optional(hint):
    return typing.get_origin(hint) in (typing.Union, types.UnionType)


def _coerce(key, value):
    """Return `value` converted to the field's type, or raise ConfigError."""
    hint = _HINTS[key]
    optional = _is_optional(hint)
    if optional:
        if value is None or value == "none":
            return None
        hint = next(h for h in typing.get_args(hint) if h is not type(None))
    kind = "int or none" if optional and hint is int else None
    if hint is bool:
        if isinstance(value, bool):
            return value
        _fail(key, value, "true or false")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        _fail(key, value, kind or "an integer")
    if hint is float:
        # not inf or nan: a run with them fails late, and TOML cannot even write them back
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
        _fail(key, value, "a finite number")
    if hint is str:
        if isinstance(value, str):
            return value
        _fail(key, value, "a string")
    if hint is tuple:
        if isinstance(value, (list, tuple)) and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value):
            return tuple(value)
        _fail(key, value, "a list of numbers" + (" or none" if optional else ""))
    raise AssertionError(f"no rule for the type of {key}")  # a field added without a rule


def validate(cfg: TrainConfig) -> None:
    """Check types and ranges of every field; raise one ConfigError for the first bad one."""
    for key in _FIELDS:
        object.__setattr__(cfg, key, _coerce(key, getattr(cfg, key)))

    def need(ok, key, expected):
        if not ok:
            _fail(key, getattr(cfg, key), expected)

    need(cfg.backbone in ("resnet", "shallow"), "backbone", "'resnet' or 'shallow'")
    need(cfg.layers in (18, 34, 50, 101, 152), "layers", "one of 18, 34, 50, 101, 152")
    need(cfg.width >= 1, "width", "a positive integer (64 is the standard ResNet)")
    need(cfg.backbone != "shallow" or cfg.width % 2 == 0, "width",
         "an even integer with backbone 'shallow' (its first conv has width / 2 channels)")
    need(cfg.classes >= 0, "classes", "a positive integer, or 0 for the dataset's own number")
    need(len(cfg.bins) >= 1 and all(isinstance(b, int) and b >= 1 for b in cfg.bins), "bins",
         "a non-empty list of positive integers such as [1, 2, 3, 6]")
    need(cfg.pooling in ("avg", "max"), "pooling", "'avg' or 'max'")
    need(cfg.reduction_dim is None or cfg.reduction_dim >= 1, "reduction_dim", "a positive integer or none")
    need(cfg.aux_weight >= 0, "aux_weight", "a number >= 0")
    need(0 <= cfg.dropout < 1, "dropout", "a probability in [0, 1)")
    need(cfg.zoom_factor in (1, 2, 4, 8), "zoom_factor", "one of 1, 2, 4, 8")
    need(cfg.base_lr > 0, "base_lr", "a number > 0")
    need(cfg.head_lr_mult > 0, "head_lr_mult", "a number > 0")
    # 1e308 is finite, but the head's rate, 10 x it, is not: SGD would refuse it with a traceback
    need(math.isfinite(cfg.base_lr * cfg.head_lr_mult), "base_lr", f"a number whose head rate (x head_lr_mult "
                                                                    f"{cfg.head_lr_mult:g}) is finite")
    need(0 <= cfg.momentum < 1, "momentum", "a number in [0, 1)")
    need(cfg.weight_decay >= 0, "weight_decay", "a number >= 0")
    need(not cfg.nesterov or cfg.momentum > 0, "nesterov", "false when momentum is 0 (as in torch.optim.SGD)")
    need(cfg.power > 0, "power", "a number > 0")
    need(cfg.iters >= 1, "iters", "a positive integer")
    # BN in training needs more than one value per channel; the 1x1 pyramid bin sees one per image.
    need(cfg.batch_size >= 2, "batch_size", "an integer >= 2 (batch norm needs two values per channel)")
    need(cfg.dataset in DATASETS, "data",
         "'synthetic' or one of 'ade20k:ROOT', 'voc:ROOT', 'voc_aug:ROOT', 'cityscapes:ROOT', "
         "'list:ROOT:TRAIN_LIST:VAL_LIST'")
    need(cfg.dataset == "synthetic" or len(cfg.data.split(":", 1)) == 2 and cfg.data.split(":", 1)[1],
         "data", f"'{cfg.dataset}:ROOT' (the dataset's folder after the colon)")
    need(cfg.dataset != "list" or len(cfg.data.split(":")) == 4, "data", "'list:ROOT:TRAIN_LIST:VAL_LIST'")
    need(cfg.synthetic_size >= 9, "synthetic_size", "an integer >= 9")
    need(cfg.synthetic_train >= 1, "synthetic_train", "a positive integer")
    need(cfg.synthetic_val >= 1, "synthetic_val", "a positive integer")
    need(0 <= cfg.synthetic_seed < 2**63, "synthetic_seed", "an integer in [0, 2**63)")
    need(cfg.crop_size >= 9 and (cfg.crop_size - 1) % 8 == 0, "crop_size",
         "an integer with (crop_size - 1) divisible by 8, such as 65, 129, 473 or 713")
    need(0 < cfg.scale_min <= cfg.scale_max, "scale_min", f"a number in (0, scale_max={cfg.scale_max}]")
    need(cfg.rotate_min <= cfg.rotate_max, "rotate_min", f"a number <= rotate_max={cfg.rotate_max}")
    need(0 <= cfg.ignore_index, "ignore_index", "an integer >= 0 (255 in the datasets)")
    need(cfg.eval_every >= 0, "eval_every", "an integer >= 0 (0: never)")
    need(cfg.eval_mode in ("whole", "slide", "multiscale"), "eval_mode", "'whole', 'slide' or 'multiscale'")
    need(cfg.eval_count >= 0, "eval_count", "an integer >= 0 (0: all)")
    need(len(cfg.eval_scales) >= 1 and all(s > 0 for s in cfg.eval_scales), "eval_scales",
         "a non-empty list of positive numbers")
    need(cfg.base_size >= 0, "base_size", "an integer >= 0 (0: the image's own size)")
    need(cfg.device in ("cpu", "cuda"), "device", "'cpu' or 'cuda'")
    # Below 2**63: the trainer derives per-rank and per-worker streams from it, all within torch's seed range.
    need(0 <= cfg.seed < 2**63, "seed", "an integer in [0, 2**63)")
    need(cfg.out != "", "out", "a directory path")
    need(cfg.checkpoint_every >= 0, "checkpoint_every", "an integer >= 0 (0: only at the end)")
    need(cfg.log_every >= 1, "log_every", "a positive integer")


# -- reading and writing -------------------------------------------------------------------------------
def _flatten(values) -> dict:
    """{key: value} from a TOML document whose keys may sit in tables ([model], [optim], ...)."""
    if not isinstance(values, dict):
        raise ConfigError(f"a config must be a table of keys and values; got a {type(values).__name__}")
    flat = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(value)
        else:
            flat[key] = value
    return flat


def from_dict(values: dict) -> TrainConfig:
    """A config from a (possibly nested) dict such as a parsed TOML file; unknown keys are errors."""
    flat = _flatten(values)
    for key in flat:
        if key not in _FIELDS:
            close = [k for k in _FIELDS if k.split("_")[0] == key.split("_")[0] or key in k]
            hint = f" (did you mean {', '.join(close[:3])}?)" if close else ""
            raise ConfigError(f"unknown config key {key!r}{hint}")
    return TrainConfig(**flat)


def to_dict(cfg: TrainConfig) -> dict:
    """Plain values (tuples as lists), ready for TOML or JSON."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(cfg).items()}


def _toml_module():
    if sys.version_info >= (3, 11):
        import tomllib
        return tomllib
    try:
        import tomli
    except ImportError:
        raise ConfigError("reading a TOML config on Python 3.10 needs the 'tomli' package "
                          "(pip install tomli), or use Python 3.11+") from None
    return tomli


def read_config_file(path: str) -> dict:
    """The keys and values of a TOML (or .json) config file, not yet checked."""
    if not os.path.isfile(path):
        raise ConfigError(f"config file {path!r} does not exist")
    with open(path, "rb") as f:
        text = f.read()
    try:
        return json.loads(text) if path.endswith(".json") else _toml_module().loads(text.decode())
    except ValueError as exc:   # tomllib.TOMLDecodeError and json.JSONDecodeError are ValueErrors
        raise ConfigError(f"config file {path!r} is not valid {'JSON' if path.endswith('.json') else 'TOML'}:"
                          f" {exc}") from None


def load_config(path: str | None = None, overrides: dict | None = None) -> TrainConfig:
    """Defaults, then the TOML or JSON file at `path` (if given), then `overrides` (a dict)."""
    values = read_config_file(path) if path is not None else {}
    flat = dataclasses.asdict(from_dict(values))
    flat.update(overrides or {})
    return from_dict(flat)


# What a resumed run may change: how long it runs (the poly schedule stretches to the new `iters`), where
# and how often it reports, the device, and the learning rate (`base_lr`: after a NaN stop, resume with a
# lower one, as semseg lets a user do; the trainer scales every group's rate and logs the change).
# check_resumable also lets the dataset's folder move, and ignores `init`. Anything else would make it a
# different run than its checkpoint's, while the restored optimiser, loader and random state would
# silently keep the old one.
RESUMABLE = frozenset({"iters", "device", "out", "progress", "log_every", "checkpoint_every", "eval_every",
                       "eval_mode", "eval_count", "eval_scales", "eval_flip", "base_size", "base_lr"})


def resume_config(saved: dict, path: str | None = None, overrides: dict | None = None) -> TrainConfig:
    """The config of a resumed run: the checkpoint's own (`saved`), then the file, then `overrides`.

    A setting outside RESUMABLE that differs from the checkpoint's raises ConfigError."""
    base = from_dict(saved)
    changes = {**(_flatten(read_config_file(path)) if path else {}), **(overrides or {})}
    cfg = from_dict({**to_dict(base), **changes})
    check_resumable(base, cfg)
    return cfg


def check_resumable(saved: TrainConfig, cfg: TrainConfig) -> None:
    """Raise ConfigError if `cfg` differs from the checkpoint's `saved` config outside RESUMABLE.

    `classes` = 0 means the dataset's own on either side; `data` may point to a moved dataset folder
    as long as the kind (ade20k, voc, ...) stays; `init` does not matter, the checkpoint has the weights."""
    saved, cfg = saved.with_dataset_classes(), cfg.with_dataset_classes()
    for key in _FIELDS:
        if key in RESUMABLE or key == "init":
            continue
        if key == "data" and saved.dataset == cfg.dataset:
            continue
        if getattr(cfg, key) != getattr(saved, key):
            raise ConfigError(f"config key {key!r}: the checkpoint was trained with {getattr(saved, key)!r}, got "
                              f"{getattr(cfg, key)!r}; a resumed run may change only {', '.join(sorted(RESUMABLE))} "
                              f"and the dataset's folder")


def parse_value(key: str, text: str):
    """A command-line string for `key` turned into its field's type (`--set bins=1,2,3,6`)."""
    if key not in _FIELDS:
        raise ConfigError(f"unknown config key {key!r}")
    hint = _HINTS[key]
    if text.lower() in ("none", "null") and _is_optional(hint):
        return None
    base = next((h for h in typing.get_args(hint) if h is not type(None)), hint)
    try:
        if base is bool:
            if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return text.lower() in ("true", "1", "yes")
        if base is int:
            return int(text)
        if base is float:
            return float(text)
        if base is tuple:
            # int where it is one, else float: "5e-1" and "1e3" are numbers too (int() refused them)
            return tuple(_int_or_float(v) for v in text.strip("[]()").split(",") if v.strip())
    except ValueError:
        _fail(key, text, {bool: "true or false", int: "an integer", float: "a number",
                          tuple: "comma-separated numbers"}[base])
    return text


def _int_or_float(text: str):
    try:
        return int(text)
    except ValueError:
        return float(text)


def to_toml(cfg: TrainConfig) -> str:
    """The config as a flat TOML document (what a run directory keeps as config.toml)."""
    lines = []
    for key, value in to_dict(cfg).items():
        if value is None:
            lines.append(f'# {key} = none (unset)')
        else:
            lines.append(f"{key} = {json.dumps(value)}")   # JSON scalars and lists are valid TOML
    return "\n".join(lines) + "\n"


__all__ = ["ConfigError", "TrainConfig", "from_dict", "load_config", "parse_value", "to_dict", "to_toml"]
