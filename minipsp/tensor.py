"""The Tensor: an array (NumPy or CuPy) plus what reverse-mode autograd needs.

    x = minipsp.tensor([[1.0, 2.0]], requires_grad=True)
    y = (x * x).sum()
    y.backward()
    x.grad            # array([[2., 4.]], dtype=float32)

A Tensor made by an op on tensors that require grad remembers its `_node` (the Function, the
saved context and the input tensors); `backward()` walks those nodes in reverse (engine.py).
Python floats become float32, as in PyTorch; NumPy arrays keep their dtype (float64 stays float64,
which the gradient checks use).
"""

from __future__ import annotations

import numbers

import numpy as np

from minipsp.autograd import engine
from minipsp.autograd.function import Function
from minipsp.backend import device_of, get_array_module, is_cupy_array, normalize_device, to_device, to_numpy
from minipsp.ops import arithmetic as A
from minipsp.ops import reduction as R
from minipsp.ops import shape as S

DEFAULT_FLOAT = np.float32
NUMBER_KINDS = "biuf"   # numpy dtype kinds a Tensor may hold: bool, int, unsigned int, float
DTYPE_KIND_NAMES = {"U": "strings", "S": "bytes", "O": "Python objects", "c": "complex numbers",
                    "V": "structured records", "M": "dates", "m": "time spans"}


