#!/usr/bin/env bash
# How cost grows: Synod (Raft, three nodes, peer TLS) and etcd (three members) on this machine,
# the same load tool and request shape as scripts/bench-vs-etcd.sh, at 1 to 256 clients (256-byte
# values) and at 64-byte to 64 KiB values (64 clients). Writes docs/scaling.csv and draws it as
# docs/scaling.svg (scripts/plot-scaling.py, no dependencies beyond Python 3).
#
# Usage: scripts/scaling.sh [--seconds S]   (default 5 seconds per point, after 2 of warm-up)
# Needs a release build (swift build -c release) and etcd (Debian: apt-get install etcd-server etcd-client).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=5
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
command -v etcd > /dev/null && command -v etcdctl > /dev/null || { echo "etcd and etcdctl needed (apt-get install etcd-server etcd-client)" >&2; exit 2; }
csv=docs/scaling.csv
rm -f "$csv"
scripts/bench-vs-etcd.sh --seconds "$seconds" --clients "1 4 16 64 256" --value-sizes 256 --csv "$csv"
scripts/bench-vs-etcd.sh --seconds "$seconds" --clients 64 --value-sizes "64 1024 16384 65536" --csv "$csv"
python3 scripts/plot-scaling.py "$csv" docs/scaling.svg
echo "wrote $csv and docs/scaling.svg" >&2
