"""Reading PyTorch checkpoints without PyTorch, and writing minipsp's own, safely.

    state = minipsp.load("pspnet50_ade20k.pth")     # a dict of NumPy arrays; torch is not imported
    minipsp.save(model.state_dict(), "ckpt.mpsp")    # atomic: a crash never leaves half a file
    minipsp.load_checkpoint(model, "train_epoch_100.pth")   # strips "module.", unwraps "state_dict"

Formats `load` recognises, by looking at the file:
- PyTorch's zip format (torch.save since 1.6): `<archive>/data.pkl` is a pickle in which every
  tensor is a call `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)` and every
  storage a *persistent id* ('storage', torch.FloatStorage, key, location, numel) whose bytes are
  the entry `<archive>/data/<key>`.
- PyTorch's legacy format (`_use_new_zipfile_serialization=False`): pickles one after another in
  one stream: magic number, protocol version, system info, the object, the list of storage keys,
  then each storage's bytes (an int64 element count, then the data).
- minipsp's format: a zip with `minipsp/format`, `minipsp/data.pkl` (plain containers only; each
  array is a persistent id ('array', key)) and `minipsp/arrays/<key>.npy` (read only as np.save
  writes them: numbers and bools, the data exactly as long as the header says).

A checkpoint is a file from the internet, so `load` treats it as hostile:
- Unpickling can call any importable function (a file that says "call os.system('...')" runs it).
  Ours resolves only the few names a checkpoint needs -- tensor rebuilders, storage types,
  OrderedDict -- to stand-ins of our own, and refuses every other name (UnsafeCheckpointError).
- It runs pickle's pure-Python unpickler with the opcodes that touch objects replaced: a call (REDUCE)
  reaches only our stand-ins, BUILD sets attributes of OrderedDicts only, NEWOBJ/INST/OBJ/EXT are refused,
  as are protocol 5's buffers; dict keys and set items must be strings or numbers (hashing a deeply nested
  tuple crashes CPython). Nothing recurses: any depth of nesting, and self reference, load as they are.
- Every tensor recipe (storage, offset, size, stride) is checked -- integers, >= 0, every element inside
  its storage -- before NumPy sees it. Tensors are read in two passes over the pickle: the first
  checks the recipes and learns how many bytes of each storage the tensors use; then exactly those
  bytes are read (never a whole zip entry that a tensor does not need: no zip bomb); the second pass
  builds the arrays. Objects the pickle shares stay shared (the pickle's own memo), so a
  "billion laughs" file costs what it weighs.
Whatever is wrong, the answer is one CheckpointError (a ValueError) naming the file and the fault.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import pickle
import re
import stat
import struct
import tempfile
import zipfile
import zlib
from collections import OrderedDict

import numpy as np

from minipsp.backend import to_numpy

__all__ = ["CheckpointError", "UnsafeCheckpointError", "extract_state_dict", "load", "load_checkpoint", "save"]

FORMAT_ENTRY = "minipsp/format"
FORMAT_TAG = b"minipsp-checkpoint 1\n"
TORCH_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C  # the first pickle of a legacy torch file
ZIP_MAGIC = b"PK\x03\x04"                    # a zip's first local header; torch.load tests the same

# Limits. A real checkpoint is far inside each; a crafted one that is not is refused before it costs.
MAX_PICKLE_BYTES = 2**28     # a zip's data.pkl (names, sizes, numbers; PSPNet-101's is ~100 KB)
MAX_DIMS = 32                # dimensions of one tensor (NumPy 1.x's limit)
MAX_INDEX = 2**62            # any size, stride, offset or element count
EXTRA_TENSOR_BYTES = 2**26   # arrays may exceed twice the storage bytes they come from by this much
DEFLATE_MAX_RATIO = 1032     # deflate cannot inflate more than this; a zip entry that says so lies
READ_CHUNK = 2**20           # zip entries are read in pieces, so a lying size allocates nothing

# torch storage and dtype names -> NumPy dtype names ("bfloat16" is widened to float32 when read).
_STORAGE_DTYPES = {
    "DoubleStorage": "float64", "FloatStorage": "float32", "HalfStorage": "float16", "BFloat16Storage": "bfloat16",
    "LongStorage": "int64", "IntStorage": "int32", "ShortStorage": "int16", "CharStorage": "int8",
    "ByteStorage": "uint8", "BoolStorage": "bool", "UntypedStorage": "uint8",
}
_TORCH_DTYPES = {
    "float64": "float64", "double": "float64", "float32": "float32", "float": "float32", "float16": "float16",
    "half": "float16", "bfloat16": "bfloat16", "int64": "int64", "long": "int64", "int32": "int32",
    "int": "int32", "int16": "int16", "short": "int16", "int8": "int8", "uint8": "uint8", "bool": "bool",
}
# how each dtype is stored (bfloat16 as its 16 bits, bool as bytes that are then compared with 0)
_STORED_AS = {"bfloat16": "u2", "bool": "u1"}
_ITEMSIZE = {name: np.dtype(_STORED_AS.get(name, name)).itemsize for name in _TORCH_DTYPES.values()}


class CheckpointError(ValueError):
    """A file `minipsp.load` will not read: malformed, truncated, hostile or of a kind it does not know.

    The message names the file and what is wrong with it.
    """


class UnsafeCheckpointError(CheckpointError, pickle.UnpicklingError):
    """The file asks to import or build something a checkpoint has no reason to contain."""


# -- stand-ins for what a checkpoint's pickle names ------------------------------------------------
class _StandIn:
    """Base of our stand-ins; `label` says in messages what the file named."""

    label = "?"


class _Global(_StandIn):
    """An allowed function or class, as the pickle's REDUCE may call it: `call(*args)`, arity checked.
    `copies`: the result is a copy of its first argument, whose length is charged to the pickle's copy budget."""

    def __init__(self, label, call, min_args, max_args, copies=False):
        self.label, self.call, self.min_args, self.max_args, self.copies = label, call, min_args, max_args, copies


