"""minipsp.load reads torch.save files (zip and legacy) without torch; minipsp.save is atomic and safe."""

import io
import os
import pickle
import subprocess
import sys
import zipfile
from collections import OrderedDict

import numpy as np
import pytest
import torch

import minipsp
import minipsp.nn as nn
from minipsp.serialization import UnsafeCheckpointError, extract_state_dict


def torch_state():
    g = torch.Generator().manual_seed(0)
    base = torch.randn(4, 6, generator=g)
    return OrderedDict([
        ("float32", torch.randn(2, 3, 3, 3, generator=g)),
        ("float64", torch.randn(5, generator=g, dtype=torch.float64)),
        ("float16", torch.randn(7, generator=g).half()),
        ("bfloat16", torch.randn(7, generator=g).bfloat16()),
        ("int64", torch.arange(10)),
        ("int32", torch.arange(4, dtype=torch.int32)),
        ("uint8", torch.arange(6, dtype=torch.uint8)),
        ("bool", torch.tensor([True, False, True])),
        ("scalar", torch.tensor(7)),                  # like num_batches_tracked
        ("empty", torch.zeros(0, 3)),
        ("transposed", base.t()),                      # non-contiguous: strides matter
        ("view_offset", base[1:3, 2:]),                # shares base's storage, with an offset
        ("base", base),
    ])


def as_numpy(t):
    return t.float().numpy() if t.dtype == torch.bfloat16 else t.numpy()


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_torch_checkpoint_loads_as_numpy(tmp_path, zip_format):
    state = torch_state()
    checkpoint = {"epoch": 3, "state_dict": state, "note": "semseg", "bytes": b"\x00\xff",
                  "optimizer": {"state": {0: {"momentum_buffer": torch.ones(3)}},
                                "param_groups": [{"lr": 0.01, "momentum": 0.9, "nesterov": False, "params": [0]}]}}
    path = tmp_path / "ckpt.pth"
    torch.save(checkpoint, path, _use_new_zipfile_serialization=zip_format)
    loaded = minipsp.load(path)
    assert isinstance(loaded["state_dict"], OrderedDict)
    assert list(loaded["state_dict"]) == list(state)
    for key, value in state.items():
        array = loaded["state_dict"][key]
        assert isinstance(array, np.ndarray), key
        assert array.dtype == as_numpy(value).dtype, key
        np.testing.assert_array_equal(array, as_numpy(value), err_msg=key)
    assert loaded["epoch"] == 3 and loaded["note"] == "semseg" and loaded["bytes"] == b"\x00\xff"
    np.testing.assert_array_equal(loaded["optimizer"]["state"][0]["momentum_buffer"], np.ones(3, np.float32))
    assert loaded["optimizer"]["param_groups"][0]["lr"] == 0.01


def test_parameters_and_file_objects_load(tmp_path):
    layer = torch.nn.Conv2d(2, 3, 1)
    buffer = io.BytesIO()
    torch.save({"weight": layer.weight, "bias": layer.bias}, buffer)  # Parameters, not plain tensors
    buffer.seek(0)
    loaded = minipsp.load(buffer)
    np.testing.assert_array_equal(loaded["weight"], layer.weight.detach().numpy())
    np.testing.assert_array_equal(loaded["bias"], layer.bias.detach().numpy())


