#!/usr/bin/env bash
# npm run format / format:check: Biome for the TypeScript and JavaScript (biome.json), clang-format
# for the C++ and CUDA under native/ (.clang-format). check: changes nothing, fails on any file the
# formatters would change.
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-check}"
command -v clang-format >/dev/null || { echo "format: clang-format not found (Debian: apt-get install clang-format)" >&2; exit 2; }
native_files() { find native \( -name '*.cc' -o -name '*.h' -o -name '*.cu' -o -name '*.cuh' \) -print0; }
case "$mode" in
  write) npx biome format --write . && native_files | xargs -0 clang-format -i ;;
  check) npx biome format . && native_files | xargs -0 clang-format --dry-run -Werror ;;
  *) echo "usage: scripts/format.sh [check|write]" >&2; exit 2 ;;
esac
