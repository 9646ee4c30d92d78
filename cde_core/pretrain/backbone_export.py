"""The pretraining product: the TEACHER backbone's timm state dict as `backbone.safetensors` + its
`backbone.json` (timm name and kwargs, cde backbone name, preprocessing, how it was trained).

The keys are exactly timm's for that architecture, so the file loads wherever real DINO weights load:
`Backbone(name, img_size, pretrained_file=PATH)`, i.e. `cde train ... model.backbone=NAME
model.pretrained_file=PATH`, and `timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=PATH))`.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from torch import nn

BACKBONE_FILE = "backbone.safetensors"
BACKBONE_JSON = "backbone.json"


def export_backbone(out: Path, timm_model: nn.Module, info: dict[str, Any]) -> Path:
    """Write the weights (metadata carries `info` too) and the JSON beside them; returns the weights path."""
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().float().cpu().contiguous().clone() for k, v in timm_model.state_dict().items()}
    path = out / BACKBONE_FILE
    tmp = path.with_suffix(".safetensors.tmp")
    save_file(tensors, str(tmp), metadata={"cde_pretrain": json.dumps(info)})
    os.replace(tmp, path)
    (out / BACKBONE_JSON).write_text(json.dumps(info, indent=1))
    return path


def read_backbone_info(path: str | Path) -> dict[str, Any]:
    """The JSON written with a pretrained backbone (from the .json beside it, else the file's header)."""
    from safetensors import safe_open

    path = Path(path)
    beside = path.with_name(BACKBONE_JSON)
    if beside.is_file():
        return json.loads(beside.read_text())
    with safe_open(str(path), framework="pt") as handle:
        meta = handle.metadata() or {}
    if "cde_pretrain" not in meta:
        raise ValueError(f"{path} carries no cde_pretrain metadata and has no {BACKBONE_JSON} beside it")
    return json.loads(meta["cde_pretrain"])
