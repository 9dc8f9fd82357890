#!/usr/bin/env bash
# Data-plane benchmark: vllm-router (--workers 1) against NGINX (1 worker) and HAProxy (1 thread)
# proxying the same backend in the same run, with "direct" (no proxy) as the floor.
#
# Backends:
#   - non-streaming POST and one-connection latency: a static NGINX answering every POST with a
#     small JSON body (cheaper per request than the simulator, so the proxies, not the
#     backend, are what is measured);
#   - streams, slow streams and the 1 MiB prompt: `vllm-router sim`, which speaks SSE and reads
#     the whole request body before answering, as a real server does.
# Proxies and backend run on CPU 0, load generators (wrk, vllm-router bench) on CPU 1.
# Each measurement runs ROUNDS short rounds, targets interleaved within a round; the table
# shows medians, "added" figures are taken against direct in the same round, and the ratios
# are router/NGINX and router/HAProxy.
#
# Usage: bench/proxy_bench.sh [path/to/vllm-router]
# Environment: ROUNDS (3), SECS (4, seconds per wrk run), STREAMS ("2000 10000"), PHASES ("1 2 3"),
#              PORT_BASE (a free range of 10 ports), OUT (bench/results).
# Needs: nginx, haproxy, wrk, curl, python3 (scripts/bootstrap --bench) and a build
# (ideally -DCMAKE_BUILD_TYPE=Release or RelWithDebInfo, no sanitizers).
set -euo pipefail

cd "$(dirname "$0")/.."
BIN=$(realpath "${1:-build/vllm-router}")
ROUNDS=${ROUNDS:-3}
SECS=${SECS:-4}
STREAMS=${STREAMS:-"2000 10000"}
PHASES=${PHASES:-"1 2 3"}
PORT_BASE=${PORT_BASE:-$((20000 + (RANDOM % 900) * 10))}
OUT=${OUT:-bench/results}
MODEL=sim-model

[ -x "$BIN" ] || { echo "no binary at $BIN: build first" >&2; exit 1; }
T=$(mktemp -d)
. bench/lib.sh
need_tools nginx haproxy wrk curl python3
trap 'stop_all; [ -n "${KEEP_TMP:-}" ] || rm -rf "$T"' EXIT
trap 'exit 130' INT TERM

# 10,000 streams need about 20,000 descriptors in each proxy.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true
NOFILE=$(ulimit -n)
export HAPROXY_MAXCONN=$(( (NOFILE - 100) / 2 ))

BACK=$PORT_BASE            # backend (static NGINX or sim)
RPORT=$((PORT_BASE + 1))   # vllm-router
NPORT=$((PORT_BASE + 2))   # NGINX proxy
HPORT=$((PORT_BASE + 3))   # HAProxy
ROWS=$T/rows.tsv           # section target round metric value
: >"$ROWS"
row() { printf '%s\t%s\t%s\t%s\t%s\n' "$@" >>"$ROWS"; }
url_of() {
    case $1 in
        direct) echo "http://127.0.0.1:$BACK" ;;
        router) echo "http://127.0.0.1:$RPORT" ;;
        nginx) echo "http://127.0.0.1:$NPORT" ;;
        haproxy) echo "http://127.0.0.1:$HPORT" ;;
    esac
}
TARGETS="direct router nginx haproxy"
PROXIES="router nginx haproxy"
SMALL_BODY='{"model":"'$MODEL'","messages":[{"role":"user","content":"Say hello in one short sentence."}],"max_tokens":8}'
log() { echo "[proxy_bench] $*" >&2; }

# ---- backends and proxies ----

