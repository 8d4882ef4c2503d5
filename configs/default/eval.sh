#!/usr/bin/env bash
# Every number of docs/MODEL_CARD.md for the shipped default cascade. Run from the repository root after
# `make setup` and configs/default/data.sh (the emoji suite reads data/emoji64). CPU, seeded and deterministic.
# Pass a stage (choose | final) to run only that part; both by default.
set -euo pipefail
OI=${OI:-openimagen}
M=${M:-src/openimagen/models/default}
OUT=${OUT:-runs/eval-default}
V=${VARIANT:+--variant $VARIANT}      # VARIANT=fast: the model's distilled "fast" cascade
EMOJI="--suite emoji --model $M $V --data data/emoji64 --images-per-prompt 1 --no-progress"
part=${1:-all}

if [[ $part == all || $part == choose ]]; then
  # Run on the cascade exported with the training runs' own sampling defaults (base: dpmpp_2m, 20 steps,
  # guidance 4; SR: 10 steps, guidance 1, aug 0.1), before --sampling set the shipped ones from these results:
  #   openimagen export runs/default-base-v2 runs/default-sr-v2 -o runs/model-v2-final --fp16
  #   M=runs/model-v2-final configs/default/eval.sh choose
  # Choosing the default sampler and steps: quality against network evaluations, per sampler.
  $OI eval $EMOJI --limit 30 --sweep-steps 8,16,32 --samplers ddim,dpmpp_2m,euler,heun --out $OUT/sweep-emoji
  $OI eval --suite shapes --model $M --split seen --limit 2 --images-per-prompt 1 --no-progress \
      --sweep-steps 8,16,32 --samplers ddim,dpmpp_2m,euler,heun --out $OUT/sweep-shapes
  # Choosing guidance (base stage; the SR stage stays unguided) and the SR noise-augmentation level.
  for g in 2,1 4,1 7,1; do $OI eval $EMOJI --limit 60 --guidance $g --out $OUT/guidance-$g; done
  for a in 0.0 0.1 0.3; do $OI eval $EMOJI --limit 60 --aug-level $a --out $OUT/aug-$a; done
fi
if [[ $part == all || $part == final ]]; then
  # Text alignment on the final 64 px output: seen and held-out combinations, one image per prompt.
  $OI eval --suite shapes --model $M $V --split seen    --images-per-prompt 1 --no-progress --out $OUT/shapes-seen
  $OI eval --suite shapes --model $M $V --split heldout --images-per-prompt 1 --no-progress --out $OUT/shapes-heldout
  # Fidelity and prompt agreement on emoji: 200 prompts, subgroup-stratified, against the real images.
  $OI eval $EMOJI --limit 200 --out $OUT/emoji
  # Speed and memory.
  $OI bench --model $M $V --samplers dpmpp_2m --steps 10,20 --batch-sizes 1,8 --repeats 3 --out $OUT/bench.json
fi
