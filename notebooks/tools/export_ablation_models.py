"""Keep the two models that chapter 10 compares: the dilated-FCN baseline and PSPNet (B1236-AVE+DR).

They are the seed-0 runs of the ablation (benchmarks/ablation.py with its default budget: PSPNet-18 at
width 16, 400 iterations x batch 8 x 129 x 129 crops of SyntheticScenes). A training checkpoint also
holds the optimiser's momentum and the RNG states; the notebook needs only the weights and the config:

    python -m benchmarks.ablation --seeds 1 --only ResNet-FCN B1236-AVE+DR --no-table2 --out runs/ablation
    python notebooks/tools/export_ablation_models.py runs/ablation
"""

import sys

import minipsp

NAMES = {"ResNet-FCN": "fcn-r18w16.mpsp", "B1236-AVE+DR": "pspnet-r18w16.mpsp"}


def main(root, out_dir="notebooks/assets"):
    for run, file_name in NAMES.items():
        checkpoint = minipsp.load(f"{root}/{run}-seed0/checkpoint.mpsp")
        kept = {"model": checkpoint["model"], "config": checkpoint["config"], "iteration": checkpoint["iteration"]}
        minipsp.save(kept, f"{out_dir}/{file_name}")
        print(f"{run}: iteration {checkpoint['iteration']} -> {out_dir}/{file_name}")


if __name__ == "__main__":
    main(*sys.argv[1:])
