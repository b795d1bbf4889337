"""Chapter 11 (distributed): the checks of its exercises. Everything runs in one process: the ranks are
simulated with arrays (no MPI needed).

11.1 sync_batch_norm_forward(shards, weight, bias, eps) -> (ys, mean, unbiased_var): synchronized batch norm's
     forward from each rank's (count, mean, M2) and Chan's merge, against F.batch_norm on the whole batch.
11.2 ring_allreduce(arrays, send): the ring Allreduce (reduce-scatter, then all-gather) through a simulated
     network that records every message: each rank sends 2(R - 1) chunks to its neighbour, and ends with the sum.
11.3 shard(order, rank, world_size, drop_last): rank r's indices of an epoch's order, padded as torch pads them,
     against minipsp.data.sampler.DistributedSampler.
"""

from __future__ import annotations

import numpy as np

from minipsp.course import Mismatch, exercise, expect_close, expect_equal

AXES = (0, 2, 3)  # everything but the channel


# ------------------------------------------------------------------------------------------- 11.1
def _shards(case):
    """(shards, weight, bias, where): the per-rank batches of one case."""
    images, C, shift, scale, seed = case
    rng = np.random.default_rng(seed)
    shards = [shift + scale * rank + rng.normal(size=(n, C, 4, 5)) * rng.uniform(0.5, 2.0, size=(1, C, 1, 1))
              for rank, n in enumerate(images)]  # each rank's images come from a different place (scale * rank)
    return shards, rng.normal(size=C), rng.normal(size=C)


# (images per rank, channels, offset of every value, offset between ranks, seed): unequal shards whose means
# differ, three ranks, and a mean that dwarfs the standard deviation (where E[x^2] - E[x]^2 loses every digit).
BN_CASES = [((3, 1), 3, 0.5, 2.0, 110), ((2, 1, 2), 2, -1.0, 1.5, 111), ((2, 2), 2, 3e8, 0.0, 112)]


@exercise("11.1", "synchronized batch norm's forward, by Chan's merge", solution="sync_batch_norm_forward",
          hint="per rank and channel: n_r = N_r * H * W, mean_r, M2_r = sum (x - mean_r)^2; then mean = sum n_r mean_r "
               "/ M, M2 = sum [M2_r + n_r (mean_r - mean)^2], normalise every rank's x with the biased M2 / M, and "
               "return the unbiased M2 / (M - 1) for running_var, M the global count")
