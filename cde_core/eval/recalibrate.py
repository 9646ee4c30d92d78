"""Choose a checkpoint's no-effect decision again, on the validation pairs of a dataset, and write it back.

Training calibrates on its own IID validation pairs; a robot's own recorded episodes (or a newer rule) may
call for another choice without retraining. The change measure the rule thresholds (`effect_magnitude`, a
function of the embeddings, no weights of its own) can be chosen here too, on the same pairs. Only the header
changes; the weights are copied as they are.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cde_core.checkpoint import load_checkpoint, save_checkpoint
from cde_core.data.manifest import NO_CHANGE, read_manifest
from cde_core.data.pair_dataset import usable_records
from cde_core.eval.evaluate import predict_pairs, require_known_actions
from cde_core.eval.verification_metrics import auroc
from cde_core.models.effect_magnitude import EFFECT_MAGNITUDES
from cde_core.verification import Calibration, calibrate

AUTO = "auto"


@dataclass
class Recalibration:
    """What `recalibrate_checkpoint` changed, and the validation AUROC of each change measure it scored."""

    old: Calibration
    new: Calibration
    old_effect_magnitude: str
    effect_magnitude: str
    auroc_by_effect_magnitude: dict[str, float | None] = field(default_factory=dict)


def recalibrate_checkpoint(checkpoint: str | Path, data: str | Path, split: str, out: str | Path,
                           role: str = "val", precision: str = "fp32",
                           effect_magnitude: str | None = None) -> Recalibration:
    """Re-choose the decision on `role` pairs of `split` and write the checkpoint to `out`.
    `effect_magnitude`: None keeps the model's change measure; a name from EFFECT_MAGNITUDES sets it; "auto"
    takes the one whose magnitudes best separate no-change from change pairs (AUROC), the model's own on ties."""
    if effect_magnitude is not None and effect_magnitude != AUTO and effect_magnitude not in EFFECT_MAGNITUDES:
        raise ValueError(f"effect magnitude must be {AUTO!r} or one of {EFFECT_MAGNITUDES}, got {effect_magnitude!r}")
    model, meta = load_checkpoint(checkpoint)
    records, _ = usable_records(data, [r for r in read_manifest(data) if r.role(split) == role], meta.preprocessing)
    if not records:
        raise ValueError(f"split {split!r} of {data} has no {role} pairs to calibrate on")
    require_known_actions(records, meta.class_names)
    objects = meta.objects or sorted({r.object for r in records})
    changed = [r.action != NO_CHANGE for r in records]
    current = model.config.effect_magnitude
    if effect_magnitude is None:
        candidates = [current]
    elif effect_magnitude == AUTO:
        candidates = [current] + [k for k in EFFECT_MAGNITUDES if k != current]  # current first: kept on ties
    else:
        candidates = [effect_magnitude]
    scored: dict[str, float | None] = {}
    best = None
    for kind in candidates:
        model.config.effect_magnitude = kind
        pred = predict_pairs(model, meta, data, records, objects, precision)
        scored[kind] = auroc(pred.magnitudes.tolist(), changed)
        if best is None or (scored[kind] or 0.0) > (scored[best[0]] or 0.0):
            best = (kind, pred)
    assert best is not None
    chosen, pred = best
    model.config.effect_magnitude = chosen
    old = meta.calibration
    new = calibrate(pred, changed, meta.class_names, old.no_change_class)
    new.min_confidence = old.min_confidence
    meta.calibration = new
    save_checkpoint(out, model, meta)
    return Recalibration(old, new, current, chosen, scored)
