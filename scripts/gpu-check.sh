#!/usr/bin/env bash
# The CUDA checks that need no Node.js: builds the native core and the CUDA test driver with CMake
# (no addon) and runs every CUDA op against the CPU reference plus the whole-step tests on a model.
#   scripts/gpu-check.sh [MODEL_DIR] [test-name-filter ...]
# MODEL_DIR defaults to $WEFT_TEST_MODEL_DIR, else ../shared/models/stories260K.
set -euo pipefail
cd "$(dirname "$0")/.."
model="${1:-${WEFT_TEST_MODEL_DIR:-../shared/models/stories260K}}"
shift || true
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
cmake -S . -B build-gpu "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DWEFT_CUDA=ON >/dev/null
cmake --build build-gpu --target test_cuda -j "$(nproc)"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
./build-gpu/test_cuda --model "$model" "$@"
