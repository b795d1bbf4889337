"""Train PSPNet: the loop of hszhao/semseg's train.py, with a run directory and exact resume.

    from minipsp.config import TrainConfig
    from minipsp.train import train
    summary = train(TrainConfig(layers=18, width=16, crop_size=65, iters=200, out="runs/tiny"))
    # classes: the dataset's own (10 for the default SyntheticScenes); again into runs/tiny: overwrite=True

One iteration:  logits, main, aux = model(x, y)          (cross entropy, ignore 255, on the upsampled logits)
                loss = main + aux_weight * aux            (the paper's deep supervision, weight 0.4)
                loss.backward(); optimizer.step()         (SGD, momentum 0.9, weight decay 1e-4)
                scheduler.step()                          (poly: lr = base * (1 - it / iters) ** 0.9)
The backbone (layer0..layer4) learns at base_lr, the new layers (ppm, cls, aux) at 10 x base_lr.

The run directory `cfg.out` holds
    config.toml        the resolved config (every setting, defaults included)
    log.jsonl          one JSON object per logged iteration: iter, loss, main, aux, lr, its (it/s);
                       and {"iter", "eval": {...}} lines for the periodic evaluations
    checkpoint.mpsp    model, optimizer, scheduler, iteration, RNG and data-loader state, config
                       (written atomically every checkpoint_every iterations and at the end)
Resuming (`train(cfg, resume=True)`) reloads checkpoint.mpsp and continues; because every source of
randomness is restored, the loss trace is the one an uninterrupted run would have written. `cfg` must
be the checkpoint's config, changed at most in config.RESUMABLE (iters, base_lr, device, out, logging and
evaluation); `config.resume_config(saved, overrides=...)` builds one from the saved config.
A NaN or inf loss stops the run (TrainingDiverged, naming the iteration) before the step that would
spoil the weights; the checkpoint on disk is the last good one, and a resume may lower the learning
rate (`base_lr` is resumable: the change is logged as {"iter", "change": {"base_lr": [old, new]}}).

Under `mpiexec -n N` (minipsp.distributed) every rank runs this loop on its share of each batch:
`batch_size` is the global batch, each rank takes batch_size / N images (a DistributedSampler
shard), the model is wrapped in DistributedDataParallel with SyncBatchNorm (sync_bn=False: each
rank's own statistics), the logged losses are the means over ranks, and rank 0 alone writes the log,
the checkpoints and the config. The loader's position counts global batches, so a checkpoint from N
ranks resumes on M (docs/distributed.md).

The run directory is locked while a Trainer uses it (minipsp.run_folder: a second run on it is refused
with the holder's PID) and stale temporary checkpoint files of a killed run are removed. Ctrl-C and
SIGTERM stop the run as an Interrupted error that says which checkpoint is left; a disk that fills up
is a RunFolderError and the previous checkpoint stays intact. A config whose training step cannot fit
in memory is refused before anything is allocated (minipsp.memory).
"""

from __future__ import annotations

import json
import math
import os
import pickle
import time
import warnings
import zipfile

import numpy as np

import minipsp
import minipsp.random
from minipsp import data as D
from minipsp import distributed, memory, run_folder
from minipsp.config import ConfigError, TrainConfig, check_resumable, from_dict, to_dict, to_toml
from minipsp.data import transforms as T
from minipsp.models import PSPNet
from minipsp.nn import parallel
from minipsp.optim import SGD, PolyLR

MEAN, STD = T.IMAGENET_MEAN, T.IMAGENET_STD     # (123.675, 116.28, 103.53), (58.395, 57.12, 57.375): semseg's
CHECKPOINT = "checkpoint.mpsp"


class TrainingDiverged(RuntimeError):
    """The loss became NaN or inf; the message names the iteration."""


# -- building the pieces ---------------------------------------------------------------------------------
def build_model(cfg: TrainConfig):
    """PSPNet (or, with use_ppm=False, the dilated-FCN baseline) as the config describes."""
    cfg = cfg.with_dataset_classes()
    kwargs = dict(layers=cfg.layers, bins=cfg.bins, classes=cfg.classes, zoom_factor=cfg.zoom_factor,
                  use_ppm=cfg.use_ppm, pooling=cfg.pooling, reduction_dim=cfg.reduction_dim,
                  dropout=cfg.dropout, aux=cfg.aux, deep_stem=cfg.deep_stem,
                  width=cfg.width, backbone=cfg.backbone)
    memory.check_model_fits(cfg)          # --width 100000000 is refused here, not by the OOM killer
    model = PSPNet(**kwargs)
    if cfg.init:
        load_init(model, cfg)
    return model.to(cfg.device)


