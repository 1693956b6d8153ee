#!/usr/bin/env bash
# Soak test (not run in CI): two `tether serve` nodes on one Redis, a fixed
# request rate for a long while, then a report of errors, latency per minute
# and each node's resident memory over time. See docs/soak.md.
#
#   scripts/soak.sh [--rate N] [--duration D] [--out FILE] [--faults]
#
# With --faults (or SOAK_FAULTS=1) the nodes use a Redis of the soak's own
# (append-only, fsync always, on a free port), which is killed with SIGKILL
# and restarted a third of the way in; two thirds in, 256 clients flood the
# nodes for 10 s past their server.max_inflight (64 unless
# TETHER_SERVER_MAX_INFLIGHT says otherwise). The report then has a table of the faults and the errors
# during each, and a chart (errors, p99 and memory over time) beside it.
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
faults=${SOAK_FAULTS:-0}
while [ $# -gt 0 ]; do
	case $1 in
	--rate) rate=$2; shift 2 ;;
	--duration) duration=$2; shift 2 ;;
	--out) out=$2; shift 2 ;;
	--faults) faults=1; shift ;;
	*) echo "usage: $0 [--rate N] [--duration D] [--out FILE] [--faults]" >&2; exit 2 ;;
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
	if [ -f "$work/redis/redis.pid" ]; then
		kill -9 "$(cat "$work/redis/redis.pid")" 2>/dev/null || true
	fi
	for pid in "${pids[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${pids[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	if [ "$faults" != 1 ] && command -v redis-cli >/dev/null; then # our own Redis goes with $work
		redis-cli -h "${redis%:*}" -p "${redis##*:}" --scan --pattern "${prefix}*" |
			xargs -r -n 500 redis-cli -h "${redis%:*}" -p "${redis##*:}" del >/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "soak: building" >&2
(cd "$root" && go build -o "$work/tether" ./cmd/tether && go build -o "$work/soakload" ./scripts/soakload)

# seconds turns a duration of the form 90s, 10m or 1h into seconds.
seconds() {
	case $1 in
	*h) echo $((${1%h} * 3600)) ;;
	*m) echo $((${1%m} * 60)) ;;
	*s) echo "${1%s}" ;;
	*) echo "soak: duration $1: use s, m or h" >&2; exit 2 ;;
	esac
}

fault_args=()
if [ "$faults" = 1 ]; then
	# A Redis of our own, so that killing it disturbs nobody else.
	mkdir -p "$work/redis"
	# start-redis.sh PORT starts it and waits until it answers; the restart
	# fault runs it again after a SIGKILL.
	cat >"$work/start-redis.sh" <<SCRIPT
redis-server --bind 127.0.0.1 --port "\$1" --dir "$work/redis" --appendonly yes --appendfsync always \\
	--save '' --daemonize yes --pidfile "$work/redis/redis.pid" --logfile "$work/redis/redis.log" || exit 1
for _ in \$(seq 100); do
	redis-cli -p "\$1" ping 2>/dev/null | grep -q PONG && exit 0
	sleep 0.1
done
exit 1
SCRIPT
	for _ in $(seq 10); do
		redis_port=$((20000 + RANDOM % 40000))
		sh "$work/start-redis.sh" "$redis_port" && break
	done
	redis="127.0.0.1:$redis_port"
	total=$(seconds "$duration")
	restart="kill -9 \$(cat $work/redis/redis.pid); sleep 3; sh $work/start-redis.sh $redis_port"
	fault_args=(-fault "$((total / 3))s,redis kill -9 and restart,$restart" -flood "$((total * 2 / 3))s,10s,256"
		-settle 10s -window 10s -sample 5s -chart "${out%.md}.svg")
	# A budget the flood exceeds, so that the nodes shed load (503 +
	# Retry-After) instead of queueing it.
	export TETHER_SERVER_MAX_INFLIGHT=${TETHER_SERVER_MAX_INFLIGHT:-64}
	echo "soak: faults on; own Redis at $redis; server.max_inflight $TETHER_SERVER_MAX_INFLIGHT" >&2
fi

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
"$work/soakload" "${nodes[@]}" -rate "$rate" -duration "$duration" -json "${out%.md}.json" "${fault_args[@]}" >>"$out" || status=$?
for n in 1 2; do
	if grep -qE '"level":"(WARN|ERROR)"' "$work/node$n.log"; then
		echo "soak: node $n logged warnings or errors (most frequent first):" >&2
		grep -E '"level":"(WARN|ERROR)"' "$work/node$n.log" | sed -E 's/^\{"time":"[^"]*",//' |
			sort | uniq -c | sort -rn | head >&2
	fi
done
cat "$out"
exit $status
