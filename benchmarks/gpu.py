"""On an NVIDIA GPU: each op's forward + backward, minipsp `cuda` kernels against PyTorch CUDA (cuDNN),
same inputs, one run; then one PSPNet training step (forward, losses, backward, SGD) both ways.

    python -m benchmarks.gpu                  # needs CuPy, a GPU, and a CUDA build of torch
    python -m benchmarks.gpu --no-model       # ops only

Times are medians after a warm-up call (kernels compile on first launch), with the device
synchronised before the clock stops. Each op's time includes copying its forward output to the host
(both sides do, for the error column), which narrows the ratio on the smaller cases.
No figures yet: the kernels have so far run only under Numba's CUDA simulator.
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

    try:
        minipsp.backend.require_cuda()  # one clear error if CuPy, the GPU or Numba's CUDA is missing
    except RuntimeError as exc:
        raise SystemExit(f"benchmarks.gpu: {exc}") from None
    _require_torch_cuda()
    import torch

    # Like for like: torch would otherwise run its float32 convs and matmuls on TF32 tensor cores
    # (10-bit mantissa), which minipsp's float32 cuBLAS calls do not use.
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    print(f"torch {torch.__version__} on {torch.cuda.get_device_name()}, TF32 off on both sides")
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
        train_step_on_gpu(repeats=max(3, args.repeats // 4))


def _require_torch_cuda():
    """Stop with one clear message if torch cannot run on the GPU (the test extra pins a CPU build)."""
    import torch

    if not torch.cuda.is_available():
        raise SystemExit(f"benchmarks.gpu compares with PyTorch on the GPU, but torch {torch.__version__} "
                         f"cannot use CUDA here (torch.version.cuda is {torch.version.cuda}); install a CUDA "
                         "build of torch matching your driver (https://pytorch.org/get-started/locally/)")


def train_step_on_gpu(layers=50, classes=150, crop=473, batch=4, repeats=5):
    """One PSPNet training iteration (forward, main + 0.4 aux loss, backward, SGD) on the GPU, both ways."""
    from benchmarks.train_step import build, minipsp_step, torch_step

    ours, theirs, x, y = build(layers, classes, crop, batch)
    ours.train().to("cuda")   # parameters move before the optimisers are built around them
    theirs.train().cuda()
    step_ours = minipsp_step(ours, x, y, device="cuda")
    step_theirs = torch_step(theirs, x, y, device="cuda")

    t_ours = median_time(step_ours, device="cuda", repeats=repeats)
    t_theirs = median_time(step_theirs, device="cuda", repeats=repeats)
    print(f"\nPSPNet-{layers} training step, batch {batch} x 3 x {crop} x {crop}: "
          f"torch {t_theirs * 1e3:.1f} ms, minipsp {t_ours * 1e3:.1f} ms, ratio {t_ours / t_theirs:.2f}x")


if __name__ == "__main__":
    main()