def check_sync_batch_norm_forward(sync_batch_norm_forward):
    import minipsp
    import minipsp.nn.functional as F

    for case in BN_CASES:
        images, C, shift = case[0], case[1], case[2]
        shards, weight, bias = _shards(case)
        x = np.concatenate(shards)
        M = x.shape[0] * x.shape[2] * x.shape[3]
        where = (f"{len(shards)} ranks holding {', '.join(map(str, images))} images of shape "
                 f"{shards[0].shape[1:]}" + (f", values near {shift:g}" if abs(shift) > 1e3 else ""))
        mean, var = x.mean(axis=AXES), x.var(axis=AXES)   # two passes over the whole batch, float64
        y = F.batch_norm(minipsp.tensor(x), None, None, minipsp.tensor(weight), minipsp.tensor(bias),
                         training=True, eps=1e-5).numpy()    # one process, the whole batch: the truth
        answer = sync_batch_norm_forward([s.copy() for s in shards], weight, bias, 1e-5)
        if not (isinstance(answer, (tuple, list)) and len(answer) == 3):
            raise Mismatch("sync_batch_norm_forward must return (ys, mean, unbiased_var): a list of the ranks' "
                           f"outputs and two arrays of shape ({C},); got {type(answer).__name__}.")
        ys, got_mean, got_var = answer
        if not (isinstance(ys, (tuple, list)) and len(ys) == len(shards)):
            raise Mismatch(f"ys must be a list of {len(shards)} arrays, one output per rank ({where}); got "
                           f"{type(ys).__name__}{f' of length {len(ys)}' if isinstance(ys, (tuple, list)) else ''}.")
        got_mean, got_var = np.asarray(got_mean, dtype=np.float64), np.asarray(got_var, dtype=np.float64)
        means = np.stack([s.mean(axis=AXES) for s in shards])
        counts = np.array([s.shape[0] * s.shape[2] * s.shape[3] for s in shards])
        if got_mean.shape == mean.shape and np.allclose(got_mean, means.mean(axis=0)) \
                and not np.allclose(got_mean, mean):
            raise Mismatch(f"mean for {where} is the plain average of the ranks' means; the ranks hold "
                           f"{' and '.join(map(str, counts))} values per channel, so weight each by its count: "
                           "mean = sum n_r mean_r / M.")
        expect_close(f"mean for {where}", got_mean, mean, rtol=1e-10, atol=1e-9,
                     hint="mean = sum_r n_r mean_r / M, n_r = N_r * H * W")
        within = sum(((s - s.mean(axis=AXES, keepdims=True)) ** 2).sum(axis=AXES) for s in shards)
        if got_var.shape == var.shape and np.allclose(got_var, within / (M - 1)) \
                and not np.allclose(got_var, var * M / (M - 1)):
            raise Mismatch(f"unbiased_var for {where} is sum M2_r / (M - 1): the between-rank term "
                           "n_r (mean_r - mean)^2 is missing. Each M2_r is measured around its own rank's mean, "
                           "not the global one; Chan's merge adds the difference back.")
        if got_var.shape == var.shape and np.allclose(got_var, var) and not np.allclose(var, var * M / (M - 1)):
            raise Mismatch(f"unbiased_var for {where} is the biased variance M2 / M; running_var is fed the "
                           f"unbiased M2 / (M - 1), with M = {M} the count of the whole batch.")
        expect_close(f"unbiased_var for {where}", got_var, var * M / (M - 1), rtol=1e-7, atol=1e-9,
                     hint="M2 = sum_r [M2_r + n_r (mean_r - mean)^2], unbiased_var = M2 / (M - 1); "
                          "E[x^2] - E[x]^2 loses every digit when the mean is 3e8 and the std 1")
        start = 0
        for rank, (shard, got_y) in enumerate(zip(shards, ys)):
            want = y[start:start + len(shard)]
            start += len(shard)
            got_y = np.asarray(got_y, dtype=np.float64)
            unbiased = (shard - mean[None, :, None, None]) / np.sqrt(var * M / (M - 1) + 1e-5)[None, :, None, None]
            if got_y.shape == want.shape and np.allclose(got_y, unbiased * weight[None, :, None, None]
                                                         + bias[None, :, None, None]) and not np.allclose(got_y, want):
                raise Mismatch(f"rank {rank}'s output for {where} is normalised with the unbiased variance; "
                               "batch norm normalises with the biased M2 / M (the unbiased one only feeds "
                               "running_var).")
            expect_close(f"rank {rank}'s output y for {where} (against batch norm on the whole batch)", got_y,
                         want, rtol=1e-7, atol=1e-6,
                         hint="y = (x - mean) / sqrt(M2 / M + eps) * weight + bias with the GLOBAL mean and M2, "
                              "per channel")
    return ("every rank's output equals batch norm on the whole batch, and mean and unbiased_var the global "
            "ones, for unequal shards, three ranks, and a mean of 3e8 with a standard deviation of 1")


# ------------------------------------------------------------------------------------------- 11.2
RING_CASES = [(3, 9), (2, 6), (4, 10), (5, 7)]  # (ranks, length of every rank's array): some not divisible


@exercise("11.2", "the ring Allreduce", solution="ring_allreduce",
          hint="cut every array in R chunks (np.array_split); reduce-scatter, for step in range(R - 1): rank r "
               "sends chunk (r - step) % R to rank (r + 1) % R, which adds it to its own; all-gather, for step in "
               "range(R - 1): rank r sends its finished chunk (r + 1 - step) % R on, and the receiver keeps it")
