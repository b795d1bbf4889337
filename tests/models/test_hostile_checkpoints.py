"""minipsp.load on crafted files (issue 13): every one refused with one CheckpointError naming the file,
in bounded time and memory; what is legitimate but unusual (sharing, deep nesting, self reference) loads.

The files are built by tests/models/hostile_checkpoints.py from pickle opcodes and zipfile."""

import io
import os
import pickle
import tracemalloc
import zipfile
from collections import OrderedDict

import hostile_checkpoints as hostile
import numpy as np
import pytest
import torch

import minipsp
from minipsp import CheckpointError, UnsafeCheckpointError

FILES = hostile.hostile_files()
UNSAFE = {"build_on_function", "build_on_a_list", "build_dunder_on_ordered_dict", "newobj_ordered_dict",
          "inst_opcode", "ext_opcode", "bytearray8_of_a_terabyte", "imports_os_system", "imports_builtins_eval"}


@pytest.mark.parametrize("name", sorted(FILES))
def test_crafted_file_is_refused_in_one_line_naming_the_file(tmp_path, name):
    path = tmp_path / f"{name}.pth"
    path.write_bytes(FILES[name])
    with pytest.raises(CheckpointError) as info:
        minipsp.load(path)
    assert type(info.value) is (UnsafeCheckpointError if name in UNSAFE else CheckpointError)
    message = str(info.value)
    assert message.startswith(f"minipsp.load: cannot read {str(path)!r}: "), message
    assert "\n" not in message and len(message) < 600, message


def test_the_error_types():
    assert issubclass(CheckpointError, ValueError)
    assert issubclass(UnsafeCheckpointError, CheckpointError)
    assert issubclass(UnsafeCheckpointError, pickle.UnpicklingError)  # what the reader raised before


def test_file_objects_are_named_by_their_type():
    with pytest.raises(CheckpointError, match=r"^minipsp.load: cannot read a BytesIO: .*negative|stride"):
        minipsp.load(io.BytesIO(FILES["negative_stride"]))


def test_a_text_mode_file_is_a_clear_type_error(tmp_path):
    path = tmp_path / "w.pth"
    path.write_bytes(FILES["text_file"])
    with open(path) as text, pytest.raises(TypeError, match="binary mode"):
        minipsp.load(text)
    with pytest.raises(TypeError, match="a path or a binary file object; got int"):
        minipsp.load(3)


def test_a_refused_build_leaves_the_reader_working():
    with pytest.raises(UnsafeCheckpointError, match="BUILD"):
        minipsp.load(io.BytesIO(FILES["build_on_function"]))
    buffer = io.BytesIO()
    torch.save({"w": torch.arange(3.0)}, buffer)
    buffer.seek(0)
    np.testing.assert_array_equal(minipsp.load(buffer)["w"], [0, 1, 2])


def peak_bytes(function):
    """Peak Python and NumPy memory (tracemalloc) while `function` runs, and what it returned or raised."""
    tracemalloc.start()
    try:
        try:
            result = function()
        except CheckpointError as exc:
            result = exc
        return tracemalloc.get_traced_memory()[1], result
    finally:
        tracemalloc.stop()


def test_stride_0_with_a_huge_size_allocates_nothing():
    peak, result = peak_bytes(lambda: minipsp.load(io.BytesIO(FILES["stride_0_huge"])))
    assert isinstance(result, CheckpointError) and "4398046511104 bytes from 4 bytes" in str(result)
    assert peak < 2**20


def test_zip_bomb_inflates_only_what_the_tensor_needs():
    bomb = hostile.zip_bomb(megabytes=64)  # a 64 MiB entry of zeros, deflated; the tensor is its first float
    assert len(bomb) < 2**20
    peak, loaded = peak_bytes(lambda: minipsp.load(io.BytesIO(bomb)))
    np.testing.assert_array_equal(loaded["w"], np.zeros(1, np.float32))
    assert peak < 4 * 2**20  # inflating the whole entry would take 64 MiB


def test_billion_laughs_keeps_the_sharing():
    tensor = hostile.Tensor(hostile.Storage())
    level = [tensor]
    for _ in range(40):  # 2**40 references to one tensor in a file of a few kB
        level = [level, level]
    loaded = minipsp.load(io.BytesIO(hostile.torch_zip(hostile.dumps(level), {"0": hostile.FLOATS})))
    for _ in range(40):
        assert loaded[0] is loaded[1]
        loaded = loaded[0]
    np.testing.assert_array_equal(loaded[0], [0, 1, 2, 3])


def test_one_tensor_under_two_names_is_one_array(tmp_path):
    t = torch.arange(4.0)
    path = tmp_path / "shared.pth"
    torch.save({"a": t, "b": t, "view": t[1:]}, path)
    loaded = minipsp.load(path)
    assert loaded["a"] is loaded["b"]
    np.testing.assert_array_equal(loaded["view"], [1, 2, 3])


