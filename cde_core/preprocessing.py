"""Image preprocessing that travels with the weights (as timm's pretrained config does).

Training, the ONNX/TensorRT runtimes and the ROS node all call `preprocess_rgb`, so a model never sees
images prepared differently from how it was trained.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class Preprocessing:
    img_size: int = 224
    mean: tuple[float, float, float] = field(default=IMAGENET_MEAN)
    std: tuple[float, float, float] = field(default=IMAGENET_STD)
    # "none" | "union": whether the model was trained with the robot masked out (cde_core/robot_mask.py);
    # a "union" model needs a robot mask with every frame.
    robot_mask: str = "none"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Preprocessing":
        return cls(img_size=int(data["img_size"]), mean=tuple(data["mean"]), std=tuple(data["std"]),
                   robot_mask=str(data.get("robot_mask", "none")))


def preprocess_rgb(rgb: np.ndarray, prep: Preprocessing) -> np.ndarray:
    """HxWx3 uint8 RGB -> float32 [3, S, S]: bilinear resize to S x S (no crop: the whole camera view
    matters), scale to [0, 1], normalise."""
    from PIL import Image

    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an HxWx3 uint8 RGB image, got shape {rgb.shape} dtype {rgb.dtype}")
    size = prep.img_size
    if rgb.shape[0] != size or rgb.shape[1] != size:
        rgb = np.asarray(Image.fromarray(rgb).resize((size, size), Image.BILINEAR))
    x = rgb.astype(np.float32) / 255.0
    x = (x - np.asarray(prep.mean, np.float32)) / np.asarray(prep.std, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))
