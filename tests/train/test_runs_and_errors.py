"""What a practitioner runs into around a run: every --data kind, classes taken from the dataset, resuming
with the checkpoint's own config (and a longer schedule), a run directory that is not overwritten by
mistake, a crash-cut log line, checkpoints that are never written with inf or nan, and one clear line
(not a traceback) for files that are not images or checkpoints, a checkpoint of another network, or CUDA
that is not there."""

import json

import numpy as np
import pytest
from PIL import Image
from train_tiny import one_line_error, tiny_config

import minipsp
import minipsp.backend
import minipsp.data as D
from minipsp.cli import main
from minipsp.config import (
    DATASET_CLASSES,
    ConfigError,
    TrainConfig,
    check_resumable,
    from_dict,
    resume_config,
    to_dict,
    to_toml,
)
from minipsp.optim import poly_lr
from minipsp.train import Trainer, TrainingDiverged, build_dataset, build_model, param_groups, read_log, train


def write_pair(image_path, label_path, label):
    image_path.parent.mkdir(parents=True, exist_ok=True)
    label_path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full(label.shape + (3,), 90, np.uint8)).save(image_path)
    Image.fromarray(label.astype(np.uint8)).save(label_path)


# -- every --data kind -----------------------------------------------------------------------------
def test_voc_voc_aug_and_list_data_build(tmp_path):
    voc = tmp_path / "VOC2012"
    label = np.zeros((6, 8), np.uint8)
    for name in ("a", "b", "c"):
        write_pair(voc / "JPEGImages" / f"{name}.jpg", voc / "SegmentationClass" / f"{name}.png", label)
        write_pair(voc / "JPEGImages" / f"{name}.jpg", voc / "SegmentationClassAug" / f"{name}.png", label + 1)
    (voc / "ImageSets" / "Segmentation").mkdir(parents=True)
    (voc / "ImageSets" / "Segmentation" / "train.txt").write_text("a\n")
    (voc / "ImageSets" / "Segmentation" / "val.txt").write_text("c\n")
    (voc / "ImageSets" / "SegmentationAug").mkdir(parents=True)
    (voc / "ImageSets" / "SegmentationAug" / "train_aug.txt").write_text("a\nb\n")

    plain = tiny_config(data=f"voc:{tmp_path}", classes=0)
    assert plain.with_dataset_classes().classes == 21
    assert len(build_dataset(plain, "train", None)) == 1
    aug = tiny_config(data=f"voc_aug:{tmp_path}", classes=0)
    train_aug = build_dataset(aug, "train", None)
    assert len(train_aug) == 2 and train_aug[0][1].max() == 1               # SBD's list and labels
    assert len(build_dataset(aug, "val", None)) == 1                         # VOC's own val

    (tmp_path / "train.txt").write_text("VOC2012/JPEGImages/a.jpg VOC2012/SegmentationClass/a.png\n")
    (tmp_path / "val.txt").write_text("VOC2012/JPEGImages/c.jpg VOC2012/SegmentationClass/c.png\n")
    listed = tiny_config(data=f"list:{tmp_path}:{tmp_path / 'train.txt'}:{tmp_path / 'val.txt'}", classes=21)
    assert len(build_dataset(listed, "train", None)) == 1 and len(build_dataset(listed, "val", None)) == 1


# -- classes ---------------------------------------------------------------------------------------
def test_classes_default_to_the_datasets_own():
    assert TrainConfig().classes == 0
    assert TrainConfig(layers=18, width=8).with_dataset_classes().classes == D.SyntheticScenes.num_classes
    assert build_model(TrainConfig(layers=18, width=8)).classes == 10
    assert DATASET_CLASSES == {"synthetic": D.SyntheticScenes.num_classes, "ade20k": D.ADE20K.num_classes,
                               "voc": D.VOCSegmentation.num_classes, "voc_aug": D.VOCSegmentation.num_classes,
                               "cityscapes": D.Cityscapes.num_classes}
    with pytest.raises(ConfigError, match="'list' dataset does not say how many classes"):
        TrainConfig(data="list:r:a:b").with_dataset_classes()
    assert TrainConfig(data="list:r:a:b", classes=7).with_dataset_classes().classes == 7


def test_classes_that_do_not_match_the_dataset_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="'classes': got 150, but synthetic has 10 classes"):
        Trainer(tiny_config(classes=150, out=str(tmp_path)))