def load_init(model, cfg: TrainConfig) -> tuple:
    """Load the start-from checkpoint `cfg.init` into `model` where names and shapes match.

    Returns (tensors loaded, tensors of the model). A file that is not a checkpoint, one whose tensors
    have other shapes (another width, depth or number of classes), or one none of whose names match
    the model's (another network) raises ConfigError; a partial match warns with the counts."""
    path = cfg.init
    if os.path.isdir(path):
        raise ConfigError(f"config key 'init': got {path!r}, a directory; expected a checkpoint file (.pth or .mpsp)")
    if not os.path.isfile(path):
        raise ConfigError(f"config key 'init': got {path!r}, expected an existing checkpoint file")
    try:
        state = model_state(minipsp.load(path))
    except (ValueError, OSError, EOFError, KeyError, IndexError, TypeError, AttributeError, RecursionError,
            pickle.UnpicklingError, zipfile.BadZipFile) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"config key 'init': cannot read checkpoint {path!r}: {detail}") from None
    own = model.state_dict()
    shared = [k for k in own if k in state]
    if not shared:
        raise ConfigError(f"config key 'init': none of the {len(state)} tensors of {path!r} (e.g. "
                          f"{next(iter(state), '-')!r}) is named like one of {cfg.model_name}'s {len(own)} (e.g. "
                          f"{next(iter(own))!r}); expected a checkpoint of this network (minipsp or semseg)")
    misshaped = [k for k in shared if tuple(np.shape(state[k])) != tuple(own[k].shape)]
    if misshaped:
        k = misshaped[0]
        raise ConfigError(f"config key 'init': {len(misshaped)} tensors of {path!r} have other shapes than "
                          f"{cfg.model_name} at width {cfg.width} with {cfg.classes} classes (e.g. {k}: "
                          f"{tuple(np.shape(state[k]))} vs {tuple(own[k].shape)}); pass the settings it was "
                          "trained with (--width, --layers, --classes, --set backbone=...)")
    model.load_state_dict({k: state[k] for k in shared}, strict=False)
    if len(shared) < len(own):
        warnings.warn(f"init: loaded {len(shared)} of the model's {len(own)} tensors from {path}; the other "
                      f"{len(own) - len(shared)} (e.g. {next(k for k in own if k not in state)}) keep their "
                      "random start", stacklevel=2)
    return len(shared), len(own)


def model_state(checkpoint):
    """The model's state_dict inside any checkpoint: ours ({"model": ...}), semseg's ({"state_dict":
    ...} with "module." prefixes) or a bare state_dict."""
    state = checkpoint
    if isinstance(state, dict) and "model" in state:
        state = state["model"]
    elif isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}


def load_trained_model(cfg: TrainConfig, checkpoint, source="the checkpoint"):
    """The model `cfg` describes, with the weights of `checkpoint` (any form model_state reads).

    A checkpoint made for another network (depth, width, classes, pyramid) raises one ConfigError
    that says which settings to pass, instead of a list of hundreds of mismatched keys."""
    cfg = cfg.with_dataset_classes()
    model = build_model(cfg.replace(init=""))
    try:
        model.load_state_dict(model_state(checkpoint))
    except (RuntimeError, KeyError, AttributeError) as exc:
        if isinstance(exc, RuntimeError) and not str(exc).startswith("Error(s) in loading state_dict"):
            raise                        # not a mismatch (e.g. a CUDA error): keep its own message
        detail = str(exc).replace("\n", " ")
        detail = detail if len(detail) < 300 else detail[:300] + " ..."
        raise ConfigError(f"{source} does not fit {cfg.model_name} with width {cfg.width}, {cfg.classes} classes, "
                          f"bins {list(cfg.bins)}, use_ppm {cfg.use_ppm}: {detail}. Pass the settings it was trained "
                          f"with (--layers, --classes, --width, --set backbone=..., --set ...)") from None
    return model


