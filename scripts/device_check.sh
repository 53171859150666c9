#!/usr/bin/env bash
# advlit on one GPU in under 8 minutes: PGD-AT epoch time fp32 / bf16 / channels_last / compile,
# standard suite vs the AutoAttack reference (images/s), the speedrun's time to 88.5% / 92.8%.
#   scripts/device_check.sh [--root DIR]        # on a GPU machine
#   scripts/device_check.sh --smoke             # end to end on CPU in under 2 minutes
set -euo pipefail
cd "$(dirname "$0")/.."
export WANDB_MODE=offline PYTHONUNBUFFERED=1
exec python3 scripts/device_check.py "$@"
