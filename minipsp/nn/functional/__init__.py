"""minipsp.nn.functional (imported as F): the layers' ops, each an autograd Function over a kernel.

Names, argument orders, defaults and results follow torch.nn.functional. Each op family lives in
its own file here; the arithmetic lives in kernels/<family>/.
"""
