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
