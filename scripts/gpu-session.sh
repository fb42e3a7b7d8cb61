#!/usr/bin/env bash
# Every GPU check in one call, for a lent GPU machine that has no Node.js (README "CUDA").
# Expects, beside the working tree (scripts/gpu-bundle.sh prepares .device/ after `npm install`):
#   .device/node.xz, .device/nm.tar.xz, .device/models/   node, node_modules, the test models
#   build/test_cuda, build/Release/weft_native.node, dist/  built on the machine with Node
# Stages (each bounded by a deadline, in seconds from the start, so a hang cannot eat the lease):
#   cuda   test_cuda, one process per test, 8 at a time (the CPU references dominate), then the
#          gemm, engine and op tests again with WEFT_CUDA_PDL=0; failing tests under compute-sanitizer
#   tap    the tap suite with the GPU visible, beside the cuda stage (backend auto → the route
#          tests serve on the GPU; engine-cuda.test.ts runs test_cuda's checks through Node)
#   perf   test_cuda's kernel timing reports, alone on the GPU
#   bench  bench:engine --backend gpu on a synthetic Llama-3.2-1B shape: bf16 and int8, graphs on;
#          bf16 with WEFT_CUDA_PDL=0; bf16 graphs off
#   profile bf16 decode at batch 1 and 64 without graphs, WEFT_CUDA_PROFILE=1: the time of each op
#   structured  bench:structured on the GPU: decode at batch 64 under a JSON Schema against none
#   streams 1/2/4 streams (bf16)
# Logs go to $OUT (default /tmp/gpu-out); STAGES picks stages; SCALE=200 doubles the deadlines.
set -uo pipefail
cd "$(dirname "$0")/.."
export OUT="${OUT:-/tmp/gpu-out}"
mkdir -p "$OUT"
STAGES="${STAGES:-cuda tap perf bench profile structured}"
t0=$(date +%s)
stamp() { echo "=== [$(($(date +%s) - t0))s] $*"; }
# Seconds left until second T of this run (at least 1).
until_t() { local l=$(($1 * ${SCALE:-100} / 100 - ($(date +%s) - t0))); echo $((l > 1 ? l : 1)); }
has() { [[ " $STAGES " == *" $1 "* ]]; }

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv | tee "$OUT/device.txt"

# Node and the dependencies (python's lzma: xz may be missing there).
mkdir -p /tmp/nodebin
python3 -c "import lzma,shutil; shutil.copyfileobj(lzma.open('.device/node.xz'), open('/tmp/nodebin/node','wb'))"
chmod +x /tmp/nodebin/node
export PATH=/tmp/nodebin:$PATH
rm -rf node_modules nm
python3 -c "import lzma,tarfile; tarfile.open(fileobj=lzma.open('.device/nm.tar.xz')).extractall('.', filter='tar')"
mv nm node_modules
[ -e ../shared/models ] || { mkdir -p ../shared && ln -s "$PWD/.device/models" ../shared/models; }
export WEFT_TEST_MODEL_DIR="$PWD/.device/models/stories260K"
export WEFT_BENCH_DIR=/tmp/wb
node --version

