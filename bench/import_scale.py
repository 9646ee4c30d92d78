"""How `cde data import` scales: wall time, episodes/s, bag size per episode and peak memory, for N
episodes and for N/4 side by side, so "memory does not grow with the number of bags" is read as a ratio.

Episodes are written by the real EpisodeRecorder as the node records them: 96x96 rgb8 before/after
frames (random pixels: the PNGs do not compress away), mono8 robot masks, the command's STARTED and
FINISHED events, the ActionRecognition, the EffectVerification, and an EpisodeLabel for every
`--label-every`-th episode in its own file, as an operator's label arrives. Bags split every
`--files-per-bag` files; the N/4 run imports the first quarter of those bag directories, the N run all
of them. Each import runs as its own process (`python -m cde_core.cli data import ... --no-progress`),
whose peak RSS is the kernel's (wait4 rusage of that very child). The recorder runs with fsync off: it
is the import being measured, not the disk.

    python bench/import_scale.py --episodes 1000 [--work DIR] [--keep] [--out runs/bench/import_scale.json]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "test"))
sys.path.insert(0, str(ROOT))


def record_episodes(directory: Path, n: int, label_every: int, files_per_bag: int) -> float:
    """Write n episodes (and their labels) with the real recorder; returns the seconds it took."""
    from test_episode_recorder import episode, label, record

    from cde_ros.episode_recorder import EpisodeRecorder, RecorderConfig

    start = time.perf_counter()
    config = RecorderConfig(str(directory), fsync=False, max_files_per_bag=files_per_bag, max_bag_size_mb=0,
                            max_bag_duration_s=0)
    with EpisodeRecorder(config) as recorder:
        for i in range(n):
            record(recorder, episode(i, size=(96, 96), masks=True))
            if label_every and i % label_every == 0:
                recorder.record_label(label(f"cmd-{i:03d}", "open", annotator="bench"))
    return time.perf_counter() - start


def bag_bytes(bags: list[Path]) -> int:
    return sum(p.stat().st_size for bag in bags for p in bag.iterdir() if p.is_file())


def run_import(bags: list[Path], out: Path) -> dict[str, Any]:
    """One import in its own process: wall time, peak RSS (kernel's), and what it imported."""
    command = [sys.executable, "-m", "cde_core.cli", "data", "import", *map(str, bags), "--out", str(out),
               "--no-progress"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in [str(ROOT), os.environ.get("PYTHONPATH", "")] if p))
    start = time.perf_counter()
    child = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    stdout, stderr = child.stdout.read().decode(), child.stderr.read().decode()
    if child.returncode != 0:
        raise SystemExit(f"import failed ({child.returncode}): {' '.join(command)}\n{stdout}\n{stderr}")
    meta = json.loads((out / "generation.json").read_text())
    return {"bags": len(bags), "episodes": meta["episodes"], "pairs": meta["pairs"], "labels": meta["labels"],
            "wall_s": round(wall, 2), "episodes_per_s": round(meta["episodes"] / wall, 1),
            "bag_mb": round(bag_bytes(bags) / 2**20, 2),
            "bag_kb_per_episode": round(bag_bytes(bags) / 1024 / max(1, meta["episodes"]), 1),
            "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}  # ru_maxrss: KiB on Linux


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=1000, help="N (the small run imports about N/4)")
    parser.add_argument("--label-every", type=int, default=4, help="an EpisodeLabel every k-th episode (0: none)")
    parser.add_argument("--files-per-bag", type=int, default=50, help="recorder's max_files_per_bag")
    parser.add_argument("--work", help="directory for bags and datasets (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--out", help="also write the numbers to this JSON file")
    args = parser.parse_args()
    if args.episodes < 4:
        parser.error("--episodes must be at least 4")
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="cde_import_scale_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        record_s = record_episodes(work / "bags", args.episodes, args.label_every, args.files_per_bag)
        bags = sorted(p.parent for p in (work / "bags").glob("*/metadata.yaml"))
        quarter = bags[:max(1, round(len(bags) / 4))]
        small = run_import(quarter, work / "dataset_quarter")
        large = run_import(bags, work / "dataset_all")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    result = {"n": args.episodes, "record_s": round(record_s, 1), "n_over_4": small, "n_all": large,
              "episodes_ratio": round(large["episodes"] / small["episodes"], 2),
              "peak_rss_ratio": round(large["peak_rss_mb"] / small["peak_rss_mb"], 3),
              "work": str(work) if args.keep else None}
    rows = [("bags", "bags"), ("episodes", "episodes"), ("pairs", "pairs"), ("labels", "labels"),
            ("wall s", "wall_s"), ("episodes/s", "episodes_per_s"), ("bag MB", "bag_mb"),
            ("bag KB/episode", "bag_kb_per_episode"), ("peak RSS MB", "peak_rss_mb")]
    print(f"recorded {args.episodes} episodes in {record_s:.1f} s (EpisodeRecorder, fsync off)")
    print(f"{'':>16} {'N/4':>10} {'N':>10}")
    for name, key in rows:
        print(f"{name:>16} {small[key]:>10} {large[key]:>10}")
    print(f"episodes N / (N/4): {result['episodes_ratio']}x; peak RSS N / (N/4): {result['peak_rss_ratio']}x")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
