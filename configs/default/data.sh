#!/usr/bin/env bash
# Training data of the shipped default cascade (src/openimagen/models/default). Run from the repository root.
set -euo pipefail
OI=${OI:-openimagen}
$OI data emoji data/emoji64 --size 64                                       # 3,655 Noto emoji, CLDR names
$OI data shapes data/shapes64 --count 40000 --size 64 --split train --seed 0   # held-out combinations excluded
$OI data mix data/default-mix data/shapes64 data/emoji64:3                   # 40,000 scenes + 3 x 3,655 emoji (21% emoji)
