#!/usr/bin/env bash
# Soak test (not run in CI): two `tether serve` nodes on one Redis, a fixed
# request rate for a long while, then a report of errors, latency per minute
# and each node's resident memory over time. See docs/soak.md.
#
#   scripts/soak.sh [--rate N] [--duration D] [--out FILE]
#
# Environment: SOAK_RATE (default 1000 req/s over both nodes), SOAK_DURATION
# (default 10m), SOAK_REDIS (default 127.0.0.1:6379), SOAK_OUT (default
# soak-<date>.md in the working directory; a .json beside it). Everything runs
# on 127.0.0.1; the nodes and the Redis keys (a unique prefix) are removed at
# the end, whatever happens.
set -euo pipefail

rate=${SOAK_RATE:-1000}
duration=${SOAK_DURATION:-10m}
redis=${SOAK_REDIS:-127.0.0.1:6379}
out=${SOAK_OUT:-soak-$(date -u +%Y%m%dT%H%M%SZ).md}
while [ $# -gt 0 ]; do
	case $1 in
	--rate) rate=$2; shift 2 ;;
	--duration) duration=$2; shift 2 ;;
	--out) out=$2; shift 2 ;;
	*) echo "usage: $0 [--rate N] [--duration D] [--out FILE]" >&2; exit 2 ;;
	esac
done
case $redis in
127.0.0.1:*) ;;
*) echo "soak: SOAK_REDIS must be on 127.0.0.1" >&2; exit 2 ;;
esac

root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/tether-soak.XXXXXX")
prefix="soak-$(date +%s)-$$:"
pids=()
cleanup() {
	for pid in "${pids[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${pids[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	if command -v redis-cli >/dev/null; then
		redis-cli -h "${redis%:*}" -p "${redis##*:}" --scan --pattern "${prefix}*" |
			xargs -r -n 500 redis-cli -h "${redis%:*}" -p "${redis##*:}" del >/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "soak: building" >&2
(cd "$root" && go build -o "$work/tether" ./cmd/tether && go build -o "$work/soakload" ./scripts/soakload)

TETHER_ADMIN_KEY="soak-admin-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
export TETHER_ADMIN_KEY
nodes=()
for n in 1 2; do
	log="$work/node$n.log"
	"$work/tether" serve --addr 127.0.0.1:0 --admin-addr 127.0.0.1:0 --log-level info \
		--store "redis://$redis?prefix=$prefix" --data-dir "$work/node$n" >"$work/node$n.out" 2>"$log" &
	pids+=($!)
	for _ in $(seq 100); do
		grep -q '"tether ready"' "$log" 2>/dev/null && break
		kill -0 "${pids[-1]}" 2>/dev/null || { cat "$log" >&2; exit 1; }
		sleep 0.1
	done
	line=$(grep '"tether ready"' "$log") || { echo "soak: node $n did not start" >&2; cat "$log" >&2; exit 1; }
	public=$(sed -E 's/.*"public":"([^"]+)".*/\1/' <<<"$line")
	admin=$(sed -E 's/.*"admin":"([^"]+)".*/\1/' <<<"$line")
	nodes+=(-node "http://$public,http://$admin,${pids[-1]}")
	echo "soak: node $n pid ${pids[-1]} public $public admin $admin" >&2
done

{
	echo "# Soak $(date -u +%Y-%m-%dT%H:%MZ)"
	echo
	echo "\`scripts/soak.sh --rate $rate --duration $duration\` on $(nproc) CPUs, $(go version | cut -d' ' -f3),"
	echo "two nodes on Redis $(redis-cli -h "${redis%:*}" -p "${redis##*:}" info server 2>/dev/null | sed -n 's/^redis_version:\([^\r]*\).*/\1/p') at $redis"
	echo
} >"$out"
status=0
"$work/soakload" "${nodes[@]}" -rate "$rate" -duration "$duration" -json "${out%.md}.json" >>"$out" || status=$?
for n in 1 2; do
	if grep -qE '"level":"(WARN|ERROR)"' "$work/node$n.log"; then
		echo "soak: node $n logged warnings or errors (most frequent first):" >&2
		grep -E '"level":"(WARN|ERROR)"' "$work/node$n.log" | sed -E 's/^\{"time":"[^"]*",//' |
			sort | uniq -c | sort -rn | head >&2
	fi
done
cat "$out"
exit $status
