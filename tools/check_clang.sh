#!/usr/bin/env bash
# Build the compiled core with Clang (what the macOS wheels use) next to the installed package and
# check that it gives the same bits as the installed (GCC) build:
#   1. CMake + Ninja with CC=clang CXX=clang++ into build/clang (the installed package is untouched);
#   2. a copy of python/initlab with that _core next to it, in build/clang/pkg;
#   3. tools/core_digest.py run against both cores (every SIMD path of this CPU, every dtype, fills,
#      orthogonal, stats): the digests must be identical;
#   4. the determinism / mapping / statistics / linear-algebra / error tests against the Clang core.
# Needs clang (Debian: `apt-get install clang libomp-dev`; without libomp-dev the core is built
# without OpenMP, with CMake's warning) and the development venv active (pybind11, cmake, ninja,
# pytest). Not part of .ci/run: the Clang build alone takes ~3-4 CPU-minutes.
# Usage: tools/check_clang.sh [clang++ [clang]]
set -euo pipefail
cd "$(dirname "$0")/.."
cxx="${1:-clang++}"
cc="${2:-clang}"
dir=build/clang
pkg="$dir/pkg"
CC="$cc" CXX="$cxx" cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DSKBUILD_PROJECT_NAME=initlab -DSKBUILD_PROJECT_VERSION="$(sed -n 's/^__version__ = "\(.*\)"/\1/p' python/initlab/_version.py)" \
  -Dpybind11_DIR="$(python -c 'import pybind11; print(pybind11.get_cmake_dir())')" \
  -DPython_EXECUTABLE="$(command -v python)" >/dev/null
cmake --build "$dir" -j "$(nproc)"
rm -rf "$pkg" && mkdir -p "$pkg" && cp -r python/initlab "$pkg/" && cp "$dir"/_core*.so "$pkg/initlab/"
PYTHONPATH= python tools/core_digest.py > "$dir/digest-installed.txt"
PYTHONPATH="$pkg" python tools/core_digest.py > "$dir/digest-clang.txt"
head -n 1 "$dir/digest-installed.txt" "$dir/digest-clang.txt"
grep -q "^core .*$pkg/initlab/" "$dir/digest-clang.txt" || { echo "not the Clang core" >&2; exit 1; }
if ! diff <(tail -n +2 "$dir/digest-installed.txt") <(tail -n +2 "$dir/digest-clang.txt"); then
  echo "check_clang: the Clang core gives different bits (lines above: < installed, > clang)" >&2
  exit 1
fi
echo "check_clang: $(($(wc -l < "$dir/digest-clang.txt") - 1)) digests identical"
# The tests, with the editable install's import hook removed so that PYTHONPATH's copy is imported.
PYTHONPATH="$pkg" python - -q -p no:cacheprovider tests/test_determinism.py tests/test_mappings.py \
  tests/test_stats.py tests/test_orthogonal.py tests/test_linalg.py tests/test_errors.py <<'EOF'
import sys
sys.meta_path[:] = [f for f in sys.meta_path if not type(f).__module__.startswith("_editable_")]
import initlab._core
assert "build/clang/pkg/" in initlab._core.__file__, initlab._core.__file__
print("testing", initlab._core.__file__, "openmp:", initlab._core.openmp_enabled())
import pytest
rc = pytest.main(sys.argv[1:])
assert "build/clang/pkg/" in sys.modules["initlab._core"].__file__
sys.exit(rc)
EOF
