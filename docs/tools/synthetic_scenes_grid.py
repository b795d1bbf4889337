"""Draw docs/synthetic_scenes.png: eight SyntheticScenes samples with their coloured labels.

Run from the repository root: python docs/tools/synthetic_scenes_grid.py
"""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import Patch

from minipsp.data.synthetic import CLASSES, PALETTE, SyntheticScenes, colorize

data = SyntheticScenes(split="train", count=8, size=129, seed=0)
fig, axes = plt.subplots(4, 4, figsize=(10, 10.8))
for i in range(8):
    image, label = data[i]
    ax_img, ax_lab = axes[i // 2, 2 * (i % 2)], axes[i // 2, 2 * (i % 2) + 1]
    ax_img.imshow(image.astype("uint8"))
    ax_img.set_title(f"#{i}: {data.scene_type(i)}", fontsize=10)
    ax_lab.imshow(colorize(label))
    ax_lab.set_title("label", fontsize=10)
for ax in axes.ravel():
    ax.axis("off")
handles = [Patch(color=PALETTE[k] / 255, label=f"{k} {name}") for k, name in enumerate(CLASSES)]
fig.legend(handles=handles, loc="lower center", ncol=5, fontsize=10, frameon=False)
fig.suptitle("SyntheticScenes (seed 0, 129 x 129): one vehicle drawing, one near-ground texture;\n"
             "only the band below the horizon and the skyline name them")
fig.tight_layout(rect=(0, 0.05, 1, 0.97))
fig.savefig("docs/synthetic_scenes.png", dpi=80)
