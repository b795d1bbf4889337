"""ReLU case: after the PPM and head convolutions of PSPNet, 512 channels at 60x60 (a 473 crop / 8).

8x512x60x60 float32, forward + backward (out of place, so the input stays the same between runs),
the same input and output gradient in minipsp and in torch; returns the forward output.
"""

from __future__ import annotations

import numpy as np

import minipsp
import minipsp.nn.functional as F
from benchmarks.common import Case


def cases(device="cpu"):
    import torch
    import torch.nn.functional as TF

    shape = (8, 512, 60, 60)
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    ours, theirs = minipsp.tensor(x, requires_grad=True, device=device), torch.tensor(x, requires_grad=True,
                                                                                        device=device)
    dy_ours, dy_theirs = minipsp.tensor(dy, device=device), torch.tensor(dy, device=device)

    def run_minipsp():
        ours.grad = None
        y = F.relu(ours)
        y.backward(dy_ours)
        return y.numpy()

    def run_torch():
        theirs.grad = None
        y = TF.relu(theirs)
        y.backward(dy_theirs)
        return y.detach().cpu().numpy()

    return [Case("relu", "x".join(map(str, shape)), run_minipsp, run_torch)]