def check_ring_allreduce(ring_allreduce):
    rng = np.random.default_rng(11)
    for R, n in RING_CASES:
        arrays = [rng.integers(-9, 10, size=n).astype(np.float64) for _ in range(R)]  # integers: exact sums
        total = np.sum(arrays, axis=0)
        log = []

        def send(src, dst, chunk, values, R=R, log=log):
            if not all(isinstance(v, (int, np.integer)) and 0 <= v < R for v in (src, dst)):
                raise Mismatch(f"send(src, dst, ...) takes two ranks in 0..{R - 1}; got src={src!r}, dst={dst!r}.")
            values = np.array(values, dtype=np.float64, copy=True)
            log.append((int(src), int(dst), chunk, values.size))
            return values

        where = f"{R} ranks, arrays of {n} values"
        results = ring_allreduce([a.copy() for a in arrays], send)
        for src, dst, _chunk, size in log:
            if dst != (src + 1) % R:
                raise Mismatch(f"rank {src} sent to rank {dst} ({where}): in a ring every rank sends only to its "
                               f"neighbour (r + 1) % R, here rank {(src + 1) % R}. Sending every array to every rank "
                               "costs each rank R - 1 whole arrays; the ring sends 2 (R - 1) / R of one.")
            if size > -(-n // R):
                raise Mismatch(f"rank {src} sent {size} values at once ({where}): a ring Allreduce sends chunks of "
                               f"about n / R = {n / R:.3g} values, one per step (np.array_split(array, R)).")
        sent = [sum(1 for m in log if m[0] == r) for r in range(R)]
        if sent != [2 * (R - 1)] * R:
            raise Mismatch(f"the ranks sent {sent} chunks ({where}); a ring Allreduce sends 2 (R - 1) = {2 * (R - 1)} "
                           f"from every rank: R - 1 in the reduce-scatter (each rank ends with one fully summed "
                           "chunk), R - 1 in the all-gather (the summed chunks go round the ring).")
        if not (isinstance(results, (tuple, list)) and len(results) == R):
            raise Mismatch(f"ring_allreduce must return a list of {R} arrays, one per rank ({where}); got "
                           f"{type(results).__name__}.")
        for r, got in enumerate(results):
            expect_close(f"rank {r}'s result ({where})", np.asarray(got, dtype=np.float64), total, rtol=0, atol=1e-9,
                         hint="in reduce-scatter step s rank r sends chunk (r - s) % R and the receiver ADDS it; after "
                              "R - 1 steps rank r holds the full sum of chunk (r + 1) % R, which the all-gather "
                              "passes on (the receiver REPLACES its copy)")
    bytes_note = ", ".join(f"R={R}: {2 * (R - 1)} chunks = {2 * (R - 1) / R:.2f} x the array" for R, _ in RING_CASES)
    return f"every rank ends with the sum, sending only to its neighbour, chunk by chunk ({bytes_note})"


# ------------------------------------------------------------------------------------------- 11.3
# (dataset size, ranks, drop_last): a padding of 2 and of 2, none, one longer than the dataset, and drop_last.
SHARD_CASES = [(10, 3, False), (10, 4, False), (12, 4, False), (2, 5, False), (10, 3, True), (7, 2, True)]


@exercise("11.3", "a DistributedSampler shard", solution="shard",
          hint="padded = np.resize(order, R * ceil(n / R)) repeats the first entries as often as needed (drop_last: "
               "order[:R * (n // R)]); rank r takes padded[r::R]")
def check_shard(shard):
    from minipsp.data.sampler import DistributedSampler

    rng = np.random.default_rng(113)
    for n, R, drop_last in SHARD_CASES:
        order = rng.permutation(n) + 100  # the epoch's order (the +100: indices are not positions)
        # the sampler's positions, unshuffled, map through the order: the same shards it serves for this order
        want = [order[DistributedSampler(range(n), num_replicas=R, rank=r, shuffle=False, drop_last=drop_last)
                      .indices()].tolist() for r in range(R)]
        got = [shard(order.copy(), r, R, drop_last) for r in range(R)]
        where = f"n = {n} images, {R} ranks, drop_last={drop_last}, order = {order.tolist()}"
        if any(g is None for g in got):
            raise Mismatch(f"shard returned None ({where}); return the rank's indices.")
        got = [np.asarray(g).tolist() for g in got]
        lengths = [len(g) for g in got]
        if len(set(lengths)) > 1:
            raise Mismatch(f"the ranks got {lengths} indices ({where}): every rank must run the same number of "
                           "steps, since each step ends in an Allreduce that all ranks join (a rank with one step "
                           "less leaves the others waiting forever). Pad the order by repeating its first entries to "
                           "a multiple of R, as torch does (or, with drop_last, cut it to one).")
        k = len(want[0])
        padded = [i for rank in zip(*want) for i in rank]  # the padded order, rebuilt from the strided shards
        if got == [padded[r * k:(r + 1) * k] for r in range(R)] and got != want:
            raise Mismatch(f"rank r got a contiguous block of the order ({where}); it takes every R-th entry, "
                           "padded[r::R], so that the j-th batch of all ranks together is the j-th batch of the "
                           "one-process run (and a run can resume on another number of ranks).")
        for r in range(R):
            expect_equal(f"rank {r}'s indices ({where})", got[r], want[r],
                         hint="pad by repeating the order from its start, as often as needed (the padding can be "
                              "longer than the order), to R * ceil(n / R); drop_last: keep order[:R * (n // R)]; "
                              "rank r takes padded[r::R]")
    return ("every rank's shard equals DistributedSampler's (torch's padding and interleaving) for 6 cases, "
            "padding longer than the dataset and drop_last included")
