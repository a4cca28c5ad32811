#!/usr/bin/env bash
# Samples of the zoo's trained synthesis network (zoo:synth-3layer), for docs/gallery.md.
# Run from the repository root with the venv active and IAM-OnDB prepared (`seqbench prepare iam`), since the
# primed sample imitates a real testset_v line (a01-003-01, never trained on) (its strokes are NOT drawn: the database is not ours to show).
set -euo pipefail
out=docs/gallery/synth-3layer
mkdir -p "$out"
text="from his travels it might have been"
for b in 0 0.5 2; do
  seqbench sample --model zoo:synth-3layer --text "$text" --bias "$b" --seed 0 --png "$out/bias-$b.png"
done
seqbench sample --model zoo:synth-3layer --text "$text" --bias 0.5 --seed 0 --attention \
  --png "$out/attention.png"
seqbench sample --model zoo:synth-3layer --text "$text" --prime-id a01-003-01 --bias 1 --seed 0 \
  --generated-only --png "$out/primed.png"