if has bench; then  # the 1B-shape GGUFs take a while to write: beside the tests
  (node --input-type=module -e "
    const { syntheticGguf } = await import('./dist/bench/timing.js');
    const { GPU_SHAPES } = await import('./dist/bench/engine-gpu.js');
    await Promise.all([syntheticGguf('1b', GPU_SHAPES['1b'], 'f16'), syntheticGguf('1b', GPU_SHAPES['1b'], 'q8_0')]);
  " > /tmp/synth.log 2>&1; echo "synth exit $?" >> /tmp/synth.log) &
  synth_pid=$!
fi

if has tap; then  # small KV caches: several test processes share the GPU
  (WEFT_GPU_MEMORY_UTILIZATION=0.02 timeout "$(until_t 170)" node scripts/run-tests.mjs --jobs 8 > "$OUT/tap.log" 2>&1
   echo "tap exit $?" >> "$OUT/tap.log") &
  tap_pid=$!
fi

# Runs the named tests of test_cuda, each in its own process, 8 at a time; logs to $1.
run_driver() {
  local log=$1 deadline=$2
  shift 2
  rm -rf /tmp/tc && mkdir -p /tmp/tc
  local one="timeout $(until_t "$deadline") ./build/test_cuda --model '$WEFT_TEST_MODEL_DIR'"
  printf '%s\n' "$@" | xargs -P 8 -I{} sh -c "$one '={}' > /tmp/tc/{}.log 2>&1; echo \$? > /tmp/tc/{}.rc"
  : > "$log"
  local failing=()
  for t in "$@"; do
    cat "/tmp/tc/$t.log" >> "$log"
    rc=$(cat "/tmp/tc/$t.rc" 2>/dev/null || echo none)
    [ "$rc" = 0 ] || { failing+=("$t"); echo "FAILED TEST $t (exit $rc)" | tee -a "$log"; }
  done
  grep -E "^  FAIL" "$log" | head -30
  awk '/checks passed/ {p += $4; f += $7} END {print "checks: " p " passed, " f " failed"}' "$log" | tee -a "$log"
  for t in "${failing[@]:0:4}"; do
    [ "$(until_t "$deadline")" -gt 10 ] || break
    echo "##### compute-sanitizer $t" | tee -a "$log"
    timeout "$(until_t "$deadline")" compute-sanitizer --tool memcheck --print-limit 8 ./build/test_cuda --model "$WEFT_TEST_MODEL_DIR" "=$t" >> "$log" 2>&1
    grep -E "Invalid|ERROR SUMMARY" "$log" | tail -5
  done
}

if has cuda; then
  stamp "test_cuda (each test alone, 8 at a time)"
  mapfile -t all < <(./build/test_cuda --list | grep -v _perf)
  run_driver "$OUT/test_cuda.log" 110 "${all[@]}"
  stamp "test_cuda gemm, engine and op tests with WEFT_CUDA_PDL=0"
  mapfile -t pdl < <(./build/test_cuda --list | grep -E '^(gemm|engine|rope|rmsnorm|silu)' | grep -v _perf)
  WEFT_CUDA_PDL=0 run_driver "$OUT/test_cuda_nopdl.log" 150 "${pdl[@]}"
fi

if has tap; then
  stamp "waiting for the tap suite"
  wait "$tap_pid"
  grep -E "^\s*not ok|^tests:|tap exit" "$OUT/tap.log" | head -40
fi

if has perf; then
  stamp "kernel timing reports"
  timeout "$(until_t 195)" ./build/test_cuda gemm_perf attention_perf > "$OUT/perf.log" 2>&1
  grep -E "info|FAIL" "$OUT/perf.log"
fi

if has bench; then
  stamp "waiting for the synthetic GGUFs"
  wait "$synth_pid"
  cat /tmp/synth.log
  bench() { node dist/bench/engine.js --backend gpu --hbm-tbps 4.8 "$@" 2>&1 | tee -a "$OUT/bench.log"; }
  stamp "bench: bf16 and int8, graphs on" | tee -a "$OUT/bench.log"
  timeout "$(until_t 300)" bash -c "$(declare -f bench); bench --streams 0 --json $OUT/bench.json"
  stamp "bench: WEFT_CUDA_PDL=0" | tee -a "$OUT/bench.log"
  WEFT_CUDA_PDL=0 timeout "$(until_t 370)" bash -c "$(declare -f bench); bench --dtypes bf16 --streams 0 --prefill 1x2048 --json $OUT/bench-nopdl.json"
  stamp "bench: bf16, graphs off" | tee -a "$OUT/bench.log"
  timeout "$(until_t 410)" bash -c "$(declare -f bench); bench --dtypes bf16 --streams 0 --prefill 1x2048 --no-graphs"
fi
if has profile; then
  stamp "profile: bf16 decode, eager, events around each op" | tee -a "$OUT/profile.log"
  for b in 1 64; do
    WEFT_CUDA_PROFILE=1 timeout "$(until_t 470)" node dist/bench/engine.js --backend gpu --hbm-tbps 4.8 --dtypes bf16 --batches $b \
      --streams 0 --no-graphs --prefill 1x64 --reps 1 2>&1 | tee -a "$OUT/profile.log"
  done
fi
if has structured; then
  stamp "bench:structured on the GPU" | tee -a "$OUT/structured.log"
  timeout "$(until_t 540)" node dist/bench/structured.js --backend gpu --batch 64 2>&1 | tee -a "$OUT/structured.log"
fi
if has streams; then
  stamp "bench: 1, 2, 4 streams (bf16)" | tee -a "$OUT/bench.log"
  timeout "$(until_t 500)" node dist/bench/engine.js --backend gpu --hbm-tbps 4.8 --dtypes bf16 --batches 1 --prefill 1x64 2>&1 | tee -a "$OUT/bench.log"
fi
stamp "done"
