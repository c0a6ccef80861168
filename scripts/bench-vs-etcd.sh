#!/usr/bin/env bash
# Runs a three-node Synod cluster and a three-member etcd cluster on this machine, one after
# the other, and drives both with the same load tool (`synod bench`) and the same request
# shape (etcd's v3 JSON gateway: POST /v3/kv/put, 256-byte values, requests to the leader, or
# to every node in turn for a leaderless protocol).
# Reports throughput, latency percentiles and server CPU time per operation.
#
# Usage: scripts/bench-vs-etcd.sh [--protocol raft|multipaxos|paxos] [--seconds S] [--clients "1 16 64"]
#                                 [--peer-tls on|off|both] [--no-etcd] [--metrics on|off]
# --metrics off: Synod's nodes keep no /metrics figures (to measure what they cost).
# --value-sizes "64 1024": repeat every client count at each value size (default 256 bytes).
# --csv FILE: also append one line per point to FILE (header written when FILE is empty).
# --peer-tls: Synod's peer port with mutual TLS (on, the default, as `synod serve` runs unless
# told otherwise), plain TCP (off, --insecure-peers), or both one after the other. etcd runs
# with plain peers (its default).
# Needs: a release build (swift build -c release) and, for the etcd half, etcd on the PATH
# (Debian: apt-get install etcd-server). Without etcd, only Synod is measured.
set -euo pipefail
cd "$(dirname "$0")/.."

protocol=raft
seconds=10
clients="1 16 64"
peer_tls=on
with_etcd=yes
metrics=on
value_sizes="256"
csv=""
while [ $# -gt 0 ]; do
  case "$1" in
    --protocol) protocol=$2; shift 2 ;;
    --peer-tls) peer_tls=$2; shift 2 ;;
    --no-etcd) with_etcd=no; shift ;;
    --seconds) seconds=$2; shift 2 ;;
    --clients) clients=$2; shift 2 ;;
    --metrics) metrics=$2; shift 2 ;;
    --value-sizes) value_sizes=$2; shift 2 ;;
    --csv) csv=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

# SYNOD_BIN runs another build (for example the previous release, to compare before and after).
synod="${SYNOD_BIN:-$(swift build -c release --show-bin-path)/synod}"
[ -x "$synod" ] || { echo "build first: swift build -c release" >&2; exit 2; }
work=$(mktemp -d /tmp/synod-bench.XXXXXX)
pids=()
cleanup() { for pid in "${pids[@]:-}"; do kill -9 "$pid" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

# CPU seconds (user + system) used so far by the given pids.
cpu_seconds() {
  local total=0 ticks
  ticks=$(getconf CLK_TCK)
  for pid in "$@"; do
    total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
  done
  echo "scale=3; $total / $ticks" | bc
}

# bench NAME ENDPOINT PIDS...: one line per client count.
bench() {
  local name=$1 endpoint=$2; shift 2
  for size in $value_sizes; do
  for c in $clients; do
    local before after out
    before=$(cpu_seconds "$@")
    out=$("$synod" bench --endpoints "$endpoint" --concurrency "$c" --duration "$seconds" --warmup 2 --value-size "$size" --op put --json 2>/dev/null)
    after=$(cpu_seconds "$@")
    python3 - "$name" "$c" "$before" "$after" "$out" "$size" "$csv" <<'PY'
import json, sys
name, clients, before, after, out = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), json.loads(sys.argv[5])
size, csv = sys.argv[6], sys.argv[7]
ops = out["operations"]
cpu_us = (after - before) / max(ops, 1) * 1e6 if ops else float("nan")
print(f"{name:10} {clients:>7} {size:>7} {out['throughput']:>10.0f} {out['p50Milliseconds']:>8.2f} {out['p99Milliseconds']:>8.2f} {out['p999Milliseconds']:>8.2f} {cpu_us:>12.0f} {out['errors']:>6}")
if csv:
    with open(csv, "a") as f:
        f.write(f"{name},{clients},{size},{out['throughput']:.0f},{out['p50Milliseconds']:.3f},{out['p99Milliseconds']:.3f},{out['p999Milliseconds']:.3f},{cpu_us:.0f},{out['errors']}\n")
PY
  done
  done
}

header() { echo "system     clients   value      ops/s   p50 ms   p99 ms p99.9 ms  cpu us/op*  errors"; }
if [ -n "$csv" ] && [ ! -s "$csv" ]; then
  echo "system,clients,value_bytes,ops_per_second,p50_ms,p99_ms,p999_ms,cpu_us_per_op,errors" > "$csv"
fi

