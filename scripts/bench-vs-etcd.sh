#!/usr/bin/env bash
# Runs a three-node Synod cluster and a three-member etcd cluster on this machine, one after
# the other, and drives both with the same load tool (`synod bench`) and the same request
# shape (etcd's v3 JSON gateway: POST /v3/kv/put, 256-byte values, requests to the leader, or
# to every node in turn for a leaderless protocol).
# Reports throughput, latency percentiles and server CPU time per operation.
#
# Usage: scripts/bench-vs-etcd.sh [--protocol raft|multipaxos|paxos] [--seconds S] [--clients "1 16 64"]
#                                 [--peer-tls on|off|both] [--no-etcd] [--metrics on|off]
#                                 [--ops "put range"] [--load synod|wrk|both] [--option NAME=VALUE ...]
#                                 [--client-connections handler|hummingbird] [--data-root DIR]
# --ops: puts (the default), linearizable single-key ranges, or both in turn (puts first, so the
# ranges find the keys written).
# --load wrk: drive the same requests with wrk (a C load generator, `apt-get install wrk`) and a
# generated Lua script instead of `synod bench`, so the figures do not depend on Synod's own
# client; both: one after the other. wrk runs one connection per client, one request at a time
# on each, 2 threads (1 for one client), against the leader (a leaderless protocol: node 1).
# --metrics off: Synod's nodes keep no /metrics figures (to measure what they cost).
# --value-sizes "64 1024": repeat every client count at each value size (default 256 bytes).
# --csv FILE: also append one line per point to FILE (header written when FILE is empty).
# --option NAME=VALUE (repeatable): a protocol option for every Synod node (`synod serve --option`),
# e.g. --option prepare-ahead=off for the Paxos log.
# --client-connections handler|hummingbird: how Synod's client port reads requests (`synod serve
# --client-connections`; handler is the default), to compare the two.
# --data-root DIR: where the members' data directories go (default /tmp); /dev/shm (tmpfs,
# where fdatasync returns at once) takes the disk out of the figures, to see what is left.
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
ops="put"
load=synod
options=()
connections=handler
data_root=/tmp
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
    --ops) ops=$2; shift 2 ;;
    --load) load=$2; shift 2 ;;
    --option) options+=(--option "$2"); shift 2 ;;
    --client-connections) connections=$2; shift 2 ;;
    --data-root) data_root=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

# SYNOD_BIN runs another build (for example the previous release, to compare before and after).
synod="${SYNOD_BIN:-$(swift build -c release --show-bin-path)/synod}"
[ -x "$synod" ] || { echo "build first: swift build -c release" >&2; exit 2; }
[ -d "$data_root" ] || { echo "--data-root $data_root is not a directory" >&2; exit 2; }
work=$(mktemp -d "$data_root/synod-bench.XXXXXX")
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

# report NAME OP CLIENTS SIZE CPU_BEFORE CPU_AFTER JSON: one line (and one CSV line) from a
# load generator's figures: {"operations", "throughput", "p50Milliseconds", "p99Milliseconds",
# "p999Milliseconds", "errors"}.
report() {
  python3 - "$@" "$csv" <<'PY'
import json, sys
name, op, clients, size, before, after, out, csv = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5]), float(sys.argv[6]), json.loads(sys.argv[7]), sys.argv[8]
ops = out["operations"]
cpu_us = (after - before) / max(ops, 1) * 1e6 if ops else float("nan")
print(f"{name:16} {op:>5} {clients:>7} {size:>7} {out['throughput']:>10.0f} {out['p50Milliseconds']:>8.2f} {out['p99Milliseconds']:>8.2f} {out['p999Milliseconds']:>8.2f} {cpu_us:>12.0f} {out['errors']:>6}")
if csv:
    with open(csv, "a") as f:
        f.write(f"{name if op == 'put' else name + '-' + op},{clients},{size},{out['throughput']:.0f},{out['p50Milliseconds']:.3f},{out['p99Milliseconds']:.3f},{out['p999Milliseconds']:.3f},{cpu_us:.0f},{out['errors']}\n")
PY
}