class _StorageType(_StandIn):
    """Stands for torch.FloatStorage & co. in a persistent id: only its dtype matters."""

    def __init__(self, label, dtype):
        self.label, self.dtype = label, dtype


class _Storage:
    """One storage of the file: `numel` elements of `dtype`; `needed` bytes from its start are used by
    tensors (learnt in the first pass); `data` holds those bytes once read."""

    def __init__(self, key, dtype, numel):
        self.key, self.dtype, self.numel = key, dtype, numel
        self.needed, self.data = 0, b""


class _StorageView(_StandIn):
    """What a persistent id gives a tensor: `numel` elements of `storage` from element `start`
    (always the whole storage, except for the views of old legacy files)."""

    def __init__(self, storage, start, numel):
        self.storage, self.start, self.numel = storage, start, numel
        self.label = f"a bare storage (key {storage.key!r})"


_TENSOR_PLAN = _StandIn()  # what the first pass gives for a tensor; the second pass builds the array
_TENSOR_PLAN.label = "a tensor"


def _describe(obj):
    """A short description of an object from the file, safe on any object: never the repr of an arbitrary
    (deeply nested, self-referencing or huge) structure."""
    kind = type(obj)
    if isinstance(obj, _StandIn):
        return obj.label
    if kind in (str, bytes):
        return repr(obj[:60]) + ("..." if len(obj) > 60 else "")
    if kind is int:
        return repr(obj) if obj.bit_length() <= 64 else f"an int of {obj.bit_length()} bits"
    if kind in (bool, float, type(None)):
        return repr(obj)
    if kind in (tuple, list) and len(obj) <= 8 and all(type(v) in (int, float, bool, str, bytes) for v in obj):
        items = ", ".join(_describe(v) for v in obj) + ("," if kind is tuple and len(obj) == 1 else "")
        return f"({items})" if kind is tuple else f"[{items}]"
    if kind in (tuple, list, dict, OrderedDict, set, frozenset):
        return f"a {kind.__name__} of {len(obj)} items"
    return f"a {kind.__name__}"


def _check_key(key, what):
    """Dict keys and set items: types whose hash is quick and safe (a nested tuple's hash recurses in C)."""
    kind = type(key)
    if kind in (str, bytes, bool, float, type(None)) or (kind is int and key.bit_length() <= 64):
        return
    raise CheckpointError(f"{what} is {_describe(key)}; a checkpoint's keys are strings or numbers")


def _check_index(value, what):
    """A size, stride or offset: a plain int in [0, MAX_INDEX)."""
    if type(value) is not int or not 0 <= value < MAX_INDEX:
        raise CheckpointError(f"{what} is {_describe(value)}; expected an integer >= 0")
    return value


def _check_shape(values, what):
    """A size or a stride: a tuple (or list) of at most MAX_DIMS ints in [0, MAX_INDEX)."""
    if type(values) not in (tuple, list) or len(values) > MAX_DIMS or \
            not all(type(v) is int and 0 <= v < MAX_INDEX for v in values):
        raise CheckpointError(f"{what} is {_describe(values)}; expected a tuple of at most {MAX_DIMS} integers >= 0")
    return tuple(values)


