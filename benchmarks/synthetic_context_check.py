"""Does SyntheticScenes reward global context? An FCN against the same FCN with a PPM, in PyTorch.

    python -m benchmarks.synthetic_context_check                      # toy net, 129 x 129, 400 its, 2 seeds
    python -m benchmarks.synthetic_context_check --size 65 --iters 400
    python -m benchmarks.synthetic_context_check --model pspnet18 --device cuda   # the real architecture

Both models train identically (SGD momentum 0.9, weight decay 1e-4, poly LR, batch 8, random
horizontal flip, whole images) on the same pre-drawn training images and are scored by mIoU on
held-out `val` images. `--model toy` is a small dilated FCN (6 conv-BN-ReLU layers, output stride 8,
dilations 2 and 4; theoretical receptive field 131 pixels) with or without a PPM (bins 1, 2, 3, 6,
average pooling, concatenation, a 3 x 3 head conv); `--model pspnet18` is benchmarks.torch_pspnet's
PSPNet-18 with `use_ppm=False / True` (aux loss 0.4, head at 10x the LR). It checks the dataset,
not minipsp: nothing here uses minipsp's engine, only its SyntheticScenes.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from minipsp.data.synthetic import CLASSES, SyntheticScenes


def cbr(cin, cout, stride=1, dilation=1):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, dilation, dilation, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class ToyNet(nn.Module):
    """A shrunk dilated ResNet stem: output stride 8, then dilations 2 and 4; optionally a PPM."""

    def __init__(self, classes, use_ppm, width=32, bins=(1, 2, 3, 6)):
        super().__init__()
        w = width
        self.body = nn.Sequential(cbr(3, w // 2, 2), cbr(w // 2, w), cbr(w, w, 2), cbr(w, 2 * w, 2),
                                  cbr(2 * w, 2 * w, dilation=2), cbr(2 * w, 2 * w, dilation=4))
        dim, self.bins = 2 * w, bins if use_ppm else ()
        self.stages = nn.ModuleList(nn.Sequential(nn.Conv2d(dim, dim // 4, 1, bias=False), nn.BatchNorm2d(dim // 4),
                                                  nn.ReLU(inplace=True)) for _ in self.bins)
        self.head = nn.Sequential(cbr(dim * 2 if use_ppm else dim, w), nn.Conv2d(w, classes, 1))

    def forward(self, x, y=None):
        f = self.body(x)
        pooled = [F.interpolate(stage(F.adaptive_avg_pool2d(f, b)), f.shape[2:], mode="bilinear", align_corners=True)
                  for b, stage in zip(self.bins, self.stages)]
        logits = F.interpolate(self.head(torch.cat([f] + pooled, 1)), x.shape[2:], mode="bilinear", align_corners=True)
        if not self.training:
            return logits
        return logits, F.cross_entropy(logits, y, ignore_index=255), None


def build(model, use_ppm):
    if model == "toy":
        net = ToyNet(len(CLASSES), use_ppm)
        return net, [{"params": net.parameters(), "lr_mult": 1.0}]
    from benchmarks.torch_pspnet import TorchPSPNet

    net = TorchPSPNet(layers=18, classes=len(CLASSES), use_ppm=use_ppm)
    head = [p for n, p in net.named_parameters() if n.startswith(("ppm", "cls", "aux"))]
    body = [p for n, p in net.named_parameters() if not n.startswith(("ppm", "cls", "aux"))]
    return net, [{"params": body, "lr_mult": 1.0}, {"params": head, "lr_mult": 10.0}]


def load(split, count, size, device):
    data = SyntheticScenes(split, count=count, size=size, seed=0)
    images, labels = zip(*(data[i] for i in range(count)))
    x = (np.stack(images).transpose(0, 3, 1, 2) - 128.0) / 64.0  # roughly zero mean, unit spread
    return torch.tensor(x, dtype=torch.float32, device=device), torch.tensor(np.stack(labels), device=device)


def confusion(pred, label, n):
    return np.bincount(n * label.ravel() + pred.ravel(), minlength=n * n).reshape(n, n)


def train_and_eval(args, use_ppm, seed, train, val):
    torch.manual_seed(seed)
    net, groups = build(args.model, use_ppm)
    net.to(args.device)
    opt = torch.optim.SGD(groups, lr=args.lr, momentum=0.9, weight_decay=1e-4)
    rng = np.random.default_rng(seed)
    net.train()
    for it in range(args.iters):
        for group in opt.param_groups:
            group["lr"] = args.lr * group["lr_mult"] * (1 - it / args.iters) ** 0.9
        idx = torch.as_tensor(rng.integers(0, len(train[0]), args.batch), device=args.device)
        x, y = train[0][idx], train[1][idx]
        if rng.random() < 0.5:
            x, y = x.flip(3), y.flip(2)
        _, main_loss, aux_loss = net(x, y)
        loss = main_loss if aux_loss is None else main_loss + 0.4 * aux_loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    cm = np.zeros((len(CLASSES), len(CLASSES)), np.int64)
    with torch.no_grad():
        for i in range(0, len(val[0]), 25):
            pred = net(val[0][i:i + 25]).argmax(1)
            cm += confusion(pred.cpu().numpy(), val[1][i:i + 25].cpu().numpy(), len(CLASSES))
    iou = np.diag(cm) / np.maximum(cm.sum(0) + cm.sum(1) - np.diag(cm), 1)
    return iou.mean(), np.diag(cm).sum() / cm.sum(), iou


def main(argv=None):
    parser = argparse.ArgumentParser(description="FCN vs FCN + PPM on SyntheticScenes, in PyTorch")
    parser.add_argument("--model", choices=("toy", "pspnet18"), default="toy")
    parser.add_argument("--size", type=int, default=129)
    parser.add_argument("--iters", type=int, default=400)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lr", type=float, default=0.02)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--train-images", type=int, default=600)
    parser.add_argument("--val-images", type=int, default=150)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    train = load("train", args.train_images, args.size, args.device)
    val = load("val", args.val_images, args.size, args.device)
    print(f"{args.model}, {args.size} x {args.size}, {args.iters} iterations x batch {args.batch}, lr {args.lr}, "
          f"{args.train_images} train / {args.val_images} val images")
    print("model     seed  mIoU   pixAcc  " + " ".join(f"{c[:5]:>5}" for c in CLASSES) + "   time")
    scores = {}
    for seed in args.seeds:
        for use_ppm in (False, True):
            start = time.perf_counter()
            miou, acc, iou = train_and_eval(args, use_ppm, seed, train, val)
            name = "FCN+PPM" if use_ppm else "FCN"
            scores.setdefault(name, []).append(miou)
            print(f"{name:8}  {seed:4}  {miou:.3f}  {acc:.3f}   " + " ".join(f"{v:5.2f}" for v in iou)
                  + f"  {time.perf_counter() - start:5.0f}s", flush=True)
    for name, values in scores.items():
        print(f"{name:8}  mIoU {np.mean(values):.3f} +- {np.std(values):.3f} over {len(values)} seeds")


if __name__ == "__main__":
    main()
