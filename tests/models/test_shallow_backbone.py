"""PSPNet(backbone="shallow"): the six-layer dilated net of the thesis experiment (benchmarks/thesis.py).

What must hold for the experiment to mean anything: the receptive field is what the docs say (115
pixels for the backbone, 131 with the head), measured by autograd, not only by the formula; the
model has the PSPNet layout (names, shapes, parameter groups) with and without the PPM; it trains;
and it computes what the same network written in PyTorch computes.
"""

import numpy as np
import pytest

import minipsp
from minipsp.models import PSPNet
from minipsp.models.shallow import ShallowDilatedNet, receptive_field
from minipsp.optim import SGD

CLASSES = 5


def measured_receptive_field(forward, size):
    """Rows and columns of the input on which the centre pixel of forward(x) depends (non-zero gradient)."""
    x = minipsp.tensor(np.random.default_rng(0).standard_normal((1, 3, size, size)), requires_grad=True)
    out = forward(x)
    c = out.shape[2] // 2
    out[:, :, c, c].sum().backward()
    g = np.abs(x.grad[0]).sum(0)
    touched = g > 1e-9 * g.max()     # exact zeros with im2col; a Winograd conv leaves ~1e-16 rounding noise there
    rows, cols = np.nonzero(touched)
    return rows.max() - rows.min() + 1, cols.max() - cols.min() + 1, (rows.min() + rows.max()) / 2


def test_receptive_field_by_autograd():
    model = PSPNet(backbone="shallow", width=8, classes=CLASSES, use_ppm=False, aux=False).double().eval()
    size = 193                                                   # 25 x 25 features; the centre one sees 96 +- 65
    backbone = lambda x: model.layer4(model.layer3(model.layer2(model.layer1(model.layer0(x)))))  # noqa: E731
    assert measured_receptive_field(backbone, size)[:2] == (115, 115)
    # the classifier head's 3x3 conv adds 2 x 8 pixels (before the logits are upsampled)
    height, width, centre = measured_receptive_field(lambda x: model.cls(backbone(x)), size)
    assert (height, width, centre) == (131, 131, 96)
    assert ShallowDilatedNet(8).receptive_field == 115
    assert receptive_field([model.layer0, model.layer1, model.layer2, model.layer3, model.layer4, model.cls]) == 131


def test_the_ppm_sees_the_whole_image():
    model = PSPNet(backbone="shallow", width=8, classes=CLASSES, use_ppm=True, aux=False).double().eval()
    height, width, _ = measured_receptive_field(model, 193)     # the logits, upsampled: every input pixel counts
    assert (height, width) == (193, 193)


@pytest.mark.parametrize("use_ppm", [False, True])
def test_layout_and_shapes(use_ppm):
    model = PSPNet(backbone="shallow", width=16, classes=CLASSES, use_ppm=use_ppm)
    tops = {key.split(".")[0] for key in model.state_dict()}
    assert tops == {"layer0", "layer1", "layer2", "layer3", "layer4", "cls", "aux"} | ({"ppm"} if use_ppm else set())
    x = minipsp.zeros(2, 3, 65, 65)
    with minipsp.no_grad():
        features = model.layer4(model.layer3(model.layer2(model.layer1(model.layer0(x)))))
        assert features.shape == (2, 32, 9, 9)
        if use_ppm:
            assert model.ppm(features).shape == (2, 64, 9, 9)   # 32 + 4 bins x 8 (DR: 32 / 4)
        assert model.eval()(x).shape == (2, CLASSES, 65, 65)
    backbone, head = model.parameter_groups()
    assert len(backbone) + len(head) == len(list(model.parameters()))
    assert "backbone='shallow'" in repr(model)


