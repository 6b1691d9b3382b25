# Registry (docs/registry.md): the registry itself is pure TypeScript in the
# daemon. These packages are the real clients its tests drive (skopeo,
# buildah, podman, docker.io whose dockerd the tests start themselves) and
# the peer its benchmark compares against (docker-registry: CNCF
# distribution 2.8, started by bench/registry on loopback with temp storage).
apt_need skopeo buildah podman docker.io docker-registry busybox-static

setup_10_registry() {
  # Nothing to build or fetch: the tests and the bench start their own
  # dockerd / docker-registry instances with temp dirs.
  return 0
}
