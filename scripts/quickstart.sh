#!/usr/bin/env bash
# Hangar's main job, end to end on embedded defaults (SQLite, the built-in
# registry, qemu): set everything up, start the daemon, seed the Debian base
# image, deploy examples/hello-python from its Dockerfile, and print what the
# app answers through Hangar's HTTP proxy.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh

export HANGAR_DATA_DIR="${HANGAR_DATA_DIR:-/var/lib/hangar}"
LISTEN="${HANGAR_LISTEN:-127.0.0.1:4280}"
PROXY="${HANGAR_PROXY_LISTEN:-127.0.0.1:8080}"
export HANGAR_API_URL="http://$LISTEN"
HANGAR="$ROOT/bin/hangar"
mkdir -p "$HANGAR_DATA_DIR"

daemon_up() { curl -s -o /dev/null "$HANGAR_API_URL/v1/apps"; }
if daemon_up; then
  echo "quickstart: using the Hangar daemon already running on $LISTEN"
else
  echo "quickstart: starting the Hangar daemon on $LISTEN (proxy $PROXY), log in $HANGAR_DATA_DIR/daemon.log"
  nohup "$HANGAR" daemon --data-dir "$HANGAR_DATA_DIR" --listen "$LISTEN" --proxy-listen "$PROXY" \
    >>"$HANGAR_DATA_DIR/daemon.log" 2>&1 </dev/null &
  for _ in $(seq 1 100); do daemon_up && break; sleep 0.2; done
  daemon_up || { echo "quickstart: the daemon did not start; see $HANGAR_DATA_DIR/daemon.log" >&2; exit 1; }
fi
export HANGAR_ACCESS_TOKEN="$(cat "$HANGAR_DATA_DIR/admin-token")"

# FROM debian:bookworm-slim resolves to Hangar's registry (no Docker Hub here).
"$HANGAR" images seed

cd examples/hello-python
APP=hello-python
"$HANGAR" apps list --json | grep -q "\"name\": \"$APP\"" || "$HANGAR" apps create "$APP"
"$HANGAR" deploy --wait-timeout 300
"$HANGAR" status

echo
echo "quickstart: GET http://$APP.localhost:${PROXY##*:}/"
curl -sS --max-time 120 --retry 5 --retry-all-errors --retry-delay 2 \
  --resolve "$APP.localhost:${PROXY##*:}:127.0.0.1" "http://$APP.localhost:${PROXY##*:}/"
echo
echo "quickstart: done. Try: hangar logs -a $APP   (HANGAR_ACCESS_TOKEN is in $HANGAR_DATA_DIR/admin-token)"
