#!/usr/bin/env bash
# Download the wheels of benchmarks/gpu/wheels.txt for the lent GPU machine (Python 3.12, x86-64, no network),
# into benchmarks/gpu/wheels/ (gitignored), and check that they fit the 64 MiB that travels with the tree.
# Run it on a networked machine, from anywhere:  bash benchmarks/gpu/fetch_wheels.sh [python [EXTRA==PIN ...]]
# (extra pins: only if the image turns out to lack or break something, e.g. pyarrow==26.0.1, about 40 MiB)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${1:-python3}"
shift || true
dest="$here/wheels"
limit_mib=64
budget_mib=48  # what the wheels may take: the rest of the 64 MiB is the working tree itself

mapfile -t pins < <(grep -v -e '^\s*#' -e '^\s*$' "$here/wheels.txt")
pins+=("$@")
rm -rf "$dest.tmp"
mkdir -p "$dest.tmp"
"$python" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
  -d "$dest.tmp" "${pins[@]}"

count=$(find "$dest.tmp" -name '*.whl' | wc -l)
if [ "$count" -ne "${#pins[@]}" ]; then
  echo "expected ${#pins[@]} wheels, got $count:" >&2
  ls "$dest.tmp" >&2
  exit 1
fi
bytes=$(du -cb "$dest.tmp"/*.whl | tail -1 | cut -f1)
mib=$(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1048576 }')
if [ "$bytes" -gt $(( budget_mib * 1048576 )) ]; then
  echo "the wheels take $mib MiB: over the $budget_mib MiB left of the $limit_mib MiB that travels" >&2
  exit 1
fi
rm -rf "$dest"
mv "$dest.tmp" "$dest"
ls -l "$dest"
echo "$count wheels, $bytes bytes ($mib MiB of the $limit_mib MiB that travels) in $dest"
