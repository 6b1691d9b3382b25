# rootfs: OCI image → EROFS root filesystem (src/rootfs, docs/rootfs.md).
# mkfs.erofs builds the image; igzip (isal) and zstd decompress layers; python3 sets
# extended attributes (Node has no setxattr); busybox-static feeds the test
# image fixture; docker-registry + skopeo serve images in the remote-pull
# tests; mmdebstrap, umoci and e2fsprogs are for bench/rootfs.
apt_need erofs-utils isal zstd python3 busybox-static docker-registry skopeo umoci mmdebstrap e2fsprogs

setup_30_rootfs() {
  # Nothing to build: the bench image is made on demand by bench/rootfs/run.sh
  # (cached in $HANGAR_ROOT/.cache/bench/).
  command -v mkfs.erofs >/dev/null || { echo "setup: mkfs.erofs missing" >&2; return 1; }
}
