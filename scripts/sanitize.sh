#!/usr/bin/env bash
# `npm run test:sanitize`: the native code under AddressSanitizer + UndefinedBehaviorSanitizer.
# Builds the addon and the C++ test drivers with -DWEFT_SANITIZE=ON (g++, CPU backend) into
# build-asan/, runs the drivers (test_matmul, test_model_load, test_attention), then the native tap tests with the
# sanitized addon: node itself is not instrumented, so the ASan runtime is preloaded, and leak
# checking is off (V8 and node keep allocations to exit by design). Any report aborts the process
# (-fno-sanitize-recover=all), which fails the test that triggered it.
set -euo pipefail
cd "$(dirname "$0")/.."
export WEFT_TEST_MODEL_DIR="${WEFT_TEST_MODEL_DIR:-$(cd .. && pwd)/shared/models/stories260K}"

npx cmake-js compile --out build-asan --CDCMAKE_BUILD_TYPE=RelWithDebInfo --CDWEFT_SANITIZE=ON
build-asan/test_matmul | tail -n 1
build-asan/test_model_load
build-asan/test_attention | tail -n 1

# The tests load build/Release/weft_native.node from the package root they run in: a copy of the
# sources whose build/ holds the sanitized addon.
tree=build-asan/tree
rm -rf "$tree"
mkdir -p "$tree/build/Release"
cp -r src test scripts package.json tsconfig.json "$tree/"
ln -s "$PWD/node_modules" "$tree/node_modules"
cp build-asan/Release/weft_native.node "$tree/build/Release/"
cd "$tree"
# engine-cuda.test.ts is left out: it expects a CUDA build's messages, and sanitizer builds are CPU only
LD_PRELOAD="$(g++ -print-file-name=libasan.so)" ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=print_stacktrace=1 \
  node scripts/run-tests.mjs test/native/engine-{architectures,batch,errors,golden,int8,isa-parity,masks,quantized,sampling}.test.ts \
  test/native/qwen3.test.ts