# -- the restricted unpickler -----------------------------------------------------------------------
class _CheckpointUnpickler(pickle._Unpickler):
    """pickle's pure-Python unpickler with every opcode that imports, calls or changes objects restricted.

    `allowed` maps the full names the pickle may import to stand-ins; `persistent_load` turns a
    persistent id into a storage (torch) or an array (minipsp). Copies the pickle asks for (tuple(x),
    set(x), BUILD's attributes) are charged to a budget of the pickle's own length, so a shared object
    copied again and again (a "billion laughs") is refused instead of filling memory.
    """

    # (The C unpickler, pickle.Unpickler, cannot have its opcodes replaced; the pure-Python one keeps them
    # in this table, and its speed does not matter: a checkpoint's pickle is small, its tensors are not in it.)
    dispatch = dict(pickle._Unpickler.dispatch)  # opcode byte -> handler; some are replaced below

    def __init__(self, stream, allowed, persistent_load, size):
        super().__init__(stream, encoding="utf-8")  # Python 2 strings are read as UTF-8, as torch.load does
        self.allowed = allowed
        self._persistent_load = persistent_load
        self.copy_budget = size + 1024

    def charge(self, count):
        self.copy_budget -= count
        if self.copy_budget < 0:
            raise CheckpointError("the pickle asks to copy more items than it holds (shared objects copied "
                                  "again and again: a 'billion laughs' file)")

    def find_class(self, module, name):
        full_name = f"{module}.{name}"
        if full_name in self.allowed:
            return self.allowed[full_name]
        raise UnsafeCheckpointError(
            f"the pickle asks to import {_describe(full_name)}: a checkpoint may only contain tensors, "
            "OrderedDicts and plain containers (numbers, strings, lists, tuples, dicts). A pickle that names "
            "other functions or classes can run arbitrary code when loaded, so it is not opened."
        )

    def persistent_load(self, pid):
        return self._persistent_load(pid)

    def load_global(self):
        # pickle's own strips the last byte of each line even when a truncated file has cut it short
        module, name = self.readline(), self.readline()
        if not (module.endswith(b"\n") and name.endswith(b"\n")):
            raise CheckpointError("the pickle ends early (within a GLOBAL)")
        self.append(self.find_class(module[:-1].decode("utf-8"), name[:-1].decode("utf-8")))

    # the opcodes that call or change objects
    def load_reduce(self):
        args = self.stack.pop()
        func = self.stack[-1]
        if type(func) is not _Global:
            raise CheckpointError(f"the pickle calls {_describe(func)}, which is not a function it may call")
        if type(args) is not tuple or not func.min_args <= len(args) <= func.max_args:
            raise CheckpointError(f"the pickle calls {func.label} with {_describe(args)}; it takes "
                                  f"{func.min_args} to {func.max_args} arguments")
        result = func.call(*args)
        if func.copies and args:  # (charged after the copy: one copy costs at most the object it copies)
            self.charge(len(args[0]))
        self.stack[-1] = result

    def load_build(self):
        state = self.stack.pop()
        inst = self.stack[-1]
        # torch pickles an OrderedDict state_dict with its `_metadata` attribute; nothing else needs BUILD
        if type(inst) is not OrderedDict:
            raise UnsafeCheckpointError(f"the pickle sets attributes of {_describe(inst)} (BUILD); a checkpoint "
                                        "sets them only on an OrderedDict")
        if type(state) is tuple and len(state) == 2 and state[1] is None:
            state = state[0]
        if type(state) is not dict:
            raise CheckpointError(f"the pickle sets an OrderedDict's attributes from {_describe(state)}; "
                                  "expected a dict")
        self.charge(len(state))
        for key, value in state.items():
            if type(key) is not str or key.startswith("__"):
                raise UnsafeCheckpointError(f"the pickle sets the attribute {_describe(key)} of an OrderedDict")
            inst.__dict__[key] = value

    def load_append(self):
        value = self.stack.pop()
        self._target(list, "APPEND").append(value)

    def load_appends(self):
        items = self.pop_mark()
        self._target(list, "APPENDS").extend(items)

    def load_setitem(self):
        value = self.stack.pop()
        key = self.stack.pop()
        _check_key(key, "a dict key")
        self._target(dict, "SETITEM")[key] = value

    def load_setitems(self):
        items = self.pop_mark()
        target = self._target(dict, "SETITEMS")
        self._check_pairs(items, "SETITEMS")
        for i in range(0, len(items), 2):
            _check_key(items[i], "a dict key")
            target[items[i]] = items[i + 1]

    def load_dict(self):
        items = self.pop_mark()
        self._check_pairs(items, "DICT")
        for key in items[::2]:
            _check_key(key, "a dict key")
        self.append({items[i]: items[i + 1] for i in range(0, len(items), 2)})

    @staticmethod
    def _check_pairs(items, opcode):
        if len(items) % 2:
            raise CheckpointError(f"the pickle's {opcode} has {len(items)} items, not key-value pairs")

    def load_additems(self):
        items = self.pop_mark()
        for item in items:
            _check_key(item, "a set item")
        self._target(set, "ADDITEMS").update(items)

    def load_frozenset(self):
        items = self.pop_mark()
        for item in items:
            _check_key(item, "a frozenset item")
        self.append(frozenset(items))

    def _target(self, kind, opcode):
        target = self.stack[-1]
        if not isinstance(target, kind):  # dict includes OrderedDict; nothing else can be built
            raise CheckpointError(f"the pickle's {opcode} adds to {_describe(target)}, not to a {kind.__name__}")
        return target

    def load_refused(self):
        raise UnsafeCheckpointError("the pickle builds an object of a class (NEWOBJ, INST, OBJ or EXT opcode) or "
                                    "uses protocol 5's buffers; a checkpoint holds only tensors and containers")

    for _opcode, _handler in [(pickle.GLOBAL, load_global), (pickle.REDUCE, load_reduce), (pickle.BUILD, load_build),
                              (pickle.APPEND, load_append), (pickle.APPENDS, load_appends),
                              (pickle.SETITEM, load_setitem), (pickle.SETITEMS, load_setitems),
                              (pickle.DICT, load_dict), (pickle.ADDITEMS, load_additems),
                              (pickle.FROZENSET, load_frozenset)]:
        dispatch[_opcode[0]] = _handler
    for _opcode in (pickle.NEWOBJ, pickle.NEWOBJ_EX, pickle.INST, pickle.OBJ, pickle.EXT1, pickle.EXT2, pickle.EXT4,
                    pickle.NEXT_BUFFER, pickle.READONLY_BUFFER, pickle.BYTEARRAY8):  # (its bytearray(n) comes first)
        dispatch[_opcode[0]] = load_refused
    del _opcode, _handler


def _invalid_opcode(code):
    def handler(self):
        raise CheckpointError(f"the pickle has an invalid opcode {code:#04x}")
    return handler


for _code in range(256):
    _CheckpointUnpickler.dispatch.setdefault(_code, _invalid_opcode(_code))
del _code


def _unpickle(data, start, allowed, persistent_load, what):
    """Run the pickle at data[start:] through the restricted unpickler; returns (object, offset after it)."""
    stream = io.BytesIO(data)  # (shares `data`'s buffer: no copy)
    stream.seek(start)
    unpickler = _CheckpointUnpickler(stream, allowed, persistent_load, len(data) - start)
    try:
        return unpickler.load(), stream.tell()
    except CheckpointError:
        raise
    # what pickle's own opcodes raise on bad input: an empty stack or memo, short data, bad numbers or text
    except (pickle.UnpicklingError, EOFError, ValueError, struct.error, IndexError) as exc:
        detail = "it ends early" if isinstance(exc, EOFError) else f"{type(exc).__name__}: {str(exc)[:200]}"
        raise CheckpointError(f"{what} is not a valid pickle ({detail})") from exc


def _new_ordered_dict():
    return OrderedDict()


def _set_items(items, kind):
    if type(items) not in (list, tuple, set, frozenset):
        raise CheckpointError(f"builtins.{kind} is called with {_describe(items)}; expected a list")
    for item in items:
        _check_key(item, f"a {kind} item")
    return items


