"""Pair models: backbone + causal projector + a head that compares two embeddings."""
from cde_core.models.config import ModelConfig
from cde_core.models.pair_model import PairModel, PairOutput, topk_changed_patches
from cde_core.models.registry import create_model, list_models, model_from_config, register_model

__all__ = ["ModelConfig", "PairModel", "PairOutput", "create_model", "list_models", "model_from_config",
           "register_model", "topk_changed_patches"]
