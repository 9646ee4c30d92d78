"""Are the frozen features worth having? Linear-probe and k-NN accuracy of the action from embedding
deltas of labelled pairs, for a pretrained backbone and the same architecture at random initialisation.

Features per pair (frozen backbone, no projector): `global` = pooled(after) - pooled(before);
`patch` = mean of the K patch deltas with the largest L2 norm (what the CDE head's Top-K reads).
Train on the split's train+val pairs, score on its test pairs (the manifest's IID split by default).
A third row, `pixels`, needs no network: the global feature is an 8x8-pixel-cell thumbnail of the image
and the patch features are the raw 8x8 patches (both 192-d at 64 px, like `cde_vit_small_p8`). A backbone that does
not beat it has learnt nothing a pixel delta does not already say.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from cde_core.data.manifest import PairRecord, read_manifest
from cde_core.preprocessing import Preprocessing, preprocess_rgb
from cde_core.pretrain.config import ProbeConfig

_LOG = logging.getLogger(__name__)
FEATURE_KINDS = ("global", "patch")
Encoder = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
PIXEL_CELL = 8  # pixels per side of a thumbnail cell and of a raw patch in the `pixels` reference


class ProbeError(ValueError):
    """The labelled pair set cannot be probed (missing split, no test pairs, ...)."""


@dataclass
class ProbeScores:
    linear: float
    knn: float


@dataclass
class ProbeReport:
    split: str
    classes: list[str]
    n_train: int
    n_test: int
    # backbone label ("pretrained", "random_init") -> feature kind -> scores
    scores: dict[str, dict[str, ProbeScores]] = field(default_factory=dict)
    majority_baseline: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def table(self) -> str:
        lines = [f"probe on {self.n_train} train / {self.n_test} test pairs ({self.split}), "
                 f"{len(self.classes)} classes, majority class {self.majority_baseline:.3f}",
                 "backbone       features  linear   k-NN"]
        for label, kinds in self.scores.items():
            for kind, s in kinds.items():
                lines.append(f"{label:<14} {kind:<8}  {s.linear:.3f}   {s.knn:.3f}")
        return "\n".join(lines)


def _load_images(root: Path, rels: Sequence[str], prep: Preprocessing) -> torch.Tensor:
    from PIL import Image

    arrays = []
    for rel in rels:
        with Image.open(root / rel) as image:
            arrays.append(preprocess_rgb(np.asarray(image.convert("RGB")), prep))
    return torch.from_numpy(np.stack(arrays))


@torch.no_grad()
def pair_features(encoder: Encoder, root: Path, records: Sequence[PairRecord], prep: Preprocessing,
                  top_k: int, batch_size: int = 128) -> dict[str, torch.Tensor]:
    """{"global": [P, D], "patch": [P, D]} delta features of the pairs (frozen encoder, fp32)."""
    global_parts, patch_parts = [], []
    for start in range(0, len(records), batch_size):
        chunk = records[start:start + batch_size]
        before = _load_images(root, [r.before for r in chunk], prep)
        after = _load_images(root, [r.after for r in chunk], prep)
        pooled, patches = encoder(torch.cat([before, after]))
        n = len(chunk)
        global_parts.append(pooled[n:] - pooled[:n])
        deltas = patches[n:] - patches[:n]                                   # [n, N, D]
        k = min(top_k, deltas.shape[1])
        index = deltas.norm(dim=-1).topk(k, dim=1).indices                   # [n, k]
        picked = torch.gather(deltas, 1, index.unsqueeze(-1).expand(-1, -1, deltas.shape[-1]))
        patch_parts.append(picked.mean(dim=1))
    return {"global": torch.cat(global_parts).float(), "patch": torch.cat(patch_parts).float()}


def pixel_encoder(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The no-network reference: (thumbnail [B, 3 * (H/8) * (W/8)], raw patches [B, N, 8 * 8 * 3])."""
    from cde_core.pretrain.pixel_loss import patchify

    b, _, h, w = images.shape
    thumbnail = F.adaptive_avg_pool2d(images.float(), (h // PIXEL_CELL, w // PIXEL_CELL)).flatten(1)
    return thumbnail, patchify(images.float(), PIXEL_CELL)


def linear_probe_accuracy(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor,
                          test_y: torch.Tensor, num_classes: int, steps: int = 300,
                          weight_decay: float = 1e-3, seed: int = 0) -> float:
    """Multinomial logistic regression on standardised features (full batch, Adam)."""
    mean, std = train_x.mean(dim=0), train_x.std(dim=0).clamp(min=1e-6)
    xtr, xte = (train_x - mean) / std, (test_x - mean) / std
    generator = torch.Generator().manual_seed(seed)
    weight = (torch.randn(xtr.shape[1], num_classes, generator=generator) * 0.01).requires_grad_()
    bias = torch.zeros(num_classes, requires_grad=True)
    optimizer = torch.optim.Adam([weight, bias], lr=0.01)
    for _ in range(steps):
        optimizer.zero_grad()
        loss = F.cross_entropy(xtr @ weight + bias, train_y) + weight_decay * weight.pow(2).sum()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        return float(((xte @ weight + bias).argmax(dim=1) == test_y).float().mean())


def knn_accuracy(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor,
                 num_classes: int, k: int = 10, temperature: float = 0.07) -> float:
    """Cosine k-NN with similarity-weighted votes (DINO's evaluation)."""
    xtr, xte = F.normalize(train_x, dim=1), F.normalize(test_x, dim=1)
    sims = xte @ xtr.T
    k = min(k, xtr.shape[0])
    top, index = sims.topk(k, dim=1)
    votes = torch.zeros(xte.shape[0], num_classes)
    votes.scatter_add_(1, train_y[index], (top / temperature).exp())
    return float((votes.argmax(dim=1) == test_y).float().mean())


def _split(records: Sequence[PairRecord], split: str) -> tuple[list[PairRecord], list[PairRecord]]:
    train = [r for r in records if r.role(split) in ("train", "val")]
    test = [r for r in records if r.role(split) == "test"]
    if not train or not test:
        raise ProbeError(f"split {split!r} needs train/val and test pairs; has {len(train)} and {len(test)} "
                         "(choose probe.split among the manifest's iid_* splits)")
    return train, test


def probe_encoders(encoders: dict[str, Encoder], manifest: str | Path, prep: Preprocessing,
                   cfg: ProbeConfig, seed: int = 0) -> ProbeReport:
    """Score each named encoder on the same pairs and classifiers."""
    root = Path(manifest)
    train, test = _split(read_manifest(root), cfg.split)
    classes = sorted({r.action for r in train})
    index = {name: i for i, name in enumerate(classes)}
    y_train = torch.tensor([index[r.action] for r in train])
    # A test action never seen in training can only be wrong: label it -1.
    y_test = torch.tensor([index.get(r.action, -1) for r in test])
    majority = float((y_test == torch.bincount(y_train).argmax()).float().mean())
    report = ProbeReport(split=cfg.split, classes=classes, n_train=len(train), n_test=len(test),
                         majority_baseline=majority)
    for label, encoder in encoders.items():
        feats_train = pair_features(encoder, root, train, prep, cfg.top_k, cfg.batch_size)
        feats_test = pair_features(encoder, root, test, prep, cfg.top_k, cfg.batch_size)
        report.scores[label] = {}
        for kind in FEATURE_KINDS:
            linear = linear_probe_accuracy(feats_train[kind], y_train, feats_test[kind], y_test, len(classes),
                                           cfg.linear_steps, cfg.linear_weight_decay, seed)
            knn = knn_accuracy(feats_train[kind], y_train, feats_test[kind], y_test, len(classes), cfg.k)
            report.scores[label][kind] = ProbeScores(linear=linear, knn=knn)
    _LOG.info("%s", report.table())
    return report


def probe_backbone(backbone: str, img_size: int, pretrained_file: str | Path | None, manifest: str | Path,
                   cfg: ProbeConfig, backbone_kwargs: dict[str, Any] | None = None,
                   mean: tuple[float, float, float] | None = None, std: tuple[float, float, float] | None = None,
                   seed: int = 0) -> ProbeReport:
    """Pretrained weights (loaded the way `cde train` loads them) vs the same architecture at random init."""
    from cde_core.models.backbone import Backbone

    prep = Preprocessing(img_size=img_size)
    if mean is not None and std is not None:
        prep = Preprocessing(img_size=img_size, mean=tuple(mean), std=tuple(std))
    kwargs = dict(backbone_kwargs or {})
    encoders: dict[str, Encoder] = {}
    if pretrained_file is not None:
        pretrained = Backbone(backbone, img_size, str(pretrained_file), **kwargs).eval()
        encoders["pretrained"] = pretrained
    torch.manual_seed(seed)
    encoders["random_init"] = Backbone(backbone, img_size, None, **kwargs).eval()
    if img_size % PIXEL_CELL == 0:
        encoders["pixels"] = pixel_encoder
    return probe_encoders(encoders, manifest, prep, cfg, seed)
