"""Export a checkpoint to two ONNX graphs that carry the checkpoint's metadata.

Layout: `<out>.encoder.onnx` (image [B,3,S,S] -> global [B,L], patches [B,N,L]) and `<out>.head.onnx`
(before/after global and patches -> logits, delta_global, topk_indices, effect_magnitude), plus
`<out>.onnx`, a small JSON index naming both (what users pass around and the node loads). Two graphs,
because the node embeds the before frame at command start and only the after frame at the end.
Opset 17 by default so TensorRT 8.5/8.6 (JetPack 5 / 6.0) can parse it.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from cde_core import __version__
from cde_core.checkpoint import ModelMeta, load_checkpoint

_LOG = logging.getLogger(__name__)
INDEX_FORMAT = "cde-onnx-pair/1"


class _Encoder(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.encode(image)


class _Head(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, bg: torch.Tensor, bp: torch.Tensor, ag: torch.Tensor, ap: torch.Tensor):
        out = self.model.head(bg, bp, ag, ap)
        return out.logits, out.delta_global, out.topk_indices, out.effect_magnitude


@dataclass
class ExportResult:
    index: Path
    encoder: Path
    head: Path
    max_abs_diff: float


def onnx_metadata(meta: ModelMeta, grid_size: tuple[int, int], top_k: int) -> dict[str, str]:
    return {"cde": meta.to_json(), "cde_grid_size": json.dumps(list(grid_size)), "cde_top_k": str(top_k),
            "cde_version": __version__}


def export_onnx(checkpoint: str | Path, out: str | Path, opset: int = 17, check: bool = True) -> ExportResult:
    """Export, validate with onnx.checker, and compare with PyTorch in onnxruntime (batch 1 and 2)."""
    import onnx

    model, meta = load_checkpoint(checkpoint)
    out = Path(out)
    stem = out.with_suffix("") if out.suffix == ".onnx" else out
    stem.parent.mkdir(parents=True, exist_ok=True)
    encoder_path, head_path = Path(f"{stem}.encoder.onnx"), Path(f"{stem}.head.onnx")
    size = meta.preprocessing.img_size
    image = torch.randn(2, 3, size, size)
    with torch.no_grad():
        glob, patches = model.encode(image)
    torch.onnx.export(_Encoder(model), (image,), str(encoder_path), opset_version=opset, dynamo=False,
                      input_names=["image"], output_names=["global", "patches"],
                      dynamic_axes={"image": {0: "batch"}, "global": {0: "batch"}, "patches": {0: "batch"}})
    head_inputs = (glob, patches, glob.flip(0), patches.flip(0))
    torch.onnx.export(_Head(model), head_inputs, str(head_path), opset_version=opset, dynamo=False,
                      input_names=["before_global", "before_patches", "after_global", "after_patches"],
                      output_names=["logits", "delta_global", "topk_indices", "effect_magnitude"],
                      dynamic_axes={name: {0: "batch"} for name in
                                    ["before_global", "before_patches", "after_global", "after_patches",
                                     "logits", "delta_global", "topk_indices", "effect_magnitude"]})
    props = onnx_metadata(meta, model.grid_size, model.top_k)
    for path in (encoder_path, head_path):
        proto = onnx.load(str(path))
        for key, value in props.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        proto.producer_name = "cde"
        onnx.checker.check_model(proto)
        onnx.save(proto, str(path))
    index = Path(f"{stem}.onnx")
    index.write_text(json.dumps({"format": INDEX_FORMAT, "encoder": encoder_path.name, "head": head_path.name,
                                 "opset": opset, "cde_version": __version__}, indent=2))
    diff = parity_check(model, encoder_path, head_path, size) if check else float("nan")
    _LOG.info("exported %s (encoder %s, head %s), max |onnx - torch| = %.2e", index, encoder_path.name,
              head_path.name, diff)
    return ExportResult(index, encoder_path, head_path, diff)


def parity_check(model: nn.Module, encoder_path: Path, head_path: Path, size: int, tolerance: float = 1e-3) -> float:
    """Max abs difference of logits between onnxruntime and PyTorch on random pairs (batch 1 and 2);
    also requires the same Top-K index sets. Raises if the export is wrong."""
    import onnxruntime as ort

    enc = ort.InferenceSession(str(encoder_path), providers=["CPUExecutionProvider"])
    head = ort.InferenceSession(str(head_path), providers=["CPUExecutionProvider"])
    worst = 0.0
    for batch in (1, 2):
        before, after = torch.randn(batch, 3, size, size), torch.randn(batch, 3, size, size)
        with torch.no_grad():
            ref = model(before, after)
        bg, bp = enc.run(None, {"image": before.numpy()})
        ag, ap = enc.run(None, {"image": after.numpy()})
        logits, _, topk, _ = head.run(None, {"before_global": bg, "before_patches": bp,
                                             "after_global": ag, "after_patches": ap})
        worst = max(worst, float(np.abs(logits - ref.logits.numpy()).max()))
        for row_onnx, row_ref in zip(topk, ref.topk_indices.numpy()):
            if set(row_onnx.tolist()) != set(row_ref.tolist()):
                raise AssertionError(f"Top-K sets differ: onnx {row_onnx} vs torch {row_ref}")
    if worst > tolerance:
        raise AssertionError(f"ONNX logits differ from PyTorch by {worst:.2e} > {tolerance:.0e}")
    return worst