def test_deep_nesting_and_self_reference_load():
    deep = minipsp.load(io.BytesIO(hostile.torch_zip(hostile.nested_lists(100_000, pickle.NONE))))
    depth = 0
    while deep is not None:  # (walked without recursion, as the reader did)
        deep, depth = deep[0], depth + 1
    assert depth == 100_000
    itself = minipsp.load(io.BytesIO(hostile.torch_zip(hostile.op(
        pickle.PROTO, b"\x02", pickle.EMPTY_LIST, pickle.BINPUT, b"\x00", pickle.BINGET, b"\x00", pickle.APPEND,
        pickle.STOP))))
    assert itself[0] is itself
    looped = {"self": None}
    looped["self"] = looped
    assert minipsp.load(io.BytesIO(hostile.torch_zip(pickle.dumps(looped, 2))))["self"]["self"]["self"] is not None


def test_unusual_but_legitimate_recipes_load():
    # a size-1 dimension's stride is never used, whatever it is
    loaded = minipsp.load(io.BytesIO(hostile.one_tensor(offset=1, size=(1, 2), stride=(2**61, 1))))
    np.testing.assert_array_equal(loaded["w"], [[1, 2]])
    # stride 0 within the allowance: an expanded tensor
    np.testing.assert_array_equal(minipsp.load(io.BytesIO(hostile.one_tensor(offset=2, size=(3,), stride=(0,))))["w"],
                                  [2, 2, 2])
    # an old legacy file's storage view: elements 1..2 of the root storage
    view = hostile.Storage(pid=("storage", torch.FloatStorage, "9", "cpu", 4, ("9", 1, 2)))
    legacy = hostile.torch_legacy(hostile.dumps({"w": hostile.Tensor(view, size=(2,))}), [("9", 4, hostile.FLOATS)])
    np.testing.assert_array_equal(minipsp.load(io.BytesIO(legacy))["w"], [1, 2])


def test_big_endian_zip_checkpoint_loads():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("archive/data.pkl", hostile.dumps(OrderedDict(w=hostile.Tensor(hostile.Storage()))))
        archive.writestr("archive/byteorder", "big")
        archive.writestr("archive/data/0", np.arange(4, dtype=">f4").tobytes())
    loaded = minipsp.load(io.BytesIO(buffer.getvalue()))
    assert loaded["w"].dtype == np.float32 and loaded["w"].dtype.isnative
    np.testing.assert_array_equal(loaded["w"], [0, 1, 2, 3])


@pytest.mark.parametrize("kind", ["torch_legacy", "minipsp_pickle"])
def test_every_single_byte_change_loads_or_raises_checkpoint_error(kind):
    """A small deterministic fuzz: each byte of the file (or of the minipsp pickle) set to 0x00 and 0xff."""
    valid = hostile.valid_files()
    if kind == "torch_legacy":
        original, wrap = valid["torch_legacy"], (lambda data: data)
    else:
        original = pickle.dumps({"model": OrderedDict(a=1, b=[2.0, "x"]), "n": (3, None), "s": {1, 2}}, 4)
        wrap = hostile.minipsp_zip
    outcomes = set()
    for position in range(len(original)):
        for value in (0x00, 0xFF):
            mutated = bytearray(original)
            mutated[position] = value
            try:
                minipsp.load(io.BytesIO(wrap(bytes(mutated))))
                outcomes.add("loaded")
            except CheckpointError:
                outcomes.add("refused")
    assert outcomes == {"loaded", "refused"}  # (both happen: the changes do reach the reader)


def test_valid_seed_files_load_as_torch_wrote_them():
    for name, data in hostile.valid_files().items():
        loaded = minipsp.load(io.BytesIO(data))
        state = loaded["state_dict"] if name.startswith("torch") else loaded["model"]
        np.testing.assert_array_equal(state["conv.weight"], np.arange(12.0, dtype=np.float32).reshape(2, 3, 2, 1))
        np.testing.assert_array_equal(state["t"], np.arange(6.0, dtype=np.float32).reshape(2, 3).T)
        assert state["half"].dtype == np.float16 and int(state["bn.num"]) == 3


def test_save_into_a_missing_folder_names_the_folder(tmp_path):
    missing = tmp_path / "no" / "such"
    with pytest.raises(FileNotFoundError, match=f"the folder {str(missing)!r} does not exist"):
        minipsp.save({"a": 1}, missing / "ckpt.mpsp")
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match="is not a folder"):
        minipsp.save({"a": 1}, tmp_path / "file" / "ckpt.mpsp")
    with pytest.raises(IsADirectoryError, match="it is a folder"):
        minipsp.save({"a": 1}, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]  # no temporary file left anywhere


def test_cli_prints_a_crafted_checkpoint_as_one_line(tmp_path, capsys):
    from minipsp.cli import main

    path = tmp_path / "crafted.pth"
    path.write_bytes(FILES["negative_stride"])
    assert main(["eval", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "stride is (-1,)" in err and str(path) in err, err


def test_a_fifo_or_a_device_is_refused_without_waiting_or_reading_forever(tmp_path):
    # open() of a FIFO blocks until a writer comes; /dev/zero never ends: both were hangs (issue 13 review)
    fifo = tmp_path / "checkpoint.pth"
    os.mkfifo(fifo)
    with pytest.raises(CheckpointError, match=r"checkpoint\.pth'?: it is a FIFO \(named pipe\); expected a checkpoint"):
        minipsp.load(fifo)
    with pytest.raises(CheckpointError, match="'/dev/zero': it is a device"):
        minipsp.load("/dev/zero")
    with pytest.raises(IsADirectoryError):          # a folder and a missing path stay open()'s OSError
        minipsp.load(tmp_path)