# -- load -------------------------------------------------------------------------------------------
def load(f):
    """Read a checkpoint (PyTorch zip or legacy format, or minipsp's) with tensors as NumPy arrays.

    `f` is a path or a seekable binary file object. Returns what was saved: dicts, OrderedDicts, lists,
    tuples, sets, numbers, strings, bytes and, for every tensor, a NumPy array of its own (a bfloat16
    tensor becomes float32; objects the file shares, such as one tensor under two names, stay shared).

    Raises CheckpointError (a ValueError) naming the file and the fault for any file it will not read:
    not a checkpoint, a FIFO or a device, truncated, malformed, or crafted (negative strides, tensors
    outside their storage, zip bombs, shared objects copied again and again, unhashable keys, ...);
    UnsafeCheckpointError, a subclass (and a pickle.UnpicklingError), when the pickle names a function
    or class a checkpoint has no reason to contain (it could run code).
    OSError only when the file cannot be opened or read at all.

    Bound: time is linear in the file's size (and, for a compressed zip, in the bytes inflated, which are
    only those the tensors use). Memory is at most the pickle (a zip's data.pkl: at most 256 MiB; a legacy
    file is read whole) plus S, the bytes of each storage from its start to the last byte a tensor uses,
    plus the arrays returned, which may not exceed 2 S + 64 MiB (more, from expanded or overlapping
    tensors, is refused): below 3 S + 64 MiB plus the pickle. For a checkpoint whose tensors cover their
    storages (any state_dict), S is the tensors' own bytes.
    """
    if isinstance(f, (str, os.PathLike)):
        where = repr(os.fspath(f))
        _need_regular_file(f, where)
        with open(f, "rb") as file:
            return _load_reporting(file, where)
    if not (hasattr(f, "read") and hasattr(f, "seek")):
        raise TypeError(f"minipsp.load: f must be a path or a binary file object; got {type(f).__name__}")
    name = getattr(f, "name", None)
    return _load_reporting(f, repr(name) if isinstance(name, str) else f"a {type(f).__name__}")