def test_non_finite_numbers_are_refused():
    for bad in (float("inf"), float("nan")):
        with pytest.raises(ConfigError, match="'base_lr'.*a finite number"):
            TrainConfig(base_lr=bad)
    with pytest.raises(ConfigError, match="'eval_scales'"):
        TrainConfig(eval_scales=(1.0, float("inf")))
    with pytest.raises(ConfigError, match="a table of keys and values; got a list"):
        from_dict([1, 2])


# -- resuming --------------------------------------------------------------------------------------
@pytest.fixture
def three_iterations(tmp_path):
    out = tmp_path / "run"
    cfg = tiny_config(iters=3, width=8, out=str(out), checkpoint_every=0)
    train(cfg)
    return cfg, out


def test_resume_takes_the_checkpoints_config_and_stretches_the_schedule(three_iterations, capsys):
    cfg, out = three_iterations
    # no file and no model flags: everything comes from the checkpoint; only iters changes
    assert main(["train", "--out", str(out), "--resume", "--iters", "5", "--no-progress"]) == 0
    assert "iteration 5" in capsys.readouterr().out
    records = read_log(out)[0]
    assert [r["iter"] for r in records] == [1, 2, 3, 4, 5]
    # iterations 4 and 5 run on the 5-iteration poly schedule, not at the 3-iteration one's 0
    for r in records[3:]:
        assert r["lr"] == pytest.approx(poly_lr(cfg.base_lr, r["iter"] - 1, 5, cfg.power)) and r["lr"] > 0
    assert minipsp.load(str(out / "checkpoint.mpsp"))["config"]["width"] == 8


def test_resume_refuses_a_different_model_or_recipe(three_iterations, capsys):
    _, out = three_iterations
    one_line_error(capsys, ["train", "--out", str(out), "--resume", "--set", "momentum=0.5"],
                   "'momentum'", "checkpoint was trained with 0.9", "got 0.5")
    one_line_error(capsys, ["train", "--out", str(out), "--resume", "--layers", "34"], "'layers'")


def test_resume_from_python_checks_the_config_too(three_iterations):
    cfg, _ = three_iterations
    with pytest.raises(ConfigError, match="'weight_decay': the checkpoint was trained with 0.0001, got 0.5"):
        train(cfg.replace(weight_decay=0.5, iters=4), resume=True)
    assert train(cfg.replace(iters=4, log_every=2), resume=True)["last"]["iter"] == 4


def test_resume_accepts_what_keeps_it_the_same_run(three_iterations, tmp_path, capsys):
    cfg, out = three_iterations
    # classes 0 is the dataset's own (10, as saved)
    resumed = resume_config(minipsp.load(str(out / "checkpoint.mpsp"))["config"], overrides={"classes": 0, "iters": 4})
    assert resumed.with_dataset_classes().classes == 10 and resumed.iters == 4
    # a moved dataset folder of the same kind, and a start-from file that is gone, are fine; another kind is not
    saved = TrainConfig(data="ade20k:/old/place", classes=21, init="pretrained.mpsp")
    check_resumable(saved, saved.replace(data="ade20k:/new/place", init=""))
    with pytest.raises(ConfigError, match="'data'"):
        check_resumable(saved, saved.replace(data="voc:/new/place"))
    one_line_error(capsys, ["train", "--out", str(out), "--resume", "--iters", "2"],
                   "'iters': got 2, but the checkpoint is already at iteration 3")


def test_a_run_saved_with_the_old_150_class_default_still_resumes(three_iterations):
    cfg, out = three_iterations
    old = cfg.replace(classes=150, iters=3, out=str(out / "old"))
    with pytest.raises(ConfigError, match="got 150, but synthetic has 10"):     # a new run: refused
        train(old)
    state = minipsp.load(str(out / "checkpoint.mpsp"))
    model = build_model(old)
    state["model"], state["config"] = model.state_dict(), to_dict(old)       # as such a run saved it
    state["optimizer"] = minipsp.optim.SGD(param_groups(model, old), lr=old.base_lr, momentum=0.9).state_dict()
    (out / "old").mkdir()
    minipsp.save(state, str(out / "old" / "checkpoint.mpsp"))
    assert train(old.replace(iters=4), resume=True)["last"]["iter"] == 4


def test_a_new_run_does_not_overwrite_an_old_one_by_mistake(three_iterations, capsys):
    cfg, out = three_iterations
    toml = out.parent / "tiny.toml"
    toml.write_text(to_toml(cfg))
    before = (out / "checkpoint.mpsp").read_bytes()
    one_line_error(capsys, ["train", str(toml), "--out", str(out)], "already holds a run", "--resume", "--overwrite")
    assert (out / "checkpoint.mpsp").read_bytes() == before and len(read_log(out)[0]) == 3
    assert main(["train", str(toml), "--out", str(out), "--iters", "1", "--overwrite"]) == 0
    assert len(read_log(out)[0]) == 1


