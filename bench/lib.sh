# Shared helpers of the bench/ scripts: process start/stop by PID, port waits, and the
# NGINX/HAProxy/router configs they run. Sourced by proxy_bench.sh and routing_quality.sh,
# which set $BIN (the vllm-router binary) and $T (a private temporary directory) first.

PIDS=""                  # every process we started, stopped by PID at exit
PIN_SRV=""               # taskset prefix for proxies and backends
PIN_CLI=""               # taskset prefix for load generators
if command -v taskset >/dev/null 2>&1 && [ "$(nproc)" -ge 2 ]; then
    PIN_SRV="taskset -c 0"
    PIN_CLI="taskset -c 1"
fi

need_tools() {
    local t missing=""
    for t in "$@"; do command -v "$t" >/dev/null 2>&1 || missing="$missing $t"; done
    if [ -n "$missing" ]; then
        echo "missing:$missing (run scripts/bootstrap --bench)" >&2
        exit 1
    fi
}

# start NAME CMD...: runs CMD in the background pinned to the server core, output to $T/NAME.log;
# sets $LAST_PID. taskset execs, so the PID is the program's own.
start() {
    local name=$1; shift
    $PIN_SRV "$@" >"$T/$name.log" 2>&1 &
    LAST_PID=$!
    PIDS="$PIDS $LAST_PID"
}

stop_pid() {
    local pid=$1 i
    [ -n "$pid" ] || return 0
    kill "$pid" 2>/dev/null || return 0
    for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    PIDS=$(echo "$PIDS" | tr ' ' '\n' | grep -vx "$pid" | tr '\n' ' ')
}

stop_all() {
    local p
    for p in $PIDS; do stop_pid "$p"; done
}

# wait_http URL [BODY]: waits up to 10 s for a 200 (a POST with BODY when given).
wait_http() {
    local url=$1 body=${2:-} i code
    for i in $(seq 100); do
        if [ -n "$body" ]; then
            code=$(curl -s -o /dev/null -w '%{http_code}' -m 2 -H 'Content-Type: application/json' \
                   -d "$body" "$url" || true)
        else
            code=$(curl -s -o /dev/null -w '%{http_code}' -m 2 "$url" || true)
        fi
        [ "$code" = 200 ] && return 0
        sleep 0.1
    done
    echo "no 200 from $url after 10 s (last: $code)" >&2
    return 1
}

# vm_kib PID FIELD: a /proc/PID/status field (VmHWM, VmRSS) in KiB.
vm_kib() {
    awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0
}

# nginx_start NAME PORT UPSTREAM_BLOCK LOCATION_BODY: one NGINX worker (master + worker), no
# access log, temp paths under $T. Sets $LAST_PID to the master; nginx_worker gives the worker.
nginx_start() {
    local name=$1 port=$2 upstream=$3 location=$4
    local dir="$T/$name"
    mkdir -p "$dir"
    cat >"$dir/nginx.conf" <<EOF
worker_processes 1;
worker_rlimit_nofile 65536;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 40000; multi_accept on; }
http {
    access_log off;
    client_body_temp_path $dir/body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    client_max_body_size 64m;
    client_body_buffer_size 2m;
    $upstream
    server {
        listen 127.0.0.1:$port backlog=4096;
        $location
    }
}
EOF
    start "$name" nginx -p "$dir" -c "$dir/nginx.conf"
}

nginx_worker() {
    local master=$1 i w
    for i in $(seq 50); do
        w=$(pgrep -P "$master" | head -1)
        [ -n "$w" ] && { echo "$w"; return 0; }
        sleep 0.1
    done
    echo "$master"
}

# The proxy locations NGINX gets: its best settings for an LLM API (HTTP/1.1 keep-alive
# upstream, no response buffering so stream events pass at once, request body streamed).
NGINX_PROXY_LOCATION='location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_request_buffering off;
            proxy_read_timeout 600s;
            proxy_send_timeout 600s;
        }'

# haproxy_start NAME PORT BACKEND_LINES: one thread, http-reuse always, http-no-delay.
haproxy_start() {
    local name=$1 port=$2 backend=$3
    local dir="$T/$name"
    mkdir -p "$dir"
    cat >"$dir/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn ${HAPROXY_MAXCONN:-9900}
    log stderr format raw local0 emerg
defaults
    mode http
    option http-no-delay
    http-reuse always
    timeout connect 5s
    timeout client 600s
    timeout server 600s
    timeout queue 600s
    timeout http-request 30s
    timeout http-keep-alive 300s
frontend fe
    bind 127.0.0.1:$port backlog 4096
    maxconn ${HAPROXY_MAXCONN:-9900}
    default_backend be
backend be
$backend
EOF
    start "$name" haproxy -db -f "$dir/haproxy.cfg"
}

# router_start NAME CONFIG_BODY: runs build/vllm-router run --workers 1 with a config file.
router_start() {
    local name=$1 body=$2
    local dir="$T/$name"
    mkdir -p "$dir/logs"
    cat >"$dir/servers.toml" <<EOF
$body
[logging]
dir = "$dir/logs"
level = "WARNING"
console = true
EOF
    start "$name" "$BIN" run --config "$dir/servers.toml" --workers 1 --console
}
