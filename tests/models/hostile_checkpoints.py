"""Crafted checkpoints, built in the tests from pickle opcodes and zipfile (no binary blob is committed).

A crafted pickle is written by pickle itself wherever it can be: `Tensor(storage, offset, size, stride)`
pickles as the call torch._utils._rebuild_tensor_v2(...) that torch.save writes, and `Storage` as
torch's persistent id ('storage', torch.FloatStorage, key, 'cpu', numel); then `torch_zip`,
`torch_legacy` or `minipsp_zip` put the pickle and the storages' bytes into a file of that format.
What pickle will not write (BUILD on a function, a bad opcode, a truncated stream) is spelled
in opcodes (`op`). `HOSTILE` lists every crash class of issue 13 as name -> file bytes; fuzz/make_corpus.py
also uses them as seeds.
"""

from __future__ import annotations

import io
import pickle
import struct
import tempfile
import zipfile
import zlib
from collections import OrderedDict

import numpy as np
import torch  # only for its names: pickle writes torch._utils._rebuild_tensor_v2 by reference

import minipsp

TORCH_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C


class Storage:
    """A storage in a crafted pickle; `kind` is what the persistent id names as its type."""

    def __init__(self, key="0", numel=4, kind=torch.FloatStorage, pid=None):
        self.key, self.numel, self.kind, self.pid = key, numel, kind, pid

    def persistent_id(self):
        return self.pid if self.pid is not None else ("storage", self.kind, self.key, "cpu", self.numel)


class Tensor:
    """torch._utils._rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict()), any arguments."""

    def __init__(self, storage, offset=0, size=(4,), stride=(1,), rebuild=torch._utils._rebuild_tensor_v2):
        self.args = (storage, offset, size, stride, False, OrderedDict())
        self.rebuild = rebuild

    def __reduce__(self):
        return self.rebuild, self.args


class Call:
    """Any allowed function called with any arguments (pickle writes it as GLOBAL + REDUCE)."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


class _Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        return obj.persistent_id() if isinstance(obj, Storage) else None


def dumps(obj, protocol=2):
    buffer = io.BytesIO()
    _Pickler(buffer, protocol=protocol).dump(obj)
    return buffer.getvalue()


def op(*parts):
    """A pickle spelt in opcodes: bytes as they are, str as UTF-8 (e.g. op(pickle.MARK, ...))."""
    return b"".join(part.encode() if isinstance(part, str) else part for part in parts)


def global_(module, name):
    return op(pickle.GLOBAL, f"{module}\n{name}\n")


def torch_zip(pickle_bytes, storages=None, compression=zipfile.ZIP_STORED):
    """A torch zip checkpoint: archive/data.pkl and archive/data/<key> for each storage's bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        archive.writestr("archive/data.pkl", pickle_bytes)
        archive.writestr("archive/byteorder", "little")
        for key, data in (storages or {}).items():
            archive.writestr(f"archive/data/{key}", data)
        archive.writestr("archive/version", "3\n")
    return buffer.getvalue()


def torch_legacy(pickle_bytes, storages=(), keys=None, sys_info=None):
    """A legacy torch file: magic, protocol, system info, the object, the keys, then (count, bytes) each."""
    sys_info = sys_info or {"protocol_version": 1001, "little_endian": True,
                            "type_sizes": {"short": 2, "int": 4, "long": 4}}
    parts = [pickle.dumps(TORCH_MAGIC_NUMBER, 2), pickle.dumps(1001, 2), pickle.dumps(sys_info, 2), pickle_bytes,
             pickle.dumps([key for key, _, _ in storages] if keys is None else keys, 2)]
    for _, count, data in storages:
        parts += [struct.pack("<q", count), data]
    return b"".join(parts)


