"""Inference runtimes behind one interface (see base.Runtime)."""
from cde_core.runtime.base import Embedding, PairResult, Runtime, RuntimeMetadata
from cde_core.runtime.loader import BACKENDS, load_runtime, resolve_backend

__all__ = ["BACKENDS", "Embedding", "PairResult", "Runtime", "RuntimeMetadata", "load_runtime", "resolve_backend"]
