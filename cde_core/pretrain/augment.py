"""DINO's multi-crop augmentation, batched on tensors (one call per crop for the whole batch).

Per image: 2 global crops (img_size, large area) and `local_crops` small crops (local_size, small area);
random-resized crop + horizontal flip through one affine `grid_sample`, then colour jitter (brightness,
contrast, saturation, hue), grayscale, Gaussian blur and solarisation with DINO's per-crop probabilities
(global 1: blur always; global 2: blur 0.1, solarise 0.2; locals: blur 0.5). Batched ops instead of
per-image PIL keep augmentation a few percent of a step on one CPU core; on a GPU the frames are moved
there first and only the random parameters are drawn on the CPU (from the seeded, resumable generator).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from cde_core.pretrain.config import AugmentConfig

# ITU-R BT.601 luma, used for grayscale, saturation and the YIQ hue rotation.
_LUMA = (0.299, 0.587, 0.114)
_RGB_TO_YIQ = ((0.299, 0.587, 0.114), (0.596, -0.274, -0.322), (0.211, -0.523, 0.312))


@dataclass
class MultiCropBatch:
    """Normalised crops: `global_crops` [2, B, 3, G, G], `local_crops` [L, B, 3, l, l] (L may be 0)."""

    global_crops: torch.Tensor
    local_crops: torch.Tensor


def random_resized_crop(images: torch.Tensor, size: int, scale: tuple[float, float], flip: float,
                        generator: torch.Generator) -> torch.Tensor:
    """Crop a random area fraction in `scale` with aspect ratio in [3/4, 4/3], resize to size x size."""
    b = images.shape[0]
    u = torch.rand(b, 5, generator=generator)
    area = scale[0] + (scale[1] - scale[0]) * u[:, 0]
    log_ratio = math.log(3 / 4) + (math.log(4 / 3) - math.log(3 / 4)) * u[:, 1]
    ratio = torch.exp(log_ratio)
    width = torch.sqrt(area * ratio).clamp(max=1.0)   # fractions of the image side
    height = torch.sqrt(area / ratio).clamp(max=1.0)
    cx = (2 * u[:, 2] - 1) * (1 - width)              # centre in [-1, 1] so the crop stays inside
    cy = (2 * u[:, 3] - 1) * (1 - height)
    sign = torch.where(u[:, 4] < flip, -1.0, 1.0)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = width * sign
    theta[:, 0, 2] = cx
    theta[:, 1, 1] = height
    theta[:, 1, 2] = cy
    grid = F.affine_grid(theta.to(images.device), [b, 3, size, size], align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def _grey(x: torch.Tensor) -> torch.Tensor:
    weights = torch.tensor(_LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * weights).sum(dim=1, keepdim=True)


def _chance(b: int, p: float, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    return (torch.rand(b, generator=generator) < p).view(b, 1, 1, 1).to(device)


def _factor(b: int, strength: float, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    return (1 + strength * (2 * torch.rand(b, generator=generator) - 1)).view(b, 1, 1, 1).to(device)


def color_jitter(x: torch.Tensor, cfg: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    """Brightness, contrast, saturation and hue with probability cfg.color_jitter per image; x in [0, 1]."""
    b, device = x.shape[0], x.device
    apply = _chance(b, cfg.color_jitter, generator, device)
    one = torch.ones(b, 1, 1, 1, device=device)
    out = x * torch.where(apply, _factor(b, cfg.brightness, generator, device), one)
    mean = _grey(out).mean(dim=(2, 3), keepdim=True)
    out = (out - mean) * torch.where(apply, _factor(b, cfg.contrast, generator, device), one) + mean
    grey = _grey(out)
    out = (out - grey) * torch.where(apply, _factor(b, cfg.saturation, generator, device), one) + grey
    if cfg.hue > 0:  # rotate chroma (I, Q) in YIQ space by up to hue * 360 degrees
        angle = cfg.hue * 2 * math.pi * (2 * torch.rand(b, generator=generator) - 1)
        angle = torch.where(apply.view(b), angle.to(device), torch.zeros(b, device=device))
        to_yiq = torch.tensor(_RGB_TO_YIQ, dtype=x.dtype, device=device)
        yiq = torch.einsum("ij,bjhw->bihw", to_yiq, out)
        cos, sin = torch.cos(angle).view(b, 1, 1), torch.sin(angle).view(b, 1, 1)
        i, q = yiq[:, 1], yiq[:, 2]
        yiq = torch.stack([yiq[:, 0], cos * i - sin * q, sin * i + cos * q], dim=1)
        out = torch.einsum("ij,bjhw->bihw", torch.linalg.inv(to_yiq), yiq)
    return out.clamp(0, 1)


def gaussian_blur(x: torch.Tensor, p: float, sigma_range: tuple[float, float],
                  generator: torch.Generator) -> torch.Tensor:
    """Per-image sigma (scaled from 224 px to this crop size), applied with probability p."""
    b, c, h, w = x.shape
    apply = _chance(b, p, generator, torch.device("cpu")).view(b)
    scale = h / 224.0
    sigma = (sigma_range[0] + (sigma_range[1] - sigma_range[0]) * torch.rand(b, generator=generator)) * scale
    if not bool(apply.any()) or float(sigma.max()) < 0.2:
        return x
    radius = max(1, int(math.ceil(3 * float(sigma.max()))))
    offsets = torch.arange(-radius, radius + 1, dtype=x.dtype)
    kernel = torch.exp(-offsets.view(1, -1) ** 2 / (2 * sigma.view(-1, 1).clamp(min=1e-3) ** 2))
    kernel = kernel / kernel.sum(dim=1, keepdim=True)
    identity = (offsets == 0).to(x.dtype).expand(b, -1)
    kernel = torch.where(apply.view(b, 1), kernel, identity).repeat_interleave(c, dim=0)  # [B*C, k]
    kernel = kernel.to(x.device)
    flat = x.reshape(1, b * c, h, w)
    flat = F.pad(flat, (radius, radius, radius, radius), mode="reflect")
    flat = F.conv2d(flat, kernel.view(b * c, 1, 1, -1), groups=b * c)
    flat = F.conv2d(flat, kernel.view(b * c, 1, -1, 1), groups=b * c)
    return flat.view(b, c, h, w)


def photometric(x: torch.Tensor, cfg: AugmentConfig, blur_p: float, solarize_p: float,
                generator: torch.Generator) -> torch.Tensor:
    b = x.shape[0]
    x = color_jitter(x, cfg, generator)
    x = torch.where(_chance(b, cfg.grayscale, generator, x.device), _grey(x).expand_as(x), x)
    x = gaussian_blur(x, blur_p, cfg.blur_sigma, generator)
    if solarize_p > 0:
        x = torch.where(_chance(b, solarize_p, generator, x.device), torch.where(x >= 0.5, 1 - x, x), x)
    return x


class MultiCrop:
    """uint8 frames [B, 3, S, S] -> normalised global and local crops."""

    def __init__(self, cfg: AugmentConfig, img_size: int, mean: tuple[float, float, float],
                 std: tuple[float, float, float]) -> None:
        self.cfg = cfg
        self.img_size = img_size
        self.mean = torch.tensor(mean).view(1, 3, 1, 1)
        self.std = torch.tensor(std).view(1, 3, 1, 1)

    def _normalise(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean.to(x.device)) / self.std.to(x.device)

    def __call__(self, frames: torch.Tensor, generator: torch.Generator) -> MultiCropBatch:
        cfg = self.cfg
        images = frames.float() / 255.0
        globals_ = []
        for index, (blur_p, solarize_p) in enumerate(((cfg.blur[0], 0.0), (cfg.blur[1], cfg.solarize))):
            crop = random_resized_crop(images, self.img_size, cfg.global_scale, cfg.flip, generator)
            globals_.append(self._normalise(photometric(crop, cfg, blur_p, solarize_p, generator)))
        locals_ = []
        for _ in range(cfg.local_crops):
            crop = random_resized_crop(images, cfg.local_size, cfg.local_scale, cfg.flip, generator)
            locals_.append(self._normalise(photometric(crop, cfg, cfg.blur[2], 0.0, generator)))
        local_crops = (torch.stack(locals_) if locals_
                       else torch.zeros(0, frames.shape[0], 3, cfg.local_size, cfg.local_size, device=frames.device))
        return MultiCropBatch(global_crops=torch.stack(globals_), local_crops=local_crops)
