#!/usr/bin/env bash
# The floors a single client's request runs into on this machine, measured without Synod:
# a loopback TCP round trip between two idle processes, a hand-off to another thread and back,
# an fdatasync of a small append (alone, and with three processes syncing at once, as three
# members sharing one disk do; each onto a growing file, as Synod's log segments are written, and
# over space reserved first), and wrk with one connection against a minimal C HTTP server
# (the load generator's own floor).
# Usage: scripts/floors.sh [--data-root DIR]   (DIR: where the sync test writes; default /tmp)
# Needs: a C compiler (cc) and wrk (apt-get install wrk) for the last figure.
set -euo pipefail
cd "$(dirname "$0")/floors"
root=/tmp
case "${1:-}" in
  --data-root) root=${2:?--data-root needs a directory} ;;
  "") ;;
  *) echo "usage: scripts/floors.sh [--data-root DIR]" >&2; exit 2 ;;
esac
[ -d "$root" ] || { echo "--data-root $root is not a directory" >&2; exit 2; }
command -v cc > /dev/null || { echo "needs a C compiler (cc)" >&2; exit 2; }
bin=$(mktemp -d /tmp/synod-floors.XXXXXX)
server=""
cleanup() { [ -n "$server" ] && kill "$server" 2>/dev/null; rm -rf "$bin"; }
trap cleanup EXIT
cc -O2 -o "$bin/pingpong" pingpong.c
cc -O2 -pthread -o "$bin/wake" wake.c
cc -O2 -o "$bin/sync" sync.c
cc -O2 -o "$bin/httpd" httpd.c
"$bin/pingpong" 5000 300
"$bin/wake" 5000

dir=$(mktemp -d "$root/synod-floors-sync.XXXXXX")
for mode in append fallocate; do
  "$bin/sync" "$dir" 3000 300 1 "$mode"
  "$bin/sync" "$dir" 3000 300 3 "$mode" | sort
done
rm -rf "$dir"
if command -v wrk > /dev/null; then
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  "$bin/httpd" "$port" & server=$!
  sleep 0.3
  cat > "$bin/floor.lua" <<'LUA'
done = function(s, l, r) io.write(string.format("wrk, 1 connection, against a minimal C HTTP server: p50 %.0f us, p90 %.0f, %.0f requests/s\n", l:percentile(50), l:percentile(90), s.requests / (s.duration / 1e6))) end
LUA
  wrk -t1 -c1 -d1s -s "$bin/floor.lua" "http://127.0.0.1:$port/" > /dev/null
  wrk -t1 -c1 -d5s -s "$bin/floor.lua" "http://127.0.0.1:$port/" | grep "^wrk"
else
  echo "wrk not installed: skipping the load generator's floor (apt-get install wrk)"
fi
