"""PyTorch backend: runs a safetensors checkpoint directly (eager, optional bf16 autocast on CPU)."""
from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import numpy as np
import torch

from cde_core.checkpoint import load_checkpoint
from cde_core.preprocessing import preprocess_rgb
from cde_core.runtime.base import Embedding, PairResult, RuntimeMetadata, softmax

_LOG = logging.getLogger(__name__)


class TorchRuntime:
    def __init__(self, path: str | Path, precision: str = "fp32", device: str = "cpu") -> None:
        if precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be fp32 or bf16, got {precision!r}")
        self.model, meta = load_checkpoint(path, map_location=device)
        self.device = torch.device(device)
        self.precision = precision
        self.metadata = RuntimeMetadata(
            class_names=meta.class_names, preprocessing=meta.preprocessing, calibration=meta.calibration,
            grid_size=self.model.grid_size, top_k=self.model.top_k, backend="torch", precision=precision,
            providers=[device])
        _LOG.info("torch runtime: %s on %s (%s)", Path(path).name, device, precision)

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    @torch.inference_mode()
    def embed(self, rgb: np.ndarray) -> Embedding:
        x = torch.from_numpy(preprocess_rgb(rgb, self.metadata.preprocessing)).unsqueeze(0).to(self.device)
        with self._autocast():
            glob, patches = self.model.encode(x)
        return Embedding(glob[0].float().cpu().numpy(), patches[0].float().cpu().numpy())

    @torch.inference_mode()
    def compare(self, before: Embedding, after: Embedding) -> PairResult:
        def t(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(a)).unsqueeze(0).to(self.device)

        out = self.model.head(t(before.global_), t(before.patches), t(after.global_), t(after.patches))
        return PairResult(self.metadata.class_names, softmax(out.logits[0].float().cpu().numpy()),
                          float(out.effect_magnitude[0]), out.topk_indices[0].cpu().numpy(),
                          self.metadata.grid_size)
