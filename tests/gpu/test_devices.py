"""Devices: mixing CPU and GPU tensors, moving tensors and modules, a small network on the GPU.

The first test runs everywhere: a stand-in array type whose module name starts with "cupy" is what
minipsp's backend detection sees as a GPU array, so the mixed-device error path is checked in CI.
The tests marked `gpu` need CuPy and a real GPU (MINIPSP_REAL_GPU=1); they are skipped otherwise.
"""

import numpy as np
import pytest

import minipsp


class StandInGpuArray(np.ndarray):
    """A NumPy array that minipsp's backend takes for a CuPy array (it looks at the type's module)."""

    def get(self):                      # cupy.ndarray.get(): the copy to the host
        return np.asarray(self).copy()


StandInGpuArray.__module__ = "cupy._stand_in"


def test_mixing_devices_in_one_op_names_both_devices():
    cpu = minipsp.tensor(np.ones((2, 3), dtype=np.float32))
    gpu = minipsp.Tensor(np.ones((2, 3), dtype=np.float32).view(StandInGpuArray))
    assert gpu.device == "cuda" and cpu.device == "cpu"
    with pytest.raises(RuntimeError, match=r"same device; got tensors on cpu \(2, 3\), cuda \(2, 3\)"):
        cpu + gpu


def test_an_array_of_the_other_device_in_arithmetic_names_both_devices():
    cpu = minipsp.tensor(np.ones((2, 3), dtype=np.float32))
    gpu = minipsp.Tensor(np.ones((2, 3), dtype=np.float32).view(StandInGpuArray))
    with pytest.raises(RuntimeError, match=r"same device; got tensors on cpu \(2, 3\), cuda \(2, 3\)"):
        cpu + np.ones((2, 3), dtype=np.float32).view(StandInGpuArray)
    with pytest.raises(RuntimeError, match=r"same device; got tensors on cuda \(2, 3\), cpu \(2, 3\)"):
        gpu * np.ones((2, 3), dtype=np.float32)          # no silent host-to-device copy on every call
    assert (cpu + 2.0).device == "cpu" and (cpu + np.float32(2)).dtype == np.float32
    np.testing.assert_array_equal((cpu * [1, 2, 3]).data, [[1, 2, 3]] * 2)   # a list is a host value


def test_confusion_matrix_of_a_gpu_prediction_and_cpu_labels():
    from minipsp.metrics import confusion_matrix

    target = np.array([[0, 1, 2], [2, 255, 1]])
    pred = np.array([[0, 2, 2], [2, 0, 1]])
    expected = confusion_matrix(pred, target, 3)
    np.testing.assert_array_equal(confusion_matrix(pred.view(StandInGpuArray), target, 3), expected)
    np.testing.assert_array_equal(confusion_matrix(pred, target.view(StandInGpuArray), 3), expected)


@pytest.mark.gpu
def test_tensor_round_trip_and_gradient_through_to():
    x = minipsp.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    y = x.to("cuda")
    assert y.device == "cuda"
    (y * y).sum().backward()
    assert x.grad is not None and isinstance(x.grad, np.ndarray)
    np.testing.assert_allclose(x.grad, 2 * x.data)
    assert y.cpu().device == "cpu"


@pytest.mark.gpu
def test_small_pspnet_forward_and_backward_on_gpu_equal_cpu():
    from minipsp.models import PSPNet

    minipsp.manual_seed(0)
    model = PSPNet(layers=18, bins=(1, 2), classes=3, dropout=0.0, deep_stem=False)
    model.train()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 33, 33)).astype(np.float32)
    y = rng.integers(0, 3, (2, 33, 33))
    state = model.state_dict()

    _, main_cpu, aux_cpu = model(minipsp.tensor(x), minipsp.tensor(y))
    (main_cpu + 0.4 * aux_cpu).backward()
    grads_cpu = {name: p.grad.copy() for name, p in model.named_parameters()}

    gpu_model = PSPNet(layers=18, bins=(1, 2), classes=3, dropout=0.0, deep_stem=False)
    gpu_model.load_state_dict(state)
    gpu_model.train()
    gpu_model.to("cuda")
    _, main_gpu, aux_gpu = gpu_model(minipsp.tensor(x).to("cuda"), minipsp.tensor(y).to("cuda"))
    (main_gpu + 0.4 * aux_gpu).backward()

    np.testing.assert_allclose(main_gpu.item(), main_cpu.item(), rtol=1e-4)
    np.testing.assert_allclose(aux_gpu.item(), aux_cpu.item(), rtol=1e-4)
    for name, p in gpu_model.named_parameters():
        scale = np.abs(grads_cpu[name]).max() + 1e-6
        np.testing.assert_allclose(minipsp.backend.to_numpy(p.grad) / scale, grads_cpu[name] / scale,
                                   atol=1e-3, err_msg=name)


# The Tensor's own ops (minipsp/ops: arithmetic, reductions, shapes) have no kernels of their own: they
# are NumPy or CuPy calls through `xp`. On a GPU each must give the CPU's value and gradients.
GENERAL_OPS = {
    "add, sub, mul, div": lambda a, b: ((a + b) * (a - b) / (b * b + 1.0)).sum(),
    "pow, exp, log, neg": lambda a, b: ((a ** 2).exp().log() - (-b)).sum(),
    "sum, mean over axes": lambda a, b: a.sum(dim=1).mean() + b.mean(dim=(0, 2)).sum(),
    "max": lambda a, b: a.max(dim=2).sum() + b.max(),
    "reshape, permute": lambda a, b: (a.reshape(4, 15).permute(1, 0) * b.reshape(15, 4)).sum(),
    "getitem (scatter-add backward)": lambda a, b: (a[:, 1:3, ::2] * b[:, :2, ::2]).sum() + a[[0, 0, 1]].sum(),
    "cat, stack": lambda a, b: (minipsp.cat([a, b], dim=1) ** 2).sum() + minipsp.stack([a, b]).mean(),
    "matmul": lambda a, b: (a.reshape(4, 15) @ b.reshape(15, 4)).sum(),
}


@pytest.mark.gpu
@pytest.mark.parametrize("name", list(GENERAL_OPS))
def test_general_ops_on_gpu_equal_cpu(name):
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal((2, 5, 6)) for _ in range(2)]
    results = {}
    for device in ("cpu", "cuda"):
        a, b = (minipsp.tensor(x).to(device) for x in arrays)
        a.requires_grad_(True)
        b.requires_grad_(True)
        value = GENERAL_OPS[name](a, b)
        value.backward()
        results[device] = (value.item(), minipsp.backend.to_numpy(a.grad), minipsp.backend.to_numpy(b.grad))
    np.testing.assert_allclose(results["cuda"][0], results["cpu"][0], rtol=1e-10)
    for cpu_grad, gpu_grad in zip(results["cpu"][1:], results["cuda"][1:]):
        np.testing.assert_allclose(gpu_grad, cpu_grad, rtol=1e-10, atol=1e-12)
