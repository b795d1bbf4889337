"""The `minipsp` command: train, eval, predict, plot, info.

    minipsp train [config.toml] [--data synthetic] [--layers N] [--iters N] [--set aux_weight=0] ...
    minipsp train --out runs/x --resume [--iters N]     # continue runs/x from its checkpoint (and config)
    minipsp train ... --out runs/x --overwrite          # start runs/x again from scratch
    minipsp eval runs/x/checkpoint.mpsp [--mode slide] [--flip]  # mIoU, mean accuracy, pixel accuracy
    minipsp predict runs/x/checkpoint.mpsp photo.jpg -o predictions/
    minipsp plot runs/x                                 # curves.png and predictions.png in runs/x
    minipsp info                                        # versions, kernel variants, CUDA

The CLI only parses; the work is in minipsp.train, minipsp.evaluate, minipsp.predict and minipsp.plot.
A bad setting or a missing path prints one line, `minipsp: error: ...`, and exits with status 2.
Ctrl-C and SIGTERM print one line too (which checkpoint is left) and exit with 130 and 143.
"""

from __future__ import annotations

import argparse
import os
import pickle
import sys
import zipfile

from minipsp import distributed
from minipsp.config import ConfigError, TrainConfig, from_dict, load_config, parse_value, resume_config, to_dict

# Flags of `train` (and of `eval` where they make sense) that set config keys directly.
OVERRIDES = [
    ("--data", "data", str, "'synthetic' or 'ade20k:ROOT', 'voc:ROOT', 'voc_aug:ROOT', 'cityscapes:ROOT', "
                            "'list:ROOT:TRAIN:VAL'"),
    ("--layers", "layers", int, "ResNet depth of the backbone: 18, 34, 50, 101 or 152 (not used with --set "
                                "backbone=shallow, the six-layer net of benchmarks/thesis.py)"),
    ("--width", "width", int, "backbone base width: 64 (standard ResNet), 16 or 32 for a narrow laptop net"),
    ("--classes", "classes", int, "number of classes (default 0: the dataset's own; a mismatch is an error)"),
    ("--iters", "iters", int, "training iterations"),
    ("--batch-size", "batch_size", int, "images per iteration: the global batch; under mpiexec -n N each rank takes "
                                        "batch-size / N of them (as semseg), so the same value keeps the LR schedule"),
    ("--crop-size", "crop_size", int, "training crop (and sliding window); (crop - 1) %% 8 == 0"),
    ("--lr", "base_lr", float, "backbone learning rate (the head gets head_lr_mult x this)"),
    ("--device", "device", str, "'cpu' or 'cuda'"),
    ("--out", "out", str, "run directory"),
    ("--seed", "seed", int, "random seed"),
]


class CLIError(Exception):
    """A mistake on the command line, reported as one line."""


def _add_overrides(parser, keys=None):
    for flag, key, _kind, help_text in OVERRIDES:
        if keys is None or key in keys:
            parser.add_argument(flag, dest=key, type=str, default=None, help=help_text)
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="set any config key, e.g. --set aux_weight=0 --set bins=1,2,3,6 --set backbone=shallow "
                             "(backbone: 'resnet', the default, or 'shallow', six dilated layers)")


def _overrides(args) -> dict:
    """The config keys set on the command line, converted to their types."""
    values = {}
    for _, key, _, _ in OVERRIDES:
        text = getattr(args, key, None)
        if text is not None:
            values[key] = parse_value(key, text)
    for item in args.sets:
        key, sep, text = item.partition("=")
        if not sep:
            raise ConfigError(f"--set expects KEY=VALUE; got {item!r}")
        values[key.strip()] = parse_value(key.strip(), text.strip())
    return values


