#!/usr/bin/env bash
# Rebuild the published leaderboards from scratch (CPU is enough; about 10 minutes on 2 cores).
#   bash leaderboards/make.sh
# Every table is produced by one advbench command; the run directories stay under runs/leaderboards/.
set -euo pipefail
cd "$(dirname "$0")/.."
out=runs/leaderboards
mkdir -p "$out"

# The whole shipped mnist-5k zoo under FGSM and PGD (40 steps, random start), linf 0.1 / 0.2 / 0.3.
advbench run --models '*.mnist5k_*' --attacks fgsm,pgd --eps 0.1,0.2,0.3 --out "$out/mnist-5k-zoo" --overwrite --quiet \
    --no-save-adversarials --format md > leaderboards/mnist-5k-zoo.md
advbench leaderboard "$out/mnist-5k-zoo" --view flags --format md > leaderboards/mnist-5k-zoo-flags.md
advbench leaderboard "$out/mnist-5k-zoo" --view transfer --format md > leaderboards/mnist-5k-zoo-transfer.md
echo "wrote leaderboards/mnist-5k-zoo*.md" >&2
