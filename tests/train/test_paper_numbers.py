"""minipsp.paper's Tables 1 and 2 are the paper's: each number, in its row and column, read from the paper's text.

The text (../shared/seed/pspnet-paper.txt beside the repository) lists a table column by column: the method
names, then "Mean IoU(%)" and one number per line, then "Pixel Acc.(%)" and one number per line. The test
reads those columns and compares them, row by row, with minipsp.paper.
"""

import os
import re
import sys

import pytest

from minipsp.paper import TABLE1, TABLE2

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:  # `benchmarks` is a folder of the repository, not an installed package (`.venv/bin/pytest`)
    sys.path.insert(0, ROOT)
SEED = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "seed", "pspnet-paper.txt")

# The paper's row names, in the order minipsp.paper lists them.
TABLE1_ROWS = ["ResNet50-Baseline", "ResNet50+B1+MAX", "ResNet50+B1+AVE", "ResNet50+B1236+MAX",
               "ResNet50+B1236+AVE", "ResNet50+B1236+MAX+DR", "ResNet50+B1236+AVE+DR"]
TABLE2_ROWS = ["ResNet50 (without AL)", "ResNet50 (with α = 0.3)", "ResNet50 (with α = 0.4)",
               "ResNet50 (with α = 0.6)", "ResNet50 (with α = 0.9)"]


@pytest.fixture(scope="module")
def paper_lines():
    if not os.path.exists(SEED):
        pytest.skip(f"the paper's text is not beside the repository ({os.path.normpath(SEED)} is absent)")
    with open(SEED, encoding="utf-8") as f:
        return [line.strip() for line in f]


def read_table(lines, rows):
    """(mIoU column, pixel-acc column) of the table whose row names are `rows`, as printed in the text."""
    n = len(rows)
    for start in range(len(lines) - n):
        if lines[start:start + n] == rows:
            break
    else:
        raise AssertionError(f"the rows {rows[0]!r} ... {rows[-1]!r} are not in the paper's text")
    rest = lines[start + n:]
    columns = []
    for heading in ("Mean IoU(%)", "Pixel Acc.(%)"):
        at = rest.index(heading)
        values = [v for v in rest[at + 1:at + 1 + n + 1] if v]  # skip the blank line between heading blocks
        assert all(re.fullmatch(r"\d+\.\d\d", v) for v in values[:n]), (heading, values)
        columns.append([float(v) for v in values[:n]])
    return columns


def test_table1_is_the_papers(paper_lines):
    miou, pixel_acc = read_table(paper_lines, TABLE1_ROWS)
    assert len(TABLE1) == len(TABLE1_ROWS)
    for (name, ours), row, m, p in zip(TABLE1.items(), TABLE1_ROWS, miou, pixel_acc, strict=True):
        assert (ours.miou, ours.pixel_acc) == (m, p), f"{name} ({row}): ours {ours}, the paper's {m}/{p}"


def test_table2_is_the_papers(paper_lines):
    miou, pixel_acc = read_table(paper_lines, TABLE2_ROWS)
    assert list(TABLE2) == [0.0, 0.3, 0.4, 0.6, 0.9]
    for (alpha, ours), row, m, p in zip(TABLE2.items(), TABLE2_ROWS, miou, pixel_acc, strict=True):
        assert (ours.miou, ours.pixel_acc) == (m, p), f"alpha {alpha} ({row}): ours {ours}, the paper's {m}/{p}"


def test_numbers_the_text_quotes(paper_lines):
    """The prose of section 5.2 repeats some numbers; they agree with the tables."""
    text = " ".join(paper_lines)
    best, gap = TABLE1["B1236-AVE+DR"], TABLE1["B1-AVE"]
    assert f"the best setting yields results {best.miou:.2f}/{best.pixel_acc:.2f}" in text
    assert f"global average pooling of {gap.miou:.2f}/{gap.pixel_acc:.2f}" in text
    assert TABLE2[0.4] == TABLE1["ResNet-FCN"]  # Table 1's baseline is trained with alpha = 0.4
    assert f"reaches {TABLE2[0.4].miou:.2f}/{TABLE2[0.4].pixel_acc:.2f}" in text
    assert f"reaches {TABLE2[0.0].miou:.2f}/{TABLE2[0.0].pixel_acc:.2f}" in text


def test_ablation_runs_every_row_of_table1(tmp_path):
    """benchmarks/ablation.py has a variant for each row of the paper's Table 1, in its order, and --merge
    refuses a record of another budget."""
    from benchmarks import ablation

    variants = ablation.table1_variants(layers=18, width=16)
    assert list(variants) == list(TABLE1)
    c = 8 * 16  # layer4 channels of a width-16 ResNet-18: "without DR" keeps them all
    assert variants["B1236-MAX+DR"] == dict(bins=(1, 2, 3, 6), pooling="max", reduction_dim=None)
    assert variants["B1236-MAX"]["reduction_dim"] == c

    record = tmp_path / "record.json"
    record.write_text('{"budget": {"iters": 400, "layers": 18, "width": 16, "only": null}, "seconds": 10, '
                      '"table1": {"B1-AVE": []}, "table2": {}}')
    merged = ablation.merge_into(str(record), {"budget": {"iters": 400, "only": ["B1236-MAX+DR"], "layers": 18,
                                                          "width": 16}, "seconds": 5,
                                               "table1": {"B1236-MAX+DR": [{"miou": 0.5}]}, "table2": {}})
    assert list(merged["table1"]) == ["B1-AVE", "B1236-MAX+DR"] and merged["seconds"] == 15
    with pytest.raises(SystemExit, match="another budget"):
        ablation.merge_into(str(record), {"budget": {"iters": 60, "only": None, "layers": 18, "width": 16},
                                          "seconds": 1, "table1": {}, "table2": {}})
