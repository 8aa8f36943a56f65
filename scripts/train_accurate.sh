#!/usr/bin/env bash
# Train the bundled "accurate" model: a pre-activation ResNet (4.9 M parameters), soft FER+ labels,
# SGD with a 100-epoch one-cycle schedule, camera degradations on 75% of the faces (every shrink
# and enlarge filter drawn). On a CPU it runs in the background for hours; run the same command
# again after an interruption and it resumes from the last finished epoch, bit for bit (the
# schedule is fixed by the planned 100 epochs, not by the interruptions).
#
#   scripts/train_accurate.sh ../shared/data/ferplus/ferplus.tar.gz          # start, or resume
#   tail -f runs/accurate-pre-e100/log                                     # one line per epoch
#   SMOKE=1 scripts/train_accurate.sh DATA      # two batches of one epoch, in the foreground: checks the command
#
# Choose on Valid (`ferkit evaluate --model runs/accurate-pre-e100 --split valid --robustness`), then
# ship with `python scripts/ship_model.py accurate runs/accurate-pre-e100 --data DATA` and
# `python scripts/ship_onnx.py accurate --data DATA`.
set -euo pipefail
DATA=${1:?give the FER+ data set}
EPOCHS=${EPOCHS:-100}
NAME=${NAME:-accurate-pre-e${EPOCHS}}
FERKIT=${FERKIT:-ferkit}
RECIPE=(--data "$DATA" --model preresnet --label-mode soft --optimizer sgd --lr 0.1 --momentum 0.9
        --weight-decay 5e-4 --batch-size 256 --scheduler onecycle --epochs "$EPOCHS" --monitor val_acc
        --early-stopping-patience 1000 --augment "{scale: 0.25, degrade: 0.75}" --out runs --no-progress)
if [[ "${SMOKE:-0}" == "1" ]]; then
    rm -rf runs/accurate-smoke
    exec "$FERKIT" train "${RECIPE[@]}" --name accurate-smoke --epochs 1 --limit-train-batches 2 --limit-val-batches 2
fi
mkdir -p "runs/$NAME"
RESUME=()
[[ -f "runs/$NAME/checkpoints/last.ckpt" ]] && RESUME=(--resume)
# niced: tests and other work on the same cores keep their speed; the run takes what is left.
nohup nice -n 10 "$FERKIT" train "${RECIPE[@]}" --name "$NAME" "${RESUME[@]}" >> "runs/$NAME/log" 2>&1 &
echo "training $NAME in the background (pid $!${RESUME:+, resumed}); log: runs/$NAME/log"
