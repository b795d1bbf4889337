"""`make demo` until the trainer lands: fit a tiny two-layer network with minipsp's autograd."""

import numpy as np

import minipsp


def main():
    minipsp.manual_seed(0)
    rng = np.random.default_rng(0)
    x = minipsp.tensor(rng.uniform(-1, 1, (256, 2)))
    y = minipsp.tensor((x.numpy()[:, :1] * x.numpy()[:, 1:] > 0).astype(np.float32))  # XOR-like quadrants
    w1 = minipsp.randn(2, 16, requires_grad=True)
    b1 = minipsp.zeros(16, requires_grad=True)
    w2 = minipsp.randn(16, 1, requires_grad=True)
    b2 = minipsp.zeros(1, requires_grad=True)
    params = [w1, b1, w2, b2]
    for step in range(301):
        p = ((x @ w1 + b1).tanh() @ w2 + b2).sigmoid()
        loss = -(y * (p + 1e-7).log() + (1 - y) * (1 - p + 1e-7).log()).mean()
        for t in params:
            t.grad = None
        loss.backward()
        for t in params:
            t.data -= 0.5 * t.grad
        if step % 50 == 0:
            accuracy = ((p.numpy() > 0.5) == (y.numpy() > 0.5)).mean()
            print(f"step {step:3d}  loss {loss.item():.4f}  accuracy {accuracy:.2f}")


if __name__ == "__main__":
    main()
