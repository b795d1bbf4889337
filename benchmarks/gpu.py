"""On an NVIDIA GPU: each op's forward + backward, minipsp `cuda` kernels against PyTorch CUDA (cuDNN),
same inputs, one run; then one PSPNet training step (forward, losses, backward, SGD) both ways.

    python -m benchmarks.gpu                  # needs CuPy, a GPU, and a CUDA build of torch
    python -m benchmarks.gpu --no-model       # ops only

Times are medians after a warm-up call (kernels compile on first launch), with the device
synchronised before the clock stops.
"""

from __future__ import annotations

import argparse

from benchmarks.common import max_abs_error, median_time
from benchmarks.ops import FAMILIES, load_cases


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("families", nargs="*", default=FAMILIES)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--no-model", action="store_true", help="skip the PSPNet training step")
    args = parser.parse_args(argv)

    import minipsp

    minipsp.backend.require_cuda()  # one clear error if CuPy or the GPU is missing
    header = f"{'op':34s} {'shape':26s} {'torch ms':>9s} {'cuda ms':>9s} {'x torch':>8s} {'max|err|':>9s}"
    print(header)
    print("-" * len(header))
    for case in load_cases(args.families, device="cuda"):
        torch_time = median_time(case.torch, device="cuda", repeats=args.repeats)
        ours = median_time(case.minipsp, device="cuda", repeats=args.repeats)
        error = max_abs_error(case.minipsp(), case.torch())
        print(f"{case.name:34s} {case.shape:26s} {torch_time * 1e3:9.3f} {ours * 1e3:9.3f} "
              f"{ours / torch_time:8.2f} {error:9.2e}", flush=True)

    if not args.no_model:
        from benchmarks.train_step import compare_train_step

        compare_train_step(device="cuda", repeats=max(3, args.repeats // 4))


if __name__ == "__main__":
    main()
