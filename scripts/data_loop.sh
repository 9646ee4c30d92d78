#!/usr/bin/env bash
# The data loop at a stated scale (README "Training from recorded episodes"): the perception node records the
# demo robot's episodes over DDS (the robot labels each with an EpisodeLabel, its own task check), `cde data
# import` turns the bags into pairs, and the demo model's configuration is trained on them; the generator's
# pairs of the very same (task, seed, appearance) episodes train the same configuration; both models are then
# run live on the same held-out episodes (seeds 1000+), the bag-trained one with recording on, so the
# recording's cost on the node's latency is measured side by side.
#   SEEDS=35 scripts/data_loop.sh      7 demo tasks x SEEDS seeds = the training episodes of each model
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/setup_env.sh"
source "$ROOT/scripts/env.sh"
cd "$ROOT"
SEEDS="${SEEDS:-35}"
OUT="${OUT:-runs/loop}"
EPISODES=$((7 * SEEDS))
LIVE=(--seed 1000 --episodes 48 --appearance mixed)
mkdir -p "$OUT"
[ -d "$OUT/bags" ] || python -m cde_ros.demo --episodes "$EPISODES" --seed 0 --appearance mixed --episode-order grid \
  --failures 0.25 --rate-hz 20 --record "$OUT/bags" --out "$OUT/record_demo" --timeout 20000
[ -f "$OUT/bag_data/manifest.jsonl" ] || cde data import "$OUT/bags" --out "$OUT/bag_data"
[ -f "$OUT/gen_data/manifest.jsonl" ] || cde sim generate --tasks demo --seeds "0:$SEEDS" --size 96 --cameras object \
  --failures 0.25 --appearance mixed --workers 2 --no-progress --out "$OUT/gen_data"
for source in bag gen; do
  [ -f "$OUT/model_$source/model.safetensors" ] || \
    cde train cde_core/configs/demo_model.yaml "data.root=$OUT/${source}_data" "out=$OUT/model_$source"
done
python -m cde_ros.demo --model "$OUT/model_gen/model.safetensors" "${LIVE[@]}" --out "$OUT/live_gen"
rm -rf "$OUT/live_bag_bags"
python -m cde_ros.demo --model "$OUT/model_bag/model.safetensors" "${LIVE[@]}" --record "$OUT/live_bag_bags" \
  --out "$OUT/live_bag"
python - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
keys = ("recognition_accuracy", "verification_balanced_accuracy", "no_effect_auroc", "latency_ms_p50", "latency_ms_p90")
rows = {name: json.load(open(f"{out}/live_{name}/summary.json"))["summary"] for name in ("gen", "bag")}
print("| model | " + " | ".join(keys) + " |")
for name, s in rows.items():
    print(f"| {name} | " + " | ".join(str(s[k]) for k in keys) + " |")
print("recording:", rows["bag"].get("recording"))
PY
# Paired, offline: the bag pairs given the generator's splits and row order (scripts/align_bag_splits.py checks
# pixels and labels pair by pair), the same training on each, for three split draws, scored on the held-out
# episodes; with the same inputs the two trainings should be the same, so any difference is the loop's.
[ -f "$OUT/heldout/manifest.jsonl" ] || cde sim generate --tasks demo --seeds 1000:1048 --size 96 --cameras object \
  --failures 0.25 --appearance mixed --workers 2 --no-progress --out "$OUT/heldout"
for draw in 0 1 2; do
  gen="$OUT/gen_data_d$draw" bag="$OUT/bag_aligned_d$draw"
  [ -f "$gen/manifest.jsonl" ] || cde data merge "$OUT/gen_data" --split-seed "$draw" --out "$gen"
  [ -f "$bag/manifest.jsonl" ] || python scripts/align_bag_splits.py "$OUT/bag_data" "$gen" --out "$bag"
  for source in gen bag; do
    data="$OUT/gen_data_d$draw"; [ "$source" = bag ] && data="$bag"
    model="$OUT/paired_${source}_d$draw"
    [ -f "$model/model.safetensors" ] || cde train cde_core/configs/demo_model.yaml "data.root=$data" "out=$model"
    [ -f "$model/eval/eval_all.json" ] || cde eval "$model/model.safetensors" --data "$OUT/heldout" --split all \
      --out "$model/eval"
  done
done
python - "$OUT" <<'PY'
import json, sys

from safetensors.torch import load_file

out = sys.argv[1]
keys = ("recognition_accuracy", "verification_balanced_accuracy", "no_effect_auroc")
print("| draw | " + " | ".join(f"{k} gen / bag" for k in keys) + " | weights equal |")
for draw in range(3):
    fig = {s: json.load(open(f"{out}/paired_{s}_d{draw}/eval/eval_all.json"))["all"]["verification"] for s in ("gen", "bag")}
    weights = [load_file(f"{out}/paired_{s}_d{draw}/model.safetensors") for s in ("gen", "bag")]
    equal = weights[0].keys() == weights[1].keys() and all(weights[0][k].equal(weights[1][k]) for k in weights[0])
    print(f"| {draw} | " + " | ".join(f"{fig['gen'][k]} / {fig['bag'][k]}" for k in keys) + f" | {equal} |")
PY
