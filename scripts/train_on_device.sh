#!/usr/bin/env bash
# One prepared call on a GPU machine (or any other): train on from the latest weights for a fixed budget, then
# bring back the best checkpoint (weights only, no optimiser state) with the run's curve, log and summary.
#
#   bash scripts/train_on_device.sh FROM MINUTES [RECIPE] [--set KEY=VALUE ...]
#
#   FROM     a resumable run folder: resumed exactly (weights, optimiser, rate, data position), on a copy, so the
#            folder itself is left as it was; --set may then change only stopping rules and the rate.
#            Or a checkpoint folder (RUN/best, a zoo/NAME folder, this script's earlier OUT) or zoo:NAME: its
#            weights start a new run of RECIPE (--init-from; Adam's moments start afresh), where --set may change
#            anything, e.g. --set data.batch_size=64 --set amp=true for a GPU.
#   MINUTES  the training budget: the run stops within it, with a checkpoint and a validation where it fits.
#
# Environment: DEVICE (default cuda; cpu for a dry run), OUT (default ./device-out), SEQBENCH_HOME (where
# `seqbench prepare` put the datasets), WORK (the run folder's parent; default a new temporary folder),
# PY (the Python that holds PyTorch; default python3).
#
# $OUT receives: model.safetensors + config.json (the best weights: `seqbench eval --model $OUT`, or
# `seqbench train --init-from $OUT` back home), metrics.jsonl, recipe.json, loss.png, train.log, summary.json.
# Every file appears whole or not at all (written beside, then renamed). Exit status: the trainer's.
set -euo pipefail

usage() { echo "usage: bash scripts/train_on_device.sh FROM MINUTES [RECIPE] [--set KEY=VALUE ...]"; sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; }
if [[ $# -lt 2 || "$1" == -h || "$1" == --help ]]; then usage; exit 2; fi
FROM=$1 MINUTES=$2
shift 2
RECIPE=
if [[ $# -gt 0 && "$1" != --* ]]; then RECIPE=$1; shift; fi
DEVICE=${DEVICE:-cuda} OUT=${OUT:-device-out} PY=${PY:-python3}
if ! [[ "$MINUTES" =~ ^[0-9]+([.][0-9]+)?$ ]]; then
  echo "train_on_device: MINUTES must be a number of minutes (got '$MINUTES')" >&2; exit 2
fi

# seqbench itself: installed here already, or installed from this checkout (no network: --no-index)
if ! "$PY" -c "import seqbench.cli.main" 2>/dev/null; then
  echo "train_on_device: installing seqbench from $PWD (no dependencies fetched)"
  "$PY" -m pip install -q --no-deps --no-build-isolation --no-index -e . \
    || { echo "train_on_device: could not install seqbench from $PWD; run this script from the repository root" >&2; exit 2; }
fi
SEQ=("$PY" -m seqbench.cli.main)

WORK=${WORK:-$(mktemp -d)}
RUN="$WORK/run"
if [[ -e "$RUN" ]]; then echo "train_on_device: $RUN exists; give a WORK folder without a run/ in it" >&2; exit 2; fi
mkdir -p "$WORK" "$OUT"
if [[ -f "$FROM/recipe.json" && -d "$FROM/last" ]]; then
  [[ -z "$RECIPE" ]] || { echo "train_on_device: $FROM is a run folder, resumed with its own recipe: leave RECIPE out" >&2; exit 2; }
  echo "train_on_device: resuming a copy of the run $FROM on $DEVICE for $MINUTES min"
  mkdir -p "$RUN" && cp -r "$FROM"/. "$RUN"/
  CMD=("${SEQ[@]}" train --resume --out "$RUN")
else
  [[ -n "$RECIPE" ]] || { echo "train_on_device: $FROM is not a run folder (no recipe.json and last/): name the RECIPE its weights start" >&2; exit 2; }
  echo "train_on_device: $RECIPE from the weights $FROM on $DEVICE for $MINUTES min"
  CMD=("${SEQ[@]}" train --recipe "$RECIPE" --init-from "$FROM" --out "$RUN")
fi

set +e
"${CMD[@]}" --device "$DEVICE" --max-minutes "$MINUTES" -q "$@" 2>&1 | tee "$OUT/.train.log.part"
rc=${PIPESTATUS[0]}
set -e
mv -f "$OUT/.train.log.part" "$OUT/train.log"

# the best weights (else the last, if the run stopped before its first validation), the curve and a summary
"$PY" - "$RUN" "$OUT" "$rc" <<'PY'
import json, os, re, shutil, sys
from pathlib import Path

run, out, rc = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
src = run / "best" if (run / "best" / "model.safetensors").is_file() else run / "last"
if not (src / "model.safetensors").is_file():
    print(f"train_on_device: the run wrote no weights (trainer exit status {rc}); see {out / 'train.log'}")
    sys.exit(0)
for name, frm in (("model.safetensors", src), ("config.json", src), ("metrics.jsonl", run), ("recipe.json", run),
                  ("loss.png", run)):
    if (frm / name).is_file():
        shutil.copyfile(frm / name, out / f".{name}.part")
        os.replace(out / f".{name}.part", out / name)
events = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
valid = [e for e in events if e.get("event") == "valid"]
stop = next((e for e in reversed(events) if e.get("event") == "stop"), {})
recipe = json.loads((run / "recipe.json").read_text()) if (run / "recipe.json").is_file() else {}
log = (out / "train.log").read_text() if (out / "train.log").is_file() else ""
unit = re.search(r"best validation \S+ ([^;]+);", log)
summary = {
    "recipe": recipe.get("name"), "weights": src.name,  # "best" or "last"
    "best_valid": min((e["loss"] for e in valid), default=None), "unit": unit.group(1) if unit else None,
    "best_step": min(valid, key=lambda e: e["loss"])["step"] if valid else None,
    "steps": stop.get("step"), "stop_reason": stop.get("reason"),
    "wall_s": stop.get("wall_s"), "cpu_s": stop.get("cpu_s"), "trainer_exit_status": rc,
}
(out / ".summary.json.part").write_text(json.dumps(summary, indent=1) + "\n")
os.replace(out / ".summary.json.part", out / "summary.json")
print("train_on_device: " + json.dumps(summary))
PY
exit $rc