def _need_file(path, what):
    if os.path.isdir(path):
        raise CLIError(f"{what} {path!r} is a directory; expected a file")
    if os.path.exists(path) and not os.path.isfile(path):     # a FIFO or a device: reading it could block
        raise CLIError(f"{what} {path!r} is not a regular file (a FIFO or a device); expected a file")
    if not os.path.isfile(path):
        raise CLIError(f"{what} {path!r} does not exist")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="minipsp", description="Train, evaluate and run PSPNet with minipsp.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("train", help="train a PSPNet (defaults: the paper's recipe)")
    p.add_argument("config", nargs="?", help="a TOML (or JSON) config file")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its checkpoint, with its saved config (only iters, --lr, "
                        "device, out and the logging and evaluation settings may change; a new --lr is logged)")
    p.add_argument("--overwrite", action="store_true", help="start again in an --out that already holds a run")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--no-sync-bn", action="store_true",
                   help="under mpiexec -n N: batch norm over each rank's own images instead of the global batch "
                        "(SyncBatchNorm, the default; docs/distributed.md)")
    _add_overrides(p)

    p = sub.add_parser("eval", help="evaluate a checkpoint: mIoU, mean accuracy, pixel accuracy")
    p.add_argument("checkpoint")
    p.add_argument("--mode", choices=["whole", "slide", "multiscale"], default=None)
    p.add_argument("--count", type=int, default=None, help="evaluate only the first COUNT images (0: all)")
    p.add_argument("--flip", action="store_true",
                   help="whole and slide also average with the mirrored image, as semseg's test tool always does "
                        "(multiscale flips unless eval_flip = false)")
    p.add_argument("--no-progress", action="store_true")
    _add_overrides(p, keys={"data", "layers", "classes", "crop_size", "device"})

    p = sub.add_parser("predict", help="segment image files: palette PNG and overlay PNG per image (under mpiexec "
                                       "rank 0 alone)")
    p.add_argument("checkpoint")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("-o", "--output", default="predictions",
                   help="output folder: NAME_pred.png and NAME_overlay.png per image, NAME the file name without "
                        "its extension; images that share a name keep it apart with their extension and, if "
                        "needed, their folders (a/x.jpg b/x.png -> x_jpg_pred.png, x_png_pred.png)")
    p.add_argument("--mode", choices=["whole", "slide", "multiscale"], default="whole")
    _add_overrides(p, keys={"layers", "classes", "crop_size", "device"})

    p = sub.add_parser("plot", help="loss, LR and mIoU curves and a grid of predictions, as PNG (under mpiexec rank "
                                    "0 alone)")
    p.add_argument("run_dir")
    p.add_argument("--count", type=int, default=6, help="validation images in the prediction grid (0: none)")

    sub.add_parser("info", help="versions, kernel variants and CUDA availability")
    return parser


def load_checkpoint_config(checkpoint, overrides):
    """The model's config: the one saved in a minipsp checkpoint, or defaults (a semseg .pth), plus overrides."""
    import minipsp

    _need_file(checkpoint, "checkpoint")
    try:
        state = minipsp.load(checkpoint)
    except (ValueError, OSError, EOFError, KeyError, pickle.UnpicklingError, zipfile.BadZipFile) as exc:
        raise CLIError(f"cannot read checkpoint {checkpoint!r}: {exc}") from None
    saved = state.get("config", {}) if isinstance(state, dict) else {}
    cfg = from_dict({**saved, **overrides}).with_dataset_classes()
    return cfg, state


def cmd_train(args):
    from minipsp.train import train

    if args.config is not None:
        _need_file(args.config, "config file")
    if args.resume and args.overwrite:
        raise CLIError("--resume and --overwrite contradict each other: --resume continues the run in --out, "
                       "--overwrite starts it again from scratch; pass one of them")
    overrides = _overrides(args)
    if args.no_progress:
        overrides["progress"] = False
    cfg = load_config(args.config, overrides)
    if args.resume:
        # the run's own config, from its checkpoint; the file and the flags may change only what RESUMABLE allows
        from minipsp.run_folder import read_training_checkpoint

        path = os.path.join(cfg.out, "checkpoint.mpsp")
        _need_file(path, "cannot resume: checkpoint")
        saved = from_dict(read_training_checkpoint(path)["config"]).with_dataset_classes()
        cfg = resume_config(to_dict(saved), args.config, overrides)
    summary = train(cfg, resume=args.resume, overwrite=args.overwrite, sync_bn=not args.no_sync_bn)
    if not distributed.is_main_process():    # under mpiexec rank 0 alone reports
        return
    last = summary["last"]
    if last:
        print(f"iteration {last['iter']}: loss {last['loss']:.4f}, lr {last['lr']:.3g}")
    if summary["eval"]:
        _print_metrics(summary["eval"])
    print(f"checkpoint: {summary['checkpoint']}")


