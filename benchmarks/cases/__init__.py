"""One file per op family; each defines `cases(device)` returning a list of `benchmarks.common.Case`."""
