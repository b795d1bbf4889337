"""SGD and PolyLR against torch.optim on the same parameters and gradients, and exact resume."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import minipsp
from minipsp.optim import SGD, PolyLR, poly_lr

SHAPES = [(3, 4), (5,), (2, 3, 2)]


def make_params(dtype, seed=0):
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    ours = [minipsp.tensor(a.copy(), requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a.copy(), requires_grad=True) for a in arrays]
    return ours, theirs


def gradients(step, dtype):
    rng = np.random.default_rng(100 + step)
    return [rng.standard_normal(s).astype(dtype) for s in SHAPES]


def run_both(hyper, steps, dtype, groups=False, schedule=False, skip_none_at=None):
    ours, theirs = make_params(dtype)
    if groups:  # two groups, the second at 10x, as PSPNet's head
        lr = hyper["lr"]
        ours_arg = [{"params": ours[:2]}, {"params": ours[2:], "lr": 10 * lr}]
        theirs_arg = [{"params": theirs[:2]}, {"params": theirs[2:], "lr": 10 * lr}]
    else:
        ours_arg, theirs_arg = ours, theirs
    opt, topt = SGD(ours_arg, **hyper), torch.optim.SGD(theirs_arg, **hyper)
    if schedule:
        sched = PolyLR(opt, max_iter=steps, power=0.9)
        tsched = torch.optim.lr_scheduler.PolynomialLR(topt, total_iters=steps, power=0.9)
    for step in range(steps):
        opt.zero_grad()
        topt.zero_grad()
        for i, (p, tp, g) in enumerate(zip(ours, theirs, gradients(step, dtype))):
            if skip_none_at is not None and (step, i) == skip_none_at:
                continue  # this parameter gets no gradient this step
            p.grad = g.copy()
            tp.grad = torch.tensor(g.copy())
        opt.step()
        topt.step()
        if schedule:
            sched.step()
            tsched.step()
            np.testing.assert_allclose(sched.get_last_lr(), tsched.get_last_lr(), rtol=1e-12, atol=1e-15)
    return ours, theirs, opt, topt


def assert_params_equal(ours, theirs, dtype):
    tol = 1e-12 if dtype == np.float64 else 2e-6
    for p, tp in zip(ours, theirs):
        np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=tol, atol=tol)


@given(lr=st.sampled_from([0.0, 0.01, 0.5]), momentum=st.sampled_from([0.0, 0.5, 0.9]),
       dampening=st.sampled_from([0.0, 0.3]), weight_decay=st.sampled_from([0.0, 1e-4, 0.1]),
       nesterov=st.booleans(), groups=st.booleans(), dtype=st.sampled_from([np.float32, np.float64]))
def test_sgd_equals_torch(lr, momentum, dampening, weight_decay, nesterov, groups, dtype):
    if nesterov and (momentum == 0 or dampening != 0):
        nesterov = False  # torch refuses this combination too (tested below)
    hyper = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay, nesterov=nesterov)
    ours, theirs, _, _ = run_both(hyper, steps=5, dtype=dtype, groups=groups)
    assert_params_equal(ours, theirs, dtype)


def test_sgd_skips_parameters_without_gradient():
    hyper = dict(lr=0.1, momentum=0.9, weight_decay=1e-4)
    ours, theirs, _, _ = run_both(hyper, steps=4, dtype=np.float64, skip_none_at=(1, 0))
    assert_params_equal(ours, theirs, np.float64)


def test_sgd_zero_grad_sets_none():
    ours, _ = make_params(np.float32)
    opt = SGD(ours, lr=0.1)
    for p in ours:
        p.grad = np.ones(p.shape, np.float32)
    opt.zero_grad()
    assert all(p.grad is None for p in ours)


def test_sgd_updates_through_a_real_backward():
    w = minipsp.tensor(np.array([1.0, -2.0]), requires_grad=True)
    tw = torch.tensor([1.0, -2.0], dtype=torch.float64, requires_grad=True)
    opt, topt = SGD([w], lr=0.1, momentum=0.9), torch.optim.SGD([tw], lr=0.1, momentum=0.9)
    for _ in range(3):
        opt.zero_grad()
        topt.zero_grad()
        (w * w * w).sum().backward()
        (tw * tw * tw).sum().backward()
        opt.step()
        topt.step()
    np.testing.assert_allclose(w.data, tw.detach().numpy(), rtol=1e-12)


@pytest.mark.parametrize("groups", [False, True])
def test_poly_lr_schedule_equals_torch(groups):
    hyper = dict(lr=0.01, momentum=0.9, weight_decay=1e-4)
    ours, theirs, opt, topt = run_both(hyper, steps=7, dtype=np.float64, groups=groups, schedule=True)
    assert_params_equal(ours, theirs, np.float64)
    if groups:  # the 10x group stays at 10x
        assert opt.param_groups[1]["initial_lr"] == pytest.approx(10 * opt.param_groups[0]["initial_lr"])


def test_poly_lr_function():
    assert poly_lr(0.01, 0, 100) == 0.01
    assert poly_lr(0.01, 100, 100) == 0.0
    assert poly_lr(0.01, 50, 100, power=0.9) == pytest.approx(0.01 * 0.5 ** 0.9, rel=1e-15)
    assert poly_lr(1.0, 25, 100, power=1.0) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="iteration"):
        poly_lr(0.01, 101, 100)
    with pytest.raises(ValueError, match="max_iter"):
        poly_lr(0.01, 0, 0)


def test_poly_scheduler_stays_at_zero_past_the_end():
    ours, _ = make_params(np.float32)
    opt = SGD(ours, lr=0.1)
    sched = PolyLR(opt, max_iter=3)
    assert sched.get_last_lr() == [0.1]
    for _ in range(5):
        sched.step()
    assert sched.get_last_lr() == [0.0]
    assert opt.param_groups[0]["lr"] == 0.0


def train(opt_and_sched, params, steps, start=0):
    opt, sched = opt_and_sched
    for step in range(start, start + steps):
        opt.zero_grad()
        for p, g in zip(params, gradients(step, np.float32)):
            p.grad = g
        opt.step()
        sched.step()


def build(params):
    opt = SGD([{"params": params[:1]}, {"params": params[1:], "lr": 0.1}], lr=0.01, momentum=0.9,
              weight_decay=1e-4, nesterov=True)
    return opt, PolyLR(opt, max_iter=10)


def test_state_dict_round_trip_resumes_exactly():
    straight, _ = make_params(np.float32)
    opt_sched = build(straight)
    train(opt_sched, straight, 8)

    first, _ = make_params(np.float32)
    opt, sched = build(first)
    train((opt, sched), first, 4)
    saved_opt, saved_sched = opt.state_dict(), sched.state_dict()
    saved_params = [p.data.copy() for p in first]
    assert set(saved_opt["state"]) == {0, 1, 2}
    assert all(isinstance(s["momentum_buffer"], np.ndarray) for s in saved_opt["state"].values())

    resumed, _ = make_params(np.float32, seed=7)  # fresh objects, different values
    for p, a in zip(resumed, saved_params):
        p.data = a.copy()
    opt2, sched2 = build(resumed)
    opt2.load_state_dict(saved_opt)
    sched2.load_state_dict(saved_sched)
    assert sched2.get_last_lr() == sched.get_last_lr()
    train((opt2, sched2), resumed, 4, start=4)
    for a, b in zip(straight, resumed):
        np.testing.assert_array_equal(a.data, b.data)
    assert [g["lr"] for g in opt_sched[0].param_groups] == [g["lr"] for g in opt2.param_groups]


def test_state_dict_is_decoupled_from_the_optimizer():
    params, _ = make_params(np.float32)
    opt = SGD(params, lr=0.1, momentum=0.9)
    for p in params:
        p.grad = np.ones(p.shape, np.float32)
    opt.step()
    saved = opt.state_dict()
    before = saved["state"][0]["momentum_buffer"].copy()
    opt.step()
    np.testing.assert_array_equal(saved["state"][0]["momentum_buffer"], before)


def test_load_state_dict_rejects_a_different_layout():
    params, _ = make_params(np.float32)
    saved = SGD(params, lr=0.1).state_dict()
    with pytest.raises(ValueError, match="parameter groups"):
        SGD([{"params": params[:1]}, {"params": params[1:]}], lr=0.1).load_state_dict(saved)
    with pytest.raises(ValueError, match="parameters"):
        SGD(params[:2], lr=0.1).load_state_dict(saved)


@pytest.mark.parametrize("kwargs, match", [
    (dict(lr=-0.1), "lr"),
    (dict(lr=0.1, momentum=-0.5), "momentum"),
    (dict(lr=0.1, weight_decay=-1e-4), "weight_decay"),
    (dict(lr=0.1, nesterov=True), "nesterov"),
    (dict(lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), "nesterov"),
])
def test_bad_hyper_parameters(kwargs, match):
    params, _ = make_params(np.float32)
    with pytest.raises(ValueError, match=match):
        SGD(params, **kwargs)


def test_bad_parameters():
    params, _ = make_params(np.float32)
    with pytest.raises(ValueError, match="empty"):
        SGD([], lr=0.1)
    with pytest.raises(ValueError, match="empty"):
        SGD(iter([]), lr=0.1)
    with pytest.raises(TypeError, match="not a tensor"):
        SGD([np.zeros(3)], lr=0.1)
    with pytest.raises(TypeError, match="not a tensor"):
        SGD([{"params": [params[0], 3.0]}], lr=0.1)
    with pytest.raises(ValueError, match="already appears"):
        SGD([{"params": params}, {"params": params[:1]}], lr=0.1)
    with pytest.raises(ValueError, match="lr"):
        SGD([{"params": params, "lr": -1.0}], lr=0.1)
    with pytest.raises(ValueError, match="unknown keys"):
        SGD([{"params": params, "betas": (0.9, 0.99)}], lr=0.1)
    with pytest.raises(ValueError, match="max_iter"):
        PolyLR(SGD(params, lr=0.1), max_iter=0)
