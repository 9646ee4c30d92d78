"""Pair datasets: the manifest format, splits, loaders and generators."""