def test_overwrite_removes_the_old_checkpoint_at_once(three_iterations):
    cfg, out = three_iterations
    Trainer(cfg.replace(seed=7), overwrite=True)             # built, not yet run: the old state is gone
    assert not (out / "checkpoint.mpsp").exists() and read_log(out) == ([], [])


def test_a_log_line_cut_short_by_a_crash_is_skipped(three_iterations):
    cfg, out = three_iterations
    with open(out / "log.jsonl", "a") as f:
        f.write('{"iter": 4, "loss": 1.2')            # the process died in the middle of this write
    assert [r["iter"] for r in read_log(out)[0]] == [1, 2, 3]
    train(cfg.replace(iters=4), resume=True)
    lines = (out / "log.jsonl").read_text().splitlines()
    assert [json.loads(line)["iter"] for line in lines] == [1, 2, 3, 4]


# -- nothing non-finite is ever saved ---------------------------------------------------------------
@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning")     # the point of the test
def test_a_diverging_run_never_saves_non_finite_weights(tmp_path):
    out = tmp_path / "diverging"
    cfg = tiny_config(iters=12, base_lr=1e6, checkpoint_every=1, out=str(out))
    with pytest.raises(TrainingDiverged, match="iteration"):
        train(cfg)
    # with this seed the loss stays finite for a few steps while the running variances overflow: the
    # checkpoint left is the last state with everything finite
    state = minipsp.load(str(out / "checkpoint.mpsp"))
    assert 1 <= state["iteration"] < 12
    assert all(np.isfinite(v).all() for v in state["model"].values() if v.dtype.kind == "f")


def test_save_refuses_non_finite_running_statistics(tmp_path):
    trainer = Trainer(tiny_config(out=str(tmp_path)))
    trainer.save()
    good = (tmp_path / "checkpoint.mpsp").read_bytes()
    trainer.model.layer0[1].running_var.data[0] = np.inf
    with pytest.raises(TrainingDiverged, match=r"layer0\.1\.running_var is not finite"):
        trainer.save()
    assert (tmp_path / "checkpoint.mpsp").read_bytes() == good


# -- one line for bad files and missing pieces ---------------------------------------------------------
@pytest.fixture
def checkpoint(three_iterations):
    return three_iterations[1] / "checkpoint.mpsp"


def test_files_that_are_not_images_or_checkpoints(checkpoint, tmp_path, capsys):
    text = tmp_path / "notes.png"
    text.write_text("not a picture")
    one_line_error(capsys, ["predict", str(checkpoint), str(text), "-o", str(tmp_path / "out")],
                   "notes.png", "not an image file")
    one_line_error(capsys, ["eval", str(text)], "cannot read checkpoint", "notes.png")


def test_a_damaged_checkpoint(checkpoint, tmp_path, capsys):
    damaged = tmp_path / "damaged.mpsp"
    data = bytearray(checkpoint.read_bytes())
    data[len(data) // 2] ^= 0xFF                               # one flipped byte inside the zip
    damaged.write_bytes(bytes(data))
    one_line_error(capsys, ["eval", str(damaged), "--no-progress"], "cannot read checkpoint", "damaged.mpsp")


def test_a_checkpoint_of_another_network(checkpoint, capsys):
    one_line_error(capsys, ["eval", str(checkpoint), "--layers", "34", "--no-progress"],
                   "does not fit PSPNet-34", "--layers")


def test_cuda_that_is_not_there(monkeypatch, tmp_path, capsys):
    def unavailable():
        raise minipsp.backend.CudaUnavailableError("device 'cuda' requested but CuPy is not installed; pip ...")
    monkeypatch.setattr(minipsp.backend, "require_cuda", unavailable)
    one_line_error(capsys, ["train", "--device", "cuda", "--out", str(tmp_path / "gpu")],
                   "device 'cuda' requested", "CuPy is not installed")


def test_a_dataset_with_bad_files(tmp_path, capsys):
    root = tmp_path / "ADEChallengeData2016"
    (root / "images" / "training").mkdir(parents=True)
    (root / "annotations" / "training").mkdir(parents=True)
    one_line_error(capsys, ["train", "--data", f"ade20k:{root}", "--out", str(tmp_path / "run")],
                   "no samples found")