def _print_metrics(result):
    print(f"mIoU {result['miou']:.4f}  mAcc {result['mean_acc']:.4f}  allAcc {result['pixel_acc']:.4f}")


def cmd_eval(args):
    from minipsp.evaluate import evaluate
    from minipsp.train import build_dataset, load_trained_model, val_transform

    _need_count(args.count)
    cfg, state = load_checkpoint_config(args.checkpoint, _overrides(args))
    if cfg.device == "cuda" and distributed.rank_and_world()[1] > 1:
        distributed.use_local_gpu()               # under mpiexec each rank evaluates its images on its own GPU
    model = load_trained_model(cfg, state, source=f"checkpoint {args.checkpoint!r}")
    dataset = build_dataset(cfg, "val", val_transform())
    mode = args.mode or cfg.eval_mode
    result = evaluate(model, dataset, cfg.classes, mode=mode, crop_size=cfg.crop_size, scales=cfg.eval_scales,
                      base_size=cfg.base_size, flip=args.flip or (cfg.eval_flip and mode == "multiscale"),
                      ignore_index=cfg.ignore_index, count=args.count or cfg.eval_count,
                      progress=not args.no_progress)
    if distributed.is_main_process():     # under mpiexec every rank has the same result (evaluate sums them)
        _print_metrics(result)


def cmd_predict(args):
    from minipsp.predict import predict_files

    if not distributed.is_main_process():
        return      # under mpiexec rank 0 alone predicts: every rank would write the same files at once
    for path in args.images:
        _need_file(path, "image")
    cfg, state = load_checkpoint_config(args.checkpoint, _overrides(args))
    for written in predict_files(cfg, state, args.images, args.output, mode=args.mode):
        print(written)


def cmd_plot(args):
    from minipsp.plot import plot_run

    if not distributed.is_main_process():
        return      # under mpiexec rank 0 alone plots: every rank would write the same files at once
    _need_count(args.count)
    if os.path.exists(args.run_dir) and not os.path.isdir(args.run_dir):
        raise CLIError(f"run directory {args.run_dir!r} is a file; expected the run's folder (its --out)")
    if not os.path.isdir(args.run_dir):
        raise CLIError(f"run directory {args.run_dir!r} does not exist")
    for written in plot_run(args.run_dir, count=args.count):
        print(written)


def _need_count(count):
    if count is not None and count < 0:
        raise CLIError(f"--count: got {count}, expected a number of images >= 0")


def cmd_info(args):
    print(info())


def blas_info() -> str:
    """NumPy's BLAS, and OPENBLAS_CORETYPE when it is set: the conv GEMMs are most of a training step,
    and a core type forced to an older CPU (e.g. Haswell on an AVX-512 machine) halves their speed."""
    import numpy as np

    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        name = f"{blas['name']} {blas['version']}"
    except Exception:  # show_config's layout differs between NumPy versions
        name = "unknown"
    from minipsp import blas_env

    coretype = os.environ.get("OPENBLAS_CORETYPE")
    kernels = f"OPENBLAS_CORETYPE={coretype}" if coretype else "kernels chosen by the BLAS"
    return f"{name}, {kernels}, {blas_env.describe()}"


