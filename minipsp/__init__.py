"""minipsp: a from-scratch deep-learning engine that trains PSPNet.

    import minipsp
    x = minipsp.tensor([1.0, 2.0, 3.0], requires_grad=True)
    (x * x).sum().backward()
    x.grad   # [2, 4, 6]
"""

from minipsp import blas_env  # noqa: F401, I001  (first: before NumPy loads OpenBLAS; see blas_env.py)
from minipsp.autograd import Function, gradcheck, no_grad, enable_grad, is_grad_enabled  # noqa: I001
from minipsp.backend import cuda_is_available, get_array_module
from minipsp.random import manual_seed
from minipsp.serialization import CheckpointError, UnsafeCheckpointError, load, load_checkpoint, save
from minipsp.tensor import Tensor, cat, from_numpy, ones, rand, randn, stack, tensor, zeros
from minipsp import allocator, models, nn  # noqa: F401  (minipsp.nn, minipsp.models after `import minipsp`)

allocator.configure()  # keep freed buffers in the process: see allocator.py (MINIPSP_MALLOC=system opts out)

__version__ = "0.1.0"

__all__ = [
    "CheckpointError", "Function", "Tensor", "UnsafeCheckpointError", "cat", "cuda_is_available", "enable_grad",
    "from_numpy", "get_array_module",
    "gradcheck", "is_grad_enabled", "load", "load_checkpoint", "manual_seed", "no_grad", "ones", "rand", "randn",
    "save", "stack", "tensor", "zeros",
]
