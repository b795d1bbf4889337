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
  array is a persistent id ('array', key)) and `minipsp/arrays/<key>.npy` (read with
  allow_pickle=False).

Why a restricted unpickler: unpickling can call any importable function (a file that says
"call os.system('...')" runs it). Ours resolves only the few names a checkpoint needs -- tensor
rebuilders, storage types, OrderedDict -- to functions of our own, and refuses every other name.
"""

from __future__ import annotations

import codecs
import io
import os
import pickle
import tempfile
import zipfile
from collections import OrderedDict

import numpy as np

from minipsp.backend import to_numpy

__all__ = ["extract_state_dict", "load", "load_checkpoint", "save"]

FORMAT_ENTRY = "minipsp/format"
FORMAT_TAG = b"minipsp-checkpoint 1\n"
TORCH_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C  # the first pickle of a legacy torch file

# torch storage and dtype names -> NumPy dtypes (bfloat16 is widened to float32 when read).
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


class UnsafeCheckpointError(pickle.UnpicklingError):
    """The file asks to import something a checkpoint has no reason to contain."""


# -- what the allowed globals resolve to ----------------------------------------------------------
class _StorageType:
    """Stands for torch.FloatStorage & co. in a persistent id: only its dtype matters."""

    def __init__(self, dtype):
        self.dtype = dtype


class _StorageRef:
    """A storage named in the pickle; its bytes are read after unpickling (see _materialize)."""

    def __init__(self, key, dtype, offset=0):
        self.key, self.dtype, self.offset = key, dtype, offset


class _TensorRecipe:
    """What _rebuild_tensor_v2 was asked to build: strides and offset in elements of `dtype`."""

    def __init__(self, storage, offset, size, stride, dtype=None):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)
        self.dtype = dtype or storage.dtype


def _rebuild_tensor(storage, storage_offset, size, stride, *unused):
    return _TensorRecipe(storage, storage_offset, size, stride)


def _rebuild_tensor_v3(storage, storage_offset, size, stride, requires_grad, backward_hooks, dtype, *unused):
    return _TensorRecipe(storage, storage_offset, size, stride, dtype=dtype)


def _rebuild_parameter(data, *unused):
    return data  # a Parameter is its tensor; requires_grad and hooks do not matter to NumPy


def _encode(text, encoding="latin1"):
    # Protocol-2 pickles spell bytes objects as _codecs.encode(str, "latin1").
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafeCheckpointError("_codecs.encode is only allowed on a string with encoding latin1")
    return codecs.encode(text, encoding)


def _torch_globals():
    allowed = {
        "torch._utils._rebuild_tensor": _rebuild_tensor,
        "torch._utils._rebuild_tensor_v2": _rebuild_tensor,
        "torch._utils._rebuild_tensor_v3": _rebuild_tensor_v3,
        "torch._utils._rebuild_parameter": _rebuild_parameter,
        "torch._utils._rebuild_parameter_with_state": _rebuild_parameter,
        "torch.Size": tuple,
        "collections.OrderedDict": OrderedDict,
        "_codecs.encode": _encode,
        "builtins.set": set,
        "builtins.frozenset": frozenset,
    }
    for name, dtype in _STORAGE_DTYPES.items():
        allowed[f"torch.{name}"] = _StorageType(dtype)
        allowed[f"torch.storage.{name}"] = _StorageType(dtype)
    for name, dtype in _TORCH_DTYPES.items():
        allowed[f"torch.{name}"] = dtype
    return allowed


class RestrictedUnpickler(pickle.Unpickler):
    """An Unpickler whose `find_class` knows only the names in `allowed` (full name -> object)."""

    def __init__(self, file, allowed, persistent_load):
        super().__init__(file)
        self.allowed = allowed
        self._persistent_load = persistent_load

    def find_class(self, module, name):
        full_name = f"{module}.{name}"
        if full_name in self.allowed:
            return self.allowed[full_name]
        raise UnsafeCheckpointError(
            f"minipsp.load refused to import {full_name!r}: a checkpoint may only contain tensors, "
            "OrderedDicts and plain containers (numbers, strings, lists, tuples, dicts). A pickle that names "
            "other functions or classes can run arbitrary code when loaded, so it is not opened."
        )

    def persistent_load(self, pid):
        return self._persistent_load(pid)


# -- load -----------------------------------------------------------------------------------
def load(f):
    """Read a checkpoint (PyTorch zip or legacy format, or minipsp's) with tensors as NumPy arrays.

    `f` is a path or a binary file object. Raises UnsafeCheckpointError (a pickle.UnpicklingError)
    for a file whose pickle names anything but tensors, OrderedDicts and plain containers.
    """
    if isinstance(f, (str, os.PathLike)):
        with open(f, "rb") as file:
            return load(file)
    if not zipfile.is_zipfile(f):
        f.seek(0)
        return _load_torch_legacy(f)
    f.seek(0)
    with zipfile.ZipFile(f) as archive:
        names = archive.namelist()
        if FORMAT_ENTRY in names:
            return _load_minipsp(archive)
        pickles = [n for n in names if n.endswith("data.pkl") and n.count("/") == 1]
        if not pickles:
            raise ValueError(f"minipsp.load: a zip archive that is neither a PyTorch checkpoint (no "
                             f"<archive>/data.pkl) nor a minipsp one (no {FORMAT_ENTRY}); entries: {names[:5]}")
        return _load_torch_zip(archive, pickles[0])


def _storage_reader(pid):
    """Parse a torch persistent id into a _StorageRef (both formats spell it nearly the same)."""
    if not isinstance(pid, tuple) or not pid or pid[0] != "storage":
        raise UnsafeCheckpointError(f"minipsp.load: unknown persistent id {str(pid)[:80]!r} "
                                    "(only tensor storages are supported)")
    storage_type, key = pid[1], str(pid[2])
    if not isinstance(storage_type, _StorageType):
        raise UnsafeCheckpointError(f"minipsp.load: persistent id names {storage_type!r}, not a storage type")
    return storage_type, key


def _load_torch_zip(archive, pickle_name):
    prefix = pickle_name[: -len("data.pkl")]
    byteorder = "little"
    if prefix + "byteorder" in archive.namelist():
        byteorder = archive.read(prefix + "byteorder").decode().strip()

    def persistent_load(pid):
        storage_type, key = _storage_reader(pid)
        return _StorageRef(key, storage_type.dtype)

    with archive.open(pickle_name) as stream:
        obj = RestrictedUnpickler(stream, _torch_globals(), persistent_load).load()
    storages = {}

    def read_storage(ref):
        if ref.key not in storages:
            storages[ref.key] = _decode(archive.read(f"{prefix}data/{ref.key}"), ref.dtype, byteorder)
        return storages[ref.key]

    return _materialize(obj, read_storage)


def _load_torch_legacy(f):
    refs = {}

    def persistent_load(pid):
        storage_type, key = _storage_reader(pid)
        view = pid[5] if len(pid) > 5 else None
        refs.setdefault(key, storage_type.dtype)
        if view is not None:  # (view key, offset, size): a view into the root storage `key`
            return _StorageRef(key, storage_type.dtype, offset=int(view[1]))
        return _StorageRef(key, storage_type.dtype)

    def restricted_load():
        return RestrictedUnpickler(f, _torch_globals(), persistent_load).load()

    try:
        magic = restricted_load()
    except (pickle.UnpicklingError, EOFError, ValueError) as exc:
        if isinstance(exc, UnsafeCheckpointError):
            raise
        raise ValueError(f"minipsp.load: not a checkpoint this reader knows (not a zip archive and not a "
                         f"legacy PyTorch file): {exc}") from None
    if magic != TORCH_MAGIC_NUMBER:
        raise ValueError("minipsp.load: not a PyTorch legacy checkpoint (wrong magic number); "
                         "very old tar-format files are not supported")
    restricted_load()  # protocol version
    sys_info = restricted_load()
    if isinstance(sys_info, dict) and not sys_info.get("little_endian", True):
        raise ValueError("minipsp.load: big-endian legacy checkpoints are not supported")
    obj = restricted_load()
    keys = restricted_load()
    storages = {}
    for key in keys:
        dtype = refs[str(key)]
        count = int(np.frombuffer(f.read(8), dtype="<i8")[0])
        itemsize = 2 if dtype == "bfloat16" else np.dtype(dtype).itemsize
        storages[str(key)] = _decode(f.read(count * itemsize), dtype, "little")
    return _materialize(obj, lambda ref: storages[ref.key])


def _decode(raw, dtype, byteorder):
    """Bytes of one storage -> a 1-D NumPy array (bfloat16 widened exactly to float32)."""
    order = "<" if byteorder == "little" else ">"
    if dtype == "bfloat16":
        bits = np.frombuffer(raw, dtype=order + "u2").astype(np.uint32) << 16
        return bits.view(np.float32)
    return np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder(order)).astype(dtype, copy=False)


def _materialize(obj, read_storage):
    """Replace every _TensorRecipe in the loaded structure by its NumPy array (a fresh copy)."""
    if isinstance(obj, _TensorRecipe):
        storage = read_storage(obj.storage)
        if obj.dtype != obj.storage.dtype:  # _rebuild_tensor_v3 on an untyped (byte) storage
            storage = _decode(storage.tobytes(), obj.dtype, "little")
        start = obj.storage.offset + obj.offset
        flat = storage[start:]
        if len(obj.size) and min(obj.size) > 0:
            needed = 1 + sum((n - 1) * s for n, s in zip(obj.size, obj.stride))
            if needed > flat.size:
                raise ValueError(f"minipsp.load: a tensor of size {obj.size} and stride {obj.stride} "
                                 f"does not fit in its storage ({flat.size} elements from offset {start})")
        elif not len(obj.size) and flat.size < 1:
            raise ValueError("minipsp.load: a scalar tensor with an empty storage")
        strides = tuple(s * flat.itemsize for s in obj.stride)
        return np.array(np.lib.stride_tricks.as_strided(flat, obj.size, strides))
    if isinstance(obj, OrderedDict):
        return OrderedDict((k, _materialize(v, read_storage)) for k, v in obj.items())
    if isinstance(obj, dict):
        return {k: _materialize(v, read_storage) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_materialize(v, read_storage) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_materialize(v, read_storage) for v in obj)
    if isinstance(obj, (_StorageRef, _StorageType)):
        raise ValueError("minipsp.load: the file holds a bare storage, not a tensor; this is not supported")
    return obj


def _load_minipsp(archive):
    tag = archive.read(FORMAT_ENTRY)
    if tag != FORMAT_TAG:
        raise ValueError(f"minipsp.load: unknown minipsp checkpoint version {tag!r}")

    def persistent_load(pid):
        if not (isinstance(pid, tuple) and len(pid) == 2 and pid[0] == "array" and isinstance(pid[1], str)):
            raise UnsafeCheckpointError(f"minipsp.load: unknown persistent id {str(pid)[:80]!r}")
        with archive.open(f"minipsp/arrays/{pid[1]}.npy") as stream:
            return np.load(io.BytesIO(stream.read()), allow_pickle=False)

    allowed = {"collections.OrderedDict": OrderedDict}
    with archive.open("minipsp/data.pkl") as stream:
        return RestrictedUnpickler(stream, allowed, persistent_load).load()


# -- save -----------------------------------------------------------------------------------
def save(obj, f):
    """Write nested dicts/lists/tuples of str, int, float, bool, None, bytes and arrays to path `f`.

    Arrays may be NumPy, CuPy or minipsp Tensors; they come back from `load` as NumPy arrays.
    The file appears atomically: it is written to a temporary file in the same directory, flushed
    to disk (fsync) and renamed over `f` (os.replace), so a crash leaves the old file or the new one.
    """
    arrays = []
    plain = _to_plain(obj, arrays, "obj")
    path = os.fspath(f)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp_path = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
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
    if isinstance(checkpoint, (str, os.PathLike)):
        checkpoint = load(checkpoint)
    return model.load_state_dict(extract_state_dict(checkpoint), strict=strict)
