#!/usr/bin/env bash
# Reproduces models/demo/cde_demo.safetensors: simulator pairs with robot masks -> a backbone pretrained
# self-supervised on those pairs' frames (cde pretrain, cde_core/configs/pretrain_demo.yaml) -> cde train
# -> cde calibrate --effect-magnitude auto (the change measure and the no-effect decision chosen on IID val)
# (on 2 cores: about 12 min of rendering, 35 min of pretraining, 25 min of training).
#   ROBOT_MASK=none scripts/train_demo_model.sh   the same model without masks (the README's masks-off row),
#                                                 written to runs/demo_model_none, the shipped model untouched
#   BACKBONE=scratch scripts/train_demo_model.sh  the same model from a random backbone (runs/demo_model_scratch_union)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/setup_env.sh"
source "$ROOT/scripts/env.sh"
cd "$ROOT"
DATA="${DATA:-runs/demo_train}"
MASK="${ROBOT_MASK:-union}"
GEN=(cde sim generate --tasks demo --size 96 --cameras object --workers 2 --failures 0.2 --no-progress)
if [ ! -f "$DATA/manifest.jsonl" ]; then
  # both looks, the random one (the harder) more often; seeds 1000+ are the demo's, never trained on
  [ -f runs/demo_data_mixed/manifest.jsonl ] || "${GEN[@]}" --seeds 0:160 --appearance mixed --out runs/demo_data_mixed
  [ -f runs/demo_data_random/manifest.jsonl ] || "${GEN[@]}" --seeds 160:400 --appearance random --out runs/demo_data_random
  cde data merge runs/demo_data_mixed runs/demo_data_random --out "$DATA"
fi
# after training: the change measure the no-effect rule thresholds (global | relative | topk) and the decision's
# thresholds chosen again on the same IID validation pairs (cde calibrate --effect-magnitude auto)
CALIBRATE=(cde calibrate --data "$DATA" --split iid_0 --role val --effect-magnitude auto)
BACKBONE_FILE=runs/pretrain_demo/backbone.safetensors
if [ "${BACKBONE:-pretrained}" = "scratch" ]; then
  cde train cde_core/configs/demo_model.yaml "data.root=$DATA" "data.robot_mask=$MASK" "out=runs/demo_model_scratch_$MASK"
  "${CALIBRATE[@]}" "runs/demo_model_scratch_$MASK/model.safetensors" --out "runs/demo_model_scratch_$MASK/model.safetensors"
  echo "wrote runs/demo_model_scratch_$MASK/model.safetensors"
  exit 0
fi
# pretraining reads the training pairs' frames from runs/demo_train (pretrain_demo.yaml), test pairs left out
[ -f "$BACKBONE_FILE" ] || OMP_NUM_THREADS=1 torchrun --standalone --nproc_per_node 2 -m cde_core.cli pretrain \
  cde_core/configs/pretrain_demo.yaml "data.sources=[{type: manifest, root: $DATA, split: iid_0, exclude_roles: [test]}]" \
  "probe.manifest=$DATA" --out runs/pretrain_demo
PRETRAINED=("model.pretrained_file=$BACKBONE_FILE" optim.backbone_lr_scale=0.2)
if [ "$MASK" != "union" ]; then
  cde train cde_core/configs/demo_model.yaml "data.root=$DATA" "data.robot_mask=$MASK" "${PRETRAINED[@]}" \
    "out=runs/demo_model_$MASK"
  "${CALIBRATE[@]}" "runs/demo_model_$MASK/model.safetensors" --out "runs/demo_model_$MASK/model.safetensors"
  echo "wrote runs/demo_model_$MASK/model.safetensors"
  exit 0
fi
cde train cde_core/configs/demo_model.yaml "data.root=$DATA" "${PRETRAINED[@]}" out=runs/demo_model
mkdir -p models/demo
"${CALIBRATE[@]}" runs/demo_model/model.safetensors --out models/demo/cde_demo.safetensors
cp runs/demo_model/metrics.json models/demo/cde_demo.metrics.json
echo "wrote models/demo/cde_demo.safetensors"
