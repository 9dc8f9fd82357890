#!/bin/sh
# Measures the simulator and the load generator on this machine:
#   1. wrk: non-streaming chat requests per second against one zero-latency sim, 64 keep-alive
#      connections (target: 50,000 req/s with the sim on one core);
#   2. vllm-router bench: streamed requests per second it sustains against the same sim at
#      concurrency 64 (target: 5,000 req/s), with the CPU time bench itself used.
# The sim is pinned to CPU 0 and the clients to CPU 1 when taskset is available.
# Usage: bench/sim_bench.sh [path/to/vllm-router] [port] [seconds]
# (BENCH_BIN=path runs the bench command from another binary.)
set -eu

BIN=${1:-build/vllm-router}
BENCH=${BENCH_BIN:-$BIN}
PORT=${2:-18080}
SECS=${3:-10}
URL=http://127.0.0.1:$PORT

[ -x "$BIN" ] || { echo "no binary at $BIN (build first, ideally -DCMAKE_BUILD_TYPE=Release)" >&2; exit 1; }
command -v wrk >/dev/null 2>&1 || echo "wrk not found: skipping the wrk measurement" >&2

PIN_SIM=""
PIN_CLIENT=""
if command -v taskset >/dev/null 2>&1 && [ "$(nproc)" -ge 2 ]; then
    PIN_SIM="taskset -c 0"
    PIN_CLIENT="taskset -c 1"
fi

TMP=$(mktemp -d)
SIM_PID=""
cleanup() {
    if [ -n "$SIM_PID" ]; then kill "$SIM_PID" 2>/dev/null || true; wait "$SIM_PID" 2>/dev/null || true; fi
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

# Zero latencies (the sim's defaults), tiny answers.
$PIN_SIM "$BIN" sim --port "$PORT" --output-len 4 >"$TMP/sim.log" 2>&1 &
SIM_PID=$!
i=0
until "$BENCH" bench --base-url "$URL" --num-requests 1 --concurrency 1 --input-len 4 \
        --output-len 1 --json >/dev/null 2>&1; do
    i=$((i + 1))
    [ $i -lt 50 ] || { echo "sim did not start:" >&2; cat "$TMP/sim.log" >&2; exit 1; }
    sleep 0.1
done

echo "== wrk: non-streaming POST /v1/chat/completions, 64 connections, ${SECS}s"
if command -v wrk >/dev/null 2>&1; then
    cat >"$TMP/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"model":"sim-model","messages":[{"role":"user","content":"abc def ghi jkl"}],"max_tokens":4}'
wrk.headers["Content-Type"] = "application/json"
LUA
    $PIN_CLIENT wrk -t1 -c64 -d"${SECS}s" -s "$TMP/post.lua" "$URL/v1/chat/completions" |
        tee "$TMP/wrk.txt" | sed 's/^/   /'
fi

N=$((SECS * 6000))
echo "== vllm-router bench: streamed chat, concurrency 64, $N requests, 16 tokens in, 4 out"
/usr/bin/env time -f "%U %S %e" -o "$TMP/time.txt" $PIN_CLIENT "$BENCH" bench --base-url "$URL" \
    --concurrency 64 --num-requests "$N" --input-len 16 --output-len 4 --json \
    >"$TMP/bench.json" 2>"$TMP/bench.err" || { cat "$TMP/bench.err" >&2; exit 1; }
python3 - "$TMP/bench.json" "$TMP/time.txt" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
user, sys_, wall = (float(x) for x in open(sys.argv[2]).read().split()[-3:])
cpu = user + sys_
print("   completed %d, failed %d, %.0f streamed req/s, mean TTFT %.2f ms, mean E2EL %.2f ms"
      % (r["completed"], r["failed"], r["request_throughput"], r["mean_ttft_ms"], r["mean_e2el_ms"]))
print("   bench used %.2f s CPU in %.2f s (%.0f%% of one core, %.1f us per request)"
      % (cpu, wall, 100 * cpu / wall, 1e6 * cpu / max(1, r["completed"] + r["failed"])))
PY