class Tensor:
    """A NumPy or CuPy array with an optional gradient and the graph node that produced it."""

    __array_priority__ = 1000  # so that ndarray + Tensor calls Tensor.__radd__

    def __init__(self, data, requires_grad=False):
        if isinstance(data, Tensor):
            data = data.data
        if not (isinstance(data, np.ndarray) or is_cupy_array(data)):
            data = _as_array(data, "Tensor")
        if data.dtype.kind not in NUMBER_KINDS:
            raise TypeError(f"Tensor: data must be numbers (bool, integer or floating point); got dtype "
                            f"{data.dtype} ({DTYPE_KIND_NAMES.get(data.dtype.kind, 'not numbers')}): no op "
                            "could compute with it")
        self.data = data
        self.grad = None
        self._node = None
        self._requires_grad = False
        self.requires_grad = requires_grad

    # -- gradients ---------------------------------------------------------------------------
    @property
    def requires_grad(self) -> bool:
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value):
        if value and self.data.dtype.kind != "f":
            raise TypeError(f"only floating-point tensors can require gradients; this tensor has dtype "
                            f"{self.data.dtype} (convert it with .float() or .double() first)")
        self._requires_grad = bool(value)

    def requires_grad_(self, value=True):
        self.requires_grad = value
        return self

    @property
    def is_leaf(self) -> bool:
        return self._node is None

    def backward(self, grad=None, retain_graph=False):
        """Accumulate d(self)/d(leaf) into the `.grad` of every leaf that requires grad."""
        engine.backward(self, grad, retain_graph)

    def detach(self):
        """The same data, cut from the graph (no gradient flows through it)."""
        return Tensor(self.data)

    def zero_grad(self):
        """Forget the accumulated gradient (same as `t.grad = None`)."""
        self.grad = None

    # -- what it is --------------------------------------------------------------------------
    @property
    def shape(self):
        return tuple(self.data.shape)

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def device(self):
        return device_of(self.data)

    def size(self, dim=None):
        return self.shape if dim is None else self.shape[_axis(dim, self.ndim, "size")]

    def numel(self):
        return int(self.data.size)

    def __len__(self):
        return self.shape[0]

    def __repr__(self):
        grad = ", requires_grad=True" if self.requires_grad else ""
        device = ", device='cuda'" if self.device == "cuda" else ""
        body = np.array2string(to_numpy(self.data), prefix="tensor(", precision=4, threshold=50)
        return f"tensor({body}, dtype={self.dtype}{device}{grad})"

    def numpy(self):
        """The data as a NumPy array (copied to the host from a GPU)."""
        return to_numpy(self.data)

    def item(self):
        if self.data.size != 1:
            raise ValueError(f"item(): only a one-element tensor converts to a Python number; got shape {self.shape}")
        return self.data.reshape(()).item()

    def tolist(self):
        return to_numpy(self.data).tolist()

    # -- devices and dtypes ------------------------------------------------------------------
    def to(self, device_or_dtype):
        """`t.to('cuda')`, `t.to('cpu')` or `t.to(np.float64)`: a new tensor (gradient flows back)."""
        if isinstance(device_or_dtype, str) and not device_or_dtype.startswith(("float", "int")):
            device = normalize_device(device_or_dtype)
            if device == self.device:
                return self
            return ToDevice.apply(self, device)
        return self.astype(device_or_dtype)

    def cpu(self):
        return self.to("cpu")

    def cuda(self):
        return self.to("cuda")

    def astype(self, dtype):
        if dtype is None:           # np.dtype(None) is float64: t.to(None) was a silent cast
            raise TypeError("to/astype: expected a device ('cpu', 'cuda') or a dtype (np.float32, 'float64', ...); "
                            "got None")
        dtype = _dtype(dtype, "to/astype")
        if dtype == self.dtype:
            return self
        if dtype.kind == "f" and self.requires_grad:
            return A.Cast.apply(self, dtype)
        return Tensor(self.data.astype(dtype))

    def float(self):
        return self.astype(np.float32)

    def double(self):
        return self.astype(np.float64)

    def long(self):
        return self.astype(np.int64)

    # -- arithmetic --------------------------------------------------------------------------
    def _operand(self, other):
        """An operand as a Tensor. An array (NumPy or CuPy, not 0-d) keeps its own device, so one on the
        other device is the op's clear device error rather than a silent copy on every call; numbers,
        0-d arrays and lists are host values and go to this tensor's device (numbers in its float dtype)."""
        if isinstance(other, Tensor):
            return other
        if is_cupy_array(other) or (isinstance(other, np.ndarray) and other.ndim > 0):
            return Tensor(other)
        if not _is_operand(other):
            # None became NaN (asarray(None, float32)), a str NumPy's "could not convert string to float"
            raise TypeError(f"an operand of a Tensor must be a Tensor, an array, a number or a list of numbers; "
                            f"got {type(other).__name__} {other!r:.60}")
        xp = get_array_module(self.data)
        dtype = self.dtype if self.dtype.kind == "f" and np.ndim(other) == 0 else None
        return Tensor(xp.asarray(other, dtype=dtype))

    def __add__(self, other):
        return A.Add.apply(self, self._operand(other))

    def __radd__(self, other):
        return A.Add.apply(self._operand(other), self)

    def __sub__(self, other):
        return A.Sub.apply(self, self._operand(other))

    def __rsub__(self, other):
        return A.Sub.apply(self._operand(other), self)

    def __mul__(self, other):
        return A.Mul.apply(self, self._operand(other))

    def __rmul__(self, other):
        return A.Mul.apply(self._operand(other), self)

    def __truediv__(self, other):
        return A.Div.apply(self, self._operand(other))

    def __rtruediv__(self, other):
        return A.Div.apply(self._operand(other), self)

    def __neg__(self):
        return A.Neg.apply(self)

    def __pow__(self, exponent):
        return A.Pow.apply(self, self._operand(exponent))

    def __rpow__(self, base):
        return A.Pow.apply(self._operand(base), self)

    def __matmul__(self, other):
        return A.MatMul.apply(self, self._operand(other))

    def __rmatmul__(self, other):
        return A.MatMul.apply(self._operand(other), self)

    def matmul(self, other):
        return self @ other

    def exp(self):
        return A.Exp.apply(self)

    def log(self):
        return A.Log.apply(self)

    def relu(self):
        from minipsp.nn.functional.activation import relu  # imported here: functional imports tensor

        return relu(self)

    def sigmoid(self):
        return A.Sigmoid.apply(self)

    def tanh(self):
        return A.Tanh.apply(self)

    # Comparisons give boolean tensors without a graph, as in PyTorch.
    def __eq__(self, other):
        if not _is_operand(other):      # t == None is False, as in torch (Python's identity fallback)
            return NotImplemented
        return Tensor(self.data == self._operand(other).data)

    def __ne__(self, other):
        if not _is_operand(other):
            return NotImplemented
        return Tensor(self.data != self._operand(other).data)

    def __lt__(self, other):
        return Tensor(self.data < self._operand(other).data)

    def __le__(self, other):
        return Tensor(self.data <= self._operand(other).data)

    def __gt__(self, other):
        return Tensor(self.data > self._operand(other).data)

    def __ge__(self, other):
        return Tensor(self.data >= self._operand(other).data)

    __hash__ = object.__hash__  # tensors are used as dict keys by identity (the optimiser does)

    # -- reductions --------------------------------------------------------------------------
    def sum(self, dim=None, keepdim=False):
        return R.Sum.apply(self, dim, keepdim)

    def mean(self, dim=None, keepdim=False):
        return R.Mean.apply(self, dim, keepdim)

    def max(self, dim=None, keepdim=False):
        """The largest values over `dim` (like torch.amax; the indices come from `argmax`)."""
        return R.Max.apply(self, dim, keepdim)

    amax = max

    def argmax(self, dim=None, keepdim=False):
        """Indices of the largest values (int64, not differentiable)."""
        xp = get_array_module(self.data)
        dim = None if dim is None else _axis(dim, self.ndim, "argmax")
        out = xp.argmax(self.data, axis=dim)
        if keepdim and dim is not None:
            out = xp.expand_dims(out, dim)
        return Tensor(out.astype(np.int64))

    # -- shapes ------------------------------------------------------------------------------
    def reshape(self, *shape):
        shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        return S.Reshape.apply(self, shape)

    view = reshape

    def flatten(self, start_dim=0, end_dim=-1):
        start_dim, end = _axis(start_dim, self.ndim, "flatten"), _axis(end_dim, self.ndim, "flatten")
        if self.ndim == 0:
            return self.reshape(1)
        if start_dim > end:
            raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end} (shape {self.shape})")
        middle = 1
        for n in self.shape[start_dim:end + 1]:
            middle *= n
        return self.reshape(self.shape[:start_dim] + (middle,) + self.shape[end + 1:])

    def permute(self, *dims):
        dims = tuple(dims[0]) if len(dims) == 1 and isinstance(dims[0], (tuple, list)) else dims
        return S.Permute.apply(self, dims)

    def transpose(self, dim0, dim1):
        dims = list(range(self.ndim))
        dim0, dim1 = _axis(dim0, self.ndim, "transpose"), _axis(dim1, self.ndim, "transpose")
        if self.ndim == 0:
            return self
        dims[dim0], dims[dim1] = dims[dim1], dims[dim0]
        return S.Permute.apply(self, tuple(dims))

    @property
    def T(self):
        return self.permute(tuple(reversed(range(self.ndim))))

    def __getitem__(self, index):
        if isinstance(index, Tensor):
            index = index.data
        elif isinstance(index, tuple):
            index = tuple(i.data if isinstance(i, Tensor) else i for i in index)
        return S.GetItem.apply(self, index)

    def unsqueeze(self, dim):
        dim = _axis(dim, self.ndim + 1, "unsqueeze", self.ndim)
        return self.reshape(self.shape[:dim] + (1,) + self.shape[dim:])

    def squeeze(self, dim=None):
        if dim is None:
            return self.reshape(tuple(n for n in self.shape if n != 1))
        dim = _axis(dim, self.ndim, "squeeze")
        if self.ndim == 0 or self.shape[dim] != 1:
            return self
        return self.reshape(self.shape[:dim] + self.shape[dim + 1:])


