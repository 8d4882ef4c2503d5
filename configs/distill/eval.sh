#!/usr/bin/env bash
# The guidance-distilled base student against its teacher (the shipped base), each with the shipped SR stage, at the
# shipped sampling settings (base: DPM-Solver++(2M) 32 steps, guidance 2). Run from the repository root after
# `openimagen train configs/distill/guidance-base.yaml`. Writes runs/eval-distill/.
set -euo pipefail
OI=${OI:-openimagen}
OUT=${OUT:-runs/eval-distill}
$OI export runs/distill-guidance src/openimagen/models/default/stage1_sr -o runs/student-model --fp16 --overwrite
for name in teacher student; do
  M=$([[ $name == teacher ]] && echo src/openimagen/models/default || echo runs/student-model)
  for split in seen heldout; do
    $OI eval --suite shapes --model $M --split $split --limit 8 --images-per-prompt 1 --no-progress \
        --out $OUT/$name-shapes-$split
  done
  $OI eval --suite emoji --model $M --data data/emoji64 --limit 100 --images-per-prompt 1 --no-progress \
      --out $OUT/$name-emoji
  $OI bench --model $M --samplers dpmpp_2m --steps 32 --batch-sizes 1,8 --repeats 3 --threads 1 --no-progress \
      --out $OUT/$name-bench.json
done