def train_transform(cfg: TrainConfig):
    """semseg's training augmentation: scale, rotate, blur, flip, crop, normalise."""
    steps = [T.RandScale((cfg.scale_min, cfg.scale_max))]
    if cfg.rotate_min != 0 or cfg.rotate_max != 0:
        steps.append(T.RandRotate((cfg.rotate_min, cfg.rotate_max), padding=MEAN, ignore_label=cfg.ignore_index))
    if cfg.blur:
        steps.append(T.RandomGaussianBlur())
    if cfg.flip:
        steps.append(T.RandomHorizontalFlip())
    steps += [T.Crop(cfg.crop_size, crop_type="rand", padding=MEAN, ignore_label=cfg.ignore_index),
              T.ToTensor(), T.Normalize(mean=MEAN, std=STD)]
    return T.Compose(steps)


def val_transform():
    return T.Compose([T.ToTensor(), T.Normalize(mean=MEAN, std=STD)])


def build_dataset(cfg: TrainConfig, split: str, transform):
    """The dataset named by cfg.data for split "train" or "val"."""
    if cfg.dataset == "synthetic":
        count = cfg.synthetic_train if split == "train" else cfg.synthetic_val
        return D.SyntheticScenes(split=split, count=count, size=cfg.synthetic_size, seed=cfg.synthetic_seed,
                                 transform=transform)
    parts = cfg.data.split(":")
    root = parts[1]
    if not os.path.isdir(root):
        raise ConfigError(f"config key 'data': the folder {root!r} does not exist")
    if cfg.dataset == "ade20k":
        return D.ADE20K(root, split=split, transform=transform)
    if cfg.dataset in ("voc", "voc_aug"):
        # voc_aug trains on SBD's 10,582-image train_aug list, as semseg does; both validate on VOC's val
        aug = cfg.dataset == "voc_aug" and split == "train"
        return D.VOCSegmentation(root, split=split, aug=aug, transform=transform)
    if cfg.dataset == "cityscapes":
        return D.Cityscapes(root, split=split, transform=transform)
    list_file = parts[2] if split == "train" else parts[3]
    if not os.path.isfile(list_file):
        raise ConfigError(f"config key 'data': the list file {list_file!r} does not exist")
    # every label read is checked against the classes (a 50 among 10 classes is an error naming the file)
    return D.SemsegList(root, list_file, transform=transform, num_classes=cfg.with_dataset_classes().classes,
                        ignore_index=cfg.ignore_index)


def param_groups(model, cfg: TrainConfig):
    """Two groups: the backbone at base_lr, the new layers (ppm, cls, aux) at head_lr_mult x base_lr."""
    backbone, head = model.parameter_groups()
    groups = [{"params": backbone, "lr": cfg.base_lr}]
    if head:
        groups.append({"params": head, "lr": cfg.base_lr * cfg.head_lr_mult})
    return groups


def build_optimizer(model, cfg: TrainConfig):
    optimizer = SGD(param_groups(model, cfg), lr=cfg.base_lr, momentum=cfg.momentum,
                    weight_decay=cfg.weight_decay, nesterov=cfg.nesterov)
    return optimizer, PolyLR(optimizer, max_iter=cfg.iters, power=cfg.power)