def _need_regular_file(path, where):
    """Refuse a FIFO, a socket or a device before opening it: open() of a FIFO blocks until a writer comes,
    and /dev/zero or /dev/urandom never end, so neither would give the bounded answer load() promises.
    A missing path or a folder is left to open(), whose OSError already says so."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        kind = ("a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
                else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a regular file")
        raise CheckpointError(f"minipsp.load: cannot read {where}: it is {kind}; expected a checkpoint file")


def _load_reporting(file, where):
    try:
        file.seek(0)
        head = file.read(4)
        if not isinstance(head, bytes):
            raise TypeError(f"minipsp.load: {where} gives {type(head).__name__}, not bytes; open it in binary mode "
                            "('rb')")
        if head == ZIP_MAGIC:
            file.seek(0)
            return _load_zip(file)
        file.seek(0)
        return _load_torch_legacy(file.read())
    except CheckpointError as exc:
        raise type(exc)(f"minipsp.load: cannot read {where}: {exc}") from exc.__cause__


def _check_result(obj):
    """Refuse a result that still holds one of our stand-ins where a value should be: a bare storage, a
    storage type or an allowed function that no tensor rebuild consumed. Walks the result once, without
    recursion (it may be nested deeply or refer to itself)."""
    todo, seen = [obj], set()
    while todo:
        item = todo.pop()
        if isinstance(item, _StandIn):
            raise CheckpointError(f"the file holds {item.label} where a value should be; minipsp.load "
                                  "gives back only tensors, numbers, strings and containers")
        kind = type(item)
        if kind in (list, tuple, dict, OrderedDict) and id(item) not in seen:
            seen.add(id(item))
            if kind in (list, tuple):
                todo.extend(item)
            else:
                todo.extend(item.values())
                if kind is OrderedDict:
                    todo.extend(vars(item).values())
    return obj


# -- PyTorch's formats ------------------------------------------------------------------------------
class _TorchReader:
    """The stand-ins that a torch pickle may import, and the storages it names.

    First pass (build=False): each tensor recipe is checked and what it needs of its storage recorded;
    it gives back a placeholder. Second pass (build=True, storages read): the same recipes build arrays.
    """

    def __init__(self, byteorder="little"):
        self.storages = {}  # key -> _Storage
        self.build = False
        self.tensors = 0
        self.tensor_bytes = 0
        self.order = "<" if byteorder == "little" else ">"
        self.allowed = {
            "torch._utils._rebuild_tensor": _Global("torch._utils._rebuild_tensor", self.rebuild_tensor, 4, 4),
            "torch._utils._rebuild_tensor_v2": _Global("torch._utils._rebuild_tensor_v2", self.rebuild_tensor, 4, 7),
            "torch._utils._rebuild_tensor_v3": _Global("torch._utils._rebuild_tensor_v3", self.rebuild_tensor_v3,
                                                       7, 8),
            "torch._utils._rebuild_parameter": _Global("torch._utils._rebuild_parameter", self.rebuild_parameter,
                                                       1, 3),
            "torch._utils._rebuild_parameter_with_state": _Global("torch._utils._rebuild_parameter_with_state",
                                                                  self.rebuild_parameter, 1, 4),
            "torch.Size": _Global("torch.Size", self.make_size, 1, 1, copies=True),
            "collections.OrderedDict": _Global("collections.OrderedDict", _new_ordered_dict, 0, 0),
            "_codecs.encode": _Global("_codecs.encode", self.encode, 1, 2, copies=True),
        }
        for module in ("builtins", "__builtin__"):  # (protocol 2 spells builtins as Python 2 did)
            self.allowed[f"{module}.set"] = _Global(f"{module}.set", self.make_set, 0, 1, copies=True)
            self.allowed[f"{module}.frozenset"] = _Global(f"{module}.frozenset", self.make_frozenset, 0, 1,
                                                          copies=True)
        for name, dtype in _STORAGE_DTYPES.items():
            self.allowed[f"torch.{name}"] = _StorageType(f"torch.{name}", dtype)
            self.allowed[f"torch.storage.{name}"] = _StorageType(f"torch.storage.{name}", dtype)
        for name, dtype in _TORCH_DTYPES.items():
            self.allowed[f"torch.{name}"] = dtype  # a torch dtype reads as its NumPy name ("bfloat16" too)

    def unpickle(self, data, start, what):
        return _unpickle(data, start, self.allowed, self.persistent_load, what)

    # persistent ids: ('storage', storage type, key, location, numel[, legacy view])
    def persistent_load(self, pid):
        if type(pid) is not tuple or len(pid) not in (5, 6) or type(pid[0]) is not str or pid[0] != "storage":
            raise CheckpointError(f"the pickle names a persistent id {_describe(pid)}; only tensor storages "
                                  "('storage', type, key, location, numel) are supported")
        storage_type, key, numel = pid[1], pid[2], pid[4]
        if type(storage_type) is not _StorageType:
            raise CheckpointError(f"a storage's type is {_describe(storage_type)}, not a torch storage type")
        if type(key) is not str or len(key) > 100:
            raise CheckpointError(f"a storage's key is {_describe(key)}; expected a short string")
        _check_index(numel, f"the element count of storage {key!r}")
        storage = self.storages.setdefault(key, _Storage(key, storage_type.dtype, numel))
        if (storage.dtype, storage.numel) != (storage_type.dtype, numel):
            raise CheckpointError(f"storage {key!r} is named as {storage.numel} {storage.dtype} and as {numel} "
                                  f"{storage_type.dtype}")
        view = pid[5] if len(pid) == 6 else None
        if view is None:
            return _StorageView(storage, 0, numel)
        # old legacy files: (view key, offset, size) in elements of the root storage `key`
        if type(view) is not tuple or len(view) != 3:
            raise CheckpointError(f"storage {key!r} has a view {_describe(view)}; expected (key, offset, size)")
        start = _check_index(view[1], f"the view offset of storage {key!r}")
        size = _check_index(view[2], f"the view size of storage {key!r}")
        if start + size > numel:
            raise CheckpointError(f"a view of {size} elements from {start} does not fit storage {key!r} of {numel}")
        return _StorageView(storage, start, size)

    # the callables
    def rebuild_tensor(self, storage, offset, size, stride, *unused):
        return self.tensor(storage, offset, size, stride, None)

    def rebuild_tensor_v3(self, storage, offset, size, stride, requires_grad, hooks, dtype, *unused):
        return self.tensor(storage, offset, size, stride, dtype)

    def rebuild_parameter(self, data, *unused):
        if data is not _TENSOR_PLAN and type(data) is not np.ndarray:
            raise CheckpointError(f"a Parameter is made of {_describe(data)}, not of a tensor")
        return data  # a Parameter is its tensor; requires_grad and hooks do not matter to NumPy

    @staticmethod
    def make_size(values):
        return _check_shape(values, "a torch.Size")

    @staticmethod
    def encode(text, encoding="latin1"):
        # Protocol-2 pickles spell bytes objects as _codecs.encode(str, "latin1").
        if type(text) is str and type(encoding) is str and encoding in ("latin1", "latin-1"):
            try:
                return text.encode("latin1")
            except UnicodeEncodeError:
                pass
        raise CheckpointError("_codecs.encode is only allowed on a latin-1 string with encoding latin1")

    @staticmethod
    def make_set(items=()):
        return set(_set_items(items, "set"))

    @staticmethod
    def make_frozenset(items=()):
        return frozenset(_set_items(items, "frozenset"))

    def tensor(self, storage, offset, size, stride, dtype):
        """Check one recipe; record the bytes of its storage it needs; in the second pass, build it."""
        self.tensors += 1
        what = f"tensor #{self.tensors}"
        if type(storage) is not _StorageView:
            raise CheckpointError(f"{what} is made of {_describe(storage)}, not of a storage")
        root = storage.storage
        dtype = root.dtype if dtype is None else dtype
        if type(dtype) is not str or dtype not in _ITEMSIZE:
            raise CheckpointError(f"{what} has the dtype {_describe(dtype)}")
        offset = _check_index(offset, f"{what}'s storage offset")
        size = _check_shape(size, f"{what}'s size")
        stride = _check_shape(stride, f"{what}'s stride")
        if len(stride) != len(size):
            raise CheckpointError(f"{what} has {len(size)} sizes {size} but {len(stride)} strides {stride}")
        itemsize = _ITEMSIZE[dtype]
        if math.prod(max(n, 1) for n in size) * 8 >= MAX_INDEX:  # (NumPy refuses such shapes even if empty)
            raise CheckpointError(f"{what} has the size {size}, too many elements")
        start = storage.start * _ITEMSIZE[root.dtype]               # bytes into the root storage
        capacity = storage.numel * _ITEMSIZE[root.dtype] // itemsize  # elements of `dtype` (v3 reinterprets)
        numel = math.prod(size)
        # one past the last element it reaches (all strides >= 0, so the first is `offset`)
        end = offset + sum((n - 1) * s for n, s in zip(size, stride)) + 1 if numel else offset
        if end > capacity:
            raise CheckpointError(f"{what} (size {size}, stride {stride}, offset {offset}) reaches element {end - 1} "
                                  f"of a storage of {capacity} {dtype} elements")
        if numel:
            root.needed = max(root.needed, start + end * itemsize)
        self.tensor_bytes += numel * (4 if dtype == "bfloat16" else itemsize)
        if not self.build:
            return _TENSOR_PLAN
        return self.array(root, start, offset, end, size, stride, dtype)

    def array(self, root, start, offset, end, size, stride, dtype):
        """A fresh array of `size` and `stride` (elements) from root.data: the recipe has been checked."""
        out_dtype = "float32" if dtype == "bfloat16" else dtype
        if math.prod(size) == 0:
            return np.zeros(size, out_dtype)
        stored = np.dtype(_STORED_AS.get(dtype, dtype)).newbyteorder(self.order)
        flat = np.frombuffer(root.data, dtype=stored, count=end, offset=start)
        # a stride along a dimension of size 1 is never used (and may be any number: keep it from NumPy)
        strides = [s * stored.itemsize if n > 1 else 0 for n, s in zip(size, stride)]
        view = np.lib.stride_tricks.as_strided(flat[offset:], size, strides, writeable=False)
        if dtype == "bfloat16":  # the top 16 bits of a float32
            return (view.astype(np.uint32) << 16).view(np.float32)
        if dtype == "bool":
            return view != 0
        return view.astype(out_dtype)  # a copy, in native byte order

    def check_budget(self):
        used = sum(storage.needed for storage in self.storages.values())
        if self.tensor_bytes > 2 * used + EXTRA_TENSOR_BYTES:
            raise CheckpointError(f"its tensors would take {self.tensor_bytes} bytes from {used} bytes of storage "
                                  "(tensors that repeat their elements, by stride 0 or by sharing, beyond what "
                                  "minipsp.load allows)")


def _load_torch_legacy(data):
    """A legacy torch file, `data` its bytes: five pickles, then the storages' bytes."""

    def refuse(pid):
        raise CheckpointError("a persistent id outside the checkpoint's object")

    try:
        magic, pos = _unpickle(data, 0, {}, refuse, "its start")
    except UnsafeCheckpointError:
        raise
    except CheckpointError as exc:
        raise CheckpointError(f"not a checkpoint: neither a zip archive nor a legacy PyTorch file ({exc})") from None
    if type(magic) is not int or magic != TORCH_MAGIC_NUMBER:
        raise CheckpointError("not a checkpoint: neither a zip archive nor a legacy PyTorch file (it starts with "
                              f"a pickle of {_describe(magic)}, not torch's magic number)")
    _, pos = _unpickle(data, pos, {}, refuse, "the protocol version")
    sys_info, pos = _unpickle(data, pos, {}, refuse, "the system information")
    if type(sys_info) is not dict or sys_info.get("little_endian", True) is not True:
        raise CheckpointError("a legacy PyTorch file whose system information is not a little-endian machine's "
                              "(big-endian files are not supported)")
    reader = _TorchReader()
    object_start = pos
    _, pos = reader.unpickle(data, object_start, "the checkpoint's object")
    keys, pos = _unpickle(data, pos, {}, refuse, "the list of storage keys")
    if type(keys) is not list or any(type(key) is not str for key in keys) or len(set(keys)) != len(keys):
        raise CheckpointError(f"the list of storage keys is {_describe(keys)}, not a list of distinct strings")
    for key in keys:
        storage = reader.storages.get(key)
        if storage is None:
            raise CheckpointError(f"the storage list names {_describe(key)}, which no tensor uses")
        count = int.from_bytes(data[pos:pos + 8], "little", signed=True) if len(data) >= pos + 8 else -1
        nbytes = storage.numel * _ITEMSIZE[storage.dtype]
        if count != storage.numel or pos + 8 + nbytes > len(data):
            raise CheckpointError(f"storage {key!r} should hold {storage.numel} elements; the file has "
                                  f"{'no count' if count < 0 else count} and {max(len(data) - pos - 8, 0)} bytes "
                                  "left (truncated?)")
        storage.data = memoryview(data)[pos + 8:pos + 8 + nbytes]
        pos += 8 + nbytes
    missing = [s.key for s in reader.storages.values() if s.needed and s.key not in keys]
    if missing:
        raise CheckpointError(f"storage {missing[0]!r} is used by a tensor but its bytes are not in the file")
    reader.check_budget()
    reader.build, reader.tensors = True, 0
    obj, _ = reader.unpickle(data, object_start, "the checkpoint's object")
    return _check_result(obj)


