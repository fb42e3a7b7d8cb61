#!/usr/bin/env bash
# Prepares .device/ (git-ignored) for scripts/gpu-session.sh on a GPU machine without Node.js:
# a stripped, xz-compressed node binary, node_modules without other platforms' binaries and the
# TypeScript 7 preview, and the test models. Run after `npm install` on an x86-64 Linux machine.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .device
strip -o .device/node "$(command -v node)" && xz -T0 -6 -f .device/node
rm -rf /tmp/weft-nm && mkdir -p /tmp/weft-nm && cp -a node_modules /tmp/weft-nm/nm
( cd /tmp/weft-nm/nm && rm -rf @typescript .cache .package-lock.json \
    tokenizers/tokenizers.{android,darwin,win32,linux-arm}* tokenizers/tokenizers.linux-x64-musl.node \
  && find . -name '*.map' -delete && find . -name '*.md' -delete )
tar -C /tmp/weft-nm -cf - nm | xz -T0 -6 > .device/nm.tar.xz
rm -rf /tmp/weft-nm .device/models && cp -r ../shared/models .device/models
rm -f .device/models/stories260K/stories260K.bin
du -sh .device build/test_cuda build/Release/weft_native.node dist
