"""The trainer end to end on a tiny PSPNet: the loss falls, a resumed run retraces the uninterrupted
one exactly, a NaN loss stops the run and keeps the last good checkpoint, the run directory is complete."""

import json
import math
import os

import numpy as np
import pytest
from train_tiny import tiny_config

import minipsp
from minipsp.config import ConfigError, load_config
from minipsp.optim import poly_lr
from minipsp.train import Trainer, TrainingDiverged, param_groups, read_log, train


def no_augmentation(**changes):
    """Same images every epoch (no random scale/rotate/blur/flip) so that a few steps must fit them."""
    return tiny_config(scale_min=1.0, scale_max=1.0, rotate_min=0.0, rotate_max=0.0, blur=False, flip=False,
                       **changes)


def losses(run_dir):
    return [r["loss"] for r in read_log(run_dir)[0]]


def test_a_few_iterations_lower_the_loss(tmp_path):
    cfg = no_augmentation(synthetic_train=2, iters=6, base_lr=0.01, dropout=0.0, out=str(tmp_path))
    train(cfg)
    trace = losses(tmp_path)
    assert len(trace) == 6 and all(math.isfinite(v) for v in trace)
    assert trace[-1] < 0.8 * trace[0], trace


def test_run_directory(tmp_path):
    cfg = tiny_config(iters=2, out=str(tmp_path), eval_every=1, eval_count=1)
    summary = train(cfg)
    assert sorted(os.listdir(tmp_path)) == ["checkpoint.mpsp", "config.toml", "log.jsonl"]
    assert load_config(str(tmp_path / "config.toml")) == cfg        # the resolved config reads back
    records, evals = read_log(tmp_path)
    assert [r["iter"] for r in records] == [1, 2]
    assert set(records[0]) == {"iter", "loss", "main", "aux", "lr", "its"}
    assert records[0]["loss"] == pytest.approx(records[0]["main"] + 0.4 * records[0]["aux"], rel=1e-5)
    assert [e["iter"] for e in evals] == [1, 2] and 0 <= evals[-1]["eval"]["miou"] <= 1
    assert summary["eval"]["miou"] == evals[-1]["eval"]["miou"]
    state = minipsp.load(str(tmp_path / "checkpoint.mpsp"))
    assert state["iteration"] == 2
    assert set(state) >= {"model", "optimizer", "scheduler", "rng", "loader", "config"}


def test_backbone_at_base_lr_and_head_at_ten_times(tmp_path):
    cfg = tiny_config(iters=3, out=str(tmp_path))
    trainer = Trainer(cfg)
    groups = param_groups(trainer.model, cfg)
    names = {id(p): n for n, p in trainer.model.named_parameters()}
    assert all(names[id(p)].startswith(("layer0", "layer1", "layer2", "layer3", "layer4")) for p in groups[0]["params"])
    assert all(names[id(p)].startswith(("ppm.", "cls.", "aux.")) for p in groups[1]["params"])
    assert len(groups[0]["params"]) + len(groups[1]["params"]) == len(list(trainer.model.parameters()))
    trainer.run()
    lrs = [r["lr"] for r in read_log(tmp_path)[0]]          # the rate each iteration used (poly, power 0.9)
    assert lrs == pytest.approx([poly_lr(0.01, i, 3, 0.9) for i in range(3)])
    head, backbone = trainer.optimizer.param_groups[1]["lr"], trainer.optimizer.param_groups[0]["lr"]
    assert head == pytest.approx(10 * backbone)


def test_resume_retraces_the_uninterrupted_run(tmp_path):
    cfg = tiny_config(iters=4, checkpoint_every=2, synthetic_train=3, out=str(tmp_path / "whole"))
    train(cfg)
    expected = losses(cfg.out)

    # The same run, killed during iteration 4 (after the checkpoint of iteration 2), then resumed.
    # One batch per epoch: the resumed part also crosses into new epochs (new shuffles, new augmentations).
    broken = cfg.replace(out=str(tmp_path / "broken"))
    trainer = Trainer(broken)
    real_step = trainer.step

    def step_then_crash(images, labels):
        if trainer.iteration == 3:
            raise KeyboardInterrupt
        return real_step(images, labels)

    trainer.step = step_then_crash
    with pytest.raises(KeyboardInterrupt):
        trainer.run()
    assert [r["iter"] for r in read_log(broken.out)[0]] == [1, 2, 3]      # iteration 3 was after the checkpoint
    train(broken, resume=True)
    assert losses(broken.out) == expected                                 # bit for bit
    final_a = minipsp.load(os.path.join(cfg.out, "checkpoint.mpsp"))["model"]
    final_b = minipsp.load(os.path.join(broken.out, "checkpoint.mpsp"))["model"]
    for key in final_a:
        np.testing.assert_array_equal(final_a[key], final_b[key], err_msg=key)


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    cfg = tiny_config(iters=4, checkpoint_every=1, out=str(tmp_path))
    trainer = Trainer(cfg)
    real_forward = trainer.model.forward

    def forward(x, y=None):
        logits, main, aux = real_forward(x, y)
        if trainer.iteration == 2:       # the third iteration's loss is NaN
            main = main * float("nan")
        return logits, main, aux

    trainer.model.forward = forward
    with pytest.raises(TrainingDiverged, match="iteration 3"):
        trainer.run()
    state = minipsp.load(str(tmp_path / "checkpoint.mpsp"))
    assert state["iteration"] == 2
    assert all(np.isfinite(v).all() for v in state["model"].values())
    for key, p in trainer.model.named_parameters():          # the NaN step never reached the weights
        np.testing.assert_array_equal(p.numpy(), state["model"][key], err_msg=key)
    assert [json.loads(line)["iter"] for line in open(tmp_path / "log.jsonl")] == [1, 2]


def test_resume_without_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="no checkpoint"):
        Trainer(tiny_config(out=str(tmp_path)), resume=True)


def test_missing_dataset_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        Trainer(tiny_config(data=f"ade20k:{tmp_path}/nowhere", out=str(tmp_path)))
