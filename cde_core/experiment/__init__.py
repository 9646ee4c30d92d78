"""Benchmark experiments: every method over seeds and splits, with the paper's claims measured."""
