"""`Module`: a layer that owns parameters, buffers and sub-modules, with PyTorch's names.

    class TwoConvs(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3)    # assigning a Module registers it as a child
            self.bn = nn.BatchNorm2d(8)       # its weight/bias are Parameters, its running stats buffers
        def forward(self, x):
            return self.bn(self.conv(x))

Registration happens in `__setattr__`: a `Parameter` goes to `_parameters`, a `Module` to
`_modules`, and `register_buffer` puts a tensor that is state but not trained (BatchNorm's running
mean) in `_buffers`. Everything else walks those three dictionaries recursively, and the dotted
names it builds ("layer1.0.conv1.weight") are the keys of `state_dict()`, the same as PyTorch's,
so a checkpoint written by PyTorch loads key for key.
"""

from __future__ import annotations

from collections import OrderedDict
from contextlib import contextmanager

import numpy as np

from minipsp.backend import get_array_module, normalize_device, to_device, to_numpy
from minipsp.tensor import Tensor


class Parameter(Tensor):
    """A Tensor that a Module trains: it requires grad unless told otherwise."""

    def __init__(self, data, requires_grad=True):
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()


class Module:
    """Base class of every layer and model. Subclasses define `forward`; call the module itself."""

    def __init__(self):
        # object.__setattr__ because our own __setattr__ expects these dictionaries to exist.
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_forward_hooks", OrderedDict())

    # -- registration --------------------------------------------------------------------------
    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise RuntimeError(f"{type(self).__name__}: call super().__init__() before assigning {name!r}")
        for table in (self._parameters, self._buffers, self._modules):
            table.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        elif name in self.__dict__.get("_buffer_names", ()) and (value is None or isinstance(value, Tensor)):
            self._buffers[name] = value
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name):
        # Only called when normal lookup fails: look in the three tables.
        for table in ("_parameters", "_buffers", "_modules"):
            entries = self.__dict__.get(table)
            if entries is not None and name in entries:
                return entries[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name):
        for table in (self._parameters, self._buffers, self._modules):
            if name in table:
                del table[name]
                return
        object.__delattr__(self, name)

    def register_buffer(self, name, tensor):
        """State that is saved in `state_dict` and moved by `to()`, but not trained."""
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"register_buffer({name!r}): expected a Tensor or None, got {type(tensor).__name__}")
        self.__dict__.setdefault("_buffer_names", set()).add(name)
        self.__dict__.pop(name, None)
        self._buffers[name] = tensor

    def register_parameter(self, name, param):
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"register_parameter({name!r}): expected a Parameter or None, "
                            f"got {type(param).__name__}")
        self._parameters[name] = param

    def add_module(self, name, module):
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module({name!r}): expected a Module, got {type(module).__name__}")
        self._modules[name] = module

    # -- walking the tree ----------------------------------------------------------------------
    def named_modules(self, prefix=""):
        """(dotted name, module) for this module and every descendant, depth first, each once."""
        seen, stack = set(), [(prefix, self)]
        while stack:
            name, module = stack.pop()
            if id(module) in seen:
                continue
            seen.add(id(module))
            yield name, module
            children = [(f"{name}.{n}" if name else n, m) for n, m in module._modules.items() if m is not None]
            stack.extend(reversed(children))

    def modules(self):
        for _, module in self.named_modules():
            yield module

    def named_children(self):
        for name, module in self._modules.items():
            if module is not None:
                yield name, module

    def children(self):
        for _, module in self.named_children():
            yield module

    def _named_members(self, table, prefix, recurse):
        seen = set()
        modules = self.named_modules(prefix) if recurse else [(prefix, self)]
        for module_name, module in modules:
            for name, value in getattr(module, table).items():
                if value is None or id(value) in seen:
                    continue
                seen.add(id(value))
                yield (f"{module_name}.{name}" if module_name else name), value

    def named_parameters(self, prefix="", recurse=True):
        yield from self._named_members("_parameters", prefix, recurse)

    def parameters(self, recurse=True):
        for _, param in self.named_parameters(recurse=recurse):
            yield param

    def named_buffers(self, prefix="", recurse=True):
        yield from self._named_members("_buffers", prefix, recurse)

    def buffers(self, recurse=True):
        for _, buffer in self.named_buffers(recurse=recurse):
            yield buffer

    def num_parameters(self):
        return sum(p.numel() for p in self.parameters())

    def apply(self, fn):
        """Call fn(module) on every descendant (children first) and on self, as torch does."""
        for module in self.children():
            module.apply(fn)
        fn(self)
        return self

    # -- modes ---------------------------------------------------------------------------------
    def train(self, mode=True):
        """Training mode (batch statistics in BatchNorm, dropout on); `train(False)` is `eval()`."""
        for module in self.modules():
            object.__setattr__(module, "training", bool(mode))
        return self

    def eval(self):
        return self.train(False)

    @contextmanager
    def eval_mode(self):
        """`with model.eval_mode():` evaluate, then restore every module's own mode (even on error)."""
        modes = [(module, module.training) for module in self.modules()]
        self.eval()
        try:
            yield self
        finally:
            for module, mode in modes:
                object.__setattr__(module, "training", mode)

    def requires_grad_(self, requires_grad=True):
        for param in self.parameters():
            param.requires_grad = requires_grad
        return self

    def zero_grad(self, set_to_none=True):
        """Forget accumulated gradients (set them to None, or to zeros with set_to_none=False)."""
        for param in self.parameters():
            if set_to_none or param.grad is None:
                param.grad = None
            else:
                param.grad = get_array_module(param.grad).zeros_like(param.grad)

    # -- calling -------------------------------------------------------------------------------
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args, **kwargs):
        out = self.forward(*args, **kwargs)
        for hook in list(self._forward_hooks.values()):
            result = hook(self, args, out)
            if result is not None:
                out = result
        return out

    def register_forward_hook(self, hook):
        """hook(module, inputs, output) runs after every forward; returns a handle with .remove()."""
        key = object()
        self._forward_hooks[key] = hook
        return _HookHandle(self._forward_hooks, key)

    # -- devices and dtypes --------------------------------------------------------------------
    def to(self, device_or_dtype):
        """Move (`'cuda'`, `'cpu'`) or cast (`np.float64`) every parameter and buffer, in place.

        The Parameter objects stay the same (only their `.data` and `.grad` change), so an
        optimiser built before the move still holds them. Only floating-point data is cast.
        """
        if isinstance(device_or_dtype, str) and not device_or_dtype.startswith(("float", "int")):
            device = normalize_device(device_or_dtype)

            def convert(array):
                return to_device(array, device)
        else:
            dtype = np.dtype(device_or_dtype)
            if dtype.kind != "f":
                raise TypeError(f"Module.to(dtype): only floating-point dtypes make sense; got {dtype}")

            def convert(array):
                return array.astype(dtype) if array.dtype.kind == "f" else array

        for tensor in list(self.parameters()) + list(self.buffers()):
            tensor.data = convert(tensor.data)
            if tensor.grad is not None:
                tensor.grad = convert(tensor.grad)
        return self

    def cpu(self):
        return self.to("cpu")

    def cuda(self):
        return self.to("cuda")

    def float(self):
        return self.to(np.float32)

    def double(self):
        return self.to(np.float64)

    # -- state ---------------------------------------------------------------------------------
    def state_dict(self):
        """OrderedDict of dotted name -> NumPy array (a copy) for every parameter and buffer."""
        state = OrderedDict()
        for prefix, module in self.named_modules():
            for table in (module._parameters, module._buffers):
                for name, value in table.items():
                    if value is not None:
                        key = f"{prefix}.{name}" if prefix else name
                        state[key] = np.array(to_numpy(value.data), copy=True)
        return state

    def load_state_dict(self, state_dict, strict=True):
        """Copy arrays into the parameters and buffers with the same names.

        Every array must have its tensor's shape. With strict=True, the keys must match exactly;
        one RuntimeError names every missing, unexpected and misshaped key at once. Values are
        cast to the tensor's dtype and moved to its device. Returns (missing, unexpected).
        """
        if not (hasattr(state_dict, "keys") and hasattr(state_dict, "__getitem__")):
            raise TypeError(f"{type(self).__name__}.load_state_dict: expected a dict of arrays by name (what "
                            f"state_dict() returns); got {type(state_dict).__name__}")
        own = OrderedDict()
        for prefix, module in self.named_modules():
            for table in (module._parameters, module._buffers):
                for name, value in table.items():
                    if value is not None:
                        own[f"{prefix}.{name}" if prefix else name] = value
        missing = [key for key in own if key not in state_dict]
        unexpected = [key for key in state_dict if key not in own]
        misshaped = []
        not_numbers = [f"{key} is a {type(state_dict[key]).__name__}" for key in own if key in state_dict
                       and not _holds_numbers(state_dict[key])]
        if not_numbers:     # a str's shape is (), which read as a size mismatch
            raise TypeError(f"{type(self).__name__}.load_state_dict: every value must be an array of numbers; "
                            + "; ".join(not_numbers))
        for key, tensor in own.items():
            if key in state_dict and tuple(np.shape(_as_array(state_dict[key]))) != tensor.shape:
                misshaped.append(f"{key}: checkpoint has {tuple(np.shape(_as_array(state_dict[key])))}, "
                                 f"model has {tensor.shape}")
        problems = []
        if misshaped:
            problems.append("size mismatch for " + "; ".join(misshaped))
        if strict and missing:
            problems.append("missing keys: " + ", ".join(missing))
        if strict and unexpected:
            problems.append("unexpected keys: " + ", ".join(unexpected))
        if problems:
            raise RuntimeError(f"Error(s) in loading state_dict for {type(self).__name__}:\n  "
                               + "\n  ".join(problems))
        for key, tensor in own.items():
            if key in state_dict:
                value = np.asarray(to_numpy(_as_array(state_dict[key])), dtype=tensor.dtype)
                tensor.data = to_device(value.copy(), tensor.device)
        return missing, unexpected

    # -- printing ------------------------------------------------------------------------------
    def extra_repr(self):
        """The constructor arguments shown inside the parentheses of repr(); layers override it."""
        return ""

    def __repr__(self):
        lines = []
        for name, module in self._modules.items():
            child = repr(module).replace("\n", "\n  ")
            lines.append(f"({name}): {child}")
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not lines:
            return head + ")"
        return head + "\n  " + "\n  ".join(lines) + "\n)"