static_backend_start() {
    local answer='{"id":"chatcmpl-static","object":"chat.completion","created":1,"model":"'$MODEL'","choices":[{"index":0,"message":{"role":"assistant","content":"Hello there."},"finish_reason":"stop"}],"usage":{"prompt_tokens":8,"completion_tokens":3,"total_tokens":11}}'
    nginx_start backend "$BACK" "" "
        location = /health { return 200 ''; }
        location = /metrics { default_type text/plain; return 200 'vllm:num_requests_running{model_name=\"$MODEL\"} 0
vllm:num_requests_waiting{model_name=\"$MODEL\"} 0
vllm:kv_cache_usage_perc{model_name=\"$MODEL\"} 0
'; }
        location = /v1/models { default_type application/json; return 200 '{\"object\":\"list\",\"data\":[{\"id\":\"$MODEL\",\"object\":\"model\",\"owned_by\":\"static\"}]}'; }
        location / { default_type application/json; return 200 '$answer'; }"
    BACKEND_PID=$LAST_PID
    wait_http "http://127.0.0.1:$BACK/v1/models"
}

sim_backend_start() {   # args: extra sim flags
    start backend "$BIN" sim --port "$BACK" --model "$MODEL" --max-num-seqs 20000 \
        --max-model-len 2000000 --kv-cache-tokens 100000000 "$@"
    BACKEND_PID=$LAST_PID
    wait_http "http://127.0.0.1:$BACK/v1/models"
}

proxies_start() {
    router_start router "[servers]
servers = [{ url = \"http://127.0.0.1:$BACK\", max_concurrent_requests = 100000 }]
[listen]
host = \"127.0.0.1\"
port = $RPORT
workers = 1
max_connections = 30000
[config]
request_timeout = 600
[timeouts]
stream_idle = 600"
    ROUTER_PID=$LAST_PID
    nginx_start nginx "$NPORT" "upstream backend {
        server 127.0.0.1:$BACK;
        keepalive 512;
        keepalive_requests 10000000;
        keepalive_timeout 300s;
    }" "$NGINX_PROXY_LOCATION"
    NGINX_PID=$(nginx_worker "$LAST_PID")
    haproxy_start haproxy "$HPORT" "    server s1 127.0.0.1:$BACK"
    HAPROXY_PID=$LAST_PID
    local p
    for p in $PROXIES; do wait_http "$(url_of "$p")/v1/chat/completions" "$SMALL_BODY"; done
}

proxy_pid() {
    case $1 in router) echo "$ROUTER_PID" ;; nginx) echo "$NGINX_PID" ;; haproxy) echo "$HAPROXY_PID" ;; esac
}

# ---- load generators ----

cat >"$T/post.lua" <<EOF
wrk.method = "POST"
wrk.body = '$SMALL_BODY'
wrk.headers["Content-Type"] = "application/json"
EOF
cat >"$T/big.lua" <<EOF
wrk.method = "POST"
wrk.body = '{"model":"$MODEL","max_tokens":1,"messages":[{"role":"user","content":"' .. string.rep("abc ", 262144) .. '"}]}'
wrk.headers["Content-Type"] = "application/json"
EOF

# wrk_run SECTION TARGET ROUND CONNS SECS LUA: one wrk run, its figures into $ROWS.
wrk_run() {
    local section=$1 target=$2 round=$3 conns=$4 secs=$5 lua=$6 out="$T/wrk.$1.$2.$3.txt"
    $PIN_CLI wrk -t1 -c"$conns" -d"${secs}s" --timeout 10s --latency -s "$lua" \
        "$(url_of "$target")/v1/chat/completions" >"$out" 2>&1 || true
    python3 - "$out" "$section" "$target" "$round" >>"$ROWS" <<'PY'
import re, sys
path, section, target, rnd = sys.argv[1:]
text = open(path).read()
unit = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 6e7}
def lat(p):
    m = re.search(r"^\s+%s%%\s+([\d.]+)(us|ms|s|m)\s*$" % p, text, re.M)
    return float(m.group(1)) * unit[m.group(2)] if m else float("nan")
m = re.search(r"Requests/sec:\s+([\d.]+)", text)
rps = float(m.group(1)) if m else float("nan")
errs = 0
m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
if m: errs += int(m.group(1))
m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
if m: errs += sum(int(x) for x in m.groups())
for k, v in (("rps", rps), ("p50_us", lat(50)), ("p99_us", lat(99)), ("errors", errs)):
    print("%s\t%s\t%s\t%s\t%s" % (section, target, rnd, k, v))
PY
}

# bench_run SECTION TARGET ROUND ARGS...: one `vllm-router bench` run, JSON figures into $ROWS.
bench_run() {
    local section=$1 target=$2 round=$3 out="$T/bench.$1.$2.$3.json"; shift 3
    $PIN_CLI "$BIN" bench --base-url "$(url_of "$target")" --model "$MODEL" --json \
        --percentiles 50,99 "$@" >"$out" 2>"$out.err" || true
    python3 - "$out" "$section" "$target" "$round" >>"$ROWS" <<'PY'
import json, sys
path, section, target, rnd = sys.argv[1:]
try:
    r = json.load(open(path))
except Exception:
    r = {}
nan = float("nan")
for k in ("completed", "failed", "p50_ttft_ms", "p99_ttft_ms", "mean_itl_ms", "p99_itl_ms",
          "median_e2el_ms"):
    print("%s\t%s\t%s\t%s\t%s" % (section, target, rnd, k, r.get(k, nan)))
for kind, v in (r.get("errors") or {}).items():
    for sub, n in (v.items() if isinstance(v, dict) else [("", v)]):
        if n:
            print("%s\t%s\t%s\terr:%s%s\t%s" % (section, target, rnd, kind, sub, n))
PY
}