ports=$(python3 -c 'import socket
s=[socket.socket() for _ in range(12)]
[x.bind(("127.0.0.1",0)) for x in s]
print(" ".join(str(x.getsockname()[1]) for x in s))')
read -r p1 p2 p3 c1 c2 c3 e1 e2 e3 f1 f2 f3 <<< "$ports"

# run_synod on|off: a fresh three-node cluster, measured, then stopped.
run_synod() {
  local tls=$1 security label
  if [ "$tls" = on ]; then
    "$synod" certs --nodes 1,2,3 --out "$work/certs" --force > /dev/null
    security=(--certs "$work/certs"); label="synod-$protocol-tls"
  else
    security=(--insecure-peers); label="synod-$protocol"
  fi
  rm -rf "$work"/synod[123]
  echo "== Synod ($protocol), 3 nodes, fsync on, peer TLS $tls, metrics $metrics, data in $work" >&2
  local peers="1=127.0.0.1:$p1,2=127.0.0.1:$p2,3=127.0.0.1:$p3" i=0 client
  synod_pids=()
  for client in $c1 $c2 $c3; do
    i=$((i + 1))
    "$synod" serve --id $i --peers "$peers" --client "127.0.0.1:$client" --data-dir "$work/synod$i" --protocol "$protocol" \
      "${security[@]}" --metrics "$metrics" --log-level warning 2>"$work/synod$i.log" &
    synod_pids+=($!)
    pids+=($!)
  done
  # Requests go to the leader; a leaderless protocol (no node ever says "leader") gets them
  # spread over all three nodes once every one reports itself healthy.
  local endpoint=""
  for _ in $(seq 1 100); do
    local healthy=0
    for client in $c1 $c2 $c3; do
      status=$(curl -s "127.0.0.1:$client/v3/status" || true)
      if grep -q '"role":"leader"' <<< "$status"; then endpoint="127.0.0.1:$client"; break 2; fi
      if grep -q '"role":"replica"' <<< "$status" && grep -q '"healthy":true' <<< "$status"; then healthy=$((healthy + 1)); fi
    done
    if [ "$healthy" = 3 ]; then endpoint="127.0.0.1:$c1,127.0.0.1:$c2,127.0.0.1:$c3"; break; fi
    sleep 0.1
  done
  [ -n "$endpoint" ] || { echo "no Synod leader (or, leaderless, not every node healthy)" >&2; exit 1; }
  header
  bench "$label" "$endpoint" "${synod_pids[@]}"
  for pid in "${synod_pids[@]}"; do kill "$pid"; done
  wait "${synod_pids[@]}" 2>/dev/null || true
}

case "$peer_tls" in
  on) run_synod on ;;
  off) run_synod off ;;
  both) run_synod off; run_synod on ;;
  *) echo "--peer-tls takes on, off or both" >&2; exit 2 ;;
esac

if [ "$with_etcd" = no ]; then
  exit 0
elif ! command -v etcd > /dev/null; then
  echo "etcd not installed: skipping the etcd half (apt-get install etcd-server)" >&2
  exit 0
fi
echo "== etcd $(etcd --version | head -1 | awk '{print $3}'), 3 members, data in $work" >&2
cluster="e1=http://127.0.0.1:$e1,e2=http://127.0.0.1:$e2,e3=http://127.0.0.1:$e3"
etcd_pids=()
i=0
for pair in "$e1 $f1" "$e2 $f2" "$e3 $f3"; do
  i=$((i + 1))
  read -r peer client <<< "$pair"
  etcd --name "e$i" --data-dir "$work/etcd$i" \
    --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
    --listen-client-urls "http://127.0.0.1:$client" --advertise-client-urls "http://127.0.0.1:$client" \
    --initial-cluster "$cluster" --initial-cluster-state new --log-level error 2>"$work/etcd$i.log" &
  pids+=($!)
  etcd_pids+=($!)
done
leader=""
for _ in $(seq 1 100); do
  status=$(ETCDCTL_API=3 etcdctl --endpoints "127.0.0.1:$f1,127.0.0.1:$f2,127.0.0.1:$f3" endpoint status -w json 2>/dev/null || true)
  leader=$(python3 -c 'import json,sys
try:
  rows=json.loads(sys.argv[1])
  for r in rows:
    if r["Status"]["leader"]==r["Status"]["header"]["member_id"]: print(r["Endpoint"]); break
except Exception: pass' "$status")
  [ -n "$leader" ] && break
  sleep 0.2
done
[ -n "$leader" ] || { echo "no etcd leader" >&2; exit 1; }
bench "etcd" "$leader" "${etcd_pids[@]}"
echo "* server CPU time (user + system, all three members) per completed put" >&2
