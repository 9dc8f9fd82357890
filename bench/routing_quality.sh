#!/usr/bin/env bash
# Routing-quality benchmark: one heterogeneous simulated fleet, the same streamed Poisson
# workload (random lengths, fixed seed) at 80 %, 95 % and 120 % of the fleet's measured
# capacity, sent through vllm-router with each balancing policy, NGINX (least_conn and round
# robin) and HAProxy (leastconn, per-server maxconn = slots, a backend queue), in one run.
#
# The fleet: three `vllm-router sim` servers
#     A: 4 slots, 10 ms per token    B: 8 slots, 15 ms per token    C: 16 slots, 20 ms per token
# each with a 20 ms base TTFT. The router's max_concurrent_requests equals each server's
# slots, with the admission queue's time limit (queue.max_wait) at QUEUE_WAIT seconds;
# HAProxy's `timeout queue` is the same. NGINX has no queue: excess waits inside the servers.
# Capacity is measured first: each server alone under a closed loop of its slot count.
#
# Usage: bench/routing_quality.sh [path/to/vllm-router]
# Environment: DUR (10, seconds of arrivals per run), LOADS ("80 95 120"), QUEUE_WAIT (1),
#              POLICIES (all six), PORT_BASE, OUT (bench/results).
set -euo pipefail

cd "$(dirname "$0")/.."
BIN=$(realpath "${1:-build/vllm-router}")
DUR=${DUR:-10}
LOADS=${LOADS:-"80 95 120"}
QUEUE_WAIT=${QUEUE_WAIT:-1}
POLICIES=${POLICIES:-"load_score round_robin least_inflight power_of_two random consistent_hash"}
PORT_BASE=${PORT_BASE:-$((20000 + (RANDOM % 900) * 10))}
OUT=${OUT:-bench/results}
MODEL=sim-model
IN_LEN=128
OUT_LEN=24
RANGE=0.5
SEED=7

[ -x "$BIN" ] || { echo "no binary at $BIN: build first" >&2; exit 1; }
T=$(mktemp -d)
. bench/lib.sh
need_tools nginx haproxy curl python3
trap 'stop_all; [ -n "${KEEP_TMP:-}" ] || rm -rf "$T"' EXIT
trap 'exit 130' INT TERM
export HAPROXY_MAXCONN=4000
log() { echo "[routing_quality] $*" >&2; }

SLOTS=(4 8 16)
ITL=(10 15 20)
SIM_PORTS=($PORT_BASE $((PORT_BASE + 1)) $((PORT_BASE + 2)))
PPORT=$((PORT_BASE + 5))        # whichever proxy is under test
SMALL_BODY='{"model":"'$MODEL'","messages":[{"role":"user","content":"hi"}],"max_tokens":2}'

for i in 0 1 2; do
    start "sim$i" "$BIN" sim --port "${SIM_PORTS[$i]}" --model "$MODEL" \
        --max-num-seqs "${SLOTS[$i]}" --itl-ms "${ITL[$i]}" --ttft-ms 20 --seed "$i"
    wait_http "http://127.0.0.1:${SIM_PORTS[$i]}/v1/models"
done

bench() {   # bench URL OUTFILE ARGS...
    local url=$1 out=$2; shift 2
    $PIN_CLI "$BIN" bench --base-url "$url" --model "$MODEL" --json --percentiles 99 \
        --input-len $IN_LEN --output-len $OUT_LEN --range-ratio $RANGE --seed $SEED \
        --timeout 120 "$@" >"$out" 2>"$out.err" || true
}

# ---- capacity: each server alone, closed loop at its slot count ----
CAP=0
for i in 0 1 2; do
    bench "http://127.0.0.1:${SIM_PORTS[$i]}" "$T/cap$i.json" --concurrency "${SLOTS[$i]}" \
        --num-requests $(( SLOTS[i] * 12 ))
    c=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["request_throughput"])' "$T/cap$i.json")
    log "server $i (${SLOTS[$i]} slots, ${ITL[$i]} ms/token): $c req/s"
    CAP=$(python3 -c "print($CAP + $c)")
