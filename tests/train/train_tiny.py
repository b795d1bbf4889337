"""What the trainer, CLI and evaluation tests share: the tiny training setup (ResNet-18, 33 x 33 crops) and
the check that a command failed with one clear line."""

from minipsp.config import TrainConfig


def tiny_config(**changes) -> TrainConfig:
    """A PSPNet-18 on 4 SyntheticScenes images of 33 x 33, batch 2: an iteration takes well under a second."""
    from minipsp.data import SyntheticScenes

    values = dict(layers=18, classes=SyntheticScenes.num_classes, crop_size=33, synthetic_size=33,
                  synthetic_train=4, synthetic_val=2, batch_size=2, iters=3, base_lr=0.01,
                  checkpoint_every=0, log_every=1, progress=False, eval_mode="whole", out="runs/tiny")
    values.update(changes)
    return TrainConfig(**values)


def one_line_error(capsys, argv, *words):
    """`minipsp argv` exits with status 2 and one line on stderr, no traceback, containing every word."""
    from minipsp.cli import main

    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("minipsp: error: ") and "\n" not in err and "Traceback" not in err, err
    for word in words:
        assert word in err, err
