"""Evaluation: predictions, metrics, reports and plots."""