def info() -> str:
    """Versions, the kernel variant each op family uses on the CPU, and whether CUDA works (or why not)."""
    import platform

    import numba
    import numpy as np

    import minipsp
    from minipsp import backend

    lines = [f"minipsp {minipsp.__version__}", f"python  {platform.python_version()}",
             f"numpy   {np.__version__}", f"numba   {numba.__version__}", "blas    " + blas_info()]
    try:
        import minipsp.kernels as K

        probe = np.zeros(1, dtype=np.float32)
        families = sorted(name for name in os.listdir(os.path.dirname(K.__file__))
                          if os.path.isfile(os.path.join(os.path.dirname(K.__file__), name, "__init__.py")))
        variants = ", ".join(f"{f}={K.variant(f, probe).__name__.rsplit('.', 1)[-1]}" for f in families)
        lines.append(f"kernels {variants}")
    except Exception as exc:  # info must always print, whatever is broken
        lines.append(f"kernels unavailable ({type(exc).__name__}: {exc})")
    lines.append("mpi     " + distributed.describe_mpi())
    if backend.cuda_is_available():
        import cupy

        lines.append(f"cuda    available: cupy {cupy.__version__}, device {cupy.cuda.Device().id}")
    else:
        lines.append(f"cuda    not available: {backend._CUPY_ERROR}")
    return "\n".join(lines)


COMMANDS = {"train": cmd_train, "eval": cmd_eval, "predict": cmd_predict, "plot": cmd_plot, "info": cmd_info}


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """Warnings as one line each, like the errors (not Python's two lines with the source)."""
    print(f"minipsp: warning: {message}", file=sys.stderr if file is None else file)


def main(argv=None) -> int:
    """Entry point of the `minipsp` console script; returns the exit status.

    SIGTERM (a scheduler's "stop") is handled like Ctrl-C: one line, status 128 + signal (143, 130)."""
    import warnings

    from minipsp.run_folder import sigterm_as_interrupt

    with sigterm_as_interrupt(), warnings.catch_warnings():
        warnings.showwarning = _show_warning
        # under mpiexec: one rank of the world, and a rank that fails ends them all (MPI Abort), never a hang
        return distributed.run_main(_run, argv)


def _parse_once(parser, argv):
    """parser.parse_args, with its usage, errors and --help printed by rank 0 alone under mpiexec (every rank
    parses the same command line: N copies of one message)."""
    if distributed.is_main_process():
        return parser.parse_args(argv)
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return parser.parse_args(argv)


def _interrupted(exc) -> int:
    """Print the one line for a Ctrl-C or SIGTERM (`exc`, a KeyboardInterrupt) and return its exit status."""
    signum, where = getattr(exc, "signum", 2), getattr(exc, "where", "")
    what = "interrupted" if signum == 2 else f"stopped by signal {signum} (SIGTERM)" if signum == 15 else \
        f"stopped by signal {signum}"
    print(distributed.labelled(f"minipsp: {what}" + (f" {where}" if where else "")), file=sys.stderr)
    return 128 + signum


def _interrupt_behind(exc):
    """The KeyboardInterrupt that caused `exc`, or None. Python 3.11 re-raises one that lands while a class
    is being defined (in `__set_name__`, e.g. functools.cached_property inside an import of Numba's that
    the first training step triggers) as RuntimeError("Error calling __set_name__ ...") from it: still a
    Ctrl-C, and it must end in the same one line (CI saw the traceback once)."""
    while exc is not None:
        if isinstance(exc, KeyboardInterrupt):
            return exc
        exc = exc.__cause__
    return None


def _run(argv) -> int:
    try:
        # the imports are inside: Ctrl-C while they load (start-up) is one line too
        from minipsp.backend import CudaUnavailableError
        from minipsp.data.readers import DatasetError

        parser = build_parser()
        args = _parse_once(parser, argv)
        COMMANDS[args.command](args)
    except KeyboardInterrupt as exc:      # first: the clauses below name classes the import may not have reached
        return _interrupted(exc)
    except (ConfigError, CLIError, FileNotFoundError, DatasetError, CudaUnavailableError) as exc:
        print(distributed.labelled(f"minipsp: error: {exc}"), file=sys.stderr)
        return 2
    except RuntimeError as exc:
        interrupt = _interrupt_behind(exc)
        if interrupt is not None:
            return _interrupted(interrupt)
        from minipsp.train import TrainingDiverged

        if isinstance(exc, TrainingDiverged):
            print(distributed.labelled(f"minipsp: error: {exc}"), file=sys.stderr)
            return 1
        raise
    return 0


__all__ = ["main", "build_parser", "info", "TrainConfig"]

if __name__ == "__main__":
    sys.exit(main())
