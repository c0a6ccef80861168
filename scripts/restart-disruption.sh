#!/usr/bin/env bash
# Does a restarted replica disturb a healthy leader? Runs a three-node cluster under a steady
# put load (`synod bench`), kills one follower with SIGKILL, restarts it a moment later, and
# reports, per round, the epoch (term or ballot) and leader before and after, and the slowest
# put of the round (a stall shows as a put that waited for an election).
#
# Usage: scripts/restart-disruption.sh [--protocol raft|multipaxos] [--rounds N] [--down S]
#                                      [--option NAME=VALUE ...]
# --option goes to every `synod serve` (e.g. --option pre-vote=off, to see the difference).
# Needs a release build (swift build -c release).
set -euo pipefail
cd "$(dirname "$0")/.."

protocol=raft
rounds=5
down=1
options=()
while [ $# -gt 0 ]; do
  case "$1" in
    --protocol) protocol=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --down) down=$2; shift 2 ;;
    --option) options+=(--option "$2"); shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

synod="${SYNOD_BIN:-$(swift build -c release --show-bin-path)/synod}"
[ -x "$synod" ] || { echo "build first: swift build -c release" >&2; exit 2; }
work=$(mktemp -d /tmp/synod-restart.XXXXXX)
pids=()
cleanup() {
  { for pid in "${pids[@]:-}"; do kill -9 "$pid" || true; done; wait; } 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

ports=$(python3 -c 'import socket
s=[socket.socket() for _ in range(6)]
[x.bind(("127.0.0.1",0)) for x in s]
print(" ".join(str(x.getsockname()[1]) for x in s))')
read -r p1 p2 p3 c1 c2 c3 <<< "$ports"
peers="1=127.0.0.1:$p1,2=127.0.0.1:$p2,3=127.0.0.1:$p3"
clientport=(none "$c1" "$c2" "$c3")
node_pid=(none 0 0 0)
"$synod" certs --nodes 1,2,3 --out "$work/certs" --force > /dev/null

start() {
  local i=$1
  "$synod" serve --id "$i" --peers "$peers" --client "127.0.0.1:${clientport[$i]}" --data-dir "$work/n$i" \
    --protocol "$protocol" --certs "$work/certs" --log-level warning "${options[@]}" 2>>"$work/n$i.log" &
  node_pid[$i]=$!
  pids+=($!)
}

# leader_and_epoch: "LEADER EPOCH" as node 1..3 see it (the first node that answers).
leader_and_epoch() {
  for i in 1 2 3; do
    local status
    status=$(curl -s --max-time 1 "127.0.0.1:${clientport[$i]}/v3/status" || true)
    if [ -n "$status" ]; then
      python3 -c 'import json,sys; s=json.loads(sys.argv[1]); print(s.get("leader") or 0, s.get("epoch", 0))' "$status"
      return
    fi
  done
  echo "0 0"
}

for i in 1 2 3; do start "$i"; done
for _ in $(seq 1 100); do
  read -r leader epoch <<< "$(leader_and_epoch)"
  [ "$leader" != 0 ] && break
  sleep 0.1
done
[ "$leader" != 0 ] || { echo "no leader" >&2; exit 1; }

echo "protocol $protocol, options: ${options[*]:-defaults}, $rounds rounds, follower down ${down}s"
echo "round  leader-before  epoch-before  leader-after  epoch-after  max-put-ms  p99-ms  puts  errors"
for round in $(seq 1 "$rounds"); do
  read -r leader epoch <<< "$(leader_and_epoch)"
  endpoint="127.0.0.1:${clientport[$leader]}"
  victim=$(( leader % 3 + 1 ))
  "$synod" bench --endpoints "$endpoint" --concurrency 8 --duration $((down + 5)) --warmup 0 --value-size 256 --op put \
    --json > "$work/bench.$round" 2>/dev/null &
  bench_pid=$!
  sleep 1
  kill -9 "${node_pid[$victim]}"
  { wait "${node_pid[$victim]}"; } 2>/dev/null || true
  sleep "$down"
  start "$victim"
  wait "$bench_pid" || true
  read -r leader_after epoch_after <<< "$(leader_and_epoch)"
  python3 - "$round" "$leader" "$epoch" "$leader_after" "$epoch_after" "$work/bench.$round" <<'PY'
import json, sys
round_, leader, epoch, leader_after, epoch_after, bench = sys.argv[1:]
out = json.load(open(bench))
print(f"{round_:>5}  {leader:>13}  {epoch:>12}  {leader_after:>12}  {epoch_after:>11}  {out['maxMilliseconds']:>10.0f}"
      f"  {out['p99Milliseconds']:>6.1f}  {out['operations']:>5}  {out['errors']:>6}")
PY
done