def _as_array(value):
    return value.data if isinstance(value, Tensor) else value


def _holds_numbers(value) -> bool:
    """An array (NumPy, CuPy, Tensor), a number or a nested list of numbers: what np.asarray makes numeric."""
    value = _as_array(value)
    if hasattr(value, "dtype") and hasattr(value, "shape"):
        return value.dtype.kind in "biuf"
    if isinstance(value, (str, bytes, dict)) or value is None:
        return False
    try:
        return np.asarray(value).dtype.kind in "biuf"
    except (ValueError, TypeError):
        return False


class _HookHandle:
    def __init__(self, table, key):
        self.table, self.key = table, key

    def remove(self):
        self.table.pop(self.key, None)


class Sequential(Module):
    """Modules applied one after the other; children are named "0", "1", ... as in PyTorch."""

    def __init__(self, *modules):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            for name, module in modules[0].items():
                self.add_module(name, module)
        else:
            for i, module in enumerate(modules):
                self.add_module(str(i), module)

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, index):
        modules = list(self._modules.values())
        if isinstance(index, slice):
            return Sequential(*modules[index])
        return modules[index]

    def append(self, module):
        self.add_module(str(len(self)), module)
        return self

    def forward(self, x):
        for module in self._modules.values():
            x = module(x)
        return x


class ModuleList(Module):
    """A list of modules whose parameters are registered (a plain Python list would hide them)."""

    def __init__(self, modules=()):
        super().__init__()
        for module in modules:
            self.append(module)

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, index):
        modules = list(self._modules.values())
        if isinstance(index, slice):
            return ModuleList(modules[index])
        return modules[index]

    def append(self, module):
        self.add_module(str(len(self)), module)
        return self

    def extend(self, modules):
        for module in modules:
            self.append(module)
        return self

    def forward(self, *args, **kwargs):
        raise RuntimeError("ModuleList is a container and has no forward(); call its modules in a loop")