def _load_zip(file):
    file.seek(0, os.SEEK_END)
    file_size = file.tell()
    file.seek(0)
    with _zip_errors("the zip archive"):
        archive = zipfile.ZipFile(file)
    with archive:
        archive = _Archive(archive, file_size)
        if FORMAT_ENTRY in archive.entries:
            return _load_minipsp(archive)
        pickles = [n for n in archive.entries if n.endswith("/data.pkl") and n.count("/") == 1]
        if not pickles:
            names = [_describe(n) for n in archive.entries][:5]
            raise CheckpointError(f"a zip archive that is neither a PyTorch checkpoint (no <archive>/data.pkl) nor "
                                  f"a minipsp one (no {FORMAT_ENTRY}); entries: {names}")
        return _load_torch_zip(archive, pickles[0][: -len("data.pkl")])


@contextlib.contextmanager
def _zip_errors(what):
    """Turns what zipfile and zlib raise on a damaged, encrypted or truncated archive into CheckpointError."""
    try:
        yield
    except CheckpointError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, RuntimeError, ValueError,
            struct.error, OverflowError) as exc:   # OverflowError: a header offset past what seek() takes
        raise CheckpointError(f"{what} is damaged or truncated ({type(exc).__name__}: {str(exc)[:200]})") from exc


class _Archive:
    """A zip archive whose entries are read with bounds.

    An entry is read only as far as asked, in pieces (a size that lies allocates nothing), and only if
    its header is believable: stored or deflated, not encrypted, inside the file, inflating no more than
    deflate can. The compressed bytes of the entries read may not add up to more than the file (entries
    that overlap would let one compressed stream inflate again and again).
    """

    def __init__(self, archive, file_size):
        self.archive, self.file_size = archive, file_size
        self.entries = {info.filename: info for info in archive.infolist()}
        self.claimed, self.opened = 0, set()

    def read(self, name, nbytes=None, what=None):
        """The first `nbytes` bytes (default: all) of entry `name`, as a bytearray."""
        info = self.entries[name]
        what = what or f"entry {_describe(name)}"
        nbytes = info.file_size if nbytes is None else nbytes
        if info.flag_bits & 0x1:
            raise CheckpointError(f"{what} is encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise CheckpointError(f"{what} uses compression method {info.compress_type}; only stored and deflated "
                                  "entries are read")
        if info.header_offset + info.compress_size > self.file_size:
            raise CheckpointError(f"{what} says it has {info.compress_size} bytes past the end of the file "
                                  "(truncated?)")
        if (info.compress_type == zipfile.ZIP_STORED and info.file_size != info.compress_size) or \
                info.file_size > DEFLATE_MAX_RATIO * info.compress_size + 1024:
            raise CheckpointError(f"{what} says it inflates from {info.compress_size} to {info.file_size} bytes, "
                                  "which it cannot")
        if not 0 <= nbytes <= info.file_size:
            raise CheckpointError(f"{what} holds {info.file_size} bytes; {nbytes} are needed")
        if name not in self.opened:
            self.opened.add(name)
            self.claimed += info.compress_size
            if self.claimed > self.file_size:
                raise CheckpointError(f"its entries claim more compressed bytes than the file has ({what} "
                                      "overlaps another: a zip bomb)")
        buffer = bytearray(nbytes)
        view = memoryview(buffer)
        done = 0
        with _zip_errors(what), self.archive.open(info) as stream:
            while done < nbytes:
                count = stream.readinto(view[done:done + READ_CHUNK])
                if not count:
                    raise CheckpointError(f"{what} ends after {done} of its {info.file_size} bytes (truncated?)")
                done += count
        return buffer

    def read_pickle(self, name):
        size = self.entries[name].file_size
        if size > MAX_PICKLE_BYTES:
            raise CheckpointError(f"its {name} is {size} bytes; a checkpoint's pickle is at most {MAX_PICKLE_BYTES} "
                                  "(it holds names and sizes; the tensors are elsewhere)")
        return bytes(self.read(name))


