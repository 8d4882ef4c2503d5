#!/usr/bin/env bash
# Quality against network evaluations (NFE) for the shipped base stage (the teacher) and its progressive students
# (issue 15, point 1), each base stage alone at its 32 px output: the shapes suite (8 prompts per category, one
# image each) and the emoji suite (100 prompts; Fréchet distance with its real-vs-real floor). Run from the
# repository root after configs/distill/progressive-base.yaml and progressive-base-4.yaml trained (and were
# exported to runs/progressive-8-model and runs/progressive-4-model). Writes runs/eval-progressive/. The shipped
# default's own students (configs/default/student-8.yaml, student-4.yaml):
#   S8=runs/student-8-model S4=runs/student-4-model OUT=runs/eval-students configs/distill/eval-progressive.sh
set -euo pipefail
OI=${OI:-openimagen}
OUT=${OUT:-runs/eval-progressive}
S8=${S8:-runs/progressive-8-model}
S4=${S4:-runs/progressive-4-model}
$OI export src/openimagen/models/default/stage0_base -o runs/shipped-base-model --fp16 --overwrite
ev() {
  local name=$1 model=$2; shift 2
  for split in seen heldout; do
    $OI eval --suite shapes --model "$model" --split $split --limit 8 --images-per-prompt 1 --no-progress "$@" \
        --out "$OUT/$name/shapes-$split"
  done
  $OI eval --suite emoji --model "$model" --data data/emoji64 --limit 100 --images-per-prompt 1 --no-progress "$@" \
      --out "$OUT/$name/emoji"
}
# the teacher: the shipped setting (DPM-Solver++(2M) 32 steps, guidance 2: 64 NFE), then DDIM at guidance 2
ev teacher-dpmpp-32 runs/shipped-base-model --sampler dpmpp_2m --steps 32 --guidance 2
for n in 16 8 4; do ev teacher-ddim-$n runs/shipped-base-model --sampler ddim --steps $n --guidance 2; done
# the students sample DDIM at guidance 1 (one pass per step), at their trained steps and below
ev student8-ddim-8 "$S8"
for n in 4 2 1; do ev student4-ddim-$n "$S4" --steps $n; done
