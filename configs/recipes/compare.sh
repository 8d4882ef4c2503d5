#!/usr/bin/env bash
# Recipe comparison for the default model's base stage (issue 11, point 2; results in docs/MODEL_CARD.md).
# Run from the repository root after `make setup`:
#   configs/recipes/compare.sh train r1-mix r2-scenes     # one recipe per call, or several in turn
#   configs/recipes/compare.sh eval  r1-mix r2-scenes     # export each base stage alone and score it
# Every recipe trains for 20 CPU-minutes on one thread (max_cpu_minutes), resumable (a second `train` resumes).
set -euo pipefail
OI=${OI:-openimagen}
part=$1; shift
recipes=("$@")
[[ ${#recipes[@]} -gt 0 ]] || recipes=(r1-mix r2-scenes r3-attn r4-batch64)
[[ -f data/default-mix/manifest.jsonl ]] || configs/default/data.sh
for r in "${recipes[@]}"; do
  run=runs/recipe-$r
  if [[ $part == train ]]; then
    if [[ $r == r6-pruned && ! -f runs/pruned-default-0.5/pipeline.json ]]; then   # issue 15: prune, then fine-tune
      $OI prune -o runs/pruned-default-0.5 --fraction 0.5 --stage stage0_base
    fi
    if compgen -G "$run/checkpoints/step_*" >/dev/null; then
      OMP_NUM_THREADS=1 $OI train --resume "$run"
    else
      OMP_NUM_THREADS=1 $OI train "configs/recipes/$r.yaml"
    fi
  elif [[ $part == eval ]]; then
    $OI export "$run" -o "$run-model" --fp16 --overwrite
    # the base stage's 32 px output, one image per prompt, 8 prompts per category; the same sampler for all
    for split in seen heldout; do
      $OI eval --suite shapes --model "$run-model" --split $split --limit 8 --images-per-prompt 1 --steps 20 \
          --guidance 2 --no-progress --out "$run-eval/shapes-$split"
    done
    $OI eval --suite emoji --model "$run-model" --data data/emoji64 --limit 100 --images-per-prompt 1 --steps 20 \
        --guidance 2 --no-progress --out "$run-eval/emoji"
  else
    echo "usage: $0 train|eval [RECIPE...]" >&2; exit 2
  fi
done