# ---- phase 1: static backend ----
log "ports $PORT_BASE..$HPORT, $ROUNDS rounds, ${SECS}s per wrk run, nofile $NOFILE"
has_phase() { case " $PHASES " in *" $1 "*) return 0 ;; esac; return 1; }
if has_phase 1; then
log "phase 1: static NGINX backend"
static_backend_start
proxies_start
for t in $TARGETS; do   # warm every path (connections, pools) once
    $PIN_CLI wrk -t1 -c32 -d1s -s "$T/post.lua" "$(url_of "$t")/v1/chat/completions" >/dev/null 2>&1 || true
done
for r in $(seq "$ROUNDS"); do
    for t in $TARGETS; do
        log "round $r: $t"
        wrk_run post32 "$t" "$r" 32 "$SECS" "$T/post.lua"
        wrk_run post256 "$t" "$r" 256 "$SECS" "$T/post.lua"
        wrk_run lat1 "$t" "$r" 1 $(( SECS > 3 ? 3 : SECS )) "$T/post.lua"
    done
done
stop_all
fi

# ---- phase 2: the simulator as backend ----
if has_phase 2; then
log "phase 2: sim backend, 100 streams and a 1 MiB prompt"
sim_backend_start --itl-ms 10 --output-len 16
proxies_start
for r in $(seq "$ROUNDS"); do
    for t in $TARGETS; do
        log "round $r: $t"
        # 100 concurrent streams of 16 tokens 10 ms apart; 800 requests (~1.3 s).
        bench_run stream100 "$t" "$r" --concurrency 100 --num-requests 800 --input-len 32 \
            --output-len 16
        wrk_run body1m "$t" "$r" 1 2 "$T/big.lua"
    done
done
stop_all
fi

# ---- phase 3: many slow streams, fresh processes so the peak RSS is this test's ----
has_phase 3 || STREAMS=""
for n in $STREAMS; do
    if [ $((n * 2 + 100)) -gt "$NOFILE" ]; then
        # Each proxy holds two descriptors per stream; stay under the descriptor limit.
        n=$(( (NOFILE - 100) / 2 / 100 * 100 ))
        log "ulimit -n is $NOFILE (hard limit $(ulimit -Hn)): running $n streams instead"
    fi
    log "phase 3: $n concurrent slow streams (20 tokens 200 ms apart)"
    for t in $TARGETS; do
        # Fresh backend and proxies per target: one target's load must not leave the next
        # one a tired backend (or a router that saw its health checks time out).
        sim_backend_start --itl-ms 200 --output-len 20
        proxies_start
        idle=0
        [ "$t" = direct ] || idle=$(vm_kib "$(proxy_pid "$t")" VmRSS)
        log "$n streams: $t"
        bench_run "slow$n" "$t" 1 --concurrency "$n" --num-requests "$n" --input-len 16 \
            --output-len 20 --timeout 120
        if [ "$t" != direct ]; then
            hwm=$(vm_kib "$(proxy_pid "$t")" VmHWM)
            row "slow$n" "$t" 1 hwm_kib "$hwm"
            row "slow$n" "$t" 1 idle_kib "$idle"
        fi
        stop_all
    done
done

# ---- report ----
mkdir -p "$OUT"
STAMP=$(date +%Y%m%d-%H%M%S)
cp "$ROWS" "$OUT/proxy_bench-$STAMP.tsv"
python3 - "$ROWS" "$ROUNDS" "$SECS" "$(nproc)" "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-)" \
    <<'PY' | tee "$OUT/proxy_bench-$STAMP.md"
import collections, math, statistics, sys
rows_path, rounds, secs, ncpu, cpu = sys.argv[1:]
data = collections.defaultdict(dict)   # (section, target, metric) -> {round: value}
for line in open(rows_path):
    s, t, r, k, v = line.rstrip("\n").split("\t")
    try:
        data[(s, t, k)][r] = float(v)
    except ValueError:
        pass

def med(s, t, k):
    vals = [v for v in data.get((s, t, k), {}).values() if not math.isnan(v)]
    return statistics.median(vals) if vals else float("nan")

