"""Export a checkpoint to ONNX graphs that carry the checkpoint's metadata (layout: onnx_metadata.py).

Two graphs, encoder and head, because the node embeds the before frame at command start and puts only
the after frame on the critical path; `pair=True` adds a single pair graph for tools that want one.
Opset 17 by default so TensorRT 8.5/8.6 (JetPack 5 / 6.0) can parse it; any opset the legacy
TorchScript exporter supports (17-21 with torch 2.14) may be chosen, and `dynamo=True` uses the
torch.export-based exporter (opset >= 18, needs onnxscript). Each export is validated with
onnx.checker and compared with PyTorch in onnxruntime before it is reported as done.
"""
from __future__ import annotations

import hashlib
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from cde_core import __version__
from cde_core.checkpoint import load_checkpoint
from cde_core.export.onnx_metadata import graph_metadata_props, write_index
from cde_core.models.pair_model import PairModel

_LOG = logging.getLogger(__name__)

HEAD_INPUTS = ["before_global", "before_patches", "after_global", "after_patches"]
HEAD_OUTPUTS = ["logits", "delta_global", "topk_indices", "effect_magnitude"]
# Parity tolerance, fp32 onnxruntime CPU vs PyTorch eager: |onnx - torch| <= ATOL + RTOL * |torch|.
PARITY_ATOL = 1e-4
PARITY_RTOL = 1e-3


