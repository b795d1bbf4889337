"""Each op's forward + backward: minipsp `cpu`, minipsp `reference` and torch CPU, same inputs, one run.

    python -m benchmarks.ops                 # every case
    python -m benchmarks.ops conv2d pooling  # some families
    python -m benchmarks.ops --skip-reference

The first call of each variant is excluded (Numba compiles then); torch and minipsp `cpu` are timed
in alternating rounds (interleaved repeats, medians). The error column is the largest
difference between minipsp's and torch's forward output: a fast wrong answer is not a result.
"""

from __future__ import annotations

import argparse
import importlib

import minipsp.kernels as kernels
import torch

from benchmarks.common import interleaved_medians, machine_line, max_abs_error, median_time

FAMILIES = ["conv2d", "batch_norm", "relu", "pooling", "interpolate", "cross_entropy", "sgd"]


def load_cases(families, device="cpu"):
    for family in families:
        module = importlib.import_module(f"benchmarks.cases.{family}")
        yield from module.cases(device)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("families", nargs="*", default=FAMILIES, help=f"any of {FAMILIES}")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-reference", action="store_true", help="do not time the (slow) NumPy reference")
    args = parser.parse_args(argv)

    variants = ["cpu"] if args.skip_reference else ["cpu", "reference"]
    print(machine_line(torch.get_num_threads()))
    header = f"{'op':34s} {'shape':26s} {'torch ms':>9s}" + "".join(f" {v + ' ms':>13s} {'x torch':>8s}"
                                                                     for v in variants) + f" {'max|err|':>9s}"
    print(header)
    print("-" * len(header))
    for case in load_cases(args.families):
        # torch and minipsp's `cpu` variant are timed in alternating rounds, so that the shared
        # machine's drift hits both alike; the (slow) reference is timed once, on its own.
        with kernels.use("cpu"):
            torch_time, cpu_time = interleaved_medians([case.torch, case.minipsp], repeats=args.repeats)
            error = max_abs_error(case.minipsp(), case.torch())
        row = f"{case.name:34s} {case.shape:26s} {torch_time * 1e3:9.2f}"
        for variant in variants:
            if variant == "cpu":
                t = cpu_time
            else:
                with kernels.use(variant):
                    t = median_time(case.minipsp, repeats=1)
            row += f" {t * 1e3:13.2f} {t / torch_time:8.2f}"
        print(row + f" {error:9.2e}", flush=True)

if __name__ == "__main__":
    main()
