"""Cross-entropy case: PSPNet's loss on upsampled logits, 21 classes (VOC), ignore_index 255.

8x21x480x480 float32 logits against labels with about 10% of the pixels set to 255 (the borders
and padding that PSPNet ignores); forward + backward of the mean loss, in minipsp and in torch on
the same inputs. Returns the loss.
"""

from __future__ import annotations

import numpy as np

import minipsp
import minipsp.nn.functional as F
from benchmarks.common import Case


def cases(device="cpu"):
    import torch
    import torch.nn.functional as TF

    rng = np.random.default_rng(0)
    shape = (8, 21, 480, 480)
    logits = rng.standard_normal(shape).astype(np.float32)
    labels = rng.integers(0, shape[1], (shape[0],) + shape[2:])
    labels[rng.random(labels.shape) < 0.1] = 255

    xm = minipsp.tensor(logits, requires_grad=True, device=device)
    tm = minipsp.tensor(labels, device=device)
    xt = torch.tensor(logits, requires_grad=True, device=device)
    tt = torch.tensor(labels, device=device)

    def run_minipsp():
        xm.grad = None
        loss = F.cross_entropy(xm, tm, ignore_index=255)
        loss.backward()
        return loss.numpy()

    def run_torch():
        xt.grad = None
        loss = TF.cross_entropy(xt, tt, ignore_index=255)
        loss.backward()
        return loss.detach().cpu().numpy()

    return [Case("cross_entropy ignore 255", "8x21x480x480, 10% ignored", run_minipsp, run_torch)]
