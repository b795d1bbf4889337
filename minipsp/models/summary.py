"""`summary(model, input_shape)`: a table of blocks, their output shapes and parameter counts.

    print(minipsp.models.summary(PSPNet(layers=50, classes=21), (1, 3, 473, 473)))

It runs one forward pass on zeros (in eval mode, without a graph) and records the output shape of
every module down to `depth` dots in its name (depth 1: layer0, layer1, ..., ppm, cls).
"""

from __future__ import annotations

import numpy as np

from minipsp.autograd import no_grad
from minipsp.tensor import Tensor

__all__ = ["summary"]


def summary(model, input_shape, depth=1):
    """Text table: name, type, output shape, parameters (each block counts all its descendants)."""
    rows, handles = {}, []

    def record(name):
        def hook(module, inputs, output):
            rows[name] = output.shape if isinstance(output, Tensor) else "-"
        return hook

    named = [(name, module) for name, module in model.named_modules() if name and name.count(".") < depth]
    for name, module in named:
        handles.append(module.register_forward_hook(record(name)))
    try:
        with no_grad(), model.eval_mode():
            device = next((p.device for p in model.parameters()), "cpu")
            x = Tensor(np.zeros(input_shape, dtype=np.float32)).to(device)
            out = model(x)
    finally:
        for handle in handles:
            handle.remove()

    lines = [f"{'block':<28} {'type':<20} {'output shape':<24} {'parameters':>12}"]
    lines.append("-" * len(lines[0]))
    lines.append(f"{'input':<28} {'':<20} {str(tuple(input_shape)):<24} {'':>12}")
    for name, module in named:
        count = sum(p.numel() for p in module.parameters())
        shape = str(tuple(rows[name])) if name in rows and rows[name] != "-" else "-"
        indent = "  " * name.count(".")
        lines.append(f"{indent + name:<28} {type(module).__name__:<20} {shape:<24} {count:>12,}")
    lines.append("-" * len(lines[0]))
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    lines.append(f"output {tuple(out.shape) if isinstance(out, Tensor) else '-'}; "
                 f"parameters: {total:,} ({trainable:,} trainable)")
    return "\n".join(lines)
