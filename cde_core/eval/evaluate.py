"""Evaluate a checkpoint on every role of a split of a manifest: metrics JSON + confusion PNGs."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cde_core.checkpoint import ModelMeta, load_checkpoint
from cde_core.data.manifest import ROLES, PairRecord, read_manifest
from cde_core.data.pair_dataset import PairDataset, usable_records
from cde_core.eval.metrics import classification_report
from cde_core.eval.plots import plot_confusion
from cde_core.eval.predict import Predictions, predict
from cde_core.eval.verification_metrics import Outcome, verification_figures
from cde_core.models import PairModel
from cde_core.verification import Calibration, verify_effect


ALL = "all"


def verification_report(pred: Predictions, records: list[PairRecord], class_names: list[str],
                        calibration: Calibration) -> dict[str, Any]:
    """The live demo's figures on pairs: each pair verified as its command (`commanded_action`, else its own
    action) with the model's calibration, the rule the node applies."""
    outcomes = []
    for i, record in enumerate(records):
        commanded = record.commanded_action or record.action
        verdict = verify_effect(commanded, class_names, pred.probs[i], float(pred.magnitudes[i]), calibration)
        p_none = (float(pred.probs[i][class_names.index(calibration.no_change_class)])
                  if calibration.no_change_class in class_names else None)
        outcomes.append(Outcome(commanded, record.action, record.effect_happened, verdict.verdict.name.lower(),
                                class_names[int(pred.preds[i])], float(pred.magnitudes[i]), p_none))
    return verification_figures(outcomes)


def require_known_actions(records: list[PairRecord], class_names: list[str]) -> None:
    """A model can only be scored (or calibrated) on actions it has classes for."""
    unknown = sorted({r.action for r in records} - set(class_names))
    if unknown:
        raise ValueError(f"the data has actions {unknown} the model does not know ({class_names})")


def predict_pairs(model: PairModel, meta: ModelMeta, data: str | Path, records: list[PairRecord],
                  objects: list[str], precision: str) -> Predictions:
    """The model's outputs on these pairs, preprocessed as the checkpoint says (robot masks included)."""
    dataset = PairDataset(data, records, meta.class_names, objects, meta.preprocessing, grid=model.grid_size)
    return predict(model, dataset, precision=precision)


def evaluate_checkpoint(checkpoint: str | Path, data: str | Path, split: str, out: str | Path,
                        precision: str = "fp32") -> dict[str, Any]:
    """Metrics per role (train/val/test/ood) of `split` -> `out/eval_<split>.json` + a confusion PNG per role.
    `split="all"`: one role, "all", with every pair (a held-out set, e.g. episodes the model never saw)."""
    model, meta = load_checkpoint(checkpoint)
    records = read_manifest(data)
    require_known_actions(records, meta.class_names)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    objects = meta.objects or sorted({r.object for r in records})
    report: dict[str, Any] = {"checkpoint": str(checkpoint), "data": str(data), "split": split,
                              "model": meta.model.name, "class_names": meta.class_names,
                              "calibration": meta.calibration.to_dict()}
    roles = ("all",) if split == ALL else ROLES
    for role in roles:
        subset = records if split == ALL else [r for r in records if r.role(split) == role]
        subset, left = usable_records(data, subset, meta.preprocessing)
        if not subset:
            continue
        pred = predict_pairs(model, meta, data, subset, objects, precision)
        report[role] = classification_report(pred.labels, pred.preds, meta.class_names, [r.cell for r in subset])
        report[role]["verification"] = verification_report(pred, subset, meta.class_names, meta.calibration)
        report[role]["left_out_mostly_masked"] = left
        plot_confusion(report[role]["confusion_matrix"], meta.class_names, f"{split} {role}",
                       out / f"confusion_{split}_{role}.png")
    if not any(role in report for role in roles):
        raise ValueError(f"split {split!r} has no pairs in {data}")
    (out / f"eval_{split}.json").write_text(json.dumps(report, indent=2))
    return report
