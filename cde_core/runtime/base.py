"""The one interface every inference backend offers the node: embed a frame, compare two embeddings."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from cde_core.preprocessing import Preprocessing
from cde_core.verification import Calibration


class ModelLoadError(RuntimeError):
    """A model could not be loaded or run by a runtime (message says which file and what to do)."""




@dataclass
class Embedding:
    """phi(frame): projected pooled token [L] and patch tokens [N, L], as float32 numpy."""

    global_: np.ndarray
    patches: np.ndarray


@dataclass
class PairResult:
    class_names: list[str]
    scores: np.ndarray  # softmax probabilities [C]
    effect_magnitude: float
    changed_patches: np.ndarray  # [K] row-major patch indices
    grid_size: tuple[int, int]

    @property
    def action(self) -> str:
        return self.class_names[int(np.argmax(self.scores))]

    @property
    def confidence(self) -> float:
        return float(np.max(self.scores))


@dataclass
class RuntimeMetadata:
    class_names: list[str]
    preprocessing: Preprocessing
    calibration: Calibration
    grid_size: tuple[int, int]
    top_k: int
    backend: str
    precision: str = "fp32"
    providers: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


class Runtime(Protocol):
    metadata: RuntimeMetadata

    def embed(self, rgb: np.ndarray) -> Embedding: ...

    def compare(self, before: Embedding, after: Embedding) -> PairResult: ...


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64) - np.max(logits)
    e = np.exp(z)
    return (e / e.sum()).astype(np.float32)
