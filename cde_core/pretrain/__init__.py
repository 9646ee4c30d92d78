"""Self-supervised pretraining of the backbone on unlabelled frames (`cde pretrain`): time-contrastive InfoNCE
(the default), DINO self-distillation, iBOT masked patch tokens, SimMIM; and the probe that shows whether
the features are worth having."""
from cde_core.pretrain.backbone_export import BACKBONE_FILE, BACKBONE_JSON, export_backbone, read_backbone_info
from cde_core.pretrain.config import PretrainConfig, PretrainConfigError, load_pretrain_config
from cde_core.pretrain.probe import ProbeReport, probe_backbone
from cde_core.pretrain.trainer import PretrainError, PretrainResult, pretrain

__all__ = ["BACKBONE_FILE", "BACKBONE_JSON", "PretrainConfig", "PretrainConfigError", "PretrainError",
           "PretrainResult", "ProbeReport", "export_backbone", "load_pretrain_config", "pretrain", "probe_backbone",
           "read_backbone_info"]
