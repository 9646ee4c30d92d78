"""`cde pretrain CONFIG [key=value ...] --out DIR`: self-supervised backbone pretraining
(time-contrastive by default; DINO, iBOT, SimMIM by weight).

Resumes from DIR/state when it exists (same model/method settings); `--restart` starts over. Under
`torchrun --nproc_per_node N` each process takes a shard of every batch (DDP; gloo on CPU). Writes
DIR/backbone.safetensors + backbone.json for `cde train ... model.pretrained_file=DIR/backbone.safetensors`.
"""
from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cde_core.pretrain.config import PretrainConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", nargs="?", help="YAML overriding cde_core/configs/pretrain_default.yaml")
    parser.add_argument("overrides", nargs="*", help="dotted key=value overrides, e.g. optim.epochs=5")
    parser.add_argument("--out", required=True, help="run directory (state, metrics, backbone, probe)")
    parser.add_argument("--restart", action="store_true", help="ignore a saved state in --out and start over")
    parser.add_argument("--probe-only", metavar="BACKBONE_FILE",
                        help="skip training: probe this backbone file (timm keys) with the config's probe settings")


def run(args: argparse.Namespace) -> int:
    from cde_core.pretrain.config import load_pretrain_config
    from cde_core.train.distributed import cleanup, is_main_process

    config_path = args.config
    overrides = list(args.overrides)
    if config_path and "=" in config_path:  # no file, only overrides
        overrides.insert(0, config_path)
        config_path = None
    config = load_pretrain_config(config_path, overrides)
    if args.probe_only:
        return _probe_only(config, args.probe_only, args.out)
    from cde_core.pretrain.trainer import pretrain

    result = pretrain(config, args.out, restart=args.restart)
    if is_main_process():
        if result.backbone_file is not None:
            print(f"backbone: {result.backbone_file} ({result.end_step} steps, "
                  f"{result.images_per_second:.1f} img/s this run)")
            if result.probe is None:
                print("no probe: set probe.manifest to a labelled pair set to compare with random init")
        else:
            print(f"stopped at step {result.end_step} of {result.total_steps}; run the same command to resume")
        if result.probe is not None:
            from cde_core.pretrain.probe import ProbeReport, ProbeScores

            data = dict(result.probe)
            data["scores"] = {label: {kind: ProbeScores(**s) for kind, s in kinds.items()}
                              for label, kinds in data["scores"].items()}
            print(ProbeReport(**data).table())
    cleanup()
    return 0


def _probe_only(config: "PretrainConfig", backbone_file: str, out: str) -> int:
    """Probe a backbone file (ours, or real DINO weights with the config's model section) vs random init."""
    import json
    from pathlib import Path

    from cde_core.pretrain.backbone_export import read_backbone_info
    from cde_core.pretrain.probe import probe_backbone

    if not config.probe.manifest:
        raise SystemExit("--probe-only needs probe.manifest=DIR (a labelled pair set)")
    try:
        info = read_backbone_info(backbone_file)
        prep = info["preprocessing"]
        backbone, img_size, kwargs = info["backbone"], int(prep["img_size"]), info.get("backbone_kwargs", {})
        mean, std = prep["mean"], prep["std"]
    except ValueError:  # weights from elsewhere (e.g. real DINO): use the config's model section
        backbone, img_size, kwargs = config.model.backbone, config.model.img_size, config.model.backbone_kwargs
        mean = std = None
    report = probe_backbone(backbone, img_size, backbone_file, config.probe.manifest, config.probe, kwargs,
                            mean, std, config.seed)
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / "probe.json").write_text(json.dumps(report.to_dict(), indent=1))
    print(report.table())
    return 0
