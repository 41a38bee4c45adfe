#!/bin/bash
# The twelve fresh runs of training/sweeps/results/preregistration-punctuation-first-default.md, two
# workers side by side (one thread each; 25 minutes an English run, 33 Dutch, 63-70 Spanish and
# Portuguese on one 2026 Xeon core), each run the recipe of its committed batch (languages-*-cpu.json):
#
#   SNAPSHOT=/path/to/checkout-of-the-batches RUNS=runs/lang training/sweeps/fresh_seeds.sh
#
# A finished run (its log says "done:") is skipped and an interrupted one continues from its last.pt,
# so after a stop the same command carries on. SNAPSHOT defaults to this checkout (the runs of session
# 18 used a copy of the code of 2026-12-06 11:13, which trained the committed batches).
set -u
HERE=$(cd "$(dirname "$0")/../.." && pwd)
SNAPSHOT=${SNAPSHOT:-$HERE}
RUNS=$(realpath -m "${RUNS:-$HERE/runs/lang}")
PYTHON=${PYTHON:-$HERE/.venv/bin/python}
export ONLSTM_DATA=${ONLSTM_DATA:-$HERE/../shared/data} OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONPATH=$SNAPSHOT

recipe() {
  case $1 in
    es) echo "--corpora es-cess --set model.vocab_size=30000 --set model.hidden_size=600 --set max_steps=1500";;
    pt) echo "--corpora pt-floresta --set model.vocab_size=30000 --set model.hidden_size=600 --set max_steps=1500";;
    nl) echo "--corpora nl-alpino --set model.vocab_size=30000";;
    en) echo "--corpora ptb-train,conll2000,brown";;
  esac
}

worker() {  # arguments: "TAG LANGUAGE SEED" triples, run in turn
  for run in "$@"; do
    read -r tag language seed <<< "$run"
    out=$RUNS/$tag-$language-s$seed
    mkdir -p "$out"
    grep -q "INFO onlstm.training: done:" "$out/train.log" 2>/dev/null && continue
    resume=""; [ -f "$out/last.pt" ] && resume="--resume"
    echo "$(date -u +%FT%T) start $out $resume" >> "$RUNS/fresh-seeds.log"
    # shellcheck disable=SC2046
    (cd "$SNAPSHOT" && "$PYTHON" -m onlstm train --preset language --language "$language" $(recipe "$language") \
       --seed "$seed" --out "$out" --set threads=1 $resume >> "$out/train.log" 2>&1)
    echo "$(date -u +%FT%T) end $out rc=$?" >> "$RUNS/fresh-seeds.log"
  done
}

worker "fresh en 4" "fresh en 5" "fresh en 6" "v30k es 4" "v30k es 5" "v30k pt 6" &
worker "v30k nl 4" "v30k nl 5" "v30k nl 6" "v30k pt 4" "v30k pt 5" "v30k es 6" &
wait