def test_load_works_without_torch_installed(tmp_path):
    path = tmp_path / "w.pth"
    torch.save({"w": torch.arange(6.0).reshape(2, 3)}, path)
    code = ("import sys; sys.modules['torch'] = None\n"  # any `import torch` now fails
            "import minipsp\n"
            f"w = minipsp.load({str(path)!r})['w']\n"
            "assert w.tolist() == [[0, 1, 2], [3, 4, 5]], w\n"
            "assert 'torch' not in [m for m in sys.modules if sys.modules[m] is not None]\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


class CallsSystem:
    """Unpickling this object would run a shell command."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_pickle_that_runs_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    payload = {"state_dict": {"w": CallsSystem(marker)}}
    # 1. a plain pickle file
    plain = tmp_path / "plain.pth"
    plain.write_bytes(pickle.dumps(payload, protocol=2))
    # 2. a torch zip archive whose data.pkl is replaced by the payload
    zipped = tmp_path / "zipped.pth"
    torch.save({"w": torch.ones(2)}, zipped)
    with zipfile.ZipFile(zipped) as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    pkl_name = next(name for name in entries if name.endswith("data.pkl"))
    entries[pkl_name] = pickle.dumps(payload, protocol=2)
    with zipfile.ZipFile(zipped, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    # 3. a minipsp archive with the payload as its data.pkl
    ours = tmp_path / "ours.mpsp"
    minipsp.save({"w": np.ones(2)}, ours)
    with zipfile.ZipFile(ours) as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    entries["minipsp/data.pkl"] = pickle.dumps(payload, protocol=4)
    with zipfile.ZipFile(ours, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    for path in (plain, zipped, ours):
        with pytest.raises(UnsafeCheckpointError, match="posix.system|os.system|nt.system"):
            minipsp.load(path)
    assert not marker.exists()


def test_whole_torch_module_pickle_is_refused(tmp_path):
    path = tmp_path / "module.pth"
    torch.save(torch.nn.Conv2d(1, 1, 1), path)  # pickles the class, not only tensors
    with pytest.raises(UnsafeCheckpointError, match="torch.nn.modules"):
        minipsp.load(path)


def test_not_a_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "junk.bin"
    path.write_bytes(b"this is not a checkpoint")
    with pytest.raises(ValueError, match="not a checkpoint"):
        minipsp.load(path)


def test_minipsp_save_round_trip(tmp_path):
    obj = {"epoch": 2, "lr": 0.5, "name": "psp", "flag": True, "none": None, "raw": b"ab",
           "state": OrderedDict([("a", np.arange(6, dtype=np.float32).reshape(2, 3)),
                                 ("n", np.array(5, dtype=np.int64)), ("t", minipsp.tensor([1.0, 2.0]))]),
           "list": [np.float64(1.5), (1, 2), [np.ones((0, 2))]], 3: "int key"}
    path = tmp_path / "ckpt.mpsp"
    minipsp.save(obj, path)
    loaded = minipsp.load(path)
    assert isinstance(loaded["state"], OrderedDict) and list(loaded["state"]) == ["a", "n", "t"]
    np.testing.assert_array_equal(loaded["state"]["a"], obj["state"]["a"])
    assert loaded["state"]["n"].dtype == np.int64 and loaded["state"]["n"] == 5
    np.testing.assert_array_equal(loaded["state"]["t"], np.array([1.0, 2.0], np.float32))
    assert loaded["list"][0] == 1.5 and loaded["list"][1] == (1, 2) and loaded["list"][2][0].shape == (0, 2)
    assert loaded[3] == "int key" and loaded["raw"] == b"ab" and loaded["none"] is None
    assert loaded["epoch"] == 2 and loaded["flag"] is True


def test_save_is_atomic_and_leaves_no_temporary_files(tmp_path):
    path = tmp_path / "ckpt.mpsp"
    minipsp.save({"v": np.ones(3)}, path)
    with pytest.raises(TypeError, match=r"obj\['bad'\]\[1\] has type object"):
        minipsp.save({"v": np.zeros(3), "bad": [1, object()]}, path)
    np.testing.assert_array_equal(minipsp.load(path)["v"], np.ones(3))  # the old file is intact
    minipsp.save({"v": np.full(3, 2.0)}, path)                          # overwriting works
    np.testing.assert_array_equal(minipsp.load(path)["v"], np.full(3, 2.0))
    assert sorted(os.listdir(tmp_path)) == ["ckpt.mpsp"]


def test_save_refuses_object_arrays(tmp_path):
    with pytest.raises(TypeError, match="dtype object"):
        minipsp.save({"a": np.array([{}, 1], dtype=object)}, tmp_path / "x.mpsp")


def small_model():
    return nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 2, 1))


def torch_small_model():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, bias=False), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                                torch.nn.Conv2d(4, 2, 1))
    model[1].running_mean.uniform_(-1, 1)
    model[1].num_batches_tracked += 5
    return model


@pytest.mark.parametrize("wrap", ["plain", "module_prefix", "nested", "nested_module_prefix"])
def test_load_checkpoint_unwraps_semseg_checkpoints(tmp_path, wrap):
    reference = torch_small_model()
    state = reference.state_dict()
    if "module_prefix" in wrap:
        state = OrderedDict((f"module.{k}", v) for k, v in state.items())
    checkpoint = {"epoch": 100, "state_dict": state, "optimizer": {}} if "nested" in wrap else state
    path = tmp_path / "train_epoch_100.pth"
    torch.save(checkpoint, path)
    model = small_model()
    missing, unexpected = minipsp.load_checkpoint(model, path)
    assert missing == [] and unexpected == []
    for key, value in reference.state_dict().items():
        np.testing.assert_array_equal(model.state_dict()[key], value.numpy(), err_msg=key)
    assert model.state_dict()["1.num_batches_tracked"].dtype == np.int64


def test_load_checkpoint_names_keys_that_do_not_fit(tmp_path):
    state = OrderedDict((f"module.{k}", v) for k, v in torch_small_model().state_dict().items())
    del state["module.1.running_var"]
    state["module.3.weight"] = torch.zeros(2, 4, 3, 3)       # wrong shape
    state["module.9.weight"] = torch.zeros(1)                # not in the model
    path = tmp_path / "bad.pth"
    torch.save({"state_dict": state}, path)
    with pytest.raises(RuntimeError) as info:
        minipsp.load_checkpoint(small_model(), path)
    message = str(info.value)
    assert "missing keys: 1.running_var" in message
    assert "unexpected keys: 9.weight" in message
    assert "3.weight: checkpoint has (2, 4, 3, 3), model has (2, 4, 1, 1)" in message


def test_extract_state_dict_leaves_other_keys_alone():
    state = extract_state_dict({"state_dict": {"module.a": 1, "b.module.c": 2}})
    assert list(state) == ["a", "b.module.c"]
    with pytest.raises(TypeError, match="checkpoint dict"):
        extract_state_dict([1, 2])


def test_state_dict_round_trips_through_minipsp_save(tmp_path):
    model = small_model()
    path = tmp_path / "model.mpsp"
    minipsp.save(model.state_dict(), path)
    minipsp.manual_seed(123)
    other = small_model()
    other.load_state_dict(minipsp.load(path))
    for (key, a), b in zip(model.state_dict().items(), other.state_dict().values()):
        np.testing.assert_array_equal(a, b, err_msg=key)
