"""The training loop: one split of a pair manifest in, the IID-best checkpoint and its metrics out.

Checkpoints are selected on IID validation accuracy only, never on an OOD split (Causal Triplet's
released analysis picks the epoch with the best OOD test accuracy; we do not). The checkpoint carries
class names, preprocessing, objects, the resolved config and a no-effect calibration from validation.
A frozen backbone runs in eval mode and, by default, once per image (feature_cache.py); `precision: auto`
is resolved by a matmul probe before training (precision.py) and metrics.json records the pick.
"""
from __future__ import annotations

import contextlib
import copy
import json
import logging
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler
from torch.utils.data.distributed import DistributedSampler

from cde_core.checkpoint import ModelMeta, save_checkpoint
from cde_core.data.manifest import NO_CHANGE, ROLES, PairRecord, read_manifest
from cde_core.data.pair_dataset import ClassBalancedSampler, PairDataset, usable_records, vocabulary
from cde_core.eval.metrics import classification_report
from cde_core.eval.plots import plot_confusion, plot_curves
from cde_core.eval.predict import Predictions, predict
from cde_core.losses import LossWeights, PairCriterion
from cde_core.losses.aux_schedule import aux_weights_at
from cde_core.models import PairModel, model_from_config
from cde_core.preprocessing import Preprocessing
from cde_core.train import distributed
from cde_core.train.config import TrainConfig, save_config
from cde_core.train.feature_cache import (
    backbone_replaced,
    encode_roles,
    feature_cache_plan,
)
from cde_core.train.precision import autocast_context, resolve_precision
from cde_core.verification import calibrate

_LOG = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What a run produced: the checkpoint, the IID-val-selected epoch and the metrics per role."""

    checkpoint: Path
    best_epoch: int
    metrics: dict[str, Any]
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0


class _TrainStep(nn.Module):
    """DDP wraps `forward`; route it to forward_train so gradient sync sees the training graph."""

    def __init__(self, model: PairModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, before: torch.Tensor, after: torch.Tensor, patch_valid: torch.Tensor) -> dict[str, Any]:
        return self.model.forward_train(before, after, patch_valid)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def action_blocks(class_names: list[str], records: list[PairRecord]) -> list[int]:
    """Latent block per class for SMS: an action and its antonym (manifest `antonym`) share one block."""
    antonym = {r.action: r.antonym for r in records if r.antonym}
    block: dict[str, int] = {}
    next_block = 0
    for name in class_names:
        if name in block:
            continue
        block[name] = next_block
        if antonym.get(name) in class_names and antonym[name] not in block:
            block[antonym[name]] = next_block
        next_block += 1
    return [block[n] for n in class_names]


def lr_factor(step: int, total: int, warmup: int, schedule: str) -> float:
    """Linear warmup, then cosine / linear decay to 0 or constant."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    if schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * progress))
    if schedule == "linear":
        return 1.0 - progress
    if schedule == "constant":
        return 1.0
    raise ValueError(f"unknown schedule {schedule!r}")


def _report(pred: Predictions, records: list[PairRecord], class_names: list[str]) -> dict[str, Any]:
    return classification_report(pred.labels, pred.preds, class_names, [r.cell for r in records])


