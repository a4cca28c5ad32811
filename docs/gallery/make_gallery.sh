#!/usr/bin/env bash
# Rebuilds the pictures of docs/gallery.md from the tiny recipes (CPU, offline, generated data only).
# Usage (from the repository root, venv active):  bash docs/gallery/make_gallery.sh [RUNS_DIR]
# RUNS_DIR (default: runs) receives the trained tiny models and the generated IAM-shaped dataset.
set -euo pipefail
RUNS=${1:-runs}
G=docs/gallery

# 1. the project's tiny smoke models, trained on generated toy data (not IAM-OnDB, not a benchmark)
[ -f "$RUNS/tiny-synthesis-400/best/config.json" ] || seqbench train --recipe tiny-synthesis --max-steps 400 --out "$RUNS/tiny-synthesis-400" -q
[ -f "$RUNS/tiny-prediction-300/best/config.json" ] || seqbench train --recipe tiny-prediction --max-steps 300 --out "$RUNS/tiny-prediction-300" -q
[ -f "$RUNS/tiny-text-300/best/config.json" ] || seqbench train --recipe tiny-text --max-steps 300 --out "$RUNS/tiny-text-300" -q

# 2. a generated IAM-shaped dataset to prime from (seqbench's synthetic archives: no real handwriting)
if [ ! -d "$RUNS/datasets/iam-ondb" ]; then
  python -c "from seqbench.data.iam.synthetic import make_sample; make_sample('$RUNS/iam-sample', forms_per_split=2)"
  seqbench prepare iam --source "$RUNS/iam-sample" --out "$RUNS/datasets" -q
fi

# 3. the pictures
seqbench sample --model "$RUNS/tiny-synthesis-400/best" --text "from his travels it might have been" \
  --bias 0.5 --seed 0 --out $G/synthesis-attention.svg --png $G/synthesis-attention.png --attention
for b in 0 2; do
  seqbench sample --model "$RUNS/tiny-synthesis-400/best" --text "the quick brown fox" --text "jumps over a lazy dog" \
    --bias $b --seed 1 --png $G/synthesis-bias-$b.png
done
seqbench sample --model "$RUNS/tiny-synthesis-400/best" --text "seven wizards" --prime-id a00-000u-01 \
  --data-root "$RUNS/datasets" --bias 1 --seed 0 --show-prime --attention --png $G/synthesis-primed.png
seqbench sample --model "$RUNS/tiny-prediction-300/best" --steps 300 -n 3 --bias 0.5 --seed 0 --png $G/prediction.png
seqbench sample --model "$RUNS/tiny-text-300/best" --prime-text "the quick " --length 160 -n 3 --temperature 0.8 \
  --seed 0 --out $G/text.txt
seqbench sample --model "$RUNS/tiny-prediction-300/best" --prime-id a00-000u-01 --data-root "$RUNS/datasets" \
  --steps 200 --bias 0.5 --seed 0 --png $G/prediction-primed.png