def _load_torch_zip(archive, prefix):
    byteorder = "little"
    if prefix + "byteorder" in archive.entries:
        size = archive.entries[prefix + "byteorder"].file_size
        byteorder = bytes(archive.read(prefix + "byteorder", min(size, 16))).strip().decode("latin1")
        if byteorder not in ("little", "big"):
            raise CheckpointError(f"its byteorder entry says {_describe(byteorder)}; expected little or big")
    data = archive.read_pickle(prefix + "data.pkl")
    reader = _TorchReader(byteorder)
    reader.unpickle(data, 0, "data.pkl")
    reader.check_budget()
    for storage in reader.storages.values():
        if not storage.needed:
            continue
        name = f"{prefix}data/{storage.key}"
        if name not in archive.entries:
            raise CheckpointError(f"storage {storage.key!r} has no entry {name!r}")
        declared = storage.numel * _ITEMSIZE[storage.dtype]
        if archive.entries[name].file_size != declared:
            raise CheckpointError(f"entry {name!r} holds {archive.entries[name].file_size} bytes, but the pickle "
                                  f"says its storage has {storage.numel} {storage.dtype} elements ({declared} bytes)")
        storage.data = archive.read(name, storage.needed)
    reader.build, reader.tensors = True, 0
    obj, _ = reader.unpickle(data, 0, "data.pkl")
    return _check_result(obj)


# -- minipsp's format -------------------------------------------------------------------------------
_NPY_HEADER = re.compile(rb"\{'descr': '([<>|])(b1|i1|i2|i4|i8|u1|u2|u4|u8|f2|f4|f8)', "
                         rb"'fortran_order': (True|False), 'shape': \(((?:\d{1,19}, )*\d{1,19},?|)\), \} *\n")


def _load_minipsp(archive):
    size = archive.entries[FORMAT_ENTRY].file_size
    tag = bytes(archive.read(FORMAT_ENTRY, min(size, 64)))
    if tag != FORMAT_TAG:
        raise CheckpointError(f"unknown minipsp checkpoint version {_describe(tag)}")
    arrays = {}

    def persistent_load(pid):
        if not (type(pid) is tuple and len(pid) == 2 and pid[0] == "array" and type(pid[1]) is str):
            raise CheckpointError(f"the pickle names a persistent id {_describe(pid)}; expected ('array', key)")
        if pid[1] not in arrays:  # a key named twice gives the same array (as the pickle's memo would)
            name = f"minipsp/arrays/{pid[1]}.npy"
            if name not in archive.entries:
                raise CheckpointError(f"the pickle names array {_describe(pid[1])}, which has no entry")
            arrays[pid[1]] = _read_npy(archive, name)
        return arrays[pid[1]]

    if "minipsp/data.pkl" not in archive.entries:
        raise CheckpointError("a minipsp archive without minipsp/data.pkl")
    data = archive.read_pickle("minipsp/data.pkl")
    allowed = {"collections.OrderedDict": _Global("collections.OrderedDict", _new_ordered_dict, 0, 0)}
    obj, _ = _unpickle(data, 0, allowed, persistent_load, "minipsp/data.pkl")
    return _check_result(obj)


def _read_npy(archive, name):
    """One array as np.save wrote it: numbers or bools, no pickled objects. The header is matched exactly
    against what np.save writes, and the data must be exactly what the shape and dtype need."""
    what = f"entry {_describe(name)}"
    size = archive.entries[name].file_size
    head = bytes(archive.read(name, min(size, 12 + 4096)))
    if head[:6] != b"\x93NUMPY" or len(head) < 12 or head[6] not in (1, 2, 3):
        raise CheckpointError(f"{what} is not a .npy array")
    if head[6] == 1:
        header_end = 10 + int.from_bytes(head[8:10], "little")
        header = head[10:header_end]
    else:
        header_end = 12 + int.from_bytes(head[8:12], "little")
        header = head[12:header_end]
    match = _NPY_HEADER.fullmatch(header)
    if header_end > len(head) or match is None:
        raise CheckpointError(f"{what} has a .npy header np.save does not write: {_describe(header)}")
    order, code, fortran, shape = match.groups()
    dtype = np.dtype((order + code).decode())
    shape = tuple(int(n) for n in shape.replace(b",", b" ").split())
    if len(shape) > MAX_DIMS or any(n >= MAX_INDEX for n in shape):
        raise CheckpointError(f"{what} has the shape {shape}")
    nbytes = math.prod(shape) * dtype.itemsize
    if size != header_end + nbytes:
        raise CheckpointError(f"{what} holds {size - header_end} data bytes; its shape {shape} and dtype "
                              f"{dtype} need {nbytes}")
    raw = archive.read(name)
    is_bool = code == b"b1"
    array = np.frombuffer(raw, dtype=np.dtype("u1") if is_bool else dtype, offset=header_end)
    array = array.reshape(shape, order="F" if fortran == b"True" else "C")
    return array != 0 if is_bool else array.astype(dtype.newbyteorder("="), copy=False)