def minipsp_zip(pickle_bytes, arrays=None, compression=zipfile.ZIP_STORED):
    """A minipsp archive with this data.pkl and minipsp/arrays/<key>.npy entries (bytes as given)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        archive.writestr("minipsp/format", b"minipsp-checkpoint 1\n")
        archive.writestr("minipsp/data.pkl", pickle_bytes)
        for key, data in (arrays or {}).items():
            archive.writestr(f"minipsp/arrays/{key}.npy", data)
    return buffer.getvalue()


def npy(array):
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


FLOATS = np.arange(4, dtype="<f4").tobytes()  # the bytes of a 4-element float32 storage


def one_tensor(**recipe):
    """A torch zip with one tensor {'w': recipe} over a 4-element float32 storage."""
    storage = Storage(numel=recipe.pop("numel", 4))
    return torch_zip(dumps({"w": Tensor(storage, **recipe)}), {"0": recipe.pop("data", FLOATS)})


def valid_files():
    """Real files: torch zip, torch legacy and minipsp, of a small state (the fuzzer's seeds start here)."""
    state = OrderedDict([("conv.weight", torch.arange(12.0).reshape(2, 3, 2, 1)), ("bn.num", torch.tensor(3)),
                         ("half", torch.ones(3).half()), ("t", torch.arange(6.0).reshape(2, 3).t())])
    files = {}
    for name, new_format in (("torch_zip", True), ("torch_legacy", False)):
        buffer = io.BytesIO()
        torch.save({"state_dict": state, "epoch": 3}, buffer, _use_new_zipfile_serialization=new_format)
        files[name] = buffer.getvalue()
    with tempfile.TemporaryDirectory() as folder:  # (save writes to a path)
        minipsp.save({"model": {k: v.numpy() for k, v in state.items()}, "iteration": 7, "name": "x"},
                     f"{folder}/ckpt.mpsp")
        with open(f"{folder}/ckpt.mpsp", "rb") as file:
            files["minipsp"] = file.read()
    return files


def nested_lists(depth, leaf):
    """[[...[leaf]...]] `depth` deep, in opcodes (pickle itself would recurse)."""
    return op(pickle.PROTO, b"\x02", (pickle.EMPTY_LIST + pickle.MARK) * depth, leaf,
              (pickle.APPENDS) * depth, pickle.STOP)


def shared_laughs(depth):
    """Billion laughs: level i is the list [level i-1, level i-1]; 2**depth leaves, a few bytes per level."""
    body = [pickle.PROTO, b"\x02", pickle.BININT1, b"\x07", pickle.BINPUT, b"\x00"]
    for level in range(depth):
        body += [pickle.BINGET, bytes([level % 256]), pickle.BINGET, bytes([level % 256]), pickle.TUPLE2,
                 pickle.BINPUT, bytes([(level + 1) % 256])]
    return op(*body, pickle.STOP)


# (signature, offset of the name's length, offset of the name) of a zip's central and local headers
_HEADERS = [(b"PK\x01\x02", 28, 46), (b"PK\x03\x04", 26, 30)]
# field -> its (offset, size) in the central header and in the local header
_FIELDS = {"flags": ((8, 2), (6, 2)), "file_size": ((24, 4), (22, 4))}


def set_header_field(data, field, value, entry=None):
    """Set a field of the zip's headers (central and local) for `entry`, or for every entry."""
    data = bytearray(data)
    for (signature, name_length_at, name_at), (offset, size) in zip(_HEADERS, _FIELDS[field]):
        start = data.find(signature)
        while start >= 0:
            length = int.from_bytes(data[start + name_length_at:start + name_length_at + 2], "little")
            if entry is None or data[start + name_at:start + name_at + length] == entry.encode():
                data[start + offset:start + offset + size] = value.to_bytes(size, "little")
            start = data.find(signature, start + 4)
    return bytes(data)


def lying_sizes(data, file_size, entry):
    """The zip's headers claim that `entry` inflates to `file_size` bytes."""
    return set_header_field(data, "file_size", file_size, entry)


def encrypted(data):
    return set_header_field(data, "flags", 1)  # general purpose flag bit 0: encrypted


def zip_bomb(megabytes=64):
    """A storage entry of `megabytes` of zeros, deflated to a few kB, whose tensor needs 4 bytes."""
    storage = Storage(numel=megabytes * 2**20 // 4)
    return torch_zip(dumps({"w": Tensor(storage, size=(1,), stride=(1,))}),
                     {"0": bytes(megabytes * 2**20)}, compression=zipfile.ZIP_DEFLATED)


def overlapping_zip_bomb(megabytes=1):
    """Two storage entries that share one deflate stream ("quoted overlap", Fifield 2019): entry 0's
    stream is a stored block quoting entry 1's local header, then entry 1's stream, so both inflate it."""
    kernel_size = megabytes * 2**20
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    kernel = compressor.compress(bytes(kernel_size)) + compressor.flush()

    def local_header(name, method, crc, compressed, size):
        return struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, method, 0, 0, crc, compressed, size, len(name), 0) + name

    names = [b"archive/data/0", b"archive/data/1"]
    header_1 = local_header(names[1], 8, zlib.crc32(bytes(kernel_size)), len(kernel), kernel_size)
    quote = struct.pack("<BHH", 0, len(header_1), len(header_1) ^ 0xFFFF) + header_1  # a stored, non-final block
    size_0 = len(header_1) + kernel_size
    pickle_bytes = dumps([Tensor(Storage(key, numel=size // 4), size=(size // 4,))
                          for key, size in (("0", size_0), ("1", kernel_size))])
    entries = [(b"archive/data.pkl", 0, zlib.crc32(pickle_bytes), len(pickle_bytes), len(pickle_bytes))]
    body = local_header(*entries[0]) + pickle_bytes
    entries.append((names[0], 8, zlib.crc32(header_1 + bytes(kernel_size)), len(quote) + len(kernel), size_0))
    offsets = [0, len(body)]
    body += local_header(*entries[1]) + quote[:5]  # (the rest of the quote is header_1 itself, next)
    offsets.append(len(body))
    body += header_1 + kernel
    entries.append((names[1], 8, zlib.crc32(bytes(kernel_size)), len(kernel), kernel_size))
    central = b"".join(struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, method, 0, 0, crc, compressed, size,
                                   len(name), 0, 0, 0, 0, 0, offset) + name
                       for (name, method, crc, compressed, size), offset in zip(entries, offsets))
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(entries), len(entries), len(central), len(body), 0)
    return body + central + end


def build_on_function():
    """BUILD on an allowed function: setting _rebuild_tensor.__defaults__ for the rest of the process."""
    return op(pickle.PROTO, b"\x02", global_("torch._utils", "_rebuild_tensor"), pickle.NONE, pickle.EMPTY_DICT,
              pickle.BINUNICODE, struct.pack("<I", 12), "__defaults__", pickle.NONE, pickle.TUPLE1, pickle.SETITEM,
              pickle.TUPLE2, pickle.BUILD, pickle.STOP)


def deep_tuple_key():
    """A dict whose key is a tuple nested 200000 deep: hashing it overflows CPython's C stack."""
    return op(pickle.PROTO, b"\x02", pickle.EMPTY_DICT, pickle.EMPTY_TUPLE, pickle.TUPLE1 * 200_000,
              pickle.NONE, pickle.SETITEM, pickle.STOP)


def truncations(data, count=24):
    """`count` prefixes of `data`, spread over its length (the empty one included)."""
    return [data[:cut] for cut in sorted({len(data) * i // count for i in range(count)})]


def _hostile():
    storage = Storage()
    files = {
        # negative strides and offsets: a segfault or a leak of the memory before the buffer
        "negative_stride": one_tensor(stride=(-1,)),
        "negative_stride_that_fits": one_tensor(offset=3, stride=(-1,)),
        "negative_offset": one_tensor(offset=-1, size=(1,)),
        "tensor_past_storage": one_tensor(size=(5,)),
        "offset_past_storage": one_tensor(offset=4, size=(1,)),
        "stride_past_storage": one_tensor(size=(2, 2), stride=(3, 1)),
        # stride 0 with a huge size: 4 TiB from 4 bytes
        "stride_0_huge": one_tensor(size=(2**40,), stride=(0,)),
        "stride_0_huge_2d": one_tensor(size=(2**20, 2**20), stride=(0, 0)),
        "size_overflows_int64": one_tensor(size=(2**64,), stride=(0,)),
        "empty_but_huge": one_tensor(size=(0, 2**61), stride=(1, 1)),
        # 40 tensors over one 16 MiB storage: 640 MiB of arrays from 16 MiB of file
        "many_views_of_one_storage": torch_zip(dumps([Tensor(Storage(numel=2**22), size=(2**22,)) for _ in range(40)]),
                                               {"0": bytes(2**24)}),
        # wrong types where sizes, strides, offsets and storages go
        "size_is_a_string": one_tensor(size="abcd"),
        "size_has_a_float": one_tensor(size=(1.5,)),
        "size_is_none": one_tensor(size=None),
        "size_has_a_bool": one_tensor(size=(True,)),
        "size_of_33_dims": one_tensor(size=(1,) * 33, stride=(1,) * 33),
        "stride_shorter_than_size": one_tensor(size=(2, 2), stride=(1,)),
        "offset_is_a_list": one_tensor(offset=[0]),
        "storage_is_an_int": torch_zip(dumps({"w": Tensor(5)})),
        "storage_is_a_storage_type": torch_zip(dumps({"w": Tensor(torch.FloatStorage)})),
        "storage_is_a_tensor": torch_zip(dumps({"w": Tensor(Tensor(storage))}), {"0": FLOATS}),
        "pid_not_a_tuple": torch_zip(dumps({"w": Tensor(Storage(pid="storage"))})),
        "pid_too_short": torch_zip(dumps({"w": Tensor(Storage(pid=("storage",)))})),
        "pid_empty": torch_zip(dumps({"w": Tensor(Storage(pid=()))})),
        "pid_type_is_a_string": torch_zip(dumps({"w": Tensor(Storage(kind="FloatStorage"))})),
        "pid_numel_negative": torch_zip(dumps({"w": Tensor(Storage(numel=-4))}), {"0": FLOATS}),
        "pid_key_is_an_int": torch_zip(dumps({"w": Tensor(Storage(key=0))}), {"0": FLOATS}),
        "storage_named_two_ways": torch_zip(dumps([Tensor(Storage(numel=4)), Tensor(Storage(numel=2), size=(2,))]),
                                            {"0": FLOATS}),
        "storage_entry_missing": torch_zip(dumps({"w": Tensor(storage)})),
        "storage_entry_too_short": torch_zip(dumps({"w": Tensor(storage)}), {"0": FLOATS[:8]}),
        "parameter_of_a_string": torch_zip(dumps({"w": Call(torch._utils._rebuild_parameter, "x", False,
                                                            OrderedDict())})),
        "dtype_not_a_dtype": torch_zip(dumps({"w": Call(torch._utils._rebuild_tensor_v3, storage, 0, (4,), (1,),
                                                        False, OrderedDict(), "complex")}), {"0": FLOATS}),
        "bare_storage": torch_zip(dumps({"s": storage}), {"0": FLOATS}),
        "storage_type_as_value": torch_zip(dumps({"t": torch.FloatStorage})),
        "function_as_value": torch_zip(dumps({"f": torch._utils._rebuild_tensor_v2})),
        "rebuild_with_no_arguments": torch_zip(dumps({"w": Call(torch._utils._rebuild_tensor_v2)})),
        "rebuild_with_30_arguments": torch_zip(dumps({"w": Call(torch._utils._rebuild_tensor_v2, *range(30))})),
        "set_of_lists": torch_zip(dumps({"s": Call(set, [[1]])})),
        "encode_non_latin1": torch_zip(op(pickle.PROTO, b"\x02", global_("_codecs", "encode"),
                                          pickle.BINUNICODE, struct.pack("<I", 3), "\u20ac".encode(),
                                          pickle.BINUNICODE, struct.pack("<I", 6), "latin1", pickle.TUPLE2,
                                          pickle.REDUCE, pickle.STOP)),
        # copies of one shared object, again and again: set(x) on one long list, 2000 times
        "billion_laughs_by_copies": torch_zip(op(
            pickle.PROTO, b"\x02", pickle.EMPTY_LIST, pickle.BINPUT, b"\x00", pickle.EMPTY_LIST, pickle.MARK,
            *[pickle.BININT1 + b"\x01"] * 1000, pickle.APPENDS, pickle.BINPUT, b"\x01", pickle.POP, pickle.MARK,
            *[global_("builtins", "set") + pickle.BINGET + b"\x01" + pickle.TUPLE1 + pickle.REDUCE] * 2000,
            pickle.APPENDS, pickle.STOP)),
        # the pickle calls or changes what it must not
        "build_on_function": torch_zip(build_on_function()),
        "build_on_a_list": torch_zip(op(pickle.PROTO, b"\x02", pickle.EMPTY_LIST, pickle.EMPTY_DICT, pickle.BUILD,
                                        pickle.STOP)),
        "build_dunder_on_ordered_dict": torch_zip(op(
            pickle.PROTO, b"\x02", global_("collections", "OrderedDict"), pickle.EMPTY_TUPLE, pickle.REDUCE,
            pickle.EMPTY_DICT, pickle.BINUNICODE, struct.pack("<I", 9), "__class__", pickle.NONE, pickle.SETITEM,
            pickle.BUILD, pickle.STOP)),
        "calls_a_string": torch_zip(op(pickle.PROTO, b"\x02", pickle.BINUNICODE, struct.pack("<I", 1), "x",
                                       pickle.EMPTY_TUPLE, pickle.REDUCE, pickle.STOP)),
        "calls_a_storage_type": torch_zip(op(pickle.PROTO, b"\x02", global_("torch", "FloatStorage"),
                                             pickle.EMPTY_TUPLE, pickle.REDUCE, pickle.STOP)),
        "newobj_ordered_dict": torch_zip(op(pickle.PROTO, b"\x02", global_("collections", "OrderedDict"),
                                            pickle.EMPTY_TUPLE, pickle.NEWOBJ, pickle.STOP)),
        "inst_opcode": torch_zip(op(pickle.MARK, pickle.INST, "collections\nOrderedDict\n", pickle.STOP)),
        "ext_opcode": torch_zip(op(pickle.PROTO, b"\x02", pickle.EXT1, b"\x01", pickle.STOP)),
        "bytearray8_of_a_terabyte": torch_zip(op(pickle.PROTO, b"\x05", pickle.BYTEARRAY8, struct.pack("<Q", 2**40),
                                                 pickle.STOP)),  # found by fuzz/fuzz_load.py: MemoryError
        "invalid_opcode": torch_zip(op(pickle.PROTO, b"\x02", b"\xff", pickle.STOP)),
        "imports_os_system": torch_zip(op(pickle.PROTO, b"\x02", global_("os", "system"), pickle.BINUNICODE,
                                          struct.pack("<I", 4), "true", pickle.TUPLE1, pickle.REDUCE, pickle.STOP)),
        "imports_builtins_eval": torch_zip(op(pickle.PROTO, b"\x04", pickle.SHORT_BINUNICODE, b"\x08", "builtins",
                                              pickle.SHORT_BINUNICODE, b"\x04", "eval", pickle.STACK_GLOBAL,
                                              pickle.STOP)),
        "appends_to_a_dict": torch_zip(op(pickle.PROTO, b"\x02", pickle.EMPTY_DICT, pickle.MARK, pickle.NONE,
                                          pickle.APPENDS, pickle.STOP)),
        "setitem_on_a_list": torch_zip(op(pickle.PROTO, b"\x02", pickle.EMPTY_LIST, pickle.NONE, pickle.NONE,
                                          pickle.SETITEM, pickle.STOP)),
        "odd_setitems": torch_zip(op(pickle.PROTO, b"\x02", pickle.EMPTY_DICT, pickle.MARK, pickle.NONE,
                                     pickle.SETITEMS, pickle.STOP)),
        # deep nesting, self reference, keys whose hash recurses
        "deep_tuple_as_dict_key": torch_zip(deep_tuple_key()),
        "list_as_dict_key": torch_zip(op(pickle.PROTO, b"\x02", pickle.EMPTY_DICT, pickle.EMPTY_LIST, pickle.NONE,
                                         pickle.SETITEM, pickle.STOP)),
        "huge_int_as_dict_key": torch_zip(op(pickle.PROTO, b"\x02", pickle.EMPTY_DICT, pickle.LONG4,
                                             struct.pack("<i", 1000), b"\x01" * 1000, pickle.NONE, pickle.SETITEM,
                                             pickle.STOP)),
        "tuple_in_a_frozenset": torch_zip(op(pickle.PROTO, b"\x04", pickle.MARK, pickle.EMPTY_TUPLE,
                                             pickle.FROZENSET, pickle.STOP)),
        # broken pickles: empty stack, unknown memo, truncated, not a pickle at all
        "empty_stack": torch_zip(op(pickle.PROTO, b"\x02", pickle.STOP)),
        "unknown_memo": torch_zip(op(pickle.PROTO, b"\x02", pickle.BINGET, b"\x07", pickle.STOP)),
        "pickle_without_stop": torch_zip(op(pickle.PROTO, b"\x02", pickle.NONE)),
        "empty_data_pkl": torch_zip(b""),
        "bad_protocol": torch_zip(op(pickle.PROTO, b"\x09", pickle.NONE, pickle.STOP)),
        "protocol_0_non_ascii_persistent_id": minipsp_zip(op(pickle.PERSID, b"\xff\xfe\n", pickle.STOP)),
        "minipsp_unknown_persistent_id": minipsp_zip(op(pickle.PERSID, "x\n", pickle.STOP)),
        "minipsp_array_missing": minipsp_zip(_array_pid()),
        "minipsp_object_array": minipsp_zip(_array_pid(), {"0": npy(np.zeros(2)).replace(b"<f8", b"|O8")}),
        "minipsp_npy_shape_lies": minipsp_zip(_array_pid(), {"0": npy(np.zeros(2)).replace(b"(2,)", b"(9,)")}),
        "minipsp_npy_not_npy": minipsp_zip(_array_pid(), {"0": b"hello"}),
        "minipsp_bad_version": _replace_entry(minipsp_zip(pickle.dumps(1)), "minipsp/format", b"minipsp 99\n"),
        # the zip itself: bombs, lies, encryption, compression methods, damage
        "zip_bomb_entry_size_lies": lying_sizes(zip_bomb(1), 3 * 2**30, "archive/data/0"),
        "zip_bomb_pickle_too_big": lying_sizes(torch_zip(dumps(None)), 300 * 2**20, "archive/data.pkl"),
        "storage_entry_larger_than_its_storage": torch_zip(dumps({"w": Tensor(Storage(numel=1), size=(1,))}),
                                                           {"0": bytes(2**20)}, compression=zipfile.ZIP_DEFLATED),
        "overlapping_entries_zip_bomb": overlapping_zip_bomb(1),
        "encrypted_zip": encrypted(one_tensor()),
        "lzma_zip": torch_zip(dumps({"w": Tensor(storage)}), {"0": FLOATS}, compression=zipfile.ZIP_LZMA),
        "corrupt_deflate_stream": _corrupt_deflate(),
        "zip_without_data_pkl": _replace_entry(one_tensor(), "archive/data.pkl", None),
        "zip_with_bad_byteorder": _replace_entry(one_tensor(), "archive/byteorder", b"middle"),
        "zip_truncated_central_directory": one_tensor()[:-30],
        "zip_magic_only": b"PK\x03\x04",
        # legacy files
        "legacy_big_endian": torch_legacy(dumps(None), sys_info={"little_endian": False}),
        "legacy_wrong_magic": pickle.dumps(12345, 2) + dumps(None),
        "legacy_storage_count_lies": torch_legacy(dumps({"w": Tensor(Storage(key="9"))}), [("9", 2**40, FLOATS)]),
        "legacy_storage_truncated": torch_legacy(dumps({"w": Tensor(Storage(key="9"))}), [("9", 4, FLOATS[:6])]),
        "legacy_keys_not_a_list": torch_legacy(dumps({"w": Tensor(Storage(key="9"))}), [("9", 4, FLOATS)],
                                               keys="9"),
        "legacy_key_unknown": torch_legacy(dumps(None), [("8", 4, FLOATS)]),
        "legacy_storage_not_in_keys": torch_legacy(dumps({"w": Tensor(Storage(key="9"))}), [], keys=[]),
        "legacy_negative_stride": torch_legacy(dumps({"w": Tensor(Storage(key="9"), stride=(-1,))}),
                                               [("9", 4, FLOATS)]),
        "legacy_view_past_storage": torch_legacy(dumps({"w": Tensor(Storage(
            pid=("storage", torch.FloatStorage, "9", "cpu", 4, ("9", 3, 4))))}), [("9", 4, FLOATS)]),
        "plain_pickle": pickle.dumps({"w": [1, 2]}, 2),
        "empty_file": b"",
        "text_file": b"this is not a checkpoint\n",
    }
    for name, data in valid_files().items():
        for cut in truncations(data):
            files[f"{name}_truncated_at_{len(cut)}"] = cut
    return files


def _array_pid():
    return op(pickle.PROTO, b"\x04", pickle.SHORT_BINUNICODE, b"\x05", "array", pickle.SHORT_BINUNICODE, b"\x01",
              "0", pickle.TUPLE2, pickle.BINPERSID, pickle.STOP)


def _replace_entry(data, name, content):
    """The zip `data` with entry `name` replaced by `content` (None: removed)."""
    source = zipfile.ZipFile(io.BytesIO(data))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for info in source.infolist():
            if info.filename != name:
                archive.writestr(info.filename, source.read(info))
            elif content is not None:
                archive.writestr(name, content)
    return buffer.getvalue()


def _corrupt_deflate():
    data = bytearray(torch_zip(dumps({"w": Tensor(Storage(numel=2**16), size=(2**16,))}), {"0": bytes(2**18)},
                               compression=zipfile.ZIP_DEFLATED))
    start = data.find(b"archive/data/0") + len("archive/data/0")
    data[start + 2:start + 40] = b"\xff" * 38  # the deflate stream, just after the local header's name
    return bytes(data)


HOSTILE = None


def hostile_files():
    """name -> bytes of every crafted file (built once)."""
    global HOSTILE
    if HOSTILE is None:
        HOSTILE = _hostile()
    return HOSTILE
