"""Training: configuration, the loop, distributed helpers."""
