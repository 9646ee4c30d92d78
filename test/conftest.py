"""Shared test fixtures. Every ROS test gets its own DDS domain and stays on localhost."""
from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]

# One intra-op thread everywhere (ENVIRONMENT.md: 2 OpenMP threads under load can be 10x slower).
torch.set_num_threads(1)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"


@pytest.fixture
def ros_domain_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A fresh ROS_DOMAIN_ID for this test (set in this process and returned as a child env)."""
    domain = str(random.Random().randint(20, 200))
    monkeypatch.setenv("ROS_DOMAIN_ID", domain)
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def write_tiny_node_model(directory: Path, name: str = "m", onnx: bool = True, robot_mask: str = "none") -> Path:
    """The tiny 3-class CDE model (close / none / open, 32 px, no calibration thresholds) the ROS tests
    load: its checkpoint, and with `onnx` its ONNX export beside it. Returns the file the node loads.
    `robot_mask` "union": a model that takes robot masks (as one trained with data.robot_mask=union)."""
    from cde_core.checkpoint import ModelMeta, save_checkpoint
    from cde_core.export.onnx_export import export_onnx
    from cde_core.models import create_model
    from cde_core.preprocessing import Preprocessing
    from cde_core.verification import Calibration

    torch.manual_seed(0)
    model = create_model("cde", num_classes=3, backbone="cde_vit_test", img_size=32, latent_dim=16)
    meta = ModelMeta(model.config, ["close", "none", "open"], Preprocessing(img_size=32, robot_mask=robot_mask),
                     Calibration(no_effect_magnitude=0.0, min_confidence=0.0))
    checkpoint = save_checkpoint(directory / f"{name}.safetensors", model, meta)
    return export_onnx(checkpoint, directory / f"{name}.onnx").index if onnx else checkpoint
