"""The tiny training setup the trainer, CLI and evaluation tests share (ResNet-18, 33 x 33 crops)."""

from minipsp.config import TrainConfig


def tiny_config(**changes) -> TrainConfig:
    """A PSPNet-18 on 4 SyntheticScenes images of 33 x 33, batch 2: an iteration takes well under a second."""
    from minipsp.data import SyntheticScenes

    values = dict(layers=18, classes=SyntheticScenes.num_classes, crop_size=33, synthetic_size=33,
                  synthetic_train=4, synthetic_val=2, batch_size=2, iters=3, base_lr=0.01,
                  checkpoint_every=0, log_every=1, progress=False, eval_mode="whole", out="runs/tiny")
    values.update(changes)
    return TrainConfig(**values)