class ToDevice(Function):
    """y = a copied to another device;  da = dy copied back."""

    @staticmethod
    def forward(ctx, a, device):
        ctx.source = device_of(a)
        return to_device(a, device)

    @staticmethod
    def backward(ctx, dy):
        return to_device(dy, ctx.source), None


# -- checking arguments ----------------------------------------------------------------------
def _is_operand(other) -> bool:
    """What an arithmetic op or a comparison takes besides a Tensor: an array, a number, a list of numbers."""
    return isinstance(other, (Tensor, numbers.Number, np.generic, np.ndarray, list, tuple)) or is_cupy_array(other)


def _axis(dim, ndim, op_name, tensor_ndim=None):
    """`dim` (negatives count from the end) as an axis in [0, ndim), or a clear error (torch's range).

    `tensor_ndim` is the tensor's own rank where it differs from `ndim` (unsqueeze takes ndim + 1 places)."""
    tensor_ndim = ndim if tensor_ndim is None else tensor_ndim
    n = max(ndim, 1)
    if isinstance(dim, bool) or not isinstance(dim, numbers.Integral):
        raise TypeError(f"{op_name}: dim must be an int in [{-n}, {n - 1}]; got {type(dim).__name__} {dim!r}")
    if not -n <= dim < n:
        raise ValueError(f"{op_name}: dim {dim!r} is out of range for a tensor with {tensor_ndim} dimensions "
                         f"(expected an int in [{-n}, {n - 1}])")
    return int(dim) % n


def _sizes(shape, op_name):
    """The `*size` of zeros/ones/rand/randn (ints or one tuple of them) as a tuple of ints >= 0."""
    shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else tuple(shape)
    for n in shape:
        if isinstance(n, bool) or not isinstance(n, numbers.Integral):
            raise TypeError(f"{op_name}: size must be ints, e.g. {op_name}(2, 3) or {op_name}((2, 3)); got "
                            f"{shape!r}, which holds a {type(n).__name__}")
        if n < 0:
            raise ValueError(f"{op_name}: sizes must be >= 0; got {shape!r}")
    return tuple(int(n) for n in shape)


def _dtype(dtype, op_name, floating=False):
    """np.dtype(dtype), or a TypeError naming the op (NumPy says "data type 'floot' not understood")."""
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{op_name}: dtype {dtype!r} is not a dtype; expected e.g. np.float32, 'float32' or "
                        "np.int64") from None
    if floating and dtype.kind != "f":    # normal samples cast to int64 were silently mostly zeros
        raise TypeError(f"{op_name}: dtype must be floating point (float32 or float64); got {dtype}")
    return dtype


