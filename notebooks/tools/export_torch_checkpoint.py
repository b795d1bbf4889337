"""Write the PyTorch checkpoint that chapter 08 loads without torch (run once, with torch installed).

    .venv/bin/python notebooks/tools/export_torch_checkpoint.py

A width-8 PSPNet-18 (10 classes) is built in plain torch.nn (benchmarks/torch_pspnet.py's pieces,
every channel count scaled by 8 / 64 as minipsp's `width` does), given random weights and realistic
batch-norm statistics, and saved the way hszhao/semseg saves a training checkpoint:

    torch.save({"epoch": ..., "state_dict": {"module.<key>": tensor, ...}, "optimizer": {...}}, path)

(the "module." prefix comes from the DataParallel wrapper semseg trains with). Next to it an .npz holds
one input image and the logits PyTorch computed for it in eval mode, so the notebook can check
minipsp's logits against PyTorch's without importing torch.

Files: notebooks/assets/pspnet18-w8-torch.pth (~1 MB) and pspnet18-w8-torch-logits.npz.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))   # run as a script from anywhere

from benchmarks.torch_pspnet import PPM, BasicBlock, TorchPSPNet, _head, _stage  # noqa: E402
from minipsp.data.synthetic import SyntheticScenes  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), "..", "assets")
WIDTH, CLASSES, SIZE = 8, 10, 65


def narrow_pspnet18(width=WIDTH, classes=CLASSES):
    """TorchPSPNet(layers=18) with its channels scaled by width / 64 (its forward is unchanged)."""
    w = width
    model = TorchPSPNet(layers=18, classes=classes)
    relu = nn.ReLU(inplace=True)
    model.layer0 = nn.Sequential(
        nn.Conv2d(3, w, 3, 2, 1, bias=False), nn.BatchNorm2d(w), relu,
        nn.Conv2d(w, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w), relu,
        nn.Conv2d(w, 2 * w, 3, 1, 1, bias=False), nn.BatchNorm2d(2 * w), relu,
        nn.MaxPool2d(3, 2, 1))
    model.layer1 = _stage(BasicBlock, 2 * w, w, 2, 1, 1)
    model.layer2 = _stage(BasicBlock, w, 2 * w, 2, 2, 1)
    model.layer3 = _stage(BasicBlock, 2 * w, 4 * w, 2, 2, 2)
    model.layer4 = _stage(BasicBlock, 4 * w, 8 * w, 2, 2, 4)
    model.ppm = PPM(8 * w, 2 * w, (1, 2, 3, 6))
    model.cls = _head(16 * w, 8 * w, classes, 0.1)
    model.aux = _head(4 * w, 4 * w, classes, 0.1)
    return model


def main():
    torch.manual_seed(0)
    model = narrow_pspnet18()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):   # as if trained: eval-mode BN is then not the identity
                m.running_mean.uniform_(-0.3, 0.3)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
                m.num_batches_tracked.fill_(1000)
    model.eval()
    image, _ = SyntheticScenes("val", count=1, size=SIZE, seed=0)[0]
    mean, std = np.array([123.675, 116.28, 103.53]), np.array([58.395, 57.12, 57.375])
    x = ((image - mean) / std).transpose(2, 0, 1)[None].astype(np.float32)
    with torch.no_grad():
        logits = model(torch.from_numpy(x)).numpy()

    path = os.path.join(OUT, "pspnet18-w8-torch.pth")
    state = {f"module.{k}": v for k, v in model.state_dict().items()}
    torch.save({"epoch": 100, "state_dict": state, "optimizer": {}}, path)
    np.savez_compressed(os.path.join(OUT, "pspnet18-w8-torch-logits.npz"), x=x, logits=logits)
    print(f"{path}: {len(state)} tensors, {sum(v.numel() for v in state.values()):,} numbers, "
          f"{os.path.getsize(path) / 1e6:.2f} MB; logits {logits.shape}")


if __name__ == "__main__":
    main()
