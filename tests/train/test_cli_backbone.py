"""`--set backbone=shallow`: the six-layer dilated net of benchmarks/thesis.py through the trainer and the CLI."""

import pytest
from train_tiny import one_line_error, tiny_config

import minipsp
from minipsp import memory
from minipsp.cli import main
from minipsp.config import TrainConfig, to_toml
from minipsp.models import PSPNet
from minipsp.train import build_model


@pytest.fixture(scope="module")
def shallow_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("shallow")
    config = root / "tiny.toml"
    config.write_text(to_toml(tiny_config(iters=2, width=8)))      # layers stays 18: unused, and not refused
    out = root / "run"
    assert main(["train", str(config), "--set", "backbone=shallow", "--out", str(out), "--iters", "2",
                 "--no-progress"]) == 0
    return out


def test_train_writes_a_shallow_checkpoint(shallow_run):
    state = minipsp.load(str(shallow_run / "checkpoint.mpsp"))
    assert state["config"]["backbone"] == "shallow"
    # the shallow net's tensors, not a ResNet's: layer1 is one conv (layer1.0.weight), no ResNet block
    assert tuple(state["model"]["layer1.0.weight"].shape) == (8, 8, 3, 3)
    assert not any(k.startswith("layer1.0.conv1") for k in state["model"])


def test_eval_rebuilds_the_shallow_net(shallow_run, capsys):
    assert main(["eval", str(shallow_run / "checkpoint.mpsp"), "--count", "1", "--no-progress"]) == 0
    assert "mIoU" in capsys.readouterr().out


def test_resume_with_another_backbone_is_refused(shallow_run, capsys):
    one_line_error(capsys, ["train", "--out", str(shallow_run), "--resume", "--iters", "3", "--set",
                            "backbone=resnet"], "'backbone'", "'shallow'", "'resnet'")


def test_bad_backbone_is_one_line(tmp_path, capsys):
    one_line_error(capsys, ["train", "--set", "backbone=vgg", "--out", str(tmp_path / "x")],
                   "'backbone'", "'vgg'", "'resnet' or 'shallow'")


def test_odd_width_is_refused_for_the_shallow_net(tmp_path, capsys):
    one_line_error(capsys, ["train", "--set", "backbone=shallow", "--width", "7", "--out", str(tmp_path / "x")],
                   "'width'", "7", "even")


@pytest.mark.parametrize("changes", [dict(), dict(use_ppm=False), dict(aux=False, reduction_dim=3),
                                     dict(width=64, bins=(1, 2, 4, 8))])
def test_memory_estimate_counts_the_shallow_net(changes):
    """The estimate counts the shallow net's own conv weights (exactly), not a ResNet-50's."""
    cfg = TrainConfig(**{**dict(backbone="shallow", width=16, classes=10), **changes})
    model = build_model(cfg)
    convs = sum(p.numel() for _, p in model.named_parameters() if len(p.shape) == 4)
    assert memory.parameter_count(cfg) == convs
    assert memory.parameter_count(cfg) < memory.parameter_count(cfg.replace(backbone="resnet", layers=18))
    assert isinstance(model, PSPNet) and model.backbone == "shallow"
