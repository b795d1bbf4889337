"""Build and execute notebooks 07 (ResNet and dilation) and 08 (PSPNet). Run with .venv/bin/python."""

from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent.parent


def notebook(cells):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    for kind, text in cells:
        text = text.strip("\n")
        nb.cells.append(nbformat.v4.new_markdown_cell(text) if kind == "md" else nbformat.v4.new_code_cell(text))
    return nb


NB07 = [
("md", r"""
# 07 — ResNet and dilation: output stride 8

PSPNet's backbone is a ResNet (He et al. 2016) changed in two ways:

1. a **deep stem**: three 3x3 convolutions (3→64 stride 2, 64→64, 64→128) instead of one 7x7, then max pooling;
2. **dilation** in the last two stages, so the feature map stays at 1/8 of the image instead of 1/32.

This chapter builds both with `minipsp.models`, measures the feature-map sizes, computes receptive fields
(and checks one with autograd), and draws the feature maps. Code: `minipsp/models/resnet.py`.
"""),
("code", r"""
import numpy as np
import matplotlib.pyplot as plt
import minipsp
import minipsp.nn as nn
from minipsp.models import resnet18, resnet50, BasicBlock, Bottleneck
minipsp.manual_seed(0)
"""),
("md", r"""
## The residual block

A block computes `y = relu(x + F(x))`: the layers only learn a *correction* `F` to the identity, which is
what lets a 50- or 101-layer net train. ResNet-18/34 use the `BasicBlock` (two 3x3 convs); ResNet-50/101/152
the `Bottleneck` (1x1 reduce, 3x3, 1x1 expand x4). When the shape changes, the shortcut is a strided 1x1 conv
+ BN called `downsample` — torchvision's names, which is why ImageNet checkpoints load key for key.
"""),
("code", r"""
print(Bottleneck(256, 128, stride=2, downsample=nn.Sequential(nn.Conv2d(256, 512, 1, stride=2, bias=False),
                                                             nn.BatchNorm2d(512))))
"""),
("md", r"""
## Output stride: 32 vs 16 vs 8

Every stride 2 halves the map. A plain ResNet has five of them (stem conv, max pool, layer2, layer3, layer4):
output stride 32, so a 473-pixel crop becomes 15x15 — too coarse to segment. PSPNet removes the strides of
layer3 and layer4 and *dilates* their 3x3 convolutions by 2 and 4 instead. No weight changes shape, so
ImageNet weights still load; the map stays at 1/8: 60x60 for 473.
"""),
("code", r"""
x = minipsp.zeros(1, 3, 129, 129)
for os_ in (None, 16, 8):
    net = resnet18(deep_stem=True, output_stride=os_).eval()
    shapes = []
    with minipsp.no_grad():
        h = net.stem()(x)
        shapes.append(("stem", h.shape))
        for name in ("layer1", "layer2", "layer3", "layer4"):
            h = getattr(net, name)(h)
            shapes.append((name, h.shape))
    print(f"output stride {os_ or 32}: " + ", ".join(f"{n} {s[2]}x{s[3]}" for n, s in shapes))
net8 = resnet18(deep_stem=True, output_stride=8)
print("layer4.0.conv1:", net8.layer4[0].conv1, "\nlayer4.0.downsample.0:", net8.layer4[0].downsample[0])
"""),
("md", r"""
## What dilation does to a 3x3 kernel

A dilated 3x3 conv samples its nine taps `d` pixels apart: the same nine weights cover a (2d+1)x(2d+1) window.
Padding `d` keeps the size. Below: the taps of one output pixel at dilation 1, 2 and 4.
"""),
("code", r"""
fig, axes = plt.subplots(1, 3, figsize=(9, 3))
for ax, d in zip(axes, (1, 2, 4)):
    grid = np.zeros((11, 11))
    for i in (-1, 0, 1):
        for j in (-1, 0, 1):
            grid[5 + i * d, 5 + j * d] = 1
    ax.imshow(grid, cmap="Blues", vmin=0, vmax=1.3)
    ax.set_xticks(np.arange(-.5, 11, 1), minor=True); ax.set_yticks(np.arange(-.5, 11, 1), minor=True)
    ax.grid(which="minor", color="grey", linewidth=0.5); ax.set_xticks([]); ax.set_yticks([])
    ax.set_title(f"dilation {d}: window {2 * d + 1}x{2 * d + 1}")
plt.tight_layout(); plt.show()
"""),
("md", r"""
## Receptive fields

The receptive field (RF) of a feature pixel is the input window that can influence it. Walking the main path
of the network: a conv with kernel `k` and dilation `d` adds `(d(k-1)) * jump` pixels, and each stride multiplies
`jump` (the distance in input pixels between neighbouring feature pixels). Dilation grows the RF exactly as
the removed stride would have (a little more, since the first block's 3x3 conv is dilated too) — but
the map stays dense.
"""),
("code", r"""
def receptive_fields(net):
    # main path only: the downsample shortcut always sees less than the block's 3x3 path
    rf, jump, table = 1, 1, {}
    def visit(module):
        nonlocal rf, jump
        if isinstance(module, nn.Conv2d):
            k, s, d = module.kernel_size[0], module.stride[0], module.dilation[0]
        elif isinstance(module, nn.MaxPool2d):
            k, s, d = module.kernel_size, module.stride, 1
        else:
            return
        rf += d * (k - 1) * jump
        jump *= s
    for m in net.stem():
        visit(m)
    table["stem"] = (rf, jump)
    for name in ("layer1", "layer2", "layer3", "layer4"):
        for block in getattr(net, name):
            for child_name, child in block.named_children():
                if child_name != "downsample":
                    visit(child)
        table[name] = (rf, jump)
    return table

for depth, make in ((18, resnet18), (50, resnet50)):
    for os_ in (None, 8):
        t = receptive_fields(make(deep_stem=True, output_stride=os_))
        print(f"ResNet-{depth} OS {os_ or 32:2d}: " + "  ".join(f"{k} RF {v[0]} (stride {v[1]})" for k, v in t.items()))
"""),
("md", r"""
**Checked with autograd.** In eval mode (BN uses running statistics, so pixels do not talk to each other through
the batch statistics), the gradient of one centre feature pixel with respect to the input is non-zero exactly
inside its receptive field. For ResNet-18's layer1 the walk above says 47 pixels:
"""),
("code", r"""
net = resnet18(deep_stem=True, output_stride=8).eval()
x = minipsp.tensor(np.random.default_rng(0).standard_normal((1, 3, 97, 97)).astype(np.float32), requires_grad=True)
h = net.layer1(net.stem()(x))                       # (1, 64, 25, 25)
c = h.shape[2] // 2
h[:, :, c, c].sum().backward()
rows, cols = np.nonzero(np.abs(x.grad[0]).sum(0))
measured = rows.max() - rows.min() + 1
print("layer1 map", h.shape, "-> gradient non-zero over", measured, "x", cols.max() - cols.min() + 1, "input pixels")
assert measured == receptive_fields(net)["layer1"][0] == 47
plt.figure(figsize=(3.5, 3.5)); plt.imshow(np.log10(np.abs(x.grad[0]).sum(0) + 1e-12), cmap="magma")
plt.title("log |d feature / d input|"); plt.axis("off"); plt.show()
"""),
("md", r"""
At output stride 8, layer4 of ResNet-50 sees several hundred pixels — in principle most of a 473 crop. The PSPNet
paper's point (section 3.1) is that the *empirical* receptive field is much smaller than this theoretical one:
the pyramid pooling module of chapter 08 adds truly global context.

## Feature maps drawn

A scene from minipsp's built-in `SyntheticScenes`, through a (randomly initialised) ResNet-18 at output stride 32
and 8: the mean activation of each stage. Random weights already respond to edges and textures; what matters here
is the resolution — at stride 32 the last map is 5x5, at stride 8 it keeps 17x17.
"""),
("code", r"""
from minipsp.data.synthetic import SyntheticScenes
image, label = SyntheticScenes("val", count=1, size=129).load(0)   # image: float RGB in 0..255
mean, std = np.array([123.675, 116.28, 103.53]), np.array([58.395, 57.12, 57.375])
x = minipsp.tensor(((image - mean) / std).transpose(2, 0, 1)[None].astype(np.float32))
fig, axes = plt.subplots(2, 5, figsize=(14, 6))
for row, os_ in enumerate((None, 8)):
    minipsp.manual_seed(0)  # the same weights for both rows
    net = resnet18(deep_stem=True, output_stride=os_).eval()
    axes[row, 0].imshow(image.astype(np.uint8)); axes[row, 0].set_title("image"); axes[row, 0].axis("off")
    with minipsp.no_grad():
        h = net.stem()(x)
        for col, name in enumerate(("layer1", "layer2", "layer3", "layer4"), start=1):
            h = getattr(net, name)(h)
            axes[row, col].imshow(h.numpy()[0].mean(0), cmap="viridis")
            axes[row, col].set_title(f"OS {os_ or 32}: {name} {h.shape[2]}x{h.shape[3]}"); axes[row, col].axis("off")
plt.tight_layout(); plt.show()
"""),
]

