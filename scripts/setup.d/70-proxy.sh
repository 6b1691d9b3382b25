# proxy: the HTTP edge proxy (src/proxy, docs/proxy.md) needs nothing beyond
# Node. bench/proxy drives wrk against it and against Debian's nginx as the
# reverse-proxy peer (started by the bench itself with a temp prefix).
apt_need wrk nginx-light

setup_70_proxy() {
  # nginx-light's packaged service is not needed by Hangar: the bench runs
  # its own nginx processes on 127.0.0.1 with temp configs.
  command -v wrk >/dev/null || { echo "setup: wrk missing" >&2; return 1; }
  command -v nginx >/dev/null || { echo "setup: nginx missing" >&2; return 1; }
}