# -- the run ---------------------------------------------------------------------------------------------
class Trainer:
    """Owns the model, optimiser, scheduler, loader and run directory of one training run."""

    def __init__(self, cfg: TrainConfig, resume: bool = False, overwrite: bool = False, sync_bn: bool = True):
        distributed.init_process_group()        # under mpiexec: this process's place in the world; else a world of 1
        self.sync_bn = sync_bn
        if resume and overwrite:
            raise ConfigError("resume (--resume) and overwrite (--overwrite) contradict each other: continue the run "
                              "in --out, or start it again from scratch; pass one of them")
        if resume and not os.path.exists(os.path.join(cfg.out, CHECKPOINT)):
            raise ConfigError(f"cannot resume: no checkpoint at {os.path.join(cfg.out, CHECKPOINT)!r}")
        # made, locked against a second run (on rank 0, which writes), stale temporary files removed
        self.folder = run_folder.RunFolder(cfg.out).open(lock=distributed.is_main_process())
        try:
            self._build(cfg, resume, overwrite)
        except BaseException:
            self.folder.close(discard=True)
            raise

    def _build(self, cfg: TrainConfig, resume: bool, overwrite: bool):
        self.cfg = cfg = cfg.with_dataset_classes()
        if cfg.device == "cuda":
            minipsp.backend.require_cuda()
            if distributed.get_world_size() > 1:
                distributed.use_local_gpu()       # each rank its own GPU: local rank % device count
        memory.check_training_fits(cfg)       # before the dataset and the model allocate anything
        self.path = os.path.join(cfg.out, CHECKPOINT)
        self.log_path = os.path.join(cfg.out, "log.jsonl")
        self.resumed, self.saved_iteration = resume, None
        self.labelled_batches = self.batches = 0
        if not resume and not overwrite and os.path.exists(self.path):
            raise ConfigError(f"{cfg.out!r} already holds a run ({self.path}); resume it (--resume), choose another "
                              f"--out, or start it again from scratch (--overwrite)")
        self.train_set = build_dataset(cfg, "train", train_transform(cfg))   # first: a bad path fails fast
        state = None
        if resume:
            state = run_folder.read_training_checkpoint(self.path)
            # the checkpoint's own config, with cfg's changes allowed only where they keep it the same run
            check_resumable(from_dict(state["config"]), cfg)
            if cfg.iters < state["iteration"]:
                raise ConfigError(f"config key 'iters': got {cfg.iters}, but the checkpoint is already at iteration "
                                  f"{state['iteration']}; a resumed run can only go on")
        dataset_classes = getattr(self.train_set, "num_classes", None)
        # (not checked on resume: the checkpoint's head is what it is, and check_resumable kept it)
        if not resume and dataset_classes is not None and cfg.classes != dataset_classes:
            raise ConfigError(f"config key 'classes': got {cfg.classes}, but {cfg.dataset} has {dataset_classes} "
                              f"classes; set classes = {dataset_classes} (or 0, the dataset's own)")
        os.makedirs(cfg.out, exist_ok=True)
        if len(self.train_set) < cfg.batch_size:
            raise ConfigError(f"config key 'batch_size': got {cfg.batch_size}, but the training set has only "
                              f"{len(self.train_set)} images")
        self.rank, self.world = distributed.get_rank(), distributed.get_world_size()
        if cfg.batch_size % self.world:
            raise ConfigError(f"config key 'batch_size': got {cfg.batch_size}, the global batch, which {self.world} "
                              f"ranks must share equally; expected a multiple of {self.world}")
        # each rank's local batch j is its share of the one-process batch j: positions are the same on any world
        sampler = D.DistributedSampler(self.train_set, shuffle=True, seed=cfg.seed, drop_last=True) \
            if self.world > 1 else None
        self.loader = D.DataLoader(self.train_set, batch_size=cfg.batch_size // self.world, shuffle=sampler is None,
                                   drop_last=True, seed=cfg.seed, sampler=sampler)
        minipsp.manual_seed(cfg.seed)
        self.model = build_model(cfg.replace(init="") if resume else cfg)   # resuming: the checkpoint has the weights
        self.net = parallel.data_parallel(self.model, self.sync_bn) if self.world > 1 else self.model
        parallel.seed_ranks(cfg.seed)       # a world > 1: each rank its own dropout masks (the weights are drawn)
        self.optimizer, self.scheduler = build_optimizer(self.model, cfg)
        self.val_set = None
        self.iteration = 0
        if resume:
            self._restore(state)
        else:
            # a new run (overwrite): nothing of an older run in this folder may be mistaken for this one's
            if os.path.exists(self.path) and self.rank == 0:
                os.remove(self.path)
            if self.rank == 0:
                with open(self.log_path, "w"):
                    pass
        if self.rank == 0:
            with open(os.path.join(cfg.out, "config.toml"), "w") as f:
                f.write(to_toml(cfg))
        # which world trained from here: any world > 1, and a resume on another world size than the checkpoint's
        # (its "rng" holds one state per rank), so that a 2-rank run resumed on 1 rank says so in its log
        saved_world = len(state["rng"]) if resume and isinstance(state["rng"], list) else 1
        if self.world > 1 or (resume and saved_world != self.world):
            self._log({"iter": self.iteration, "world": {"ranks": self.world, "sync_bn": self.sync_bn}})

    # -- checkpoints -----------------------------------------------------------------------------
    def state(self) -> dict:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "iteration": self.iteration,
                "rng": parallel.gather_rng_states(), "loader": self.loader.state_dict(),
                "config": to_dict(self.cfg)}

    def save(self):
        """Write the checkpoint atomically (a temporary file renamed over the old one), if it is sound.

        A finite loss does not prove finite weights: an SGD step can overflow, and batch norm's running
        statistics are updated in the forward pass. A checkpoint with inf or nan in it is never written,
        so the one on disk stays the last good one."""
        state = self.state()
        for name, value in state["model"].items():
            array = minipsp.backend.to_numpy(value)
            if array.dtype.kind == "f" and not np.isfinite(array).all():
                raise TrainingDiverged(f"{name} is not finite at iteration {self.iteration}; training stopped and "
                                       f"this state was not saved. {self._lower_lr_advice()}")
        # Ctrl-C or SIGTERM waits for the write and its note: a stop between os.replace and the note (the
        # directory's fsync) would name the previous iteration, one before mkstemp's file is removed would leave it
        with run_folder.signals_deferred():
            try:
                if self.rank == 0:          # the ranks' states are equal; rank 0 writes
                    minipsp.save(state, self.path)
            except OSError as exc:       # disk full, quota, folder removed: minipsp.save leaves the old file whole
                kept = (f"the previous checkpoint (iteration {self.saved_iteration}) is intact" if
                        self.saved_iteration is not None else "no checkpoint was written before")
                raise run_folder.RunFolderError(f"cannot write the checkpoint {self.path} at iteration "
                                                f"{self.iteration} ({exc.strerror or exc}); {kept}") from None
            self.saved_iteration = self.iteration

    def _lower_lr_advice(self) -> str:
        """Which learning rate was used (the likely cause), and a command that goes on with a lower one: from
        the last good checkpoint, or, when none was written yet, from the start with the run's own config."""
        cfg = self.cfg
        # a tenth, but never above the default (0.01, semseg's): a tenth of an absurd --lr 1e30 is absurd too
        lower = min(cfg.base_lr / 10, TrainConfig.base_lr)
        rate = (f"--lr {cfg.base_lr:g}, the base_lr of the backbone; the head trains at "
                f"{cfg.base_lr * cfg.head_lr_mult:g}")
        # settings that scale the loss or the step, set far above their defaults: suspects as much as the rate
        unusual = [key for key in ("head_lr_mult", "aux_weight", "weight_decay")
                   if getattr(cfg, key) > 10 * getattr(TrainConfig, key)]
        config = os.path.join(cfg.out, "config.toml")
        if unusual:         # they cannot change on a resume: a new run, with them at their defaults
            settings = "; ".join(f"{key} = {getattr(cfg, key):g}, default {getattr(TrainConfig, key):g}"
                                 for key in unusual)
            sets = " ".join(f"--set {key}={getattr(TrainConfig, key):g}" for key in unusual)
            overwrite = " --overwrite" if self.saved_iteration is not None else ""
            return (f"The learning rate ({rate}) or a setting far above its default ({settings}) is the likely "
                    f"cause; start again with those at their defaults and a lower learning rate: minipsp train "
                    f"{config} --lr {lower:g} {sets}{overwrite}")
        cause = f"The learning rate is the likely cause ({rate})"
        if self.saved_iteration is None:
            return (f"{cause}. No checkpoint was written before it; start again with a lower learning rate: "
                    f"minipsp train {config} --lr {lower:g}")
        return (f"{cause}. The last good checkpoint is {self.path}; resume from it with a lower learning rate: "
                f"minipsp train --out {cfg.out} --resume --lr {lower:g}")

    def _restore(self, state):
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        # The schedule runs to this run's iters: a resumed run may be longer or shorter than the saved one.
        # A new base_lr (after a NaN stop, say) scales every group's base rate; the poly decay goes on.
        saved_lr = from_dict(state["config"]).base_lr
        scale = self.cfg.base_lr / saved_lr
        self.scheduler.load_state_dict({**state["scheduler"], "max_iter": self.cfg.iters,
                                        "base_lrs": [lr * scale for lr in state["scheduler"]["base_lrs"]]})
        self.loader.load_state_dict(state["loader"])
        parallel.restore_rng_states(state["rng"], self.cfg.seed, state["iteration"])
        self.iteration = state["iteration"]
        # Forget log lines written after the checkpoint: the resumed run writes them again.
        kept = []
        if self.rank == 0 and os.path.exists(self.log_path):
            with open(self.log_path) as f:
                kept = [line for line, record in _parsed_lines(f) if record["iter"] <= self.iteration]
        if self.rank == 0:
            with open(self.log_path, "w") as f:
                f.writelines(kept)
        self.saved_iteration = self.iteration
        if saved_lr != self.cfg.base_lr:
            self._log({"iter": self.iteration, "change": {"base_lr": [saved_lr, self.cfg.base_lr]}})

    def _log(self, record):
        if self.rank != 0:
            return
        try:
            with open(self.log_path, "a") as f:
                f.write(json.dumps(record) + "\n")
        except OSError as exc:
            raise run_folder.RunFolderError(f"cannot write the log {self.log_path} at iteration {self.iteration} "
                                            f"({exc.strerror or exc})") from None

    # -- evaluation ------------------------------------------------------------------------------
    def evaluate(self):
        from minipsp.evaluate import evaluate

        if self.val_set is None:
            self.val_set = build_dataset(self.cfg, "val", val_transform())
        cfg = self.cfg
        result = evaluate(self.model, self.val_set, cfg.classes, mode=cfg.eval_mode, crop_size=cfg.crop_size,
                          scales=cfg.eval_scales, base_size=cfg.base_size, flip=cfg.eval_flip if
                          cfg.eval_mode == "multiscale" else False, ignore_index=cfg.ignore_index,
                          count=cfg.eval_count, progress=False)
        return {k: (v.tolist() if isinstance(v, np.ndarray) else float(v)) for k, v in result.items()}

    # -- training --------------------------------------------------------------------------------
    def _check_labelled(self, labels):
        """Count the batches with at least one labelled pixel; warn at the first without any.

        A batch whose every pixel is ignore_index has loss 0 and teaches nothing: labels that were not
        mapped to 0..K-1 (all above the classes) look exactly like that, a whole run long."""
        self.batches += 1
        if bool((np.asarray(labels) != self.cfg.ignore_index).any()):
            self.labelled_batches += 1
        elif self.batches - self.labelled_batches == 1:
            warnings.warn(f"iteration {self.iteration + 1}: no pixel of this batch is labelled (all are "
                          f"{self.cfg.ignore_index}, ignore), so its loss is 0; are the labels' values classes "
                          f"0..{self.cfg.classes - 1}?", stacklevel=2)

    def step(self, images, labels) -> dict:
        """One iteration on a batch: forward, both losses, backward, SGD step, LR for the next one."""
        cfg = self.cfg
        self._check_labelled(labels)
        x = minipsp.tensor(images, device=cfg.device)
        y = minipsp.tensor(labels, device=cfg.device)
        lr = self.optimizer.param_groups[0]["lr"]
        _, main_loss, aux_loss = self.net(x, y)
        loss = main_loss + cfg.aux_weight * aux_loss if cfg.aux and aux_loss is not None else main_loss
        has_aux = cfg.aux and aux_loss is not None
        # the means over ranks (the global batch's losses), the same on every rank: all stop together on a NaN
        value, main_value, aux_value = distributed.average([loss.item(), main_loss.item(),
                                                            aux_loss.item() if has_aux else 0.0])
        if not math.isfinite(value):
            raise TrainingDiverged(f"the loss is {value} at iteration {self.iteration + 1}; training stopped. "
                                   f"{self._lower_lr_advice()}")
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        self.iteration += 1
        return {"iter": self.iteration, "loss": value, "main": main_value, "aux": aux_value, "lr": lr}

    def run(self) -> dict:
        """Train from self.iteration to cfg.iters; return the last log record and the final evaluation."""
        from tqdm import tqdm

        cfg = self.cfg
        if self.resumed and self.iteration >= cfg.iters:
            return self._finished()
        self.model.train()
        bar = tqdm(total=cfg.iters, initial=self.iteration, desc="train", disable=not cfg.progress or self.rank != 0,
                   dynamic_ncols=True)
        record, result = {}, None
        start, start_iter = time.perf_counter(), self.iteration
        try:
            while self.iteration < cfg.iters:
                for images, labels in self.loader:
                    # NumPy's overflow warnings (a too-high --lr) would only precede the one line that the
                    # checks say it with: a non-finite loss stops the run, non-finite weights are never saved
                    with np.errstate(over="ignore", invalid="ignore"):
                        record = self.step(images, labels)
                    its = (self.iteration - start_iter) / (time.perf_counter() - start)
                    record["its"] = its
                    bar.update(1)
                    bar.set_postfix(loss=f"{record['loss']:.3f}", lr=f"{record['lr']:.2e}", its=f"{its:.2f}")
                    if self.iteration % cfg.log_every == 0 or self.iteration == cfg.iters:
                        self._log(record)
                    if cfg.eval_every and self.iteration % cfg.eval_every == 0 and self.iteration < cfg.iters:
                        self._log({"iter": self.iteration, "eval": self.evaluate()})
                        self.model.train()
                    if self.iteration == cfg.iters:
                        break
                    if cfg.checkpoint_every and self.iteration % cfg.checkpoint_every == 0:
                        self.save()
            # (every rank asks, with its own share of the batches: one with a labelled pixel is enough)
            if self.batches and not distributed.any_rank(self.labelled_batches > 0):
                raise D.DatasetError(f"no training batch of iterations {start_iter + 1}..{self.iteration} had a "
                                     f"labelled pixel (all were {cfg.ignore_index}, ignore), so nothing was learned; "
                                     f"the labels' values must be classes 0..{cfg.classes - 1} (ADE20K's 1..150 map "
                                     "to 0..149, anything above to ignore)")
            self.save()
            if cfg.eval_every:
                result = self.evaluate()
                self._log({"iter": self.iteration, "eval": result})
        except KeyboardInterrupt as exc:
            raise run_folder.Interrupted(getattr(exc, "signum", 2), self._interrupted_where()) from None
        finally:
            bar.close()
            self.close()
        return {"last": record, "eval": result, "checkpoint": self.path}

    def _interrupted_where(self) -> str:
        if self.saved_iteration is None:
            return f"at iteration {self.iteration} of {self.cfg.iters}; no checkpoint was written yet"
        return (f"at iteration {self.iteration} of {self.cfg.iters}; {self.path} holds iteration "
                f"{self.saved_iteration}: continue with minipsp train --out {self.cfg.out} --resume")

    def _finished(self) -> dict:
        """A resumed run that is already at cfg.iters: nothing to train, and its final evaluation is the
        one in the log (run only if it is missing there), so log.jsonl gets no duplicate."""
        try:
            records, evals = read_log(self.cfg.out)
            result = next((e["eval"] for e in reversed(evals) if e["iter"] == self.iteration), None)
            if result is None and self.cfg.eval_every:
                result = self.evaluate()
                self._log({"iter": self.iteration, "eval": result})
        finally:
            self.close()
        return {"last": records[-1] if records else {}, "eval": result, "checkpoint": self.path}

    def close(self):
        """Release the run folder's lock (run() does it when it ends)."""
        self.folder.close()


def train(cfg: TrainConfig, resume: bool = False, overwrite: bool = False, sync_bn: bool = True) -> dict:
    """Build a Trainer for `cfg` and run it (see the module docstring).

    resume: continue the run in cfg.out from its checkpoint. overwrite: start a new run in a cfg.out that
    already holds one (without either, that is an error: nothing is lost by mistake). sync_bn: under
    mpiexec, batch norm over the global batch (SyncBatchNorm), or each rank's own (False)."""
    return Trainer(cfg, resume=resume, overwrite=overwrite, sync_bn=sync_bn).run()


def _parsed_lines(lines):
    """(line, record) for each line of a log that parses; a line cut short by a crash does not."""
    for line in lines:
        try:
            yield line, json.loads(line)
        except ValueError:
            continue


def read_log(run_dir: str):
    """The records of a run's log.jsonl: (training records, evaluation records)."""
    path = os.path.join(run_dir, "log.jsonl")
    if not os.path.exists(path):
        raise FileNotFoundError(f"no log.jsonl in {run_dir!r}; is it a minipsp run directory?")
    with open(path) as f:
        records = [record for _, record in _parsed_lines(f)]
    return [r for r in records if "loss" in r], [r for r in records if "eval" in r]
