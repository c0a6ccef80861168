#!/usr/bin/env bash
# One client's latency through each kind of request, with the CPU each costs: a fresh
# three-node Synod cluster (release build), then wrk with one connection for each of: a put
# (256-byte value), a linearizable range, a serializable (local) range and GET /health, all to
# the leader. Prints p50 and p90, requests per second, and the CPU time (user + system, from
# /proc) per request of the leader's process and of all three nodes.
# Usage: scripts/one-client.sh [--data-root DIR] [--peer-tls on|off] [--seconds S] [-- serve options...]
#   e.g. scripts/one-client.sh --data-root /dev/shm -- --option lease-reads=on
# SYNOD_BIN runs another build. Needs wrk (apt-get install wrk).
set -euo pipefail
cd "$(dirname "$0")/.."
root=/tmp
tls=on
seconds=6
while [ $# -gt 0 ]; do
  case "$1" in
    --data-root) root=${2:?--data-root needs a directory}; shift 2 ;;
    --peer-tls) tls=${2:?--peer-tls takes on or off}; shift 2 ;;
    --seconds) seconds=${2:?--seconds needs a number}; shift 2 ;;
    --) shift; break ;;
    *) echo "unknown option $1 (see the usage at the top of $0)" >&2; exit 2 ;;
  esac
done
case "$tls" in on|off) ;; *) echo "--peer-tls takes on or off" >&2; exit 2 ;; esac
[ -d "$root" ] || { echo "--data-root $root is not a directory" >&2; exit 2; }
command -v wrk > /dev/null || { echo "needs wrk (apt-get install wrk)" >&2; exit 2; }
synod="${SYNOD_BIN:-$(swift build -c release --show-bin-path)/synod}"
[ -x "$synod" ] || { echo "build first: swift build -c release" >&2; exit 2; }
work=$(mktemp -d "$root/synod-one-client.XXXXXX")
pids=()
cleanup() { for pid in "${pids[@]:-}"; do kill -9 "$pid" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
read -r p1 p2 p3 c1 c2 c3 <<< "$(python3 -c 'import socket
s=[socket.socket() for _ in range(6)]
[x.bind(("127.0.0.1",0)) for x in s]
print(" ".join(str(x.getsockname()[1]) for x in s))')"
if [ "$tls" = on ]; then
  "$synod" certs --nodes 1,2,3 --out "$work/certs" --force > /dev/null
  security=(--certs "$work/certs")
else
  security=(--insecure-peers)
fi
i=0
for client in $c1 $c2 $c3; do
  i=$((i + 1))
  "$synod" serve --id $i --peers "1=127.0.0.1:$p1,2=127.0.0.1:$p2,3=127.0.0.1:$p3" --client "127.0.0.1:$client" \
    --data-dir "$work/n$i" "${security[@]}" --log-level warning "$@" 2> "$work/n$i.log" &
  pids+=($!)
done
leader=""
leader_pid=""
for _ in $(seq 1 100); do
  i=0
  for client in $c1 $c2 $c3; do
    i=$((i + 1))
    if curl -s "127.0.0.1:$client/v3/status" | grep -q '"role":"leader"'; then leader=$client; leader_pid=${pids[$((i - 1))]}; break 2; fi
  done
  sleep 0.1
done
[ -n "$leader" ] || { echo "no leader elected (logs in $work)" >&2; exit 1; }
cpu_ticks() { local total=0 pid; for pid in "$@"; do total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat"))); done; echo $total; }
ticks=$(getconf CLK_TCK)
value=$(python3 -c 'import base64, os; print(base64.b64encode(os.urandom(256)).decode())')
script() {  # NAME METHOD BODY
  cat > "$work/$1.lua" <<LUA
wrk.method = "$2"
wrk.body = '$3'
wrk.headers["Content-Type"] = "application/json"
done = function(s, l, r) io.write(string.format("%d %.3f %.3f %.0f\n", s.requests, l:percentile(50) / 1000, l:percentile(90) / 1000, s.requests / (s.duration / 1e6))) end
LUA
}
script put POST "{\"key\":\"Zm9v\",\"value\":\"$value\"}"
script range POST '{"key":"Zm9v"}'
script serializable POST '{"key":"Zm9v","serializable":true}'
script health GET ''
printf "%-13s %8s %8s %8s %18s %18s\n" request "p50 ms" "p90 ms" "req/s" "leader CPU µs/req" "all CPU µs/req"
for name in put range serializable health; do
  case $name in put) path=/v3/kv/put ;; health) path=/health ;; *) path=/v3/kv/range ;; esac
  wrk -t1 -c1 -d2s -s "$work/$name.lua" "http://127.0.0.1:$leader$path" > /dev/null  # warm-up
  leader_before=$(cpu_ticks "$leader_pid"); all_before=$(cpu_ticks "${pids[@]}")
  read -r requests p50 p90 rate <<< "$(wrk -t1 -c1 -d"${seconds}s" -s "$work/$name.lua" "http://127.0.0.1:$leader$path" | tail -1)"
  leader_after=$(cpu_ticks "$leader_pid"); all_after=$(cpu_ticks "${pids[@]}")
  printf "%-13s %8s %8s %8s %18d %18d\n" "$name" "$p50" "$p90" "$rate" \
    $(( (leader_after - leader_before) * 1000000 / ticks / requests )) $(( (all_after - all_before) * 1000000 / ticks / requests ))
done
