"""A frozen-backbone training with the feature cache and without it, side by side: wall time of each and the ratio.

Both runs train the same configuration (by default the demo network, cde_core/configs/demo_metaworld.yaml, with
model.freeze_backbone=true) on the same dataset, seed and thread count, one after the other in this process;
only data.feature_cache differs. Their test accuracies are printed too: the cache must not change the result.
The precision probe behind `precision: auto` is reported beside them.

    nice -n 19 python bench/frozen_cache.py --data runs/demo_train --out runs/bench/frozen_cache optim.epochs=3
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cde_core.train.config import load_config
from cde_core.train.precision import choose_precision, probe_precision
from cde_core.train.trainer import train


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(ROOT / "cde_core" / "configs" / "demo_metaworld.yaml"))
    parser.add_argument("--data", default=str(ROOT / "runs" / "demo_train"))
    parser.add_argument("--out", default=str(ROOT / "runs" / "bench" / "frozen_cache"))
    parser.add_argument("overrides", nargs="*", help="extra key=value training overrides, e.g. optim.epochs=3")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    out = Path(args.out)
    import timm  # noqa: F401  the first import takes seconds: paid here, not by whichever run comes first
    common = [f"data.root={args.data}", "model.freeze_backbone=true", "progress=false", "device=cpu",
              *args.overrides]
    rows: dict[str, dict[str, float | str | bool]] = {}
    for name, cache in (("cached", True), ("uncached", False)):
        config = load_config(args.config, [*common, f"data.feature_cache={str(cache).lower()}", f"out={out / name}"])
        start = time.perf_counter()
        result = train(config)
        rows[name] = {"wall_s": time.perf_counter() - start, "steps": result.metrics["steps"],
                      "precision": result.metrics["precision"], "test_accuracy": result.metrics["test"]["accuracy"],
                      "val_accuracy": result.metrics["val"]["accuracy"],
                      "cache_s": result.metrics["feature_cache"]["seconds"]}
    config = load_config(args.config, common)
    from cde_core.models.backbone import Backbone
    width = Backbone(config.model.backbone, config.model.img_size, **config.model.backbone_kwargs).embed_dim
    probe = probe_precision(width, torch.device("cpu"), config.threads)
    probe["picked"] = choose_precision(probe["gflops"])
    report = {"config": args.config, "data": args.data, "overrides": common, "runs": rows,
              "uncached_over_cached": rows["uncached"]["wall_s"] / rows["cached"]["wall_s"], "precision_probe": probe}
    out.mkdir(parents=True, exist_ok=True)
    (out / "frozen_cache.json").write_text(json.dumps(report, indent=2))
    for name, row in rows.items():
        print(f"{name:9s} {row['wall_s']:7.1f} s  ({row['steps']} steps, {row['precision']}, "
              f"encode {row['cache_s']:.1f} s, val {row['val_accuracy']:.3f}, test {row['test_accuracy']:.3f})")
    print(f"uncached / cached: {report['uncached_over_cached']:.2f}x")
    gflops = probe["gflops"]
    print(f"precision auto would pick {probe['picked']}: {'x'.join(map(str, probe['matmul']))} matmul "
          f"bf16 {gflops['bf16']:.0f} GFLOP/s, fp32 {gflops['fp32']:.0f} GFLOP/s ({config.threads} thread(s))")
    print(f"wrote {out / 'frozen_cache.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
