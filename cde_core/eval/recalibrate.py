"""Choose a checkpoint's no-effect decision again, on the validation pairs of a dataset, and write it back.

Training calibrates on its own IID validation pairs; a robot's own recorded episodes (or a newer rule) may
call for another choice without retraining. Only the calibration in the header changes; the weights are
copied as they are.
"""
from __future__ import annotations

from pathlib import Path

from cde_core.checkpoint import load_checkpoint, save_checkpoint
from cde_core.data.manifest import NO_CHANGE, read_manifest
from cde_core.eval.evaluate import predict_pairs, require_known_actions
from cde_core.verification import Calibration, calibrate


def recalibrate_checkpoint(checkpoint: str | Path, data: str | Path, split: str, out: str | Path,
                           role: str = "val", precision: str = "fp32") -> tuple[Calibration, Calibration]:
    """(old, new) calibration; the checkpoint with the new one is written to `out`."""
    model, meta = load_checkpoint(checkpoint)
    records = [r for r in read_manifest(data) if r.role(split) == role]
    if not records:
        raise ValueError(f"split {split!r} of {data} has no {role} pairs to calibrate on")
    require_known_actions(records, meta.class_names)
    pred = predict_pairs(model, meta, data, records, meta.objects or sorted({r.object for r in records}), precision)
    old = meta.calibration
    new = calibrate(pred, [r.action != NO_CHANGE for r in records], meta.class_names, old.no_change_class)
    new.min_confidence = old.min_confidence
    meta.calibration = new
    save_checkpoint(out, model, meta)
    return old, new
