#!/usr/bin/env bash
# Heavy transactions against a three-node cluster (issue 11, finding 8): 8 clients post 1.38 MB
# transactions of 30,000 operations to the leader for 10 s while one client puts; prints how the
# heavy requests were answered, the puts' latencies, and the leader's memory before and after.
#
# Usage: scripts/heavy-transactions.sh [SYNOD_BINARY] [serve options...]
#   (default binary: the release build; default options: --insecure-peers)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-$(swift build -c release --show-bin-path)/synod}
shift || true
[ $# -gt 0 ] || set -- --insecure-peers
work=$(mktemp -d)
ports=$(python3 -c 'import socket
s=[socket.socket() for _ in range(6)]
[x.bind(("127.0.0.1",0)) for x in s]
print(" ".join(str(x.getsockname()[1]) for x in s))')
read -r p1 p2 p3 c1 c2 c3 <<< "$ports"
peers="1=127.0.0.1:$p1,2=127.0.0.1:$p2,3=127.0.0.1:$p3"
pids=()
i=0
for c in $c1 $c2 $c3; do
  i=$((i+1))
  "$bin" serve --id $i --peers "$peers" --client 127.0.0.1:$c --data-dir $work/n$i --log-level warning "$@" 2>$work/n$i.log &
  pids+=($!)
done
trap 'kill -9 ${pids[@]} 2>/dev/null; rm -rf $work' EXIT
leader=""; lpid=""
for _ in $(seq 1 100); do
  j=0
  for c in $c1 $c2 $c3; do
    if curl -s 127.0.0.1:$c/v3/status | grep -q '"role":"leader"'; then leader=$c; lpid=${pids[$j]}; break 2; fi
    j=$((j+1))
  done
  sleep 0.1
done
python3 - "$leader" "$lpid" <<'PY'
import json, sys, threading, time, urllib.request, urllib.error, base64, statistics
leader_port, leader_pid = int(sys.argv[1]), int(sys.argv[2])
def rss():
    for line in open(f"/proc/{leader_pid}/status"):
        if line.startswith("VmRSS"): return line.split()[1] + " kB"
op = '{"request_put":{"key":"a2V5","value":"dg=="}}'
heavy = ('{"success":[' + ",".join([op] * 30000) + ']}').encode()
print("body bytes", len(heavy), "rss before", rss())
stop = time.time() + 10
codes = {}
def hammer():
    while time.time() < stop:
        try:
            urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{leader_port}/v3/kv/txn", data=heavy), timeout=30)
            codes[200] = codes.get(200, 0) + 1
        except urllib.error.HTTPError as e:
            codes[e.code] = codes.get(e.code, 0) + 1
threads = [threading.Thread(target=hammer) for _ in range(8)]
for t in threads: t.start()
lat = []
while time.time() < stop:
    body = json.dumps({"key": base64.b64encode(b"k").decode(), "value": base64.b64encode(b"v").decode()}).encode()
    t0 = time.time()
    urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{leader_port}/v3/kv/put", data=body), timeout=30).read()
    lat.append((time.time() - t0) * 1000)
for t in threads: t.join()
lat.sort()
print("heavy responses", codes)
print(f"puts meanwhile: {len(lat)}, p50 {statistics.median(lat):.2f} ms, p99 {lat[int(len(lat)*0.99)-1]:.2f} ms, max {lat[-1]:.2f} ms")
print("rss after", rss())
PY
