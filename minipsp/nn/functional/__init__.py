"""minipsp.nn.functional (imported as F): the layers' ops, each an autograd Function over a kernel.

Names, argument orders, defaults and results follow torch.nn.functional. Each op family lives in
its own file here; the arithmetic lives in kernels/<family>/ (reference, cpu and cuda variants).
"""

from minipsp.nn.functional.activation import *  # noqa: F403
from minipsp.nn.functional.batch_norm import *  # noqa: F403
from minipsp.nn.functional.conv import *  # noqa: F403
from minipsp.nn.functional.dropout import *  # noqa: F403
from minipsp.nn.functional.interpolate import *  # noqa: F403
from minipsp.nn.functional.loss import *  # noqa: F403
from minipsp.nn.functional.pooling import *  # noqa: F403
