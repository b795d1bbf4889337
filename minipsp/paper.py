"""The paper's published numbers, in one place: Zhao et al., Pyramid Scene Parsing Network, CVPR 2017.

Copied from the paper's text (arXiv 1612.01105, section 5.2, ADE20K validation set, single-scale input,
ResNet-50 backbone); tests/train/test_paper_numbers.py checks each one against that text. Anything in
minipsp (benchmarks, notebooks, docs) that quotes the paper imports it from here.

    from minipsp.paper import TABLE1, TABLE2
    TABLE1["B1236-AVE+DR"]          # PaperResult(miou=41.68, pixel_acc=80.04), in percent

Table 1 (the pyramid): "B1" pools one 1x1 bin, "B1236" bins 1x1, 2x2, 3x3, 6x6; MAX / AVE the pooling;
"DR" a 1x1 convolution reducing each branch's channels after pooling (C / number of bins).
Table 2 (deep supervision): the weight alpha of the auxiliary loss on the dilated ResNet-50 FCN
(no pyramid); alpha = 0.4 is the best and is the weight the paper trains with.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["ARXIV", "TABLE1", "TABLE2", "PaperResult"]

ARXIV = "https://arxiv.org/abs/1612.01105"


class PaperResult(NamedTuple):
    miou: float  # mean IoU, %
    pixel_acc: float  # pixel accuracy, %


# Table 1: "Investigation of PSPNet with different settings" (ResNet-50, ADE20K val).
TABLE1: dict[str, PaperResult] = {
    "ResNet-FCN": PaperResult(37.23, 78.01),  # "ResNet50-Baseline": the dilated FCN, no pyramid
    "B1-MAX": PaperResult(39.94, 79.46),
    "B1-AVE": PaperResult(40.07, 79.52),
    "B1236-MAX": PaperResult(40.18, 79.45),
    "B1236-AVE": PaperResult(41.07, 79.97),
    "B1236-MAX+DR": PaperResult(40.87, 79.61),
    "B1236-AVE+DR": PaperResult(41.68, 80.04),  # PSPNet as published
}

# Table 2: "Setting an appropriate loss weight alpha in the auxiliary branch" (the ResNet-50 FCN, ADE20K val).
# Keys are alpha; 0.0 is "without AL". The 0.4 row is Table 1's baseline.
TABLE2: dict[float, PaperResult] = {
    0.0: PaperResult(35.82, 77.07),
    0.3: PaperResult(37.01, 77.87),
    0.4: PaperResult(37.23, 78.01),
    0.6: PaperResult(37.09, 77.84),
    0.9: PaperResult(36.99, 77.87),
}