class Trainer:
    """Builds data, model and optimizer from a TrainConfig; `fit()` trains and writes the run directory."""

    def __init__(self, config: TrainConfig) -> None:
        self.config = config
        self.device = distributed.resolve_device(config.device)
        self.rank, self.world = distributed.init_distributed(self.device)
        torch.set_num_threads(max(1, config.threads))
        seed_everything(config.seed)
        root = Path(config.data.root)
        if not config.data.root:
            raise ValueError("data.root is empty: give the dataset directory, e.g. `cde train CONFIG data.root=DIR`")
        self.records = read_manifest(root)
        split = config.data.split
        self.roles: dict[str, list[PairRecord]] = {role: [r for r in self.records if r.role(split) == role]
                                                   for role in ROLES}
        # With robot masks, pairs the robot covers almost entirely are left out (listed in metrics.json).
        self.preprocessing = Preprocessing(img_size=config.model.img_size, robot_mask=config.data.robot_mask)
        self.left_out: dict[str, dict[str, float]] = {}  # role -> {pair id: robot coverage}
        for role, recs in self.roles.items():
            self.roles[role], left = usable_records(root, recs, self.preprocessing)
            if left:
                self.left_out[role] = left
        if not self.roles["train"] or not self.roles["val"]:
            raise ValueError(f"split {split!r} of {root} needs train and val pairs "
                             f"(has {[(k, len(v)) for k, v in self.roles.items()]})")
        self.class_names = vocabulary(self.records, "action")
        self.objects = vocabulary(self.records, "object")
        mc = copy.deepcopy(config.model)
        mc.num_classes = len(self.class_names)
        if mc.name == "icm":
            mc.num_objects = len(self.objects)
        if mc.name == "sms":
            mc.action_blocks = action_blocks(self.class_names, self.records)
        self.model = model_from_config(mc).to(self.device)
        self.frozen = mc.freeze_backbone
        self.use_feature_cache, reason = feature_cache_plan(mc.freeze_backbone, config.data.feature_cache)
        if mc.freeze_backbone:
            _LOG.info("feature cache %s: %s", "on" if self.use_feature_cache else "off", reason)
        # The precision everything below runs in; config.precision may be "auto".
        self.precision, self.precision_probe = resolve_precision(config.precision, self.model.backbone.embed_dim,
                                                                 self.device, max(1, config.threads))
        # The feature cache reads each image once: a pixel cache beside it would only hold memory.
        self.datasets = {role: PairDataset(root, recs, self.class_names, self.objects, self.preprocessing,
                                           cache=config.data.cache and not self.use_feature_cache,
                                           grid=self.model.grid_size)
                         for role, recs in self.roles.items()}
        self.criterion = PairCriterion(copy.copy(config.loss), no_change_index=(
            self.class_names.index(NO_CHANGE) if NO_CHANGE in self.class_names else None))
        if not mc.name.startswith("cde") and (config.loss.contrast > 0 or config.loss.sparsity > 0):
            _LOG.warning("loss.contrast/loss.sparsity act on CDE deltas only; %s trains without them", mc.name)
        self.out = Path(config.out)

    def _loader(self, dataset: Dataset) -> tuple[DataLoader, Sampler | None]:
        opt = self.config.optim
        generator = torch.Generator().manual_seed(self.config.seed)
        sampler: Sampler | None = None
        if opt.balanced_sampler:
            sampler = ClassBalancedSampler(dataset.labels(), seed=self.config.seed, num_replicas=self.world,
                                           rank=self.rank)
        elif self.world > 1:
            sampler = DistributedSampler(dataset, num_replicas=self.world, rank=self.rank, seed=self.config.seed)
        per_rank = math.ceil(len(dataset) / self.world)
        loader = DataLoader(dataset, batch_size=opt.batch_size, shuffle=sampler is None, sampler=sampler,
                            drop_last=per_rank > opt.batch_size, generator=generator)
        return loader, sampler

    def _optimizer(self) -> torch.optim.Optimizer:
        opt = self.config.optim
        backbone = [p for p in self.model.backbone.parameters() if p.requires_grad]
        backbone_ids = {id(p) for p in backbone}
        rest = [p for p in self.model.parameters() if p.requires_grad and id(p) not in backbone_ids]
        groups = [{"params": rest, "lr": opt.lr}]
        if backbone:
            groups.append({"params": backbone, "lr": opt.lr * opt.backbone_lr_scale})
        for group in groups:
            group["base_lr"] = group["lr"]
        return torch.optim.AdamW(groups, weight_decay=opt.weight_decay)

    def _weights_at(self, step: int) -> LossWeights:
        """The configured weights, with SupCon and L1 off during the auxiliary-loss warmup, then ramped."""
        return aux_weights_at(self.config.loss, step, self.config.optim.aux_warmup_steps,
                              self.config.optim.aux_ramp_steps)

    def fit(self) -> TrainResult:
        """Train, select on IID val, evaluate every role, write the run; on the feature cache when frozen."""
        start = time.perf_counter()
        if distributed.is_main_process():
            self.out.mkdir(parents=True, exist_ok=True)
            save_config(self.config, self.out / "config.yaml")
        inputs: dict[str, Dataset] = dict(self.datasets)
        inputs_from = contextlib.nullcontext()
        cache_seconds = 0.0
        if self.use_feature_cache:
            inputs = dict(encode_roles(self.model.backbone, self.datasets, self.precision, self.device))
            cache_seconds = time.perf_counter() - start
            inputs_from = backbone_replaced(self.model)
        with inputs_from:  # the backbone is back in place before the checkpoint is written
            history, best_epoch, step, throughput = self._train(inputs)
            predictions = {role: predict(self.model, ds, precision=self.precision, device=self.device)
                           for role, ds in inputs.items() if len(ds)}
        result = self._finish(predictions, history, best_epoch, step, throughput, time.perf_counter() - start,
                              cache_seconds)
        distributed.barrier()
        return result

    def _train(self, inputs: dict[str, Dataset]) -> tuple[list[dict[str, float]], int, int, float]:
        """The epoch loop over `inputs["train"]`; leaves the IID-val-best weights in the model and returns
        (history, best epoch, steps, training images per second)."""
        cfg = self.config
        main = distributed.is_main_process()
        loader, sampler = self._loader(inputs["train"])
        if len(loader) == 0:
            raise ValueError(f"no training batches: {len(inputs['train'])} pairs, batch size "
                             f"{cfg.optim.batch_size}, {self.world} rank(s)")
        step_module: nn.Module = _TrainStep(self.model)
        if self.world > 1:
            step_module = nn.parallel.DistributedDataParallel(
                step_module, device_ids=[self.device] if self.device.type == "cuda" else None)
        optimizer = self._optimizer()
        total_steps = cfg.optim.steps if cfg.optim.steps > 0 else cfg.optim.epochs * len(loader)
        epochs = math.ceil(total_steps / len(loader))
        history: list[dict[str, float]] = []
        best_acc, best_epoch, best_state = -1.0, 0, copy.deepcopy(self.model.state_dict())
        step, pairs_seen, train_seconds = 0, 0, 0.0
        progress = None
        if cfg.progress and main:
            from tqdm import tqdm
            progress = tqdm(total=total_steps, desc=f"train {cfg.model.name}", unit="step", leave=False)
        _LOG.info("training %s on %s/%s: %d train / %d val pairs, %d classes, %d steps, %s, %s x%d",
                  cfg.model.name, cfg.data.root, cfg.data.split, len(self.datasets["train"]),
                  len(self.datasets["val"]), len(self.class_names), total_steps, self.precision, self.device.type,
                  self.world)
        for epoch in range(1, epochs + 1):
            if sampler is not None and hasattr(sampler, "set_epoch"):
                sampler.set_epoch(epoch)
            self.model.train()
            if self.frozen:  # fixed features: no batch-norm statistics updates, no dropout (feature_cache.py)
                self.model.backbone.eval()
            sums: dict[str, float] = {}
            batches = 0
            epoch_start = time.perf_counter()
            for before, after, labels, objects, patch_valid in loader:
                if step >= total_steps:
                    break
                factor = lr_factor(step, total_steps, cfg.optim.warmup_steps, cfg.optim.schedule)
                for group in optimizer.param_groups:
                    group["lr"] = group["base_lr"] * factor
                self.criterion.weights = self._weights_at(step)
                before, after = before.to(self.device), after.to(self.device)
                labels, objects = labels.to(self.device), objects.to(self.device)
                with autocast_context(self.precision, self.device):
                    out = step_module(before, after, patch_valid.to(self.device))
                loss, parts = self.criterion(out, labels, objects, self.model)
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"non-finite loss at step {step}: {parts}; lower optim.lr or "
                                             "use precision=fp32")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.optim.grad_clip > 0:
                    nn.utils.clip_grad_norm_(self.model.parameters(), cfg.optim.grad_clip)
                optimizer.step()
                step += 1
                batches += 1
                pairs_seen += int(labels.shape[0]) * self.world
                sums["total"] = sums.get("total", 0.0) + float(loss.detach())
                for key in ("ce", "contrast", "sparsity", "icm", "sms"):  # same keys on every rank
                    sums[key] = sums.get(key, 0.0) + parts.get(key, 0.0)
                if progress is not None:
                    progress.update(1)
                    progress.set_postfix(loss=f"{float(loss):.3f}", epoch=epoch)
            train_seconds += time.perf_counter() - epoch_start
            means = distributed.all_reduce_mean({k: v / max(1, batches) for k, v in sums.items()}, self._reduce_device)
            record: dict[str, float] = {"epoch": float(epoch), "step": float(step), "lr": optimizer.param_groups[0]["lr"],
                                        **{f"loss_{k}": v for k, v in means.items() if k == "total" or v != 0.0}}
            if epoch % cfg.eval_every == 0 or epoch == epochs:
                acc = self._val_accuracy(inputs["val"])
                record["val_accuracy"] = acc
                if acc > best_acc:
                    best_acc, best_epoch = acc, epoch
                    best_state = copy.deepcopy(self.model.state_dict())
            history.append(record)
            _LOG.info("epoch %d step %d: loss %.4f%s", epoch, step, record["loss_total"],
                      f", IID val {record['val_accuracy']:.3f}" if "val_accuracy" in record else "")
        if progress is not None:
            progress.close()
        self.model.load_state_dict(best_state)
        throughput = 2 * pairs_seen / max(train_seconds, 1e-9)  # images per second, all ranks
        return history, best_epoch, step, throughput

    @property
    def _reduce_device(self) -> torch.device:
        return self.device if self.device.type == "cuda" else torch.device("cpu")

    def _val_accuracy(self, dataset: Dataset) -> float:
        """IID validation accuracy, computed on each rank's shard and summed over ranks."""
        shard = torch.utils.data.Subset(dataset, list(range(self.rank, len(dataset), self.world)))
        pred = predict(self.model, shard, precision=self.precision, device=self.device)
        hits, n = distributed.all_reduce_sum([float((pred.labels == pred.preds).sum()), float(len(pred.labels))],
                                             self._reduce_device)
        return hits / max(1.0, n)

    def _finish(self, predictions: dict[str, Predictions], history: list[dict[str, float]], best_epoch: int,
                steps: int, throughput: float, seconds: float, cache_seconds: float) -> TrainResult:
        """Calibrate on val, report every role, write the run directory (rank 0)."""
        cfg = self.config
        changed = [r.action != NO_CHANGE for r in self.roles["val"]]
        calibration = calibrate(predictions["val"], changed, self.class_names)
        if all(changed):
            _LOG.warning("no '%s' pairs in IID val: no-effect threshold left at 0 (magnitude check off)", NO_CHANGE)
        metrics: dict[str, Any] = {
            "split": cfg.data.split, "model": cfg.model.name, "best_epoch": best_epoch, "steps": steps,
            "world_size": self.world, "precision": self.precision, "precision_probe": self.precision_probe,
            "device": self.device.type, "train_images_per_second": throughput, "seconds": seconds,
            "feature_cache": {"used": self.use_feature_cache, "seconds": cache_seconds},
            "class_names": self.class_names, "calibration": calibration.to_dict(),
            "left_out_mostly_masked": self.left_out}
        for role, pred in predictions.items():
            metrics[role] = _report(pred, self.roles[role], self.class_names)
        checkpoint = self.out / "model.safetensors"
        if distributed.is_main_process():
            meta = ModelMeta(model=self.model.config, class_names=self.class_names,
                             preprocessing=self.preprocessing, calibration=calibration,
                             train_config=cfg.to_dict(), objects=self.objects)
            save_checkpoint(checkpoint, self.model, meta)
            (self.out / "metrics.json").write_text(json.dumps(metrics, indent=2))
            (self.out / "history.json").write_text(json.dumps(history, indent=2))
            plot_curves(history, self.out / "curves.png")
            for role in ("val", "test", "ood"):
                if role in metrics:
                    plot_confusion(metrics[role]["confusion_matrix"], self.class_names,
                                   f"{cfg.model.name} {cfg.data.split} {role}", self.out / f"confusion_{role}.png")
            summary = ", ".join(f"{role} {metrics[role]['accuracy']:.3f}" for role in ROLES if role in metrics)
            _LOG.info("%s on %s: best IID-val epoch %d; %s (%.0f s, %.0f img/s)", cfg.model.name, cfg.data.split,
                      best_epoch, summary, seconds, throughput)
        return TrainResult(checkpoint, best_epoch, metrics, history, seconds)


def train(config: TrainConfig) -> TrainResult:
    """Train one model as `config` says; see Trainer."""
    return Trainer(config).fit()
