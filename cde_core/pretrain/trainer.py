"""The pretraining loop: time-contrastive InfoNCE, DINO self-distillation, iBOT masked patch tokens, SimMIM
masked pixels (any mix, by weight), EMA teacher, multi-crop.

Data: every configured frame source read once into an in-memory uint8 bank; each step takes a batch of
frames (a per-epoch permutation from the seed, or `optim.clip_frames` moments of several clips drawn from
(seed, step, rank); either way a resumed run takes the same batches), cuts the crops and
masks with a seeded generator (saved with the state), runs teacher and student, and updates the teacher as
an EMA of the student. bf16 autocast on CPU/GPU, DDP under torchrun (gloo on CPU). At the end the teacher
backbone is exported (backbone_export) and probed (probe) when a labelled manifest is configured.
"""
from __future__ import annotations

import contextlib
import copy
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cde_core.preprocessing import IMAGENET_MEAN, IMAGENET_STD
from cde_core.pretrain.augment import MultiCrop
from cde_core.pretrain.backbone_export import export_backbone
from cde_core.pretrain.clip_sampler import clip_batch
from cde_core.pretrain.config import PretrainConfig, save_pretrain_config
from cde_core.pretrain.dino_loss import DINOLoss
from cde_core.pretrain.ibot_loss import IBOTPatchLoss
from cde_core.pretrain.koleo_loss import KoLeoLoss
from cde_core.pretrain.masking import block_masks
from cde_core.pretrain.pixel_loss import masked_pixel_loss
from cde_core.pretrain.schedules import cosine, linear_warmup, warmup_cosine
from cde_core.pretrain.self_distillation import SelfDistillationNet, ema_update
from cde_core.pretrain.sources import FrameBank, build_frame_bank, build_source
from cde_core.pretrain.time_contrastive_loss import time_contrastive_loss
from cde_core.pretrain.training_state import (TrainingPosition, TrainingStateError, has_training_state,
                                              load_training_state, read_position, save_rng, save_training_state)
from cde_core.train import distributed

_LOG = logging.getLogger(__name__)
METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "pretrain_summary.json"
# Sections that fix the networks' shapes: a resumed run must use the same ones.
_ARCHITECTURE_KEYS = ("model", "method")


class PretrainError(RuntimeError):
    """Pretraining cannot start or diverged (the message says what to change)."""


@dataclass
class PretrainResult:
    out: Path
    backbone_file: Path | None
    start_step: int
    end_step: int
    total_steps: int
    losses: list[float] = field(default_factory=list)   # one per step run in this invocation
    seconds: float = 0.0
    images_per_second: float = 0.0
    probe: dict[str, Any] | None = None


def _param_groups(module: nn.Module) -> list[dict[str, Any]]:
    """Weight decay on weight matrices only (not biases, norms, tokens, position embeddings)."""
    decay, no_decay = [], []
    for name, param in module.named_parameters():
        if not param.requires_grad:
            continue
        if param.ndim <= 1 or any(t in name for t in ("pos_embed", "cls_token", "mask_token", "reg_token")):
            no_decay.append(param)
        else:
            decay.append(param)
    return [{"params": decay, "apply_wd": True}, {"params": no_decay, "apply_wd": False, "weight_decay": 0.0}]


def _autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


