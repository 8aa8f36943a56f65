#!/usr/bin/env bash
# Train candidates for the bundled "accurate" model: three pre-activation ResNets (4.9 M parameters)
# at once on one GPU, each with camera degradations on a different share of the faces.
#
#   scripts/train_accurate.sh ../shared/data/ferplus/ferplus.tar.gz [EPOCHS]
#   SMOKE=1 scripts/train_accurate.sh DATA      # two batches of one epoch each, on the CPU: checks the commands
#
# Choose on Valid (`ferkit evaluate --model runs/NAME --split valid --robustness`), then ship with
# `python scripts/ship_model.py accurate runs/NAME --data DATA`.
set -euo pipefail
DATA=${1:?give the FER+ data set}
EPOCHS=${2:-100}
EXTRA=()
if [[ "${SMOKE:-0}" == "1" ]]; then
    EXTRA=(--limit-train-batches 2 --limit-val-batches 2 --accelerator cpu --no-progress)
    EPOCHS=1
fi
RECIPE=(--data "$DATA" --model preresnet --label-mode soft --optimizer sgd --lr 0.1 --momentum 0.9
        --weight-decay 5e-4 --batch-size 256 --scheduler onecycle --epochs "$EPOCHS" --monitor val_acc
        --early-stopping-patience 1000)
for share in 0.5 0.75 0.9; do
    ferkit train "${RECIPE[@]}" --name "accurate-pre-deg${share}-e${EPOCHS}" \
        --augment "{scale: 0.25, degrade: ${share}}" "${EXTRA[@]}" > "runs/accurate-pre-deg${share}-e${EPOCHS}.log" 2>&1 &
done
wait
tail -n 3 runs/accurate-pre-deg*-e"${EPOCHS}".log
