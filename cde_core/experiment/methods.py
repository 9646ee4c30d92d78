"""The methods an experiment compares, as overrides of one base training configuration.

The ablations follow the paper: full (CE + SupCon + L1), without L1, without SupCon, CE only. The
loss weights of `cde*` come from the base configuration (demo_metaworld.yaml: 0.5 / 0.01, because the
paper's weights stalled learning in the from-scratch pilot); `cde_paper` uses the paper's 2.0 / 1.0;
`cde_norm` is the full model whose classifier also reads the delta's norm (ModelConfig.norm_feature).
"""
from __future__ import annotations

METHODS: dict[str, list[str]] = {
    "before_only": ["model.name=before_only", "loss.contrast=0", "loss.sparsity=0"],
    "vanilla": ["model.name=vanilla", "loss.contrast=0", "loss.sparsity=0"],
    "icm": ["model.name=icm", "loss.contrast=0", "loss.sparsity=0", "loss.icm=0.1"],
    "sms": ["model.name=sms", "loss.contrast=0", "loss.sparsity=0", "loss.sms=0.05"],
    "cde_global": ["model.name=cde_global"],
    "cde_patch": ["model.name=cde_patch"],
    "cde": ["model.name=cde"],
    "cde_ce_only": ["model.name=cde", "loss.contrast=0", "loss.sparsity=0"],
    "cde_no_supcon": ["model.name=cde", "loss.contrast=0"],
    "cde_no_l1": ["model.name=cde", "loss.sparsity=0"],
    "cde_paper": ["model.name=cde", "loss.contrast=2.0", "loss.sparsity=1.0"],
    "cde_norm": ["model.name=cde", "model.norm_feature=true"],
}
