#!/usr/bin/env bash
# npm run bench:compare — the README's serving comparison, regenerated: weft with no tuning flags
# against llama.cpp's llama-server (-t 2 -np 64, built once from the source node-llama-cpp ships)
# on the same synthetic 110M-shape Q8_0 GGUF; streaming /v1/completions, 128-token prompts,
# 32 output tokens (ignore_eos), closed loop at 1, 16 and 64 streams, each stream count with its
# own prompts. Writes bench/results/: the side-by-side table, the JSON of every point, the HTML
# report and the SVG charts. Extra arguments go to npm run bench (e.g. --num-prompts 64).
set -euo pipefail
cd "$(dirname "$0")/.."
out=bench/results
mkdir -p "$out"
model="$(node dist/bench/shapes.js 110m q8_0)"
node dist/bench/serve/main.js --model "$model" --peer llama-server --max-concurrency 1,16,64 --num-prompts 128 \
  --random-input-len 128 --random-output-len 32 --ignore-eos --disable-tqdm \
  --save-result --result-dir "$out/json" --html "$out/report.html" --svg-dir "$out" "$@" | tee "$out/summary.txt"