NB08 = [
("md", r"""
# 08 — PSPNet: the pyramid pooling module, the head and the aux head

The network of Zhao et al. (CVPR 2017), Figure 3: a dilated ResNet (chapter 07) gives a feature map at 1/8 of
the image; the **pyramid pooling module** (PPM) pools it into 1x1, 2x2, 3x3 and 6x6 bins, reduces each with a 1x1
conv, upsamples them back and concatenates them with the map; a head predicts the classes, and during training an
**auxiliary head** on layer3 adds a second loss. Code: `minipsp/models/ppm.py`, `minipsp/models/pspnet.py`.
At the end we load a checkpoint written by `torch.save` and check minipsp's logits against PyTorch's.
"""),
("code", r"""
import sys, tempfile
from pathlib import Path
import numpy as np
import matplotlib.pyplot as plt
import minipsp
import minipsp.nn.functional as F
from minipsp.models import PPM, PSPNet, summary
from minipsp.data.synthetic import SyntheticScenes, colorize
minipsp.manual_seed(0)
image, label = SyntheticScenes("val", count=1, size=129).load(0)
"""),
("md", r"""
## The bins drawn over a scene

Adaptive pooling splits the map into `b x b` cells, cell `i` spanning rows `floor(i H / b)` to `ceil((i+1) H / b)`
(chapter 04). Bin 1 is the whole scene — "is there water anywhere?"; bin 6 keeps a coarse layout. Below, each
level pools the *image* itself (the PPM pools features, but the picture is the same) and upsamples it back
bilinearly, as the PPM does.
"""),
("code", r"""
x = minipsp.tensor(image.transpose(2, 0, 1)[None].astype(np.float32) / 255)
fig, axes = plt.subplots(1, 5, figsize=(16, 3.6))
axes[0].imshow(image.astype(np.uint8)); axes[0].set_title("scene"); axes[0].axis("off")
H, W = image.shape[:2]
for ax, b in zip(axes[1:], (1, 2, 3, 6)):
    pooled = F.adaptive_avg_pool2d(x, b)                                    # (1, 3, b, b)
    up = F.interpolate(pooled, size=(H, W), mode="bilinear", align_corners=True)
    ax.imshow(np.clip(up.numpy()[0].transpose(1, 2, 0), 0, 1))
    for i in range(1, b):
        ax.axhline(i * H / b - 0.5, color="white", lw=1); ax.axvline(i * W / b - 0.5, color="white", lw=1)
    ax.set_title(f"bin {b}: {b}x{b} cells, upsampled"); ax.axis("off")
plt.tight_layout(); plt.show()
"""),
("md", r"""
## The module: pool → 1x1 conv → BN → ReLU → upsample, then concatenate

With `C` input channels and `k` bins, each branch reduces to `C / k` channels (the paper's "DR"), so the output has
`2C` channels: 2048 + 4 x 512 = 4096 for ResNet-50. Here a ResNet-18-sized map: 512 channels at 17x17.
"""),
("code", r"""
ppm = PPM(in_dim=512, reduction_dim=128, bins=(1, 2, 3, 6)).eval()
feat = minipsp.randn(1, 512, 17, 17)
with minipsp.no_grad():
    for i, branch in enumerate(ppm.features):
        pooled = branch[0](feat)
        reduced = branch[3](branch[2](branch[1](pooled)))
        print(f"branch {i}: pool -> {pooled.shape}, 1x1 conv+BN+ReLU -> {reduced.shape}, upsample -> (1, 128, 17, 17)")
    out = ppm(feat)
print("concatenated:", out.shape, "= 512 +", len(ppm.bins), "x 128")
assert out.shape == (1, ppm.out_dim, 17, 17) and np.array_equal(out.numpy()[:, :512], feat.numpy())
print([k for k in ppm.state_dict() if k.startswith("features.0")])
"""),
("md", r"""
## The whole network, the head and the aux head

`cls`: 3x3 conv to 512, BN, ReLU, Dropout2d(0.1), 1x1 conv to the classes. `aux`: the same with 256 channels, on
layer3's output. The logits are upsampled x8 with `align_corners=True` — which is why inputs must satisfy
`(H - 1) % 8 == 0` (473, 713, 129 here): then the 17x17 map stretches exactly onto 129x129.
"""),
("code", r"""
model = PSPNet(layers=18, classes=SyntheticScenes.num_classes)
print(summary(model, (1, 3, 129, 129)))
print(model.cls)
print(model.aux)
"""),
("code", r"""
# training mode: forward(x, y) gives the logits and both losses; the trainer adds main + 0.4 x aux
xb = minipsp.tensor(((image - 127.5) / 60).transpose(2, 0, 1)[None].repeat(2, 0).astype(np.float32))
yb = minipsp.tensor(np.stack([label, label]).astype(np.int64))
logits, main_loss, aux_loss = model(xb, yb)
print("logits", logits.shape, "main loss", round(main_loss.item(), 4), "aux loss", round(aux_loss.item(), 4))
backbone, head = model.parameter_groups()
n_backbone, n_head = sum(p.numel() for p in backbone), sum(p.numel() for p in head)
print(f"{n_backbone:,} backbone parameters (base LR), {n_head:,} new ones (10x LR)")
try:
    model.eval()(minipsp.zeros(1, 3, 128, 128))
except ValueError as err:
    print("ValueError:", err)
"""),
("md", r"""
## Loading a checkpoint written by PyTorch

semseg's checkpoints are `torch.save({'epoch', 'state_dict', 'optimizer'})`, with every key prefixed `module.`
(the model was wrapped in DataParallel). `minipsp.load` reads the zip file *without importing torch*: a restricted
unpickler rebuilds only tensors (as NumPy arrays), OrderedDicts and plain containers, and refuses any other
name — a pickle can otherwise run arbitrary code. `minipsp.load_checkpoint` strips the prefix, unwraps
`state_dict` and loads strictly, naming any key that does not fit.

The PyTorch model here is the benchmarks' yardstick (`benchmarks/torch_pspnet.py`, semseg's architecture in plain
`torch.nn`), with its own random weights.
"""),
("code", r"""
import torch
sys.path.insert(0, str(Path.cwd().parent))             # the repository root, for benchmarks/
from benchmarks.torch_pspnet import TorchPSPNet
torch.manual_seed(0)
reference = TorchPSPNet(layers=18, classes=10).eval()
path = Path(tempfile.mkdtemp()) / "train_epoch_100.pth"
torch.save({"epoch": 100, "state_dict": {f"module.{k}": v for k, v in reference.state_dict().items()},
            "optimizer": {}}, path)

checkpoint = minipsp.load(path)                          # plain NumPy from here on
print(list(checkpoint), list(checkpoint["state_dict"])[:3], type(checkpoint["state_dict"]["module.layer0.0.weight"]))
ours = PSPNet(layers=18, classes=10).eval()
minipsp.load_checkpoint(ours, checkpoint)
with torch.no_grad(), minipsp.no_grad():
    expected = reference(torch.from_numpy(xb.numpy())).numpy()
    got = ours(xb).numpy()
err = np.abs(got - expected).max()
print(f"largest logit difference: {err:.2e} (largest logit {np.abs(expected).max():.2f})")
assert err < 1e-4 * np.abs(expected).max()
"""),
("code", r"""
# a key that does not fit is named, instead of being silently skipped (semseg loads with strict=False)
bad = {k: v for k, v in checkpoint["state_dict"].items() if "ppm.features.3" not in k}
try:
    minipsp.load_checkpoint(PSPNet(layers=18, classes=10), {"state_dict": bad})
except RuntimeError as err:
    print(str(err)[:300])
"""),
]


def build(name, cells):
    nb = notebook(cells)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(HERE)}}).execute()
    nbformat.write(nb, HERE / name)
    print("wrote", name)


if __name__ == "__main__":
    import sys

    wanted = sys.argv[1:] or ["07", "08"]
    if "07" in wanted:
        build("07_resnet.ipynb", NB07)
    if "08" in wanted:
        build("08_pspnet.ipynb", NB08)
