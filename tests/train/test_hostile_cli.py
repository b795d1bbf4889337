"""Issue 13, part 2: bad input on the command line, as a hostile user types it. Each gets one line naming the
option or the file, what it got and what it expects (exit status 2), or, where the input is legitimate, the
right behaviour. The files are real ones, written here: Pillow-written JPEGs cut short, 16-bit PNGs, float
TIFFs, torch .pth files, folders where files are expected."""

import errno
import os

import numpy as np
import pytest
from PIL import Image
from train_tiny import one_line_error, tiny_config

import minipsp
import minipsp.memory
from minipsp.cli import build_parser, main
from minipsp.config import ConfigError, TrainConfig, to_toml
from minipsp.data.images import ImageFileError, read_label_values, read_rgb
from minipsp.train import build_model, read_log, train


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A 2-iteration run of the tiny config at width 8 (its checkpoint is the one the commands read)."""
    out = tmp_path_factory.mktemp("hostile") / "run"
    train(tiny_config(iters=2, width=8, out=str(out)))
    return out


@pytest.fixture
def checkpoint(run):
    return str(run / "checkpoint.mpsp")


def photo(path, size=(33, 33), seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, size + (3,), dtype=np.uint8)).save(path)
    return path


def truncated(path, size=(64, 64)):
    """A real JPEG or PNG (by the suffix) with its second half cut off."""
    photo(path, size)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def list_dataset(root, labels, image_paths=None):
    """A semseg list dataset: train and val lists over the same pairs; `labels` are (H, W) arrays."""
    lines = []
    for i, label in enumerate(labels):
        image = image_paths[i] if image_paths else photo(root / f"img{i}.png", label.shape, seed=i)
        Image.fromarray(label.astype(np.uint8)).save(root / f"lab{i}.png")
        lines.append(f"{os.path.relpath(image, root)} lab{i}.png")
    (root / "list.txt").write_text("\n".join(lines) + "\n")
    return f"list:{root}:{root / 'list.txt'}:{root / 'list.txt'}"


def tiny_argv(out, *extra):
    return ["train", "--out", str(out), "--layers", "18", "--width", "8", "--crop-size", "33", "--iters", "2",
            "--batch-size", "2", "--no-progress", "--set", "synthetic_size=33", "--set", "synthetic_train=4",
            "--set", "synthetic_val=2", *extra]


# -- memory: refuse what cannot fit, before allocating ------------------------------------------------
def test_a_huge_width_or_crop_is_refused_with_the_figure(tmp_path, capsys):
    one_line_error(capsys, ["train", "--width", "100000000", "--out", str(tmp_path / "w")],
                   "width 100000000", "needs at least", "EB", "available", "--width")
    one_line_error(capsys, ["train", "--crop-size", "100001", "--out", str(tmp_path / "c")],
                   "100001 x 100001 crops", "needs at least", "TB", "--crop-size")
    assert not (tmp_path / "w").exists() and not (tmp_path / "c").exists()      # nothing left behind


def test_a_huge_width_is_refused_by_eval_too(checkpoint, capsys):
    one_line_error(capsys, ["eval", checkpoint, "--set", "width=100000000", "--no-progress"],
                   "the weights of PSPNet-18 at width 100000000", "needs at least")


def test_the_estimate_is_a_lower_bound_that_passes_real_configs():
    for layers, width in ((18, 8), (50, 8), (101, 4), (34, 16)):
        cfg = TrainConfig(layers=layers, width=width, classes=10)
        real = sum(p.data.size for p in build_model(cfg).parameters())
        assert 0.95 * real <= minipsp.memory.parameter_count(cfg) <= real
    paper = TrainConfig()                                    # PSPNet-50, batch 8 of 473 x 473
    minipsp.memory.check_training_fits(paper, available=64e9)
    with pytest.raises(ConfigError, match=r"needs at least 4\.\d GB, but cpu has 1\.0 GB"):
        minipsp.memory.check_training_fits(paper, available=1e9)


# -- --set init= -------------------------------------------------------------------------------------
def test_init_that_is_not_a_checkpoint(tmp_path, capsys):
    text = tmp_path / "weights.pth"
    text.write_text("these are not weights\n")
    one_line_error(capsys, tiny_argv(tmp_path / "a", "--set", f"init={text}"),
                   "'init'", "cannot read checkpoint", "weights.pth")
    one_line_error(capsys, tiny_argv(tmp_path / "b", "--set", f"init={tmp_path}"),
                   "'init'", "a directory", "expected a checkpoint file")


def test_init_of_another_width_or_another_network(checkpoint, tmp_path, capsys):
    one_line_error(capsys, tiny_argv(tmp_path / "a", "--width", "16", "--set", f"init={checkpoint}"),
                   "'init'", "other shapes", "width 16", "--width")
    torch = pytest.importorskip("torch")
    other = tmp_path / "resnet_other.pth"
    torch.save({"state_dict": {"module.encoder.conv.weight": torch.zeros(8, 3, 3, 3),
                               "module.decoder.fc.bias": torch.zeros(5)}}, other)
    one_line_error(capsys, tiny_argv(tmp_path / "b", "--set", f"init={other}"),
                   "'init'", "none of the 2 tensors", "encoder.conv.weight", "expected a checkpoint of this network")
    assert not (tmp_path / "b").exists()


def test_init_that_matches_in_part_says_how_much_loaded(checkpoint, tmp_path):
    state = minipsp.load(checkpoint)["model"]
    part = {k: v for k, v in state.items() if k.startswith("layer0.")}
    path = tmp_path / "stem_only.mpsp"
    minipsp.save(part, str(path))
    with pytest.warns(UserWarning, match=rf"init: loaded {len(part)} of the model's {len(state)} tensors"):
        model = build_model(tiny_config(width=8, init=str(path)))
    assert np.array_equal(np.asarray(model.state_dict()["layer0.0.weight"]), part["layer0.0.weight"])


# -- labels ---------------------------------------------------------------------------------------------
def test_a_label_beyond_the_classes_names_the_file_and_value(tmp_path, capsys, run):
    labels = [np.zeros((33, 33)) for _ in range(4)]
    labels[2][5, 7] = 50
    data = list_dataset(tmp_path, labels)
    one_line_error(capsys, tiny_argv(tmp_path / "run", "--data", data, "--classes", "10"),
                   "lab2.png", "value 50", "10 classes", "0..9")
    # eval reads the same file: the same line, not a ValueError from the metrics
    one_line_error(capsys, ["eval", str(run / "checkpoint.mpsp"), "--data", data, "--no-progress"],
                   "lab2.png", "value 50")


def ade20k(root, label_value):
    for split, folder in (("train", "training"), ("val", "validation")):
        for i in range(4):
            photo(root / "images" / folder / f"ADE_{split}_{i}.jpg", (33, 33), seed=i)
            label = root / "annotations" / folder / f"ADE_{split}_{i}.png"
            label.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((33, 33), label_value, np.uint8)).save(label)
    return f"ade20k:{root}"


def test_labels_all_above_the_classes_warn_then_fail_the_run(tmp_path, capsys):
    data = ade20k(tmp_path / "ADEChallengeData2016", 200)     # ADE20K: 1..150 are classes, 200 maps to ignore
    assert main(tiny_argv(tmp_path / "run", "--data", data, "--classes", "150")) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and "Traceback" not in lines[0], lines       # one warning (not one per batch), one error
    assert lines[0].startswith("minipsp: warning: iteration 1: no pixel of this batch is labelled")
    assert lines[1].startswith("minipsp: error: no training batch of iterations 1..2 had a labelled pixel")


def test_a_batch_without_labels_among_labelled_ones_only_warns(tmp_path):
    from minipsp.train import Trainer

    trainer = Trainer(tiny_config(width=8, out=str(tmp_path)))
    empty, labelled = np.full((2, 9, 9), 255), np.zeros((2, 9, 9))
    with pytest.warns(UserWarning, match="no pixel of this batch is labelled") as seen:
        for labels in (empty, labelled, empty):
            trainer._check_labelled(labels)
    trainer.close()
    assert len(seen) == 1 and (trainer.batches, trainer.labelled_batches) == (3, 1)


# -- image files ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_a_truncated_image_in_a_dataset_or_in_predict(tmp_path, capsys, checkpoint, suffix):
    bad = truncated(tmp_path / f"cut{suffix}", (33, 33))
    one_line_error(capsys, ["predict", checkpoint, str(bad), "-o", str(tmp_path / "out")],
                   f"cut{suffix}", "not an image file Pillow can read")
    labels = [np.zeros((33, 33)) for _ in range(4)]
    images = [photo(tmp_path / f"ok{i}.png") for i in range(4)]
    images[1] = bad
    data = list_dataset(tmp_path, labels, images)
    one_line_error(capsys, tiny_argv(tmp_path / "run", "--data", data, "--classes", "10"), f"cut{suffix}")


def test_a_decompression_bomb(tmp_path, capsys, checkpoint, monkeypatch):
    # Pillow's own check, with its limit lowered so that a 100 x 100 picture counts as a bomb (a real
    # one is a small file declaring billions of pixels; the check that refuses it is the same)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    bomb = photo(tmp_path / "bomb.png", (100, 100))
    one_line_error(capsys, ["predict", checkpoint, str(bomb), "-o", str(tmp_path / "out")],
                   "bomb.png", "decompression bomb", "MAX_IMAGE_PIXELS")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100 * 100 - 1)       # 1x-2x the limit: Pillow only warns
    with pytest.raises(ImageFileError, match="decompression bomb"):
        read_rgb(bomb)


def test_sixteen_bit_grey_is_scaled_for_photos_and_kept_for_labels(tmp_path, checkpoint, capsys):
    values = np.array([[0, 257, 32768, 65535], [1000, 20000, 40000, 60000]], np.uint16)
    path = tmp_path / "grey16.png"
    Image.fromarray(values).save(path)
    assert Image.open(path).mode.startswith("I")
    rgb = read_rgb(path)
    assert rgb.dtype == np.uint8 and rgb.shape == (2, 4, 3)
    assert np.array_equal(rgb[..., 0], np.round(values / 257).astype(np.uint8))    # not clipped to 255
    assert np.array_equal(read_label_values(path), values)                         # class indices stay
    big = tmp_path / "grey16_big.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 65535, (30, 40), dtype=np.uint16)).save(big)
    assert main(["predict", checkpoint, str(big), "-o", str(tmp_path / "out")]) == 0
    assert Image.open(tmp_path / "out" / "grey16_big_overlay.png").size == (40, 30)


def test_a_float_tiff_is_refused_clearly(tmp_path, checkpoint, capsys):
    path = tmp_path / "depth.tiff"
    Image.fromarray(np.full((20, 20), 0.5, np.float32)).save(path)
    assert Image.open(path).mode == "F"
    one_line_error(capsys, ["predict", checkpoint, str(path), "-o", str(tmp_path / "out")],
                   "depth.tiff", "32-bit float image (mode F)", "8-bit")
    with pytest.raises(ImageFileError, match="label .*mode F"):
        read_label_values(path)


# -- --out and files that are folders --------------------------------------------------------------------
def test_out_that_is_a_file_or_under_a_file(tmp_path, capsys):
    existing = tmp_path / "notes.txt"
    existing.write_text("x")
    one_line_error(capsys, tiny_argv(existing), "--out", "notes.txt", "is a file", "expected a run folder")
    one_line_error(capsys, tiny_argv(existing / "run"), "--out", "cannot create the run folder", "Not a directory")
    assert existing.read_text() == "x"


def test_out_in_proc_names_the_option(capsys):
    one_line_error(capsys, tiny_argv("/proc/minipsp-run"), "--out '/proc/minipsp-run'", "cannot create the run folder")


def test_out_without_permission(tmp_path, capsys):
    if os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        try:
            one_line_error(capsys, tiny_argv(locked / "run"), "--out", "Permission denied")
        finally:
            locked.chmod(0o700)
        return
    # root ignores file modes, so a chmod proves nothing here; /sys refuses even root a new folder
    try:
        os.mkdir("/sys/minipsp-probe")
    except OSError as exc:
        reason = exc.strerror
    else:
        os.rmdir("/sys/minipsp-probe")
        pytest.skip("running as root where /sys accepts new folders: no way to be refused permission here")
    one_line_error(capsys, tiny_argv("/sys/minipsp-run"), "--out '/sys/minipsp-run'", reason)


def test_out_on_a_read_only_file_system(tmp_path, capsys, monkeypatch):
    # simulated: mounting a read-only file system needs privileges a test should not use; the error is the
    # one the kernel gives (EROFS) at the call that meets it
    def read_only(path, *args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), path)
    monkeypatch.setattr(os, "makedirs", read_only)
    one_line_error(capsys, tiny_argv(tmp_path / "run"), "--out", "Read-only file system")


def test_a_directory_where_a_file_is_expected(tmp_path, capsys, checkpoint):
    one_line_error(capsys, ["eval", str(tmp_path)], "checkpoint", "is a directory; expected a file")
    one_line_error(capsys, ["train", str(tmp_path)], "config file", "is a directory; expected a file")
    one_line_error(capsys, ["predict", checkpoint, str(tmp_path)], "image", "is a directory; expected a file")
    output = tmp_path / "taken.png"
    photo(output)
    one_line_error(capsys, ["predict", checkpoint, str(output), "-o", str(output)], "-o/--output", "is a file")


# -- --resume ---------------------------------------------------------------------------------------------
def test_resume_of_a_folder_holding_a_torch_file(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    out = tmp_path / "run"
    out.mkdir()
    torch.save({"conv.weight": torch.zeros(2, 3, 1, 1)}, out / "checkpoint.mpsp")
    for extra in ([], ["--layers", "34"]):           # with a model flag, no false "trained with 50"
        one_line_error(capsys, ["train", "--out", str(out), "--resume", *extra],
                       "not a minipsp training checkpoint", "config", "--set init=")


def test_resume_with_overwrite_is_refused(run, tmp_path, capsys):
    before = (run / "checkpoint.mpsp").read_bytes()
    one_line_error(capsys, ["train", "--out", str(run), "--resume", "--overwrite"],
                   "--resume and --overwrite contradict each other")
    with pytest.raises(ConfigError, match="contradict"):
        train(tiny_config(out=str(run)), resume=True, overwrite=True)
    assert (run / "checkpoint.mpsp").read_bytes() == before


# -- --lr: absurd but finite ---------------------------------------------------------------------------------
def test_an_lr_whose_head_rate_overflows_is_refused(tmp_path, capsys):
    # 1e308 is finite, its head rate (x 10) is not: SGD refused it with a traceback
    one_line_error(capsys, tiny_argv(tmp_path / "r", "--lr", "1e308"), "config key 'base_lr': got 1e+308",
                   "head rate (x head_lr_mult 10) is finite")


@pytest.mark.parametrize("lr", ["1e30", "1e12"])
def test_an_absurd_lr_stops_naming_the_lr_and_its_advice_works(tmp_path, capsys, lr):
    out = tmp_path / "r"
    assert main(tiny_argv(out, "--lr", lr)) == 1
    err = capsys.readouterr().err.strip()
    # one line: no NumPy overflow warnings before it, no traceback
    assert err.startswith("minipsp: error: ") and "\n" not in err and "Traceback" not in err, err
    assert ("the loss is nan" in err or "is not finite" in err) and "training stopped" in err, err
    assert f"The learning rate is the likely cause (--lr {float(lr):g}, the base_lr of the backbone; the head " \
           f"trains at {float(lr) * 10:g})" in err, err
    # no checkpoint was written before the stop, so "resume from the last good checkpoint" would be false
    assert not (out / "checkpoint.mpsp").exists()
    advice = err.split("No checkpoint was written before it; start again with a lower learning rate: ")[1].split()
    assert advice == ["minipsp", "train", str(out / "config.toml"), "--lr", "0.01"]   # not a tenth of 1e30
    assert main(advice[1:] + ["--no-progress"]) == 0
    assert minipsp.load(str(out / "checkpoint.mpsp"))["config"]["base_lr"] == 0.01


def test_a_setting_far_above_its_default_is_named_with_the_rate_and_the_advice_resets_it(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(tiny_argv(out, "--set", "aux_weight=1e308")) == 1         # the loss is inf at once
    err = capsys.readouterr().err.strip()
    assert err.startswith("minipsp: error: ") and "\n" not in err and "Traceback" not in err, err
    assert "or a setting far above its default (aux_weight = 1e+308, default 0.4) is the likely cause" in err, err
    advice = err.split("start again with those at their defaults and a lower learning rate: ")[1].split()
    assert advice == ["minipsp", "train", str(out / "config.toml"), "--lr", "0.001", "--set", "aux_weight=0.4"]
    assert main(advice[1:] + ["--no-progress"]) == 0


def test_an_absurd_scale_range_is_named_not_an_overflow(tmp_path, capsys):
    # PIL's "OverflowError: Python int too large to convert to C long" from the first batch's RandScale
    one_line_error(capsys, tiny_argv(tmp_path / "r", "--set", "scale_max=1e300"), "RandScale: a scale of",
                   "more than PIL's limit", "config keys scale_min and scale_max")


def test_bins_beyond_the_feature_map_are_in_the_memory_estimate(tmp_path, capsys):
    # a MemoryError (466 TiB) from the pyramid's adaptive pooling
    one_line_error(capsys, tiny_argv(tmp_path / "r", "--set", "bins=1,2,3,1000000"), "needs at least",
                   "the pyramid's bins [1, 2, 3, 1000000] (--set bins=...: 1000000 bins on a 5 x 5 feature map)")
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("extra, words", [
    (["--mode", "slide", "--crop-size", "100001"], ["over 100001 x 100001 pixels", "lower --crop-size (got 100001)"]),
    (["--mode", "multiscale", "--set", "base_size=100000000"],
     ["over 50000000 x 50000000 pixels", "lower base_size (got 100000000; 0: the image's own)"]),
    (["--mode", "multiscale", "--set", "eval_scales=1e300"],          # was "expected comma-separated numbers",
     ["over 3.3e+301 x 3.3e+301 pixels", "lower eval_scales"]),        # then an OverflowError traceback
])
def test_eval_windows_or_scales_that_cannot_fit_are_refused(checkpoint, capsys, monkeypatch, extra, words):
    # were MemoryError tracebacks (112 GiB, 26.6 PiB) from inside the sliding window
    monkeypatch.setattr(minipsp.memory, "available_bytes", lambda device="cpu": 16 * 10**9)
    one_line_error(capsys, ["eval", checkpoint, "--no-progress", *extra], "needs at least", "16.0 GB available",
                   *words)


def test_numbers_in_exponent_form_are_numbers_in_a_list(run, capsys):
    # int("5e-1") failed, and the message said "expected comma-separated numbers" of a list of numbers
    from minipsp.config import parse_value

    assert parse_value("eval_scales", "5e-1,1e0,1.5") == (0.5, 1.0, 1.5)
    assert parse_value("bins", "1,2,3,6") == (1, 2, 3, 6)
    one_line_error(capsys, ["eval", str(run / "checkpoint.mpsp"), "--set", "eval_scales=0.5,inf"],
                   "config key 'eval_scales': got (0.5, inf), expected a list of numbers")


# -- --count -------------------------------------------------------------------------------------------------
def test_negative_counts(run, capsys):
    one_line_error(capsys, ["eval", str(run / "checkpoint.mpsp"), "--count", "-1"], "--count", "got -1", ">= 0")
    one_line_error(capsys, ["plot", str(run), "--count", "-3"], "--count", "got -3", ">= 0")


# -- predict: two inputs with one name ------------------------------------------------------------------------
def test_predict_keeps_inputs_with_the_same_name_apart(tmp_path, checkpoint, capsys):
    a, b = photo(tmp_path / "a" / "x.jpg", (30, 41)), photo(tmp_path / "b" / "x.png", (25, 33), seed=1)
    c = photo(tmp_path / "c" / "x.png", (17, 21), seed=2)
    assert main(["predict", checkpoint, str(a), str(b), str(c), "-o", str(tmp_path / "out")]) == 0
    sizes = {name: Image.open(tmp_path / "out" / name).size for name in os.listdir(tmp_path / "out")}
    assert sizes == {"x_jpg_pred.png": (41, 30), "x_jpg_overlay.png": (41, 30),
                     "b_x_png_pred.png": (33, 25), "b_x_png_overlay.png": (33, 25),
                     "c_x_png_pred.png": (21, 17), "c_x_png_overlay.png": (21, 17)}
    assert "x_jpg_pred.png" in build_parser()._subparsers._group_actions[0].choices["predict"].format_help()


# -- plot on a bad checkpoint ----------------------------------------------------------------------------------
def test_plot_on_a_truncated_or_torch_checkpoint(run, tmp_path, capsys):
    torch = pytest.importorskip("torch")
    for name, write in (("truncated", lambda p: p.write_bytes((run / "checkpoint.mpsp").read_bytes()[:5000])),
                        ("torch", lambda p: torch.save({"w": torch.zeros(2)}, p))):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "log.jsonl").write_text((run / "log.jsonl").read_text())
        write(folder / "checkpoint.mpsp")
        words = ["cannot read checkpoint"] if name == "truncated" else ["not a minipsp training checkpoint"]
        one_line_error(capsys, ["plot", str(folder)], "checkpoint.mpsp", *words)


# -- disk full ------------------------------------------------------------------------------------------------------
def test_a_full_disk_while_training_is_one_line_and_keeps_the_old_checkpoint(tmp_path, capsys, monkeypatch):
    # simulated: the disk "fills up" once the first checkpoint exists; ENOSPC then comes from fsync of the
    # next temporary checkpoint file, where a real full disk reports it too (or from write, handled alike)
    out = tmp_path / "run"
    checkpoint = out / "checkpoint.mpsp"
    real_fsync = os.fsync

    def fsync(fd):
        if checkpoint.exists() and os.readlink(f"/proc/self/fd/{fd}").endswith(".tmp"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)
    monkeypatch.setattr(os, "fsync", fsync)
    config = tmp_path / "tiny.toml"
    config.write_text(to_toml(tiny_config(width=8, iters=3, checkpoint_every=1)))
    one_line_error(capsys, ["train", str(config), "--out", str(out)],
                   "cannot write the checkpoint", "at iteration 2", "No space left on device",
                   "the previous checkpoint (iteration 1) is intact")
    monkeypatch.undo()
    assert minipsp.load(str(checkpoint))["iteration"] == 1
    assert sorted(os.listdir(out)) == ["checkpoint.mpsp", "config.toml", "log.jsonl"]      # no temp, no lock
    assert [r["iter"] for r in read_log(out)[0]] == [1, 2]


@pytest.mark.parametrize("size", [(1, 1), (1, 40)])
def test_multiscale_predict_on_an_image_one_pixel_high(tmp_path, checkpoint, size):
    # scale 0.5 rounded a 1-pixel side to 0 and F.interpolate's ValueError came out as a traceback
    image = photo(tmp_path / "thin.png", size)
    assert main(["predict", checkpoint, str(image), "-o", str(tmp_path / "out"), "--mode", "multiscale"]) == 0
    with Image.open(tmp_path / "out" / "thin_pred.png") as pred:
        assert pred.size == (size[1], size[0])


def test_a_fifo_for_a_file_is_not_called_missing(tmp_path, capsys, checkpoint):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    for argv in (["eval", str(fifo)], ["predict", checkpoint, str(fifo), "-o", str(tmp_path / "out")],
                 ["train", str(fifo), "--out", str(tmp_path / "run")]):
        one_line_error(capsys, argv, f"{str(fifo)!r} is not a regular file (a FIFO or a device)")


def test_plot_on_a_file_says_it_is_a_file(run, capsys):
    one_line_error(capsys, ["plot", str(run / "checkpoint.mpsp")], "is a file; expected the run's folder")


def test_a_huge_class_count_is_named_in_the_memory_refusal(tmp_path, capsys):
    # the message named width, batch and crop only, and an estimate past 1000 EB printed as '1432787200000.0 EB'
    one_line_error(capsys, tiny_argv(tmp_path / "a", "--classes", "1000000000"), "1000000000 classes",
                   "--classes, --batch-size or --crop-size")
    assert minipsp.memory.human(1.4e30) == "1.4e+12 EB"


def _flat(state, prefix=""):
    if isinstance(state, dict):
        for key, value in state.items():
            yield from _flat(value, f"{prefix}/{key}")
    elif isinstance(state, (list, tuple)):
        for i, value in enumerate(state):
            yield from _flat(value, f"{prefix}/{i}")
    else:
        yield prefix, state


def test_a_sigkill_during_a_checkpoint_write_resumes_bit_identical(tmp_path):
    """A real `minipsp train` process, SIGKILLed while it writes a checkpoint (its temporary file exists),
    then resumed: weights, optimizer, RNG, loader state and log equal an uninterrupted run's.

    The kill comes at a moment the child announces, not one the test must catch by polling: the write lasts
    milliseconds, and on a busy machine a poll can miss both chances (iterations 4 and 6). The
    child is `minipsp.cli.main` with numpy.save wrapped so that the second checkpoint's write, half its arrays
    in the temporary file, touches a file and waits there to be killed."""
    import glob
    import signal
    import subprocess
    import sys
    import time

    config = tmp_path / "tiny.toml"
    config.write_text(to_toml(tiny_config(width=8, iters=6, checkpoint_every=2, log_every=1, synthetic_train=5)))

    def command(out, *extra):
        return [sys.executable, "-m", "minipsp.cli", "train", str(config), "--out", str(out), *extra]

    stalled = tmp_path / "stalled"          # outside the run folder
    stall = ("import sys, time, numpy, minipsp\n"
             "from minipsp.cli import main\n"
             "save, np_save, calls = minipsp.save, numpy.save, {'save': 0, 'arrays': 0}\n"
             "def counted_save(*args, **kwargs):\n"
             "    calls['save'] += 1\n"
             "    return save(*args, **kwargs)\n"
             "def stalling_np_save(*args, **kwargs):\n"
             "    np_save(*args, **kwargs)\n"
             "    if calls['save'] == 2:\n"
             "        calls['arrays'] += 1\n"
             "        if calls['arrays'] == 10:\n"
             f"            open({str(stalled)!r}, 'w').close()\n"
             "            time.sleep(600)\n"
             "minipsp.save, numpy.save = counted_save, stalling_np_save\n"
             "sys.exit(main(sys.argv[1:]))\n")
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    subprocess.run(command(whole), check=True, capture_output=True, timeout=300)
    child = subprocess.Popen([sys.executable, "-c", stall] + command(killed)[3:], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while not stalled.exists():
            assert child.poll() is None, f"the run ended before its second checkpoint write: {child.stderr.read()}"
            assert time.monotonic() < deadline, "no second checkpoint write in 300 s"
            time.sleep(0.01)
        assert glob.glob(str(killed / ".checkpoint.mpsp.*.tmp")) and (killed / "checkpoint.mpsp").exists()
        child.send_signal(signal.SIGKILL)        # during the second checkpoint's write, half of it written
        child.wait(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL
    subprocess.run(command(killed, "--resume"), check=True, capture_output=True, timeout=300)
    a = dict(_flat(minipsp.load(whole / "checkpoint.mpsp")))
    b = dict(_flat(minipsp.load(killed / "checkpoint.mpsp")))
    assert a.keys() == b.keys()
    for key in a:
        if key != "/config/out":
            np.testing.assert_array_equal(np.asarray(a[key]), np.asarray(b[key]), err_msg=key)
    drop_speed = [[{k: v for k, v in r.items() if k != "its"} for r in train_records + eval_records]
                  for train_records, eval_records in (read_log(whole), read_log(killed))]
    assert len(drop_speed[0]) == 6
    assert drop_speed[0] == drop_speed[1]
    assert not [name for name in os.listdir(killed) if name.startswith(".")]     # temp file and lock gone
