"""Every `minipsp` command on a tiny config, and the one-line error for bad settings and missing paths."""

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from train_tiny import one_line_error, tiny_config

from minipsp.cli import main
from minipsp.config import ConfigError, TrainConfig, from_dict, load_config, to_toml


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A tiny run trained through the CLI once, shared by the eval / predict / plot tests."""
    root = tmp_path_factory.mktemp("cli")
    config = root / "tiny.toml"
    config.write_text(to_toml(tiny_config(iters=2, eval_every=2, eval_count=1)))
    out = root / "run"
    assert main(["train", str(config), "--out", str(out), "--iters", "2", "--no-progress"]) == 0
    return out


def test_train_writes_a_run(run_dir):
    assert sorted(os.listdir(run_dir)) == ["checkpoint.mpsp", "config.toml", "log.jsonl"]
    assert load_config(str(run_dir / "config.toml")).iters == 2


def test_train_resume_extends_a_run(run_dir, tmp_path, capsys):
    out = tmp_path / "more"
    os.makedirs(out)
    for name in ("checkpoint.mpsp", "log.jsonl"):
        (out / name).write_bytes((run_dir / name).read_bytes())
    assert main(["train", str(run_dir / "config.toml"), "--out", str(out), "--iters", "3", "--resume",
                 "--no-progress"]) == 0
    assert "iteration 3" in capsys.readouterr().out


@pytest.mark.parametrize("mode", ["whole", "slide", "multiscale"])
@pytest.mark.parametrize("flip", [[], ["--flip"]])
def test_eval(run_dir, capsys, mode, flip):
    assert main(["eval", str(run_dir / "checkpoint.mpsp"), "--mode", mode, "--count", "1", "--no-progress",
                 "--set", "eval_scales=1.0"] + flip) == 0
    out = capsys.readouterr().out
    assert "mIoU" in out and "allAcc" in out


def test_predict(run_dir, tmp_path, capsys):
    image = tmp_path / "scene.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (30, 41, 3), dtype=np.uint8)).save(image)
    assert main(["predict", str(run_dir / "checkpoint.mpsp"), str(image), "-o", str(tmp_path / "out")]) == 0
    pred = Image.open(tmp_path / "out" / "scene_pred.png")
    assert pred.mode == "P" and pred.size == (41, 30)
    assert np.asarray(pred).max() < tiny_config().classes
    assert Image.open(tmp_path / "out" / "scene_overlay.png").size == (41, 30)


def test_plot(run_dir, capsys):
    assert main(["plot", str(run_dir), "--count", "2"]) == 0
    for name in ("curves.png", "predictions.png"):
        assert Image.open(run_dir / name).size[0] > 100


def test_info(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    for word in ("minipsp", "numpy", "numba", "python", "blas", "kernels", "cuda"):
        assert word in out


def test_console_script_runs_without_a_traceback(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("layers = 51\n")
    done = subprocess.run([sys.executable, "-m", "minipsp.cli", "train", str(bad)], capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.strip() == ("minipsp: error: config key 'layers': got 51, expected one of 18, 34, 50, 101, "
                                   "152")


@pytest.mark.parametrize("text, words", [
    ("learning_rate = 0.1\n", ["unknown config key 'learning_rate'"]),
    ("[optim]\nmomentum = 1.5\n", ["'momentum'", "1.5", "[0, 1)"]),
    ("crop_size = 100\n", ["'crop_size'", "100", "divisible by 8"]),
    ("bins = [1, 0]\n", ["'bins'"]),
    ("pooling = 'mean'\n", ["'pooling'", "'mean'", "'avg' or 'max'"]),
    ("iters = 'many'\n", ["'iters'", "'many'", "an integer"]),
    ("layers = = 3\n", ["not valid TOML"]),
])
def test_bad_config_file(tmp_path, capsys, text, words):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    one_line_error(capsys, ["train", str(path)], *words)


@pytest.mark.parametrize("argv, words", [
    (["train", "nowhere.toml"], ["config file", "nowhere.toml", "does not exist"]),
    (["train", "--layers", "seven"], ["'layers'", "'seven'", "an integer"]),
    (["train", "--set", "nonsense=1"], ["unknown config key 'nonsense'"]),
    (["train", "--seed", str(10**24)], ["'seed'", str(10**24), "[0, 2**63)"]),
    (["train", "--seed", "-1"], ["'seed'", "-1", "[0, 2**63)"]),
    (["train", "--data", "ade20k:/no/such/folder", "--out", "{tmp}"], ["/no/such/folder", "does not exist"]),
    (["train", "--out", "{tmp}", "--resume"], ["cannot resume"]),
    (["eval", "missing.mpsp"], ["checkpoint", "missing.mpsp", "does not exist"]),
    (["predict", "missing.mpsp", "a.png"], ["does not exist"]),
    (["plot", "no/such/run"], ["run directory", "does not exist"]),
])
def test_missing_paths_and_bad_flags(tmp_path, capsys, argv, words):
    argv = [a.replace("{tmp}", str(tmp_path / "run")) for a in argv]
    one_line_error(capsys, argv, *words)


def test_config_round_trip_and_errors():
    cfg = TrainConfig(layers=18, bins=[1, 2], aux_weight=0)
    assert cfg.bins == (1, 2) and cfg.aux_weight == 0.0
    assert from_dict({"model": {"layers": 101}, "optim": {"base_lr": 0.02}}).base_lr == 0.02
    with pytest.raises(ConfigError, match="'dropout': got 1.5"):
        cfg.replace(dropout=1.5)
    with pytest.raises(ConfigError, match="'batch_size'"):
        TrainConfig(batch_size=1)


@pytest.mark.parametrize("command", [[], ["train"], ["eval"], ["predict"], ["plot"], ["info"]])
def test_help_of_every_command(command, capsys):
    # argparse %-formats help strings, so a bare "%" in one crashes --help with a ValueError.
    with pytest.raises(SystemExit) as exit_info:
        main(command + ["--help"])
    assert exit_info.value.code == 0
    assert "usage: minipsp" in capsys.readouterr().out


@pytest.mark.parametrize("mode, flag, flipped", [("whole", [], False), ("slide", [], False),
                                                 ("slide", ["--flip"], True), ("multiscale", [], True)])
def test_eval_flip_reaches_the_evaluation(run_dir, monkeypatch, mode, flag, flipped):
    import minipsp.evaluate

    seen = {}

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return {"miou": 0.0, "mean_acc": 0.0, "pixel_acc": 0.0}
    monkeypatch.setattr(minipsp.evaluate, "evaluate", spy)
    assert main(["eval", str(run_dir / "checkpoint.mpsp"), "--mode", mode, "--no-progress"] + flag) == 0
    assert seen["mode"] == mode and seen["flip"] is flipped