def _ragged(data, dim=0):
    """Where nested sequences first differ in length: 'at dim d: ...', or None."""
    if not isinstance(data, (list, tuple)) or not data:
        return None
    lengths = [len(x) if isinstance(x, (list, tuple, np.ndarray)) else None for x in data]
    for i, n in enumerate(lengths):
        if n != lengths[0]:
            def what(n):
                return "a number" if n is None else f"a sequence of length {n}"
            return f"at dim {dim + 1}, element 0 is {what(lengths[0])} but element {i} is {what(n)}"
    for x in data:
        where = _ragged(x, dim + 1)
        if where:
            return where
    return None


def _as_array(data, op_name):
    """np.asarray(data), with a ragged nested list named as such (not NumPy's 'inhomogeneous shape')."""
    try:
        return np.asarray(data)
    except ValueError:
        where = _ragged(data)
        if where is None:
            raise
        raise ValueError(f"{op_name}: data is ragged: {where}; a tensor needs nested lists of equal lengths "
                         "at every depth") from None


# -- making tensors --------------------------------------------------------------------------
def tensor(data, dtype=None, requires_grad=False, device="cpu"):
    """A new leaf tensor from a list, a number or an array (copied).

    Python floats become float32; NumPy arrays keep their dtype unless `dtype` is given.
    """
    if isinstance(data, Tensor):
        data = data.data
    if dtype is not None:
        dtype = _dtype(dtype, "tensor")
    if dtype is None and not hasattr(data, "dtype"):
        array = _as_array(data, "tensor")
        if array.dtype.kind == "f":
            array = array.astype(DEFAULT_FLOAT)
    else:
        array = to_numpy(data) if is_cupy_array(data) else _as_array(data, "tensor")
        array = array.astype(dtype if dtype is not None else array.dtype, copy=True)
    return Tensor(to_device(array, "cpu" if device is None else device), requires_grad=requires_grad)


def from_numpy(array):
    """Wrap a NumPy array without copying."""
    return Tensor(np.asarray(array))


def zeros(*shape, dtype=DEFAULT_FLOAT, requires_grad=False):
    shape = _sizes(shape, "zeros")
    return Tensor(np.zeros(shape, dtype=_dtype(dtype, "zeros")), requires_grad=requires_grad)


def ones(*shape, dtype=DEFAULT_FLOAT, requires_grad=False):
    shape = _sizes(shape, "ones")
    return Tensor(np.ones(shape, dtype=_dtype(dtype, "ones")), requires_grad=requires_grad)


def randn(*shape, dtype=DEFAULT_FLOAT, requires_grad=False):
    """Standard normal samples from minipsp's seeded generator (see `manual_seed`)."""
    from minipsp.random import get_rng

    shape, dtype = _sizes(shape, "randn"), _dtype(dtype, "randn", floating=True)
    return Tensor(get_rng().standard_normal(shape).astype(dtype), requires_grad=requires_grad)


def rand(*shape, dtype=DEFAULT_FLOAT, requires_grad=False):
    """Uniform [0, 1) samples from minipsp's seeded generator."""
    from minipsp.random import get_rng

    shape, dtype = _sizes(shape, "rand"), _dtype(dtype, "rand", floating=True)
    return Tensor(get_rng().random(shape).astype(dtype), requires_grad=requires_grad)


def _check_joinable(op_name, tensors, dim, same_shape):
    if not tensors:
        raise ValueError(f"{op_name}: expected a non-empty sequence of tensors")
    tensors = [t if isinstance(t, Tensor) else Tensor(_as_array(t, op_name)) for t in tensors]
    ndim = tensors[0].ndim
    if ndim == 0 and not same_shape:
        raise ValueError(f"{op_name}: zero-dimensional tensors (numbers) cannot be concatenated; tensor 0 has shape "
                         "(): stack them instead")
    limit = ndim + 1 if same_shape else ndim
    dim = _axis(dim, limit, op_name, ndim)
    first = tensors[0].shape
    for i, t in enumerate(tensors[1:], start=1):
        other = t.shape
        if same_shape:
            fits = other == first
        else:
            fits = len(other) == len(first) and all(a == b for k, (a, b) in enumerate(zip(first, other)) if k != dim)
        if not fits:
            wanted = "the same shape" if same_shape else f"the same shape except in dim {dim}"
            raise ValueError(f"{op_name}: tensor 0 has shape {first} but tensor {i} has shape {other}; "
                             f"all need {wanted}")
    return tensors, dim


def cat(tensors, dim=0):
    """Join tensors along an existing axis (torch.cat)."""
    tensors, dim = _check_joinable("cat", list(tensors), dim, same_shape=False)
    return S.Cat.apply(dim, *tensors)


def stack(tensors, dim=0):
    """Join same-shaped tensors along a new axis (torch.stack)."""
    tensors, dim = _check_joinable("stack", list(tensors), dim, same_shape=True)
    return S.Stack.apply(dim, *tensors)
