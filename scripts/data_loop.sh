#!/usr/bin/env bash
# The data loop at a stated scale (README "The loop, measured"): the perception node records the demo robot's
# episodes over DDS (the robot labels each with an EpisodeLabel, its own task check), `cde data import` turns
# the bags into pairs, and the demo model's configuration is trained on them; the generator's pairs of the very
# same (task, seed, appearance) episodes train the same configuration. For three split draws, three models each:
#   gen_d<N>          the generator's pairs, split draw N
#   bag_d<N>          the bag pairs, split drawn independently (draw N of the import)
#   bag_aligned_d<N>  the bag pairs given gen_d<N>'s splits and row order (scripts/align_bag_splits.py, which
#                     checks pixels and labels pair by pair): the same inputs, so any difference is the loop's
# all scored on the held-out episodes (seeds 1000+); then gen_d0 and bag_aligned_d0 run live on the same 48
# held-out commands, the bag-trained one with recording on, so the recording's cost on latency is side by side.
#   SEEDS=35 scripts/data_loop.sh      7 demo tasks x SEEDS seeds = the training episodes of each model
#   BACKBONE=scratch scripts/data_loop.sh  the models from a random backbone (written under $OUT/scratch)
# Training is the demo model's configuration (scripts/train_demo_model.sh): demo_model.yaml on the backbone the
# demo model was fine-tuned from (runs/pretrain_demo, made by that script: pretrained on generator frames of
# seeds 0-399, unlabelled), as a user would fine-tune the shipped backbone on their robot's bags.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/setup_env.sh"
source "$ROOT/scripts/env.sh"
cd "$ROOT"
SEEDS="${SEEDS:-35}"
OUT="${OUT:-runs/loop}"
EPISODES=$((7 * SEEDS))
LIVE=(--seed 1000 --episodes 48 --appearance mixed)
TRAIN=(cde train cde_core/configs/demo_model.yaml progress=false)
MODELS="$OUT"
if [ "${BACKBONE:-pretrained}" = "scratch" ]; then
  MODELS="$OUT/scratch"
else
  BACKBONE_FILE=runs/pretrain_demo/backbone.safetensors
  [ -f "$BACKBONE_FILE" ] || { echo "no $BACKBONE_FILE: run scripts/train_demo_model.sh first, or BACKBONE=scratch" >&2; exit 2; }
  TRAIN+=("model.pretrained_file=$BACKBONE_FILE" optim.backbone_lr_scale=0.2)
fi
mkdir -p "$OUT" "$MODELS"
[ -d "$OUT/bags" ] || python -m cde_ros.demo --episodes "$EPISODES" --seed 0 --appearance mixed --episode-order grid \
  --failures 0.25 --rate-hz 20 --record "$OUT/bags" --out "$OUT/record_demo" --timeout 20000
[ -f "$OUT/gen_data/manifest.jsonl" ] || cde sim generate --tasks demo --seeds "0:$SEEDS" --size 96 --cameras object \
  --failures 0.25 --appearance mixed --workers 2 --no-progress --out "$OUT/gen_data"
[ -f "$OUT/heldout/manifest.jsonl" ] || cde sim generate --tasks demo --seeds 1000:1048 --size 96 --cameras object \
  --failures 0.25 --appearance mixed --workers 2 --no-progress --out "$OUT/heldout"
for draw in 0 1 2; do
  [ -f "$OUT/bag_data_d$draw/manifest.jsonl" ] || cde data import "$OUT/bags" --split-seed "$draw" --no-progress \
    --out "$OUT/bag_data_d$draw"
  [ -f "$OUT/gen_data_d$draw/manifest.jsonl" ] || cde data merge "$OUT/gen_data" --split-seed "$draw" \
    --out "$OUT/gen_data_d$draw"
  [ -f "$OUT/bag_aligned_data_d$draw/manifest.jsonl" ] || python scripts/align_bag_splits.py "$OUT/bag_data_d$draw" \
    "$OUT/gen_data_d$draw" --out "$OUT/bag_aligned_data_d$draw"
  for source in gen bag bag_aligned; do
    model="$MODELS/${source}_d$draw"
    [ -f "$model/model.safetensors" ] || "${TRAIN[@]}" "data.root=$OUT/${source}_data_d$draw" "out=$model"
    [ -f "$model/eval/eval_all.json" ] || cde eval "$model/model.safetensors" --data "$OUT/heldout" --split all \
      --out "$model/eval"
  done
done
[ -f "$MODELS/live_gen/summary.json" ] || python -m cde_ros.demo --model "$MODELS/gen_d0/model.safetensors" \
  "${LIVE[@]}" --out "$MODELS/live_gen"
if [ ! -f "$MODELS/live_bag/summary.json" ]; then
  rm -rf "$MODELS/live_bag_bags"
  python -m cde_ros.demo --model "$MODELS/bag_aligned_d0/model.safetensors" "${LIVE[@]}" \
    --record "$MODELS/live_bag_bags" --out "$MODELS/live_bag"
fi
python - "$MODELS" <<'PY'
import json, sys

from safetensors.torch import load_file

out = sys.argv[1]
keys = ("recognition_accuracy", "verification_balanced_accuracy", "no_effect_auroc")
print("offline, held-out pairs:")
print("| draw | model | " + " | ".join(keys) + " | weights equal to gen |")
for draw in range(3):
    gen = load_file(f"{out}/gen_d{draw}/model.safetensors")
    for source in ("gen", "bag", "bag_aligned"):
        fig = json.load(open(f"{out}/{source}_d{draw}/eval/eval_all.json"))["all"]["verification"]
        weights = load_file(f"{out}/{source}_d{draw}/model.safetensors")
        equal = weights.keys() == gen.keys() and all(weights[k].equal(gen[k]) for k in gen)
        print(f"| {draw} | {source} | " + " | ".join(str(fig[k]) for k in keys) + f" | {equal} |")
print("live, 48 held-out commands:")
live_keys = keys + ("latency_ms_p50", "latency_ms_p90")
rows = {name: json.load(open(f"{out}/live_{name}/summary.json"))["summary"] for name in ("gen", "bag")}
print("| model | " + " | ".join(live_keys) + " |")
for name, s in rows.items():
    print(f"| {name} | " + " | ".join(str(s[k]) for k in live_keys) + " |")
print("recording:", rows["bag"].get("recording"))
PY
