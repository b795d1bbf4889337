"""Shared Hypothesis strategies: shapes, broadcast pairs and float64 arrays."""

import numpy as np
from hypothesis import strategies as st


def shapes(min_dims=1, max_dims=3, min_side=1, max_side=4):
    return st.lists(st.integers(min_side, max_side), min_size=min_dims, max_size=max_dims).map(tuple)


@st.composite
def broadcast_pair(draw, max_dims=3, max_side=4):
    """Two shapes that broadcast, in either direction: some axes set to 1, some leading axes dropped."""
    full = draw(shapes(1, max_dims, 1, max_side))
    a, b = list(full), list(full)
    for i in range(len(full)):
        choice = draw(st.integers(0, 2))
        if choice == 1:
            a[i] = 1
        elif choice == 2:
            b[i] = 1
    a = a[draw(st.integers(0, len(a) - 1)):]
    b = b[draw(st.integers(0, len(b) - 1)):]
    return tuple(a), tuple(b)


def arrays(shape, seed, low=-2.0, high=2.0):
    """A float64 array of `shape` with values from a seeded generator (Hypothesis draws the seed)."""
    return np.random.default_rng(seed).uniform(low, high, size=shape)


seeds = st.integers(0, 2**16)
