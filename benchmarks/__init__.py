"""Benchmarks: minipsp and PyTorch timed in the same run on the same inputs; the ratio is what counts."""
