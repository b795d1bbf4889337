"""Chapter 11 (distributed): reference solutions. Open after you have tried; the check's message comes first."""

import numpy as np

AXES = (0, 2, 3)  # everything but the channel


def sync_batch_norm_forward(shards, weight, bias, eps):
    """11.1: batch norm over every rank's shard (N_r, C, H, W); returns (ys, mean, unbiased_var)."""
    # what each rank sends (one Allgather of 2C + 1 numbers): its count, mean and M2 per channel
    counts = np.array([s.shape[0] * s.shape[2] * s.shape[3] for s in shards], dtype=np.float64)[:, None]  # R, 1
    means = np.stack([s.mean(axis=AXES) for s in shards])                                                # R, C
    m2s = np.stack([((s - m[None, :, None, None]) ** 2).sum(axis=AXES) for s, m in zip(shards, means)])  # R, C
    # Chan's merge: every rank computes the same from the gathered table
    M = counts.sum()
    mean = (counts * means).sum(axis=0) / M
    m2 = (m2s + counts * (means - mean) ** 2).sum(axis=0)
    rstd = 1 / np.sqrt(m2 / M + eps)                     # normalise with the biased variance
    scale, shift = (weight * rstd)[None, :, None, None], (bias - weight * rstd * mean)[None, :, None, None]
    ys = [s * scale + shift for s in shards]
    return ys, mean, m2 / (M - 1)                        # running_var is fed the unbiased one


def ring_allreduce(arrays, send):
    """11.2: every rank ends with the sum of all arrays; each sends 2 (R - 1) chunks to its neighbour."""
    R = len(arrays)
    chunks = [np.array_split(np.asarray(a, dtype=np.float64), R) for a in arrays]  # chunks[rank][c]
    for step in range(R - 1):                  # reduce-scatter: add the neighbour's partial sum of one chunk
        for r in range(R):                     # (in one step all ranks send at once; their chunks differ)
            c, dst = (r - step) % R, (r + 1) % R
            chunks[dst][c] = chunks[dst][c] + send(r, dst, c, chunks[r][c])
    for step in range(R - 1):                  # all-gather: rank r now owns the full chunk (r + 1) % R
        for r in range(R):
            c, dst = (r + 1 - step) % R, (r + 1) % R
            chunks[dst][c] = send(r, dst, c, chunks[r][c])
    return [np.concatenate(c) for c in chunks]


def shard(order, rank, world_size, drop_last=False):
    """11.3: rank `rank`'s indices of the epoch's `order`, as torch's DistributedSampler serves them."""
    n = len(order)
    if drop_last:
        padded = order[:world_size * (n // world_size)]        # the tail that would make shards unequal
    else:
        padded = np.resize(order, world_size * -(-n // world_size))  # repeat from the start, as often as needed
    return padded[rank::world_size]                            # every R-th: batch j of all ranks = batch j of one