class EncoderGraph(nn.Module):
    """image -> (global, patches): PairModel.encode as a module the exporter can trace."""

    def __init__(self, model: PairModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.encode(image)


class HeadGraph(nn.Module):
    """Two embeddings -> the PairOutput tensors, as a flat tuple (graph outputs)."""

    def __init__(self, model: PairModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, before_global: torch.Tensor, before_patches: torch.Tensor, after_global: torch.Tensor,
                after_patches: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(self.model.head(before_global, before_patches, after_global, after_patches))


class PairGraph(nn.Module):
    """Two images -> the PairOutput tensors (PairModel.forward)."""

    def __init__(self, model: PairModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, before: torch.Tensor, after: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(self.model(before, after))


@dataclass
class ExportResult:
    index: Path
    encoder: Path
    head: Path
    pair: Path | None
    opset: int
    max_abs_diff: float  # worst |onnxruntime - torch| over all compared outputs


class ExportError(RuntimeError):
    """The exported graphs are invalid or do not match PyTorch."""


def graph_paths(out: str | Path) -> tuple[Path, Path, Path, Path]:
    """(index, encoder, head, pair) paths for an --out argument given with or without `.onnx`."""
    out = Path(out)
    stem = out.with_suffix("") if out.suffix == ".onnx" else out
    return (Path(f"{stem}.onnx"), Path(f"{stem}.encoder.onnx"), Path(f"{stem}.head.onnx"),
            Path(f"{stem}.pair.onnx"))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _export_graph(module: nn.Module, inputs: tuple[torch.Tensor, ...], path: Path, input_names: list[str],
                  output_names: list[str], opset: int, dynamo: bool) -> None:
    dynamic = {name: {0: "batch"} for name in input_names + output_names}
    if dynamo:
        try:
            import onnxscript  # noqa: F401  (the dynamo exporter needs it; fail before tracing)
        except ImportError as exc:
            raise ExportError("the dynamo exporter needs `pip install onnxscript`; or leave dynamo off") from exc
    with warnings.catch_warnings():
        # The legacy exporter warns that it is legacy, and the tracer that K = min(k, N) becomes a
        # constant: both expected (K is fixed per model; TensorRT needs a constant K).
        warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
        warnings.simplefilter("ignore", category=DeprecationWarning)
        torch.onnx.export(module, inputs, str(path), opset_version=opset, dynamo=dynamo,
                          input_names=input_names, output_names=output_names, dynamic_axes=dynamic,
                          external_data=False)


def _attach_metadata(path: Path, props: dict[str, str], opset: int) -> None:
    """Add metadata_props, check the graph, and confirm the opset is the one asked for."""
    import onnx

    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    for key, value in props.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name, proto.producer_version = "cde", __version__
    onnx.checker.check_model(proto, full_check=True)
    found = max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
    if found != opset:
        raise ExportError(f"{path}: asked for opset {opset} but the exporter wrote {found}")
    onnx.save(proto, str(path))


def ensure_onnx_export(checkpoint: str | Path, out_dir: str | Path) -> Path:
    """The ONNX index of `checkpoint` in `out_dir`, exported only when missing or older than the checkpoint
    (the demo and the benchmarks run an exported model, as a robot does)."""
    checkpoint = Path(checkpoint)
    index = Path(out_dir) / f"{checkpoint.stem}.onnx"
    if not index.exists() or index.stat().st_mtime < checkpoint.stat().st_mtime:
        export_onnx(checkpoint, index)
    return index


def export_onnx(checkpoint: str | Path, out: str | Path, opset: int = 17, pair: bool = False,
                check: bool = True, dynamo: bool = False) -> ExportResult:
    """Export encoder + head (+ pair) graphs with metadata; validate; compare with PyTorch (batch 1 and 3)."""
    model, meta = load_checkpoint(checkpoint)
    index_path, encoder_path, head_path, pair_path = graph_paths(out)
    index_path.parent.mkdir(parents=True, exist_ok=True)
    export_id = _sha256(Path(checkpoint))[:16]  # ties the graphs of one export together
    size = meta.preprocessing.img_size
    if size != model.config.img_size:
        raise ExportError(f"{checkpoint}: preprocessing img_size {size} != model img_size {model.config.img_size}")
    images = torch.randn(2, 3, size, size)
    with torch.no_grad():
        glob, patches = model.encode(images)
    jobs = [("encoder", EncoderGraph(model), (images,), encoder_path, ["image"],
             ["global", "patches"]),
            ("head", HeadGraph(model), (glob, patches, glob.flip(0), patches.flip(0)), head_path, HEAD_INPUTS,
             HEAD_OUTPUTS)]
    if pair:
        jobs.append(("pair", PairGraph(model), (images, images.flip(0)), pair_path, ["before", "after"],
                     HEAD_OUTPUTS))
    for role, module, inputs, path, input_names, output_names in jobs:
        _export_graph(module, inputs, path, input_names, output_names, opset, dynamo)
        props = graph_metadata_props(meta, role, model.grid_size, model.top_k, export_id, __version__)
        _attach_metadata(path, props, opset)
    write_index(index_path, encoder_path, head_path, pair_path if pair else None, opset, export_id, __version__)
    diff = parity_check(model, encoder_path, head_path, size, pair_path if pair else None) if check else float("nan")
    _LOG.info("exported %s (%s) at opset %d; max |onnxruntime - torch| = %.2e", index_path,
              ", ".join(p.name for _, _, _, p, _, _ in jobs), opset, diff)
    return ExportResult(index_path, encoder_path, head_path, pair_path if pair else None, opset, diff)


def topk_sets_agree(onnx_indices: np.ndarray, torch_indices: np.ndarray, patch_norms: np.ndarray,
                    tolerance: float = PARITY_ATOL) -> bool:
    """Same Top-K patch set per row, order ignored; a swap is allowed only between patches whose delta
    norms tie with the K-th largest within `tolerance` (rounding may order exact ties either way)."""
    for row_onnx, row_torch, norms in zip(onnx_indices, torch_indices, patch_norms):
        differ = set(row_onnx.tolist()) ^ set(row_torch.tolist())
        if not differ:
            continue
        kth = np.sort(norms)[::-1][len(row_torch) - 1]
        if any(abs(norms[i] - kth) > tolerance for i in differ):
            return False
    return True


def _close(name: str, got: np.ndarray, ref: np.ndarray) -> float:
    diff = np.abs(got.astype(np.float64) - ref.astype(np.float64))
    if got.shape != ref.shape or np.any(diff > PARITY_ATOL + PARITY_RTOL * np.abs(ref)):
        worst = float(diff.max()) if got.shape == ref.shape else float("inf")
        raise ExportError(f"ONNX output {name} differs from PyTorch (max {worst:.2e}, shapes {got.shape} vs "
                          f"{ref.shape}); tolerance {PARITY_ATOL:g} + {PARITY_RTOL:g}*|ref|")
    return float(diff.max()) if diff.size else 0.0


def parity_check(model: PairModel, encoder_path: Path, head_path: Path, size: int, pair_path: Path | None = None,
                 batches: tuple[int, ...] = (1, 3), seed: int = 0) -> float:
    """Run the graphs in onnxruntime (CPU) on random pairs at each batch size and compare every output
    with PyTorch; Top-K compared as index sets. Returns the worst abs difference, raises ExportError."""
    import onnxruntime as ort

    cpu = ["CPUExecutionProvider"]
    enc = ort.InferenceSession(str(encoder_path), providers=cpu)
    head = ort.InferenceSession(str(head_path), providers=cpu)
    pair = ort.InferenceSession(str(pair_path), providers=cpu) if pair_path else None
    generator = torch.Generator().manual_seed(seed)
    worst = 0.0
    for batch in batches:
        before = torch.randn(batch, 3, size, size, generator=generator)
        after = torch.randn(batch, 3, size, size, generator=generator)
        with torch.no_grad():
            bg_ref, bp_ref = model.encode(before)
            ag_ref, ap_ref = model.encode(after)
            ref = model.head(bg_ref, bp_ref, ag_ref, ap_ref)
            norms = (ap_ref - bp_ref).norm(dim=-1).numpy()
        bg, bp = enc.run(None, {"image": before.numpy()})
        ag, ap = enc.run(None, {"image": after.numpy()})
        worst = max(worst, _close("global", bg, bg_ref.numpy()), _close("patches", ap, ap_ref.numpy()))
        candidates = [("head", head.run(None, dict(zip(HEAD_INPUTS, (bg, bp, ag, ap)))))]
        if pair is not None:
            candidates.append(("pair", pair.run(None, {"before": before.numpy(), "after": after.numpy()})))
        for graph, (logits, delta, topk, magnitude) in candidates:
            worst = max(worst, _close(f"{graph}.logits", logits, ref.logits.numpy()),
                        _close(f"{graph}.delta_global", delta, ref.delta_global.numpy()),
                        _close(f"{graph}.effect_magnitude", magnitude, ref.effect_magnitude.numpy()))
            if topk.dtype != np.int64 or not topk_sets_agree(topk, ref.topk_indices.numpy(), norms):
                raise ExportError(f"{graph}: Top-K patch sets differ from PyTorch (batch {batch}): "
                                  f"{topk.tolist()} vs {ref.topk_indices.tolist()}")
    return worst
