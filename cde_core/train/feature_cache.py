"""Frozen-backbone training on cached tokens: the backbone sees every image once, not once per epoch.

With `model.freeze_backbone` the backbone's output for an image never changes during training: its weights
get no gradient, it runs in eval mode (fixed normalisation statistics, no dropout or drop-path; the trainer
keeps it there on the uncached path too) and the trainer applies no image augmentation. So its tokens (the
pooled token and the patch tokens, what `PairModel.encode` hands the projector) are computed once per image
of each pair, after the dataset's robot-mask fill and normalisation, and the projector and heads train on
them.

The cut point is the `backbone` submodule itself: `backbone_replaced(model)` swaps in `CachedTokens`, which
unpacks cached tokens where the backbone would have encoded pixels, and `TokenPairDataset` yields the same
5-tuple as PairDataset with tokens in place of images. So `forward_train`, `forward`, `predict`, the samplers
and the criterion all run unchanged; the real backbone is put back before the checkpoint is written, which
therefore holds the full model, frozen backbone weights included.

A future image augmentation would make the backbone input differ per epoch: `feature_cache_plan` is the one
place that must then refuse the cache.
"""
from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from cde_core.models import PairModel
from cde_core.models.backbone import Backbone
from cde_core.train.precision import autocast_context

_LOG = logging.getLogger(__name__)


def feature_cache_plan(freeze_backbone: bool, feature_cache: bool) -> tuple[bool, str]:
    """(use the cache?, why) for a run; the reason is logged so a slow frozen run says what it is doing."""
    if not freeze_backbone:
        return False, "the backbone trains (model.freeze_backbone=false): its tokens change every step"
    if not feature_cache:
        return False, ("data.feature_cache=false: the frozen backbone re-encodes every image at every step "
                       "and every evaluation")
    return True, ("frozen backbone and no image augmentation: each image is encoded once and the projector "
                  "and heads train on the cached tokens")


class CachedTokens(nn.Module):
    """Stands in for the Backbone when its outputs are precomputed: `forward(tokens [B, 1+N, D])` returns
    (pooled [B, D], patches [B, N, D]), the Backbone's outputs, and keeps the attributes PairModel reads."""

    def __init__(self, backbone: Backbone) -> None:
        super().__init__()
        self.embed_dim = backbone.embed_dim
        self.num_patches = backbone.num_patches
        self.grid_size = backbone.grid_size

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if tokens.ndim != 3 or tokens.shape[1] != 1 + self.num_patches or tokens.shape[2] != self.embed_dim:
            raise ValueError(f"cached tokens must be [B, {1 + self.num_patches}, {self.embed_dim}], got "
                             f"{list(tokens.shape)}: is the model's backbone still replaced by its cache?")
        return tokens[:, 0], tokens[:, 1:]


@contextlib.contextmanager
def backbone_replaced(model: PairModel) -> Iterator[None]:
    """Inside the block the model reads cached tokens (TokenPairDataset items) instead of images; its
    state_dict then lacks the backbone, so save or load full checkpoints only outside."""
    backbone = model.backbone
    if not isinstance(backbone, Backbone):
        raise TypeError(f"model.backbone is {type(backbone).__name__}, not a Backbone: already replaced?")
    model.backbone = CachedTokens(backbone)
    try:
        yield
    finally:
        model.backbone = backbone


class TokenPairDataset(Dataset):
    """Items: (before tokens [1+N, D], after tokens [1+N, D], action index, object index, patch_valid [N]),
    PairDataset's 5-tuple with the backbone's tokens (pooled first) in place of the images."""

    def __init__(self, before: torch.Tensor, after: torch.Tensor, labels: torch.Tensor, objects: torch.Tensor,
                 patch_valid: torch.Tensor) -> None:
        count = before.shape[0]
        if not all(t.shape[0] == count for t in (after, labels, objects, patch_valid)):
            raise ValueError("cached before/after tokens, labels, objects and patch_valid differ in length")
        self.before, self.after = before, after
        self.label_tensor, self.objects, self.patch_valid = labels, objects, patch_valid

    def __len__(self) -> int:
        return int(self.before.shape[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int, int, torch.Tensor]:
        return (self.before[index], self.after[index], int(self.label_tensor[index]), int(self.objects[index]),
                self.patch_valid[index])

    def labels(self) -> list[int]:
        return self.label_tensor.tolist()

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.before, self.after, self.patch_valid))


@torch.no_grad()  # not inference_mode: the projector trains on these tensors, autograd must accept them
def encode_pairs(backbone: Backbone, dataset: Dataset, precision: str, device: torch.device,
                 batch_size: int = 64) -> TokenPairDataset:
    """Every pair of `dataset` (PairDataset items: masked, normalised images) through the backbone once, in
    eval mode and the training precision, before and after images in one batch as `forward_train` does."""
    was_training = backbone.training
    backbone.eval()
    parts: dict[str, list[torch.Tensor]] = {k: [] for k in ("before", "after", "labels", "objects", "valid")}
    try:
        for before, after, labels, objects, patch_valid in DataLoader(dataset, batch_size=batch_size,
                                                                      shuffle=False):
            batch = before.shape[0]
            with autocast_context(precision, device):
                pooled, patches = backbone(torch.cat([before, after], dim=0).to(device))
            tokens = torch.cat([pooled.unsqueeze(1), patches], dim=1).cpu()
            parts["before"].append(tokens[:batch])
            parts["after"].append(tokens[batch:])
            parts["labels"].append(labels)
            parts["objects"].append(objects)
            parts["valid"].append(patch_valid)
    finally:
        backbone.train(was_training)
    if not parts["before"]:
        empty = torch.zeros(0, 1 + backbone.num_patches, backbone.embed_dim)
        return TokenPairDataset(empty, empty.clone(), torch.zeros(0, dtype=torch.long),
                                torch.zeros(0, dtype=torch.long), torch.zeros(0, backbone.num_patches))
    return TokenPairDataset(torch.cat(parts["before"]), torch.cat(parts["after"]), torch.cat(parts["labels"]),
                            torch.cat(parts["objects"]), torch.cat(parts["valid"]))


def encode_roles(backbone: Backbone, datasets: dict[str, Dataset], precision: str, device: torch.device,
                 batch_size: int = 64) -> dict[str, TokenPairDataset]:
    """The token cache of every role, with one log line of its size and the time it took."""
    start = time.perf_counter()
    cached = {role: encode_pairs(backbone, ds, precision, device, batch_size) for role, ds in datasets.items()}
    pairs = sum(len(ds) for ds in cached.values())
    _LOG.info("feature cache: %d pairs (%d images) encoded once in %.1f s, %.1f MB of tokens", pairs, 2 * pairs,
              time.perf_counter() - start, sum(ds.nbytes for ds in cached.values()) / 1e6)
    return cached