def added(s, t, k):
    """Median over rounds of (target - direct) measured in the same round."""
    d, x = data.get((s, "direct", k), {}), data.get((s, t, k), {})
    vals = [x[r] - d[r] for r in x if r in d and not math.isnan(x[r] - d[r])]
    return statistics.median(vals) if vals else float("nan")

def fmt(v, nd=0):
    if isinstance(v, float) and math.isnan(v):
        return "-"
    return f"{v:,.{nd}f}"

def ratio(a, b):
    return "-" if math.isnan(a) or math.isnan(b) or b == 0 else f"{a / b:.2f}"

P = ["router", "nginx", "haproxy"]
print(f"## Proxy benchmark ({ncpu} CPUs,{cpu}; medians of {rounds} rounds, {secs} s wrk runs)\n")
print("| measurement | direct | router | NGINX | HAProxy | router/NGINX | router/HAProxy |")
print("|---|---|---|---|---|---|---|")

def line(name, vals, nd=0, with_direct=True):
    d = fmt(vals.get("direct", float("nan")), nd) if with_direct else ""
    print(f"| {name} | {d} | " + " | ".join(fmt(vals[p], nd) for p in P) +
          f" | {ratio(vals['router'], vals['nginx'])} | {ratio(vals['router'], vals['haproxy'])} |")

for conns in (32, 256):
    s = f"post{conns}"
    line(f"POST req/s, {conns} conns", {t: med(s, t, "rps") for t in ["direct"] + P})
    line(f"POST p50 µs, {conns} conns", {t: med(s, t, "p50_us") for t in ["direct"] + P})
    line(f"POST p99 µs, {conns} conns", {t: med(s, t, "p99_us") for t in ["direct"] + P})
    line(f"POST errors, {conns} conns (sum)",
         {t: sum(data.get((s, t, "errors"), {}).values()) for t in ["direct"] + P})
line("1 conn p50 µs", {t: med("lat1", t, "p50_us") for t in ["direct"] + P})
line("1 conn added p50 µs", {t: added("lat1", t, "p50_us") for t in P}, with_direct=False)
line("100 streams TTFT p50 ms", {t: med("stream100", t, "p50_ttft_ms") for t in ["direct"] + P}, 2)
line("100 streams TTFT p99 ms", {t: med("stream100", t, "p99_ttft_ms") for t in ["direct"] + P}, 2)
line("100 streams added TTFT p50 ms", {t: added("stream100", t, "p50_ttft_ms") for t in P}, 2, False)
line("100 streams added TTFT p99 ms", {t: added("stream100", t, "p99_ttft_ms") for t in P}, 2, False)
line("100 streams ITL mean ms (sim: 10)", {t: med("stream100", t, "mean_itl_ms") for t in ["direct"] + P}, 2)
line("100 streams ITL p99 ms", {t: med("stream100", t, "p99_itl_ms") for t in ["direct"] + P}, 2)
line("100 streams failed (sum)",
     {t: sum(data.get(("stream100", t, "failed"), {}).values()) for t in ["direct"] + P})
line("1 MiB prompt p50 ms", {t: med("body1m", t, "p50_us") / 1e3 for t in ["direct"] + P}, 2)
line("1 MiB prompt added p50 ms", {t: added("body1m", t, "p50_us") / 1e3 for t in P}, 2, False)
for s in sorted({k[0] for k in data if k[0].startswith("slow")}, key=lambda x: int(x[4:])):
    n = int(s[4:])
    line(f"{n} slow streams completed", {t: med(s, t, "completed") for t in ["direct"] + P})
    line(f"{n} slow streams failed", {t: med(s, t, "failed") for t in ["direct"] + P})
    line(f"{n} slow streams peak RSS MiB", {t: med(s, t, "hwm_kib") / 1024 for t in P}, 1, False)
    line(f"{n} slow streams KiB per stream (peak - idle)",
         {t: (med(s, t, "hwm_kib") - med(s, t, "idle_kib")) / n for t in P}, 1, False)
errs = collections.defaultdict(float)
for (s, t, k), v in data.items():
    if k.startswith("err:"):
        errs[(s, t, k[4:])] += sum(v.values())
if errs:
    print("\nFailures by kind (bench's kinds; summed over rounds):\n")
    for (s, t, k), n in sorted(errs.items()):
        print(f"- {s} via {t}: {k} x{n:.0f}")
PY
log "results in $OUT/proxy_bench-$STAMP.md"
