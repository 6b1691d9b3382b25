# Native in-daemon builder (src/build/native): layer blobs read extended
# attributes (file capabilities, overlayfs whiteout/opaque markers) with one
# `getfattr -R` per layer (package attr); its tests use setcap/getcap
# (libcap2-bin) as an independent check of capability round trips.
apt_need attr libcap2-bin

setup_45_native_build() {
  command -v getfattr >/dev/null || { echo "setup: getfattr missing (package attr)" >&2; return 1; }
}
