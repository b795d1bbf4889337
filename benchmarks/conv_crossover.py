"""The 3x3 convolutions of PSPNet, one by one: im2col, Winograd F(2x2) and F(4x4) and torch, same inputs.

    python -m benchmarks.conv_crossover                 # batch 8, 129-pixel crops (the train step's shapes)
    python -m benchmarks.conv_crossover --batch 2 --repeats 5

For each layer shape it times forward, dx and dw of each algorithm (MINIPSP_CONV forced) and torch's
forward + backward, in interleaved rounds (algorithm by algorithm, round after round, so that a
burst of load on a shared machine hits all alike), and prints the medians, the fastest algorithm per
pass and the table's choice (kernels/conv2d/algorithm.py). This is what CROSSOVERS is read from.

--cpu-time times with time.process_time instead of the wall clock: on a machine shared with other
jobs, the CPU time a call used is far steadier than its wall time. Run it with one thread everywhere
(OPENBLAS_NUM_THREADS=1 NUMBA_NUM_THREADS=1 ... --threads 1), since idle BLAS threads spinning
count as CPU time too; it then measures the work of each algorithm, not how it shares two cores.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch
from minipsp.kernels.conv2d import algorithm, cpu

from benchmarks.common import machine_line

# name, C_in, C_out, side at a 129-pixel crop, dilation (padding = dilation), as in the dilated ResNets
LAYERS = [
    ("stem conv2 (65 px)", 64, 64, 65, 1),
    ("stem conv3 (65 px)", 64, 128, 65, 1),
    ("layer1 (33 px)", 64, 64, 33, 1),
    ("layer2 (17 px)", 128, 128, 17, 1),
    ("layer3 d2 (17 px)", 256, 256, 17, 2),
    ("layer4 d4 (17 px)", 512, 512, 17, 4),
    ("aux head 18 (17 px)", 256, 256, 17, 1),
    ("cls head 18 (17 px)", 1024, 512, 17, 1),
    ("aux head 50 (17 px)", 1024, 256, 17, 1),
    ("cls head 50 (17 px)", 4096, 512, 17, 1),
]
ALGORITHMS = ["im2col", "winograd2", "winograd4"]
PASSES = ["forward", "dx", "dw"]


def scaled(layers, crop):
    """The layer sides for another crop: 65 px at 129 is (crop - 1) / 2 + 1, 33 is (crop - 1) / 4 + 1, ..."""
    factor = {65: 2, 33: 4, 17: 8}
    return [(name.split(" (")[0] + f" ({(crop - 1) // factor[side] + 1} px)", c_in, c_out,
             (crop - 1) // factor[side] + 1, d) for name, c_in, c_out, side, d in layers]


def measure(layer, batch, repeats, clock=time.perf_counter):
    """{(algorithm, pass): median seconds} and torch's forward + backward median, for one layer shape."""
    _, C_in, C_out, side, d = layer
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, C_in, side, side)).astype(np.float32)
    weight = (rng.standard_normal((C_out, C_in, 3, 3)) / np.sqrt(9 * C_in)).astype(np.float32)
    dy = rng.standard_normal((batch, C_out, side, side)).astype(np.float32)
    hyper = (1, 1), (d, d), (d, d)
    calls = {
        "forward": lambda: cpu.conv2d_forward(x, weight, None, *hyper),
        "dx": lambda: cpu.conv2d_backward(dy, x, weight, *hyper, True, False, False),
        "dw": lambda: cpu.conv2d_backward(dy, x, weight, *hyper, False, True, False),
    }
    xt, wt, dyt = (torch.tensor(a, requires_grad=a is not dy) for a in (x, weight, dy))

    def torch_step():
        xt.grad = wt.grad = None
        torch.nn.functional.conv2d(xt, wt, padding=d, dilation=d).backward(dyt)

    times = {key: [] for key in [(a, p) for a in ALGORITHMS for p in PASSES] + ["torch"]}
    previous = os.environ.get("MINIPSP_CONV")
    try:
        for round_ in range(repeats + 1):              # round 0 is the warm-up (Numba compiles)
            for name in ALGORITHMS:
                os.environ["MINIPSP_CONV"] = name
                for pass_ in PASSES:
                    start = clock()
                    calls[pass_]()
                    if round_:
                        times[name, pass_].append(clock() - start)
            start = clock()
            torch_step()
            if round_:
                times["torch"].append(clock() - start)
    finally:
        if previous is None:
            os.environ.pop("MINIPSP_CONV", None)
        else:
            os.environ["MINIPSP_CONV"] = previous
    return {key: statistics.median(values) for key, values in times.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--crop", type=int, default=129, help="(crop - 1) %% 8 == 0")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only", nargs="*", help="layer names starting with these words")
    parser.add_argument("--cpu-time", action="store_true", help="process time instead of wall time")
    parser.add_argument("--threads", type=int, help="torch's threads (default: torch's own choice)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    clock = time.process_time if args.cpu_time else time.perf_counter

    print(machine_line(torch.get_num_threads()) + f"; batch {args.batch}, crop {args.crop}, "
          f"median of {args.repeats} interleaved rounds, ms of {'CPU' if args.cpu_time else 'wall'} time")
    header = (f"{'layer':22s} {'C_in>C_out':>10s} {'pass':8s}" + "".join(f" {a:>10s}" for a in ALGORITHMS)
              + f" {'fastest':>10s}")
    print(header)
    print("-" * len(header))
    for layer in scaled(LAYERS, args.crop):
        if args.only and not any(layer[0].startswith(word) for word in args.only):
            continue
        result = measure(layer, args.batch, args.repeats, clock)
        channels = f"{layer[1]}>{layer[2]}"
        for pass_ in PASSES:
            row = [result[a, pass_] for a in ALGORITHMS]
            print(f"{layer[0]:22s} {channels:>10s} {pass_:8s}" + "".join(f" {t * 1e3:10.1f}" for t in row)
                  + f" {ALGORITHMS[int(np.argmin(row))]:>10s}")
        totals = [sum(result[a, p] for p in PASSES) for a in ALGORITHMS]
        side, d = layer[3], layer[4]
        forward, weight_grad = algorithm.choose((args.batch, layer[1], side, side), (layer[2], layer[1], 3, 3),
                                                (1, 1), (d, d), (d, d))
        chosen = result[forward, "forward"] + result[forward, "dx"] + result[weight_grad, "dw"]
        print(f"{layer[0]:22s} {channels:>10s} {'all':8s}" + "".join(f" {t * 1e3:10.1f}" for t in totals)
              + f" {ALGORITHMS[int(np.argmin(totals))]:>10s}   torch fwd+bwd {result['torch'] * 1e3:.1f}; "
              f"table: {forward}/{weight_grad} {chosen * 1e3:.1f} = {chosen / result['torch']:.2f}x torch",
              flush=True)


if __name__ == "__main__":
    main()