# -- save -----------------------------------------------------------------------------------
def save(obj, f):
    """Write nested dicts/lists/tuples of str, int, float, bool, None, bytes and arrays to path `f`.

    Arrays may be NumPy, CuPy or minipsp Tensors; they come back from `load` as NumPy arrays.
    The file appears atomically: it is written to a temporary file in the same directory, flushed
    to disk (fsync) and renamed over `f` (os.replace), so a crash leaves the old file or the new one.
    """
    if not isinstance(f, (str, bytes, os.PathLike)):     # os.fspath's message names neither save nor f
        raise TypeError(f"minipsp.save: f must be a path (a str or os.PathLike) to write to; got "
                        f"{type(f).__name__}")
    path = os.fspath(f)
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not path or path.endswith(os.sep):       # "" and "dir/" name no file (mkstemp and os.replace would say so)
        raise ValueError(f"minipsp.save: f must name a file; got {path!r}")
    arrays = []
    plain = _to_plain(obj, arrays, "obj")
    directory = os.path.dirname(os.path.abspath(path))
    # said here, naming the folder: mkstemp's own error would name the hidden temporary file instead
    if not os.path.isdir(directory):
        kind = NotADirectoryError if os.path.exists(directory) else FileNotFoundError
        raise kind(f"minipsp.save: cannot write {path!r}: the folder {directory!r} "
                   f"{'is not a folder' if kind is NotADirectoryError else 'does not exist'}")
    if os.path.isdir(path):
        raise IsADirectoryError(f"minipsp.save: cannot write {path!r}: it is a folder; expected a file name")
    try:
        fd, tmp_path = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise type(exc)(f"minipsp.save: cannot write {path!r}: cannot create a file in {directory!r} "
                        f"({exc.strerror})") from None
    try:
        with os.fdopen(fd, "wb") as file:
            with zipfile.ZipFile(file, "w", zipfile.ZIP_STORED) as archive:
                archive.writestr(FORMAT_ENTRY, FORMAT_TAG)
                archive.writestr("minipsp/data.pkl", _dumps(plain))
                for key, array in enumerate(arrays):
                    with archive.open(f"minipsp/arrays/{key}.npy", "w", force_zip64=array.nbytes > 2**30) as entry:
                        np.save(entry, array, allow_pickle=False)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp_path, path)
    except BaseException:
        if os.path.exists(tmp_path):
            os.unlink(tmp_path)
        raise
    _fsync_directory(directory)


class _ArrayKey:
    def __init__(self, key):
        self.key = key


def _to_plain(obj, arrays, where):
    """A copy of `obj` with every array replaced by an _ArrayKey (its index in `arrays`)."""
    if obj is None:
        return obj
    if isinstance(obj, np.generic):  # before float: np.float64 is a float subclass that pickles by name
        return obj.item()
    for kind in (bool, int, float, str, bytes):  # subclasses (IntEnum, ...) become the plain type
        if isinstance(obj, kind):
            return kind(obj)
    if hasattr(obj, "_node") and hasattr(obj, "data"):  # a minipsp Tensor
        obj = obj.data
    if isinstance(obj, np.ndarray) or type(obj).__module__.startswith("cupy"):
        array = np.asarray(to_numpy(obj), order="C")  # (ascontiguousarray would make 0-d arrays 1-d)
        if array.dtype.kind not in "biuf":
            raise TypeError(f"minipsp.save: {where} is an array of dtype {array.dtype}; only numbers and bools "
                            "can be saved")
        arrays.append(array)
        return _ArrayKey(str(len(arrays) - 1))
    if isinstance(obj, dict):
        items = [(_to_plain(k, arrays, where), _to_plain(v, arrays, f"{where}[{k!r}]")) for k, v in obj.items()]
        return OrderedDict(items) if isinstance(obj, OrderedDict) else dict(items)
    if isinstance(obj, (list, tuple)):
        items = [_to_plain(v, arrays, f"{where}[{i}]") for i, v in enumerate(obj)]
        return items if isinstance(obj, list) else tuple(items)
    raise TypeError(f"minipsp.save: {where} has type {type(obj).__name__}; only dicts, lists, tuples, str, bytes, "
                    "int, float, bool, None and arrays can be saved (save model.state_dict(), not the model)")


def _dumps(plain):
    class ArrayPickler(pickle.Pickler):
        def persistent_id(self, obj):
            return ("array", obj.key) if isinstance(obj, _ArrayKey) else None

    buffer = io.BytesIO()
    ArrayPickler(buffer, protocol=4).dump(plain)
    return buffer.getvalue()


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_directory(directory):
    # Makes the rename itself durable on POSIX; not every platform can open a directory.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# -- checkpoints for models -----------------------------------------------------------------
def extract_state_dict(checkpoint):
    """The model weights inside a loaded checkpoint, with a DataParallel "module." prefix removed.

    semseg's training checkpoints are {'epoch', 'state_dict', 'optimizer'} with keys such as
    "module.layer1.0.conv1.weight"; a torchvision or minipsp file is the state dict itself.
    """
    if not isinstance(checkpoint, dict):
        raise TypeError(f"expected a checkpoint dict; got {type(checkpoint).__name__}")
    if isinstance(checkpoint.get("state_dict"), dict):
        checkpoint = checkpoint["state_dict"]
    prefix = "module."
    return OrderedDict((k[len(prefix):] if isinstance(k, str) and k.startswith(prefix) else k, v)
                       for k, v in checkpoint.items())


def load_checkpoint(model, checkpoint, strict=True):
    """Load a path or an already loaded checkpoint into `model`, strictly by default.

    A key that does not fit (missing, unexpected or of another shape) is named in the RuntimeError
    (semseg itself loads with strict=False, which silently ignores them). Returns (missing, unexpected).
    """
    if not hasattr(model, "load_state_dict"):
        raise TypeError(f"load_checkpoint: model must be a minipsp.nn.Module (the network to load into); got "
                        f"{type(model).__name__}")
    if isinstance(checkpoint, (str, os.PathLike)):
        checkpoint = load(checkpoint)
    return model.load_state_dict(extract_state_dict(checkpoint), strict=strict)
