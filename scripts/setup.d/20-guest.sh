# Guest kernel, init and base initramfs for Hangar microVMs (docs/vm.md).
# Outputs go to $HANGAR_GUEST_DIR (default $HANGAR_ROOT/.cache/guest):
#   vmlinux          uncompressed kernel, booted through PVH
#   initramfs.cpio   base initramfs: /init + kernel modules + load order
#   init             the static guest init (also inside the cpio)
#   kernel.version   kernel release the two above were built from
#   scratch-2048m.ext4  empty ext4 template for the per-boot writable layer
#                    (attached copy-on-write with qemu snapshot=on)
#   accel.json       cached KVM/TCG probe result (written by the daemon)
apt_need linux-image-amd64 musl-tools busybox-static cpio kmod qemu-system-x86 erofs-utils e2fsprogs xz-utils zstd

# Modules the init loads, in the order the host computes (no modprobe in the guest).
HANGAR_GUEST_MODULES="virtio_mmio virtio_blk virtio_console virtio_net erofs overlay ext4 crc32c_generic"

hangar_guest_dir() { echo "${HANGAR_GUEST_DIR:-$HANGAR_ROOT/.cache/guest}"; }

# Extract the uncompressed ELF kernel from a bzImage: find the compressed
# payload by its magic and decompress it (what scripts/extract-vmlinux does).
hangar_extract_vmlinux() {
  local vmlinuz="$1" out="$2" tmp="$2.tmp" magic tool off
  for pair in 'xz:\xfd7zXZ\x00' 'zstd:\x28\xb5\x2f\xfd' 'gzip:\x1f\x8b\x08' 'lz4:\x02\x21\x4c\x18'; do
    tool="${pair%%:*}"; magic="${pair#*:}"
    for off in $(LC_ALL=C grep -obUaP "$magic" "$vmlinuz" 2>/dev/null | cut -d: -f1 | head -5); do
      case "$tool" in
        xz) tail -c +"$((off + 1))" "$vmlinuz" | xz -dcq > "$tmp" 2>/dev/null || true ;;
        zstd) tail -c +"$((off + 1))" "$vmlinuz" | zstd -dcq > "$tmp" 2>/dev/null || true ;;
        gzip) tail -c +"$((off + 1))" "$vmlinuz" | gzip -dcq > "$tmp" 2>/dev/null || true ;;
        lz4) tail -c +"$((off + 1))" "$vmlinuz" | lz4 -dcq > "$tmp" 2>/dev/null || true ;;
      esac
      if [ -s "$tmp" ] && [ "$(head -c 4 "$tmp" | od -An -tx1 | tr -d ' \n')" = "7f454c46" ]; then
        mv "$tmp" "$out"; return 0
      fi
    done
  done
  rm -f "$tmp"
  echo "setup: could not find a compressed ELF kernel inside $vmlinuz" >&2
  return 1
}

hangar_build_initramfs() {
  local kver="$1" init="$2" out="$3" stage m f
  stage="$(mktemp -d)"
  mkdir -p "$stage/lib/modules" "$stage/dev" "$stage/proc" "$stage/sys" "$stage/hangar" "$stage/newroot"
  install -m 0755 "$init" "$stage/init"
  : > "$stage/lib/modules/hangar.order"
  for m in $HANGAR_GUEST_MODULES; do
    # --show-depends prints the module and its dependencies, dependencies first.
    modprobe -S "$kver" --show-depends "$m" 2>/dev/null | awk '$1 == "insmod" {print $2}' | while read -r f; do
      b="$(basename "$f")"
      grep -qx "$b" "$stage/lib/modules/hangar.order" && continue
      case "$f" in
        *.ko) cp "$f" "$stage/lib/modules/$b" ;;
        *.ko.xz) xz -dc "$f" > "$stage/lib/modules/${b%.xz}"; b="${b%.xz}" ;;
        *.ko.zst) zstd -dcq "$f" > "$stage/lib/modules/${b%.zst}"; b="${b%.zst}" ;;
        *) continue ;;
      esac
      echo "$b" >> "$stage/lib/modules/hangar.order"
    done
  done
  (cd "$stage" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) > "$out.tmp"
  mv "$out.tmp" "$out"
  rm -rf "$stage"
}

setup_20_guest() {
  local dir kver vmlinuz
  dir="$(hangar_guest_dir)"
  mkdir -p "$dir"
  vmlinuz="$(ls /boot/vmlinuz-* 2>/dev/null | sort -V | tail -1)"
  [ -n "$vmlinuz" ] || { echo "setup: no /boot/vmlinuz-*; install linux-image-amd64" >&2; return 1; }
  kver="${vmlinuz#/boot/vmlinuz-}"

  make -s -C "$HANGAR_ROOT/guest/init" >/dev/null
  local init="$HANGAR_ROOT/guest/init/build/init"

  if [ ! -s "$dir/vmlinux" ] || [ "$(cat "$dir/kernel.version" 2>/dev/null)" != "$kver" ]; then
    echo "setup: extracting vmlinux from $vmlinuz"
    hangar_extract_vmlinux "$vmlinuz" "$dir/vmlinux"
    rm -f "$dir/initramfs.cpio"
  fi
  if [ ! -s "$dir/initramfs.cpio" ] || [ "$init" -nt "$dir/initramfs.cpio" ] || [ "$(cat "$dir/kernel.version" 2>/dev/null)" != "$kver" ]; then
    echo "setup: building the base initramfs for $kver"
    hangar_build_initramfs "$kver" "$init" "$dir/initramfs.cpio"
    install -m 0755 "$init" "$dir/init"
  fi
  echo "$kver" > "$dir/kernel.version"
  if [ ! -s "$dir/scratch-2048m.ext4" ]; then
    rm -f "$dir/scratch-2048m.ext4.tmp"
    truncate -s 2048M "$dir/scratch-2048m.ext4.tmp"
    mkfs.ext4 -q -F -m 0 -O ^has_journal -E lazy_itable_init=0,nodiscard "$dir/scratch-2048m.ext4.tmp"
    mv "$dir/scratch-2048m.ext4.tmp" "$dir/scratch-2048m.ext4"
  fi
}
