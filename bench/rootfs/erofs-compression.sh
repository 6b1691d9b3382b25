#!/usr/bin/env bash
# Should the rootfs EROFS image be compressed? Build time, size, and the cost
# of reading every file back through the kernel (cold page cache, loop mount)
# for uncompressed vs lz4 vs lz4hc, on the bench tree. On the host this is a
# lower bound for a TCG guest, where decompression runs emulated.
# Usage: bash bench/rootfs/erofs-compression.sh   (after bench/rootfs/run.sh built the tree)
set -euo pipefail
HANGAR_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
tree="$HANGAR_ROOT/.cache/bench/debian-python3-tree"
work="$(mktemp -d)"
trap 'umount "$work/mnt" 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir "$work/mnt"
ms() { echo $(($(date +%s%N) / 1000000)); }
json="{\"bench\":\"rootfs-erofs-compression\""
for mode in none lz4 lz4hc; do
  args=(--quiet); [ "$mode" != none ] && args+=("-z$mode")
  best_build=999999; best_read=999999
  for run in 1 2 3; do
    rm -f "$work/img"
    t0=$(ms); mkfs.erofs "${args[@]}" "$work/img" "$tree"; t1=$(ms)
    b=$((t1 - t0)); [ $b -lt $best_build ] && best_build=$b
    sync; echo 3 > /proc/sys/vm/drop_caches
    mount -t erofs -o loop,ro "$work/img" "$work/mnt"
    t0=$(ms); tar -C "$work/mnt" -cf - . | wc -c >/dev/null; t1=$(ms)
    umount "$work/mnt"
    r=$((t1 - t0)); [ $r -lt $best_read ] && best_read=$r
  done
  size=$(stat -c %s "$work/img")
  echo "$mode: build ${best_build} ms, size $((size / 1000000)) MB, read-all ${best_read} ms (best of 3)"
  json="$json,\"${mode}_build_ms\":$best_build,\"${mode}_mb\":$((size / 1000000)),\"${mode}_read_ms\":$best_read"
done
echo "$json}"
