#!/usr/bin/env bash
# Every number of docs/MODEL_CARD.md for the shipped default cascade. Run from the repository root after
# `make setup` and configs/default/data.sh (the emoji suite reads data/emoji64). CPU, deterministic (seeded).
set -euo pipefail
OI=${OI:-openimagen}
M=${M:-src/openimagen/models/default}
OUT=${OUT:-runs/eval-default}
# Text alignment on the final 64 px output: seen and held-out combinations, one image per prompt.
$OI eval --suite shapes --model $M --split seen    --images-per-prompt 1 --no-progress --out $OUT/shapes-seen
$OI eval --suite shapes --model $M --split heldout --images-per-prompt 1 --no-progress --out $OUT/shapes-heldout
# Fidelity and prompt agreement on emoji: 200 prompts, subgroup-stratified, against the real images.
$OI eval --suite emoji --model $M --data data/emoji64 --limit 200 --no-progress --out $OUT/emoji
# Quality against network evaluations, per sampler (3 prompts per category).
$OI eval --suite shapes --model $M --split seen --limit 3 --images-per-prompt 1 --no-progress \
    --sweep-steps 4,8,16,32 --samplers ddim,dpmpp_2m,euler,heun --out $OUT/sweep
# Speed and memory.
$OI bench --model $M --samplers dpmpp_2m --steps 10,20 --batch-sizes 1,8 --repeats 3 --out $OUT/bench.json
