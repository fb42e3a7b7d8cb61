#!/usr/bin/env bash
# Builds llama.cpp's llama-server once, from the llama.cpp source that node-llama-cpp ships in its
# package (llama/gitRelease.bundle, a git bundle), into a cache outside the repository, and prints
# the binary's path as the last line of stdout. Idempotent: a finished build is reused.
#   bash bench/llamacpp/build-server.sh            (cache: $WEFT_LLAMACPP_CACHE or ~/.cache/weft-llamacpp)
# The build takes about 10 minutes on 2 cores; logs go to stderr. GGML_NATIVE=ON tunes it for this
# CPU, as a user building llama.cpp on the machine would.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache="${WEFT_LLAMACPP_CACHE:-$HOME/.cache/weft-llamacpp}"
bin="$cache/src/build/bin/llama-server"
if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi
sh "$here/install.sh" >&2
bundle="$here/node_modules/node-llama-cpp/llama/gitRelease.bundle"
[ -f "$bundle" ] || { echo "build-server: no $bundle (node-llama-cpp changed its layout?)" >&2; exit 1; }
mkdir -p "$cache"
if [ ! -d "$cache/src/.git" ]; then
  rm -rf "$cache/src"
  git clone -q "$bundle" "$cache/src" >&2
fi
cmake -S "$cache/src" -B "$cache/src/build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
  -DGGML_NATIVE=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON >&2
cmake --build "$cache/src/build" --target llama-server -j "$(nproc)" >&2
[ -x "$bin" ] || { echo "build-server: the build finished without $bin" >&2; exit 1; }
echo "$bin"