class Pretrainer:
    def __init__(self, config: PretrainConfig, out: str | Path, restart: bool = False) -> None:
        self.config = config
        self.out = Path(out)
        self.rank, self.world = distributed.init_distributed()
        torch.set_num_threads(max(1, config.threads))
        self.device = torch.device("cuda", self.rank % torch.cuda.device_count()) \
            if torch.cuda.is_available() else torch.device("cpu")
        torch.manual_seed(config.seed + self.rank)
        self.out.mkdir(parents=True, exist_ok=True)
        if restart and distributed.is_main_process():
            import shutil

            shutil.rmtree(self.out / "state", ignore_errors=True)
            (self.out / METRICS_FILE).unlink(missing_ok=True)
        distributed.barrier()
        self.resume = has_training_state(self.out) and not restart
        if self.resume:
            self._check_resumable()
        method, mc = config.method, config.model
        self.student = SelfDistillationNet(mc, method, mc.drop_path_rate).to(self.device)
        self.teacher = SelfDistillationNet(mc, method, 0.0).to(self.device)
        self.teacher.load_state_dict(self.student.state_dict())
        self.teacher.requires_grad_(False)
        self.teacher.eval()
        self.dino_loss = DINOLoss(method.out_dim, method.student_temp, method.center_momentum,
                                  method.centering).to(self.device)
        self.ibot_loss = IBOTPatchLoss(method.patch_out_dim, method.student_temp,
                                       method.center_momentum, method.centering).to(self.device)
        self.koleo_loss = KoLeoLoss()
        self.mean, self.std = IMAGENET_MEAN, IMAGENET_STD
        self.multicrop = MultiCrop(config.augment, mc.img_size, self.mean, self.std)
        self.grid = self.student.encoder.grid_size(mc.img_size) if self.student.use_masks else (0, 0)
        self.bank = self._frames()
        self.clip_members = self.bank.clip_members()
        opt = config.optim
        self.global_batch = opt.batch_size * self.world
        self.steps_per_epoch = len(self.bank) // self.global_batch
        if self.steps_per_epoch < 1:
            raise PretrainError(f"{len(self.bank)} frames are fewer than one global batch ({self.global_batch}); "
                                "lower optim.batch_size or add frames")
        self.total_steps = opt.epochs * self.steps_per_epoch
        self.base_lr = opt.lr * self.global_batch / 256.0
        self.optimizer = torch.optim.AdamW(_param_groups(self.student), lr=self.base_lr, betas=(0.9, 0.999))
        self.generator = torch.Generator().manual_seed(config.seed * 7919 + self.rank)
        self.step = 0
        if self.resume:
            position = load_training_state(self.out, self._state_modules(), self.optimizer, self.rank,
                                           self.generator)
            self.step = position.step
            _LOG.info("resumed %s at step %d of %d", self.out, self.step, self.total_steps)
        self.model: nn.Module = self.student
        if self.world > 1:
            self.model = nn.parallel.DistributedDataParallel(self.student, find_unused_parameters=True)
        if distributed.is_main_process():
            save_pretrain_config(config, self.out / "config.yaml")

    def _check_resumable(self) -> None:
        saved = read_position(self.out).config
        current = self.config.to_dict()
        changed = [k for k in _ARCHITECTURE_KEYS
                   if json.dumps(saved.get(k), sort_keys=True) != json.dumps(current[k], sort_keys=True, default=list)]
        if changed:
            raise TrainingStateError(f"{self.out} holds a run with different {changed} settings; resume with the "
                                     "same config, use another --out, or pass --restart to start over")

    def _state_modules(self) -> dict[str, nn.Module]:
        return {"student": self.student, "teacher": self.teacher, "dino_loss": self.dino_loss,
                "ibot_loss": self.ibot_loss}

    def _frames(self) -> FrameBank:
        data = self.config.data
        sources = [build_source(spec, progress=self.config.progress) for spec in data.sources]
        if distributed.is_main_process():  # render simulator frames once, before the other ranks read them
            for source in sources:
                render = getattr(source, "render_missing", None)
                if render is not None:
                    render()
        distributed.barrier()
        return build_frame_bank(sources, data.cache_size, data.max_frames, self.config.seed,
                                progress=self.config.progress and distributed.is_main_process())

    def _batch_indices(self, step: int) -> torch.Tensor:
        opt = self.config.optim
        if opt.clip_frames > 0:
            return clip_batch(self.clip_members, opt.batch_size, opt.clip_frames,
                              seed=(self.config.seed * 100003 + step) * 1024 + self.rank)
        epoch, within = divmod(step, self.steps_per_epoch)
        order = torch.randperm(len(self.bank), generator=torch.Generator().manual_seed(self.config.seed * 100003 + epoch))
        used = order[: self.steps_per_epoch * self.global_batch].view(self.steps_per_epoch, self.world, -1)
        return used[within, self.rank]

    def _set_schedules(self, step: int) -> tuple[float, float, float]:
        opt, method = self.config.optim, self.config.method
        warmup = int(round(opt.warmup_epochs * self.steps_per_epoch))
        lr = warmup_cosine(self.base_lr, opt.min_lr, step, self.total_steps, warmup)
        wd = cosine(opt.weight_decay, opt.weight_decay_end, step, self.total_steps)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
            if group.get("apply_wd"):
                group["weight_decay"] = wd
        momentum = cosine(method.momentum_teacher, 1.0, step, self.total_steps)
        temp = linear_warmup(method.warmup_teacher_temp, method.teacher_temp, step,
                             method.teacher_temp_warmup_epochs * self.steps_per_epoch)
        return lr, momentum, temp

    def _train_step(self, step: int) -> dict[str, float]:
        cfg, method = self.config, self.config.method
        lr, momentum, temp = self._set_schedules(step)
        frames = self.bank.images[self._batch_indices(step)].to(self.device)  # augment where the model runs
        crops = self.multicrop(frames, self.generator)
        global_crops = crops.global_crops.to(self.device)
        local_crops = crops.local_crops.to(self.device)
        batch = global_crops.shape[1]
        masks = None
        if self.student.use_masks:
            masks = block_masks(2 * batch, self.grid, method.mask_probability, method.mask_ratio,
                                self.generator).view(2, batch, -1).to(self.device)
        with _autocast(cfg.precision, self.device):
            distilling = self.student.use_dino or self.student.use_ibot  # SimMIM and time-contrastive need no teacher
            teacher_out = self.teacher.teacher_forward(global_crops) if distilling else None
            student_out = self.model(global_crops, local_crops, masks)
        parts: dict[str, torch.Tensor] = {}
        if self.student.use_dino:
            parts["dino"] = self.dino_loss(student_out.cls_logits, teacher_out.cls_logits, temp)
        if self.student.use_ibot and masks is not None:
            parts["ibot"] = self.ibot_loss(student_out.masked_patch_logits, teacher_out.patch_logits, masks,
                                           method.teacher_patch_temp)
        if self.student.use_pixels and masks is not None:
            parts["pixel"] = masked_pixel_loss(student_out.masked_pixels, global_crops.flatten(0, 1),
                                               masks.flatten(0, 1), self.student.patch_size)
        if self.student.use_contrastive:
            parts["contrastive"] = time_contrastive_loss(student_out.projections[0], student_out.projections[1],
                                                         method.contrastive_temp)
        if method.koleo_weight > 0:
            parts["koleo"] = sum(self.koleo_loss(p) for p in student_out.global_pooled) / 2
        loss = (method.dino_weight * parts.get("dino", 0.0) + method.ibot_weight * parts.get("ibot", 0.0)
                + method.pixel_weight * parts.get("pixel", 0.0) + method.koleo_weight * parts.get("koleo", 0.0)
                + method.contrastive_weight * parts.get("contrastive", 0.0))
        if not torch.isfinite(loss):
            raise PretrainError(f"loss is {float(loss)} at step {step}; lower optim.lr or use precision=fp32")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.optim.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.student.parameters(), cfg.optim.grad_clip)
        if step < cfg.optim.freeze_last_layer_epochs * self.steps_per_epoch:  # DINO: stabilises the start
            for head in (self.student.head, self.student.patch_head):
                if head is not None:
                    head.prototypes.grad = None
        self.optimizer.step()
        ema_update(self.teacher, self.student, momentum)
        logs = {"loss": loss.item(), **{k: v.item() for k, v in parts.items()}, "lr": lr, "momentum": momentum}
        if "dino" in parts:  # collapse monitors (ln K = uniform; ~0 for the mean = a single prototype)
            logs["teacher_entropy"], logs["teacher_mean_entropy"] = self.dino_loss.last_entropies
        return logs

    def _save(self, step: int) -> None:
        save_rng(self.out / "state", self.rank, self.generator, step)
        if distributed.is_main_process():
            save_training_state(self.out, self._state_modules(), self.optimizer,
                                TrainingPosition(step=step, epoch=step // self.steps_per_epoch,
                                                 config=self.config.to_dict()))
        distributed.barrier()

    def backbone_info(self) -> dict[str, Any]:
        encoder = self.teacher.encoder
        return {"backbone": self.config.model.backbone, "timm_name": encoder.timm_name,
                "timm_kwargs": encoder.timm_kwargs, "backbone_kwargs": self.config.model.backbone_kwargs,
                "preprocessing": {"img_size": self.config.model.img_size, "mean": list(self.mean),
                                  "std": list(self.std)},
                "method": "+".join(name for name, weight in (("dino", self.config.method.dino_weight),
                                                             ("ibot", self.config.method.ibot_weight),
                                                             ("simmim", self.config.method.pixel_weight),
                                                             ("tcn", self.config.method.contrastive_weight))
                                   if weight > 0),
                "steps": self.step, "frames": len(self.bank), "config": self.config.to_dict()}

    def run(self) -> PretrainResult:
        cfg = self.config
        start = self.step
        stop = self.total_steps
        if cfg.stop_after_steps > 0:
            stop = min(stop, start + cfg.stop_after_steps)
        result = PretrainResult(out=self.out, backbone_file=None, start_step=start, end_step=start,
                                total_steps=self.total_steps)
        main = distributed.is_main_process()
        progress = None
        if cfg.progress and main:
            from tqdm import tqdm
            progress = tqdm(total=self.total_steps, initial=start, desc="pretrain", unit="step")
        self.student.train()
        began = time.perf_counter()
        metrics = (self.out / METRICS_FILE).open("a") if main else None
        try:
            for step in range(start, stop):
                logs = self._train_step(step)
                self.step = step + 1
                result.losses.append(logs["loss"])
                if metrics is not None:
                    metrics.write(json.dumps({"step": step, **logs}) + "\n")
                    metrics.flush()
                if progress is not None:
                    progress.update()
                    progress.set_postfix(loss=f"{logs['loss']:.3f}")
                if self.step % cfg.checkpoint_every == 0 or self.step % self.steps_per_epoch == 0:
                    self._save(self.step)
        finally:
            if progress is not None:
                progress.close()
            if metrics is not None:
                metrics.close()
        result.seconds = time.perf_counter() - began
        ran = self.step - start
        result.end_step = self.step
        result.images_per_second = ran * self.global_batch / result.seconds if result.seconds > 0 else math.nan
        if ran and self.step % cfg.checkpoint_every and self.step % self.steps_per_epoch:
            self._save(self.step)
        _LOG.info("pretrained steps %d-%d of %d in %.0f s (%.1f img/s over %d process(es))", start, self.step,
                  self.total_steps, result.seconds, result.images_per_second, self.world)
        if self.step >= self.total_steps and main:
            result.backbone_file = export_backbone(self.out, self.teacher.encoder.model, self.backbone_info())
            if cfg.probe.manifest:
                from cde_core.pretrain.probe import probe_backbone

                report = probe_backbone(cfg.model.backbone, cfg.model.img_size, result.backbone_file,
                                        cfg.probe.manifest, cfg.probe, cfg.model.backbone_kwargs, self.mean,
                                        self.std, cfg.seed)
                result.probe = report.to_dict()
                (self.out / "probe.json").write_text(json.dumps(result.probe, indent=1))
                _LOG.info("\n%s", report.table())
            summary = {"steps": self.step, "total_steps": self.total_steps, "frames": len(self.bank),
                       "processes": self.world, "seconds_this_invocation": result.seconds,
                       "images_per_second": result.images_per_second,
                       "final_loss": result.losses[-1] if result.losses else None,
                       "backbone_file": str(result.backbone_file), "probe": result.probe}
            (self.out / SUMMARY_FILE).write_text(json.dumps(summary, indent=1))
        distributed.barrier()
        return result


def pretrain(config: PretrainConfig, out: str | Path, restart: bool = False) -> PretrainResult:
    return Pretrainer(copy.deepcopy(config), out, restart).run()
