# build: the daemon's builder (buildah), base images made offline
# (mmdebstrap), Docker's engine for --build-local and bench/deploy.
# See docs/deploy.md and docs/guides/docker.md.
apt_need buildah mmdebstrap tar gzip docker.io

setup_40_build() {
  command -v buildah >/dev/null || { echo "setup: buildah missing" >&2; return 1; }
  # The Debian base image (docker.io/library/debian:bookworm-slim in Hangar's
  # mirror) is made once with mmdebstrap and cached; the daemon pushes it
  # into its registry on the first build (or `hangar images seed`).
  local cache="$HANGAR_ROOT/.cache/base"
  if [ -s "$cache/bookworm-slim.tar" ]; then
    echo "setup: base image tarball cached ($cache/bookworm-slim.tar)"
    return 0
  fi
  mkdir -p "$cache"
  echo "setup: making the Debian bookworm-slim base image with mmdebstrap (a few minutes, once)"
  local tmp="$cache/bookworm-slim.tar.$$.tmp"
  if mmdebstrap --variant=minbase --format=tar \
      --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
      --dpkgopt='path-include=/usr/share/doc/*/copyright' --dpkgopt='path-exclude=/usr/share/locale/*' \
      --dpkgopt='path-exclude=/usr/share/info/*' --aptopt='Acquire::Languages "none"' \
      --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
      bookworm "$tmp" "${HANGAR_DEBIAN_MIRROR:-http://deb.debian.org/debian}" >"$cache/mmdebstrap.log" 2>&1; then
    mv "$tmp" "$cache/bookworm-slim.tar"
  else
    rm -f "$tmp"
    echo "setup: mmdebstrap failed (see $cache/mmdebstrap.log); builds FROM debian need \`hangar images seed\` later" >&2
  fi
}
