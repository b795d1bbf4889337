"""Write the training log that chapter 09 plots: one small PSPNet run, long enough to watch it learn.

PSPNet-18 at width 8 (an eighth of ResNet's channels), 150 iterations x batch 8 x 65 x 65 crops of
SyntheticScenes (600 training scenes of 65 px, random scale 0.75-1.25), base lr 0.02, seed 0, the poly
schedule and aux weight 0.4 -- with a log line every iteration and an evaluation on 16 validation scenes
every 50 iterations. Only the run's log.jsonl and config.toml are kept (about 30 KB), in
notebooks/assets/ch09-run/:

    python notebooks/tools/train_log_ch09.py          # a few minutes on 2 cores
"""

import os
import shutil
import sys
import tempfile
import time

from minipsp.config import TrainConfig
from minipsp.data import SyntheticScenes
from minipsp.train import Trainer

OUT = os.path.join(os.path.dirname(__file__), "..", "assets", "ch09-run")


def main(out=OUT):
    run_dir = tempfile.mkdtemp(prefix="minipsp-ch09-log-")
    cfg = TrainConfig(layers=18, width=8, classes=SyntheticScenes.num_classes, synthetic_size=65,
                      synthetic_train=600, synthetic_val=16, crop_size=65, scale_min=0.75, scale_max=1.25,
                      batch_size=8, iters=150, base_lr=0.02, seed=0, eval_every=50, eval_count=16,
                      checkpoint_every=0, log_every=1, progress=False, out=run_dir)
    start = time.perf_counter()
    Trainer(cfg).run()
    os.makedirs(out, exist_ok=True)
    for name in ("log.jsonl", "config.toml"):
        shutil.copy(os.path.join(run_dir, name), os.path.join(out, name))
    shutil.rmtree(run_dir)
    print(f"trained {cfg.iters} iterations in {time.perf_counter() - start:.0f} s; log in {os.path.normpath(out)}")


if __name__ == "__main__":
    main(*sys.argv[1:])
