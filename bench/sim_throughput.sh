#!/bin/sh
# Measures the simulator's throughput on a shared, noisy machine: each figure is the median of
# a few short runs, and next to requests per second it reports the sim's CPU time per request
# (utime + stime from /proc/PID/stat), which other processes competing for the cores barely move:
# 1e6 / (µs per request) is what one dedicated core would sustain.
#   1. wrk, non-streaming POST /v1/chat/completions, 64 keep-alive connections (target 50,000/s);
#   2. wrk, the same request streamed with usage;
#   3. vllm-router bench, streamed chat, concurrency 64 (target 5,000/s), with bench's own CPU;
#   4. 10,000 concurrent slow streams (1 token per second) held open: all running, sim RSS and
#      CPU while holding them.
# Usage: bench/sim_throughput.sh [path/to/vllm-router] [port] [seconds per run] [runs]
# The sim is pinned to CPU 0 and the clients to CPU 1 when taskset is available. Linux only.
set -eu

BIN=${1:-build/vllm-router}
PORT=${2:-18090}
SECS=${3:-3}
RUNS=${4:-3}
URL=http://127.0.0.1:$PORT
HOLD=${HOLD_STREAMS:-10000}

[ -x "$BIN" ] || { echo "no binary at $BIN (build with -DCMAKE_BUILD_TYPE=Release)" >&2; exit 1; }
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

PIN_SIM=""
PIN_CLIENT=""
if command -v taskset >/dev/null 2>&1 && [ "$(nproc)" -ge 2 ]; then
    PIN_SIM="taskset -c 0"
    PIN_CLIENT="taskset -c 1"
fi

TMP=$(mktemp -d)
SIM_PID=""
stop_sim() {
    if [ -n "$SIM_PID" ]; then kill "$SIM_PID" 2>/dev/null || true; wait "$SIM_PID" 2>/dev/null || true; fi
    SIM_PID=""
}
cleanup() { stop_sim; rm -rf "$TMP"; }
trap cleanup EXIT INT TERM

start_sim() {
    $PIN_SIM "$BIN" sim --port "$PORT" "$@" >"$TMP/sim.log" 2>&1 &
    SIM_PID=$!
    i=0
    until python3 -c "import socket; socket.create_connection(('127.0.0.1', $PORT), 0.2)" 2>/dev/null; do
        i=$((i + 1))
        [ $i -lt 50 ] || { echo "sim did not start:" >&2; cat "$TMP/sim.log" >&2; exit 1; }
        sleep 0.1
    done
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TICK=$(getconf CLK_TCK)

# median VALUE...: the middle value (lower middle for an even count).
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }

# wrk_runs LUA: RUNS wrk runs; prints "median req/s, median sim µs per request".
wrk_runs() {
    rates=""
    costs=""
    r=0
    while [ $r -lt "$RUNS" ]; do
        a=$(cpu_ticks "$SIM_PID")
        $PIN_CLIENT wrk -t1 -c64 -d"${SECS}s" -s "$1" "$URL/v1/chat/completions" >"$TMP/wrk.txt"
        b=$(cpu_ticks "$SIM_PID")
        n=$(awk '/requests in/ {print $1}' "$TMP/wrk.txt")
        rate=$(awk '/Requests\/sec/ {print $2}' "$TMP/wrk.txt")
        cost=$(awk -v d=$((b - a)) -v n="$n" -v t="$TICK" 'BEGIN {printf "%.1f", d / t * 1e6 / n}')
        grep -q "Non-2xx" "$TMP/wrk.txt" && echo "   (run $r had errors: $(grep Non-2xx "$TMP/wrk.txt"))"
        echo "   run $r: $rate req/s, sim $cost us CPU per request"
        rates="$rates $rate"
        costs="$costs $cost"
        r=$((r + 1))
    done
    echo "   median: $(median $rates) req/s, sim $(median $costs) us CPU per request" \
         "(one core: ~$(awk -v c="$(median $costs)" 'BEGIN {printf "%.0f", 1e6 / c}') req/s)"
}

cat >"$TMP/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"model":"sim-model","messages":[{"role":"user","content":"abc def ghi jkl"}],"max_tokens":4}'
wrk.headers["Content-Type"] = "application/json"
LUA
cat >"$TMP/stream.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"model":"sim-model","messages":[{"role":"user","content":"abc def ghi jkl"}],"max_tokens":4,"stream":true,"stream_options":{"include_usage":true}}'
wrk.headers["Content-Type"] = "application/json"
LUA