# wrk_script OP SIZE: a Lua script for wrk that sends etcd's JSON puts (or ranges) over 1000
# keys, as `synod bench` does, and prints its figures as one JSON line at the end.
wrk_script() {
  local op=$1 size=$2 file="$work/wrk-$1-$2.lua"
  python3 - "$op" "$size" "$file" <<'PY'
import base64, json, os, sys
op, size, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
value = base64.b64encode(os.urandom(size)).decode()
bodies = []
for n in range(1000):
    key = base64.b64encode(f"bench/{n}".encode()).decode()
    bodies.append(json.dumps({"key": key, "value": value} if op == "put" else {"key": key}))
with open(path, "w") as f:
    f.write("local bodies = {\n" + ",\n".join(json.dumps(b) for b in bodies) + "\n}\n")
    f.write(f'local path = "/v3/kv/{op}"\n')
    f.write("""
local i = math.random(#bodies)
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  i = i % #bodies + 1
  return wrk.format(nil, path, nil, bodies[i])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRKJSON {"operations":%d,"seconds":%.6f,"p50":%d,"p99":%d,"p999":%d,"errors":%d}\\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50), latency:percentile(99), latency:percentile(99.9),
    e.connect + e.read + e.write + e.status + e.timeout))
end
""")
PY
  echo "$file"
}

# bench NAME ENDPOINT PIDS...: one line per operation, value size and client count.
bench() {
  local name=$1 endpoint=$2; shift 2
  local generators=$load
  [ "$load" = both ] && generators="synod wrk"
  for generator in $generators; do
  for op in $ops; do
  for size in $value_sizes; do
  for c in $clients; do
    local before after out
    if [ "$generator" = wrk ]; then
      local script threads=$(( c < 2 ? c : 2 )) url="http://${endpoint%%,*}"
      script=$(wrk_script "$op" "$size")
      wrk -t "$threads" -c "$c" -d 2s --timeout 5s -s "$script" "$url" > /dev/null  # warm-up
      before=$(cpu_seconds "$@")
      out=$(wrk -t "$threads" -c "$c" -d "${seconds}s" --timeout 5s -s "$script" "$url" | sed -n 's/^WRKJSON //p')
      after=$(cpu_seconds "$@")
      out=$(python3 -c 'import json,sys
w=json.loads(sys.argv[1])
print(json.dumps({"operations": w["operations"], "throughput": w["operations"] / w["seconds"], "p50Milliseconds": w["p50"] / 1000,
  "p99Milliseconds": w["p99"] / 1000, "p999Milliseconds": w["p999"] / 1000, "errors": w["errors"]}))' "$out")
      report "$name-wrk" "$op" "$c" "$size" "$before" "$after" "$out"
    else
      before=$(cpu_seconds "$@")
      out=$("$synod" bench --endpoints "$endpoint" --concurrency "$c" --duration "$seconds" --warmup 2 --value-size "$size" --op "$op" --json 2>/dev/null)
      after=$(cpu_seconds "$@")
      report "$name" "$op" "$c" "$size" "$before" "$after" "$out"
    fi
  done
  done
  done
  done
}

header() { echo "system              op clients   value      ops/s   p50 ms   p99 ms p99.9 ms  cpu us/op*  errors"; }
if [ -n "$csv" ] && [ ! -s "$csv" ]; then
  echo "system,clients,value_bytes,ops_per_second,p50_ms,p99_ms,p999_ms,cpu_us_per_op,errors" > "$csv"
fi

case "$load" in
  synod) ;;
  wrk|both) command -v wrk > /dev/null || { echo "--load $load needs wrk (apt-get install wrk)" >&2; exit 2; } ;;
  *) echo "--load takes synod, wrk or both" >&2; exit 2 ;;
esac
for op in $ops; do
  case "$op" in put|range) ;; *) echo "--ops takes put and range" >&2; exit 2 ;; esac
done

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
  echo "== Synod ($protocol), 3 nodes, fsync on, peer TLS $tls, metrics $metrics, client connections $connections${options[*]:+, ${options[*]}}, data in $work" >&2
  local peers="1=127.0.0.1:$p1,2=127.0.0.1:$p2,3=127.0.0.1:$p3" i=0 client
  synod_pids=()
  for client in $c1 $c2 $c3; do
    i=$((i + 1))
    "$synod" serve --id $i --peers "$peers" --client "127.0.0.1:$client" --data-dir "$work/synod$i" --protocol "$protocol" \
      "${security[@]}" ${options[@]+"${options[@]}"} --metrics "$metrics" --client-connections "$connections" --log-level warning 2>"$work/synod$i.log" &
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
echo "* server CPU time (user + system, all three members) per completed operation" >&2