@pytest.mark.parametrize("use_ppm", [False, True])
def test_trains(use_ppm):
    """A few SGD steps on one batch lower its loss (main + 0.4 aux), and every parameter gets a gradient."""
    minipsp.manual_seed(0)
    model = PSPNet(backbone="shallow", width=8, classes=CLASSES, use_ppm=use_ppm, dropout=0.0)
    rng = np.random.default_rng(1)
    x = minipsp.tensor(rng.standard_normal((2, 3, 33, 33)).astype(np.float32))
    y = minipsp.tensor(np.repeat((np.arange(33) * CLASSES // 33)[None, :, None], 33, axis=2).repeat(2, 0))
    optimizer = SGD(model.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for _ in range(8):
        _, main, aux = model(x, y)
        loss = main + 0.4 * aux
        optimizer.zero_grad()
        loss.backward()
        assert all(p.grad is not None and np.isfinite(p.grad).all() for p in model.parameters())
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0], losses


@pytest.mark.parametrize("kwargs, match", [
    (dict(backbone="vgg"), "backbone must be one of"),
    (dict(backbone="shallow", output_stride=16), "output stride 8"),
    (dict(backbone="shallow", width=15), "width must be an even int"),
    (dict(backbone="shallow", width=0), "width must be an even int"),
])
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PSPNet(classes=CLASSES, **kwargs)


def test_matches_the_pytorch_toy():
    """The same network written in PyTorch (benchmarks/synthetic_context_check.py's ToyNet, inline here)."""
    torch = pytest.importorskip("torch")
    tnn, tF = torch.nn, torch.nn.functional

    def cbr(cin, cout, stride=1, dilation=1):
        return tnn.Sequential(tnn.Conv2d(cin, cout, 3, stride, dilation, dilation, bias=False),
                              tnn.BatchNorm2d(cout), tnn.ReLU())

    w, bins = 8, (1, 2, 3, 6)
    body = tnn.Sequential(cbr(3, w // 2, 2), cbr(w // 2, w), cbr(w, w, 2), cbr(w, 2 * w, 2),
                          cbr(2 * w, 2 * w, dilation=2), cbr(2 * w, 2 * w, dilation=4))
    stages = tnn.ModuleList(tnn.Sequential(tnn.Conv2d(2 * w, w // 2, 1, bias=False), tnn.BatchNorm2d(w // 2),
                                           tnn.ReLU()) for _ in bins)
    head = tnn.Sequential(cbr(4 * w, w), tnn.Conv2d(w, CLASSES, 1))
    torch.manual_seed(0)
    for m in [*body.modules(), *stages.modules(), *head.modules()]:
        if isinstance(m, tnn.BatchNorm2d):          # realistic statistics, so eval-mode BN is not the identity
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    body.eval(), stages.eval(), head.eval()

    def reference(x):
        f = body(x)
        pooled = [tF.interpolate(s(tF.adaptive_avg_pool2d(f, b)), f.shape[2:], mode="bilinear", align_corners=True)
                  for b, s in zip(bins, stages)]
        return tF.interpolate(head(torch.cat([f] + pooled, 1)), x.shape[2:], mode="bilinear", align_corners=True)

    ours = PSPNet(backbone="shallow", width=w, classes=CLASSES, use_ppm=True, aux=False).eval()
    names = ["layer0.0", "layer0.3", "layer1.0", "layer2.0", "layer3.0", "layer4.0"]   # the six convs
    state = {}
    for i, name in enumerate(names):
        conv, bn = body[i][0], body[i][1]
        prefix, index = name.rsplit(".", 1)
        state[f"{name}.weight"] = conv.weight
        for key in ("weight", "bias", "running_mean", "running_var"):
            state[f"{prefix}.{int(index) + 1}.{key}"] = getattr(bn, key)
    for i, s in enumerate(stages):
        state[f"ppm.features.{i}.1.weight"] = s[0].weight
        for key in ("weight", "bias", "running_mean", "running_var"):
            state[f"ppm.features.{i}.2.{key}"] = getattr(s[1], key)
    state["cls.0.weight"] = head[0][0].weight
    for key in ("weight", "bias", "running_mean", "running_var"):
        state[f"cls.1.{key}"] = getattr(head[0][1], key)
    state["cls.4.weight"], state["cls.4.bias"] = head[1].weight, head[1].bias
    own = ours.state_dict()
    for key in own:
        if key.endswith("num_batches_tracked"):
            state[key] = own[key]
    ours.load_state_dict({k: np.asarray(v.detach().numpy() if hasattr(v, "detach") else v) for k, v in state.items()})

    x = np.random.default_rng(2).standard_normal((2, 3, 65, 65)).astype(np.float32)
    with torch.no_grad(), minipsp.no_grad():
        expected = reference(torch.from_numpy(x)).numpy()
        got = ours(minipsp.tensor(x)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