start_sim --output-len 4
if command -v wrk >/dev/null 2>&1; then
    echo "== wrk: non-streaming chat, 64 connections, $RUNS x ${SECS}s"
    wrk_runs "$TMP/post.lua"
    echo "== wrk: streamed chat (4 tokens + usage), 64 connections, $RUNS x ${SECS}s"
    wrk_runs "$TMP/stream.lua"
else
    echo "wrk not found: skipping the wrk measurements" >&2
fi

N=$((SECS * 10000))
echo "== vllm-router bench: streamed chat, concurrency 64, $RUNS x $N requests, 16 tokens in, 4 out"
rates=""
scost=""
bcost=""
r=0
while [ $r -lt "$RUNS" ]; do
    a=$(cpu_ticks "$SIM_PID")
    /usr/bin/env time -f "%U %S %e" -o "$TMP/time.txt" $PIN_CLIENT "$BIN" bench --base-url "$URL" \
        --concurrency 64 --num-requests "$N" --input-len 16 --output-len 4 --json \
        >"$TMP/bench.json" 2>"$TMP/bench.err" || { cat "$TMP/bench.err" >&2; exit 1; }
    b=$(cpu_ticks "$SIM_PID")
    line=$(python3 - "$TMP/bench.json" "$TMP/time.txt" $((b - a)) "$TICK" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
user, sys_, wall = (float(x) for x in open(sys.argv[2]).read().split()[-3:])
n = max(1, r["completed"] + r["failed"])
sim = int(sys.argv[3]) / float(sys.argv[4])
print("%.0f %.1f %.1f %d %.2f" % (r["request_throughput"], 1e6 * sim / n, 1e6 * (user + sys_) / n,
                                  r["failed"], r["median_ttft_ms"]))
PY
)
    set -- $line
    echo "   run $r: $1 streamed req/s ($4 failed, median TTFT $5 ms), sim $2 us and bench $3 us CPU per request"
    rates="$rates $1"
    scost="$scost $2"
    bcost="$bcost $3"
    r=$((r + 1))
done
echo "   median: $(median $rates) streamed req/s, sim $(median $scost) us, bench $(median $bcost) us CPU per request"
stop_sim

echo "== $HOLD concurrent slow streams (1 token/s), held 5 s"
start_sim --itl-ms 1000 --output-len 100000 --max-num-seqs "$HOLD" --kv-cache-tokens 100000000
$PIN_CLIENT python3 - "$PORT" "$HOLD" "$SIM_PID" "$TICK" <<'PY'
import json, selectors, socket, sys, time
port, n, pid, tick = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
body = json.dumps({"model": "sim-model", "prompt": "hold", "max_tokens": 60, "stream": True}).encode()
req = (b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
       b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
sel = selectors.DefaultSelector()
socks, got = [], 0
def drain(timeout):
    global got
    for key, _ in sel.select(timeout):
        try:
            d = key.fileobj.recv(65536)
        except OSError:
            d = b""
        got += d.count(b"data: ")
def state():
    s = socket.create_connection(("127.0.0.1", port), 5)
    s.sendall(b"GET /sim/state HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        data += d
    s.close()
    return json.loads(data.split(b"\r\n\r\n", 1)[1])
def sim_cpu():
    f = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / tick
def rss_mib():
    for line in open("/proc/%d/status" % pid):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
t0 = time.monotonic()
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port), 10)
    s.sendall(req)
    s.setblocking(False)
    sel.register(s, selectors.EVENT_READ)
    socks.append(s)
    if i % 500 == 499:
        drain(0)  # keep up with the first tokens; lets the listen backlog clear
deadline = time.monotonic() + 30
while time.monotonic() < deadline and state()["running"] < n:
    drain(0.2)
st = state()
print("   %d connections opened in %.1f s; sim reports %d running, %d waiting"
      % (n, time.monotonic() - t0, st["running"], st["waiting"]))
c0, g0, t1 = sim_cpu(), got, time.monotonic()
while time.monotonic() - t1 < 5:
    drain(0.2)
dt = time.monotonic() - t1
print("   held %.1f s: %.0f events/s received, sim %.0f%% of a core, RSS %.0f MiB"
      % (dt, (got - g0) / dt, 100 * (sim_cpu() - c0) / dt, rss_mib()))
for s in socks:
    s.close()
ok = st["running"] == n
print("   %s" % ("all held" if ok else "NOT all running"))
sys.exit(0 if ok else 1)
PY
