#!/bin/sh
# Installs node-llama-cpp + its prebuilt linux-x64 CPU binary into
# bench/llamacpp/node_modules (about 85 MB). Idempotent: does nothing when
# the dependencies are already there.
#
# --omit=optional keeps npm from fetching the other ~20 prebuilt binaries
# (CUDA, Vulkan, macOS, ...); the linux-x64 one is a direct dependency here.
# That flag is why this is a separate package: weft's own package must not be
# installed with --omit=optional.
set -eu
cd "$(dirname "$0")"

if [ -f node_modules/node-llama-cpp/package.json ] && \
   [ -f node_modules/@node-llama-cpp/linux-x64/package.json ]; then
  echo "bench/llamacpp: dependencies already installed" >&2
  exit 0
fi

if [ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]; then
  echo "bench/llamacpp: only linux-x64 is set up (got $(uname -s)-$(uname -m))" >&2
  exit 1
fi

echo "bench/llamacpp: npm install --omit=optional --no-audit --no-fund" >&2
if ! npm install --omit=optional --no-audit --no-fund >&2; then
  echo "bench/llamacpp: ERROR: npm install failed; the llama.cpp comparison is unavailable" >&2
  exit 1
fi

if ! node -e "import('node-llama-cpp').then(async (m) => { const l = await m.getLlama({ gpu: false, build: 'never' }); await l.dispose(); })" >&2; then
  echo "bench/llamacpp: ERROR: node-llama-cpp is installed but its prebuilt CPU binary does not load" >&2
  exit 1
fi
echo "bench/llamacpp: installed" >&2