done
log "fleet capacity: $CAP req/s"

# ---- targets ----
start_target() {   # start_target NAME; sets TARGET_PID
    local name=$1 servers="" lines="" i
    case $name in
        router:*)
            for i in 0 1 2; do
                servers="$servers{ url = \"http://127.0.0.1:${SIM_PORTS[$i]}\", max_concurrent_requests = ${SLOTS[$i]} },"
            done
            router_start router "[servers]
servers = [${servers%,}]
[listen]
host = \"127.0.0.1\"
port = $PPORT
workers = 1
[balancing]
policy = \"${name#router:}\"
[queue]
enabled = true
max_wait = $QUEUE_WAIT
[config]
request_timeout = 600"
            ;;
        nginx:*)
            local method=""
            [ "$name" = nginx:least_conn ] && method="least_conn;"
            for i in 0 1 2; do lines="$lines server 127.0.0.1:${SIM_PORTS[$i]};"; done
            nginx_start nginx "$PPORT" "upstream backend { $method $lines keepalive 64; }" \
                "$NGINX_PROXY_LOCATION"
            ;;
        haproxy:*)
            lines="    balance leastconn
    timeout queue ${QUEUE_WAIT}s"
            for i in 0 1 2; do
                lines="$lines
    server s$i 127.0.0.1:${SIM_PORTS[$i]} maxconn ${SLOTS[$i]}"
            done
            haproxy_start haproxy "$PPORT" "$lines"
            ;;
    esac
    TARGET_PID=$LAST_PID
    wait_http "http://127.0.0.1:$PPORT/v1/chat/completions" "$SMALL_BODY"
}

TARGETS=""
for p in $POLICIES; do TARGETS="$TARGETS router:$p"; done
TARGETS="$TARGETS nginx:least_conn nginx:round_robin haproxy:leastconn"

for load in $LOADS; do
    rate=$(python3 -c "print(round($CAP * $load / 100, 2))")
    n=$(python3 -c "print(int($CAP * $load / 100 * $DUR))")
    for t in $TARGETS; do
        log "$load % ($rate req/s, $n requests): $t"
        start_target "$t"
        bench "http://127.0.0.1:$PPORT" "$T/run.$load.$t.json" --request-rate "$rate" \
            --num-requests "$n"
        stop_pid "$TARGET_PID"
    done
done

# ---- report ----
mkdir -p "$OUT"
STAMP=$(date +%Y%m%d-%H%M%S)
python3 - "$T" "$CAP" "$LOADS" "$TARGETS" "$DUR" "$QUEUE_WAIT" <<'PY' | tee "$OUT/routing_quality-$STAMP.md"
import json, os, sys
tmp, cap, loads, targets, dur, qwait = sys.argv[1:]
print(f"## Routing quality (fleet capacity {float(cap):.1f} req/s measured; {dur} s of Poisson "
      f"arrivals per run; queue time limit {qwait} s)\n")
print("| load | target | TTFT mean ms | TTFT p99 ms | E2EL p99 ms | output tok/s | completed "
      "| failed | shed (429) | 5xx | timeouts |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for load in loads.split():
    for t in targets.split():
        try:
            r = json.load(open(os.path.join(tmp, f"run.{load}.{t}.json")))
        except Exception:
            print(f"| {load} % | {t} | run failed |||||||||")
            continue
        e = r.get("errors", {})
        st = e.get("http_status", {}) or {}
        shed = int(st.get("429", 0))
        s5 = sum(int(v) for k, v in st.items() if k.startswith("5"))
        print(f"| {load} % | {t} | {r['mean_ttft_ms']:.0f} | {r['p99_ttft_ms']:.0f} | "
              f"{r['p99_e2el_ms']:.0f} | {r['output_throughput']:.0f} | {r['completed']} | "
              f"{r['failed']} | {shed} | {s5} | {e.get('timeout', 0)} |")
PY
log "results in $OUT/routing_quality-$STAMP.md"
