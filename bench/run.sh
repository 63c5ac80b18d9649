#!/usr/bin/env bash
# `make bench`: wrk against graphfleet's LB, nginx (1 worker), HAProxy (1 thread) and the bare
# upstream, all on loopback, targets alternating round by round; medians into docs/benchmarks.md.
#
# Settings (environment):
#   BENCH_DURATION_S=10          seconds per measured wrk run
#   BENCH_CONNECTIONS=64         connections, small-body scenario
#   BENCH_LATENCY_CONNECTIONS=256  connections, latency scenario
#   BENCH_LATENCY_DELAY_MS=50    upstream delay, latency scenario
#   BENCH_REPEATS=3              measured runs per target and scenario
#   BENCH_WARMUP_S=2             one warm-up run per target and scenario
#   BENCH_THREADS=1              wrk threads
#   BENCH_SCENARIOS="small latency runs sse routing"
#   BENCH_TARGETS="direct nginx haproxy lb"
#   BENCH_REPORT=docs/benchmarks.md   where the Markdown report goes
#   BENCH_OUT_DIR=.bench         raw wrk output and results.jsonl of the last run
#   BENCH_LB_REV=                a git revision of lb/ to measure (default: the work tree's lb/)
#   BENCH_PROFILE=0              1: after each scenario's rounds, one more lb run under py-spy;
#                                the hottest functions go to $BENCH_OUT_DIR/profile-<scenario>.txt
#                                (small, latency, sse)
# The runs, sse and routing scenarios have settings of their own: see bench/scenarios.sh.
set -euo pipefail

# nginx and haproxy live in sbin, which a non-root PATH may lack.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY="$ROOT/.venv/bin/python"

DURATION_S=${BENCH_DURATION_S:-10}
CONNECTIONS=${BENCH_CONNECTIONS:-64}
LATENCY_CONNECTIONS=${BENCH_LATENCY_CONNECTIONS:-256}
LATENCY_DELAY_MS=${BENCH_LATENCY_DELAY_MS:-50}
REPEATS=${BENCH_REPEATS:-3}
WARMUP_S=${BENCH_WARMUP_S:-2}
THREADS=${BENCH_THREADS:-1}
SCENARIOS=${BENCH_SCENARIOS:-small latency runs sse routing}
TARGETS=${BENCH_TARGETS:-direct nginx haproxy lb}
REPORT=${BENCH_REPORT:-$ROOT/docs/benchmarks.md}
OUT_DIR=${BENCH_OUT_DIR:-$ROOT/.bench}
LB_REV=${BENCH_LB_REV:-}
PROFILE=${BENCH_PROFILE:-0}
READY_TIMEOUT_S=30

WORK_DIR=""
STARTED_PIDS=()          # every server this script started, in start order
WRK_PID=""               # the wrk run in progress, if any
declare -A TARGET_URL=() # target -> URL wrk loads
declare -A TARGET_PID=() # target -> pid whose process tree's CPU time is measured
RESULTS=""
LB_SRC=""                # a copy of lb/, worker/ and common/ taken at the start, so edits
                         # during the run don't leak in
LB_REVISION=""           # what the report says was measured
BACKGROUND_BUSY_PCT=0

# A closed stderr (`make bench | head`) must not stop the script before it cleans up.
log() { printf '[bench] %s\n' "$*" >&2 2>/dev/null || true; }
die() {
    log "error: $*"
    exit 1
}

# --- processes ---------------------------------------------------------------------------------

# start NAME CMD...: run CMD in the background, output to $WORK_DIR/NAME.log; sets STARTED_PID.
start() {
    local name=$1
    shift
    "$@" >"$WORK_DIR/$name.log" 2>&1 &
    STARTED_PID=$!
    STARTED_PIDS+=("$STARTED_PID")
}

# stop_pid PID: SIGTERM the process, SIGKILL it and any children left after 5 s, reap it.
stop_pid() {
    local pid=$1 children waited=0
    children=$(pgrep -P "$pid" || true)
    kill -TERM "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null && ((waited < 50)); do
        sleep 0.1
        waited=$((waited + 1))
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "pid $pid ignored SIGTERM for 5 s; killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    for child in $children; do
        kill -KILL "$child" 2>/dev/null || true
    done
    wait "$pid" 2>/dev/null || true
}

stop_all() {
    local i
    for ((i = ${#STARTED_PIDS[@]} - 1; i >= 0; i--)); do
        stop_pid "${STARTED_PIDS[i]}"
    done
    STARTED_PIDS=()
    TARGET_URL=()
    TARGET_PID=()
}

cleanup() {
    local status=$?
    trap - EXIT INT TERM HUP
    # Whoever reads our output may be gone: a write must fail, not kill us before the servers.
    trap '' PIPE
    if [[ -n $WRK_PID ]]; then
        kill -TERM "$WRK_PID" 2>/dev/null || true
        wait "$WRK_PID" 2>/dev/null || true
    fi
    if ((${#STARTED_PIDS[@]} > 0)); then
        log "stopping ${#STARTED_PIDS[@]} processes"
        stop_all
    fi
    cleanup_stores
    if [[ -n $WORK_DIR && -d $WORK_DIR ]]; then
        if ((status != 0)); then
            # Keep the servers' logs where they can be read after a failure.
            mkdir -p "$OUT_DIR/logs"
            cp "$WORK_DIR"/*.log "$OUT_DIR/logs/" 2>/dev/null || true
            log "server logs kept in $OUT_DIR/logs"
        fi
        rm -rf "$WORK_DIR"
    fi
    exit "$status"
}

# wait_ready NAME PROBE-ARGS...: until the last started process answers, or it exits, or time is up.
wait_ready() {
    local what=$1
    shift
    "$PY" "$ROOT/bench/probe.py" wait --timeout-s "$READY_TIMEOUT_S" --pid "$STARTED_PID" "$@" ||
        die "$what did not become ready; its log: $(tail -n 20 "$WORK_DIR/$what.log" 2>/dev/null)"
}

# --- installs ----------------------------------------------------------------------------------

ensure_tools() {
    local missing=()
    command -v nginx >/dev/null || missing+=(nginx)
    command -v haproxy >/dev/null || missing+=(haproxy)
    command -v wrk >/dev/null || missing+=(wrk)
    command -v pgrep >/dev/null || missing+=(procps)
    if ((${#missing[@]} > 0)); then
        local sudo=()
        if ((EUID != 0)); then
            command -v sudo >/dev/null || die "need root or sudo to install: ${missing[*]}"
            sudo=(sudo)
        fi
        log "installing ${missing[*]}"
        "${sudo[@]}" apt-get update -qq
        # RUNLEVEL=1: the packages' install scripts must not start the system's nginx or haproxy.
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get install -y -qq \
            --no-install-recommends "${missing[@]}" >/dev/null
    fi
    if [[ ! -x $PY ]]; then
        log "no virtualenv at .venv; running make install"
        make -C "$ROOT" install
    fi
}

# --- upstreams ---------------------------------------------------------------------------------

# The small-body upstreams: one nginx worker serving both ports (nginx, not the proxy under
# test, must never be the bottleneck; the direct row shows its headroom).
start_nginx_upstreams() {
    local u1=$1 u2=$2 conf="$WORK_DIR/upstream-nginx.conf"
    mkdir -p "$WORK_DIR/upstream-nginx"
    cat >"$conf" <<EOF
worker_processes 1;
daemon off;
pid $WORK_DIR/upstream-nginx.pid;
error_log $WORK_DIR/upstream-nginx.error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    default_type application/json;
    client_body_temp_path $WORK_DIR/upstream-nginx/body;
    proxy_temp_path $WORK_DIR/upstream-nginx/proxy;
    fastcgi_temp_path $WORK_DIR/upstream-nginx/fastcgi;
    uwsgi_temp_path $WORK_DIR/upstream-nginx/uwsgi;
    scgi_temp_path $WORK_DIR/upstream-nginx/scgi;
    server {
        listen 127.0.0.1:$u1 backlog=4096;
        listen 127.0.0.1:$u2 backlog=4096;
        location = /health { return 200 '{"status":"ok","current_load":0,"max_capacity":1000}'; }
        location / { return 200 '{"ok":true,"service":"bench-upstream","items":[1,2,3,4,5,6,7,8]}'; }
    }
}
EOF
    start upstream nginx -p "$WORK_DIR/upstream-nginx" -e "$WORK_DIR/upstream-nginx.error.log" \
        -c "$conf"
    wait_ready upstream "http://127.0.0.1:$u1/" "http://127.0.0.1:$u2/health"
}

# The latency upstreams: nginx cannot sleep, so one aiohttp process per port.
start_delayed_upstreams() {
    local u1=$1 u2=$2
    local n port
    for n in 1 2; do
        port=$u1
        if ((n == 2)); then
            port=$u2
        fi
        start "upstream-$n" "$PY" "$ROOT/bench/upstream.py" --port "$port" \
            --delay-ms "$LATENCY_DELAY_MS"
        wait_ready "upstream-$n" "http://127.0.0.1:$port/health"
    done
}

# --- proxies under test ------------------------------------------------------------------------

start_nginx_proxy() {
    local port=$1 u1=$2 u2=$3 conf="$WORK_DIR/nginx.conf"
    mkdir -p "$WORK_DIR/nginx"
    cat >"$conf" <<EOF
worker_processes 1;
daemon off;
pid $WORK_DIR/nginx.pid;
error_log $WORK_DIR/nginx.error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    client_body_temp_path $WORK_DIR/nginx/body;
    proxy_temp_path $WORK_DIR/nginx/proxy;
    fastcgi_temp_path $WORK_DIR/nginx/fastcgi;
    uwsgi_temp_path $WORK_DIR/nginx/uwsgi;
    scgi_temp_path $WORK_DIR/nginx/scgi;
    upstream backends {
        server 127.0.0.1:$u1;
        server 127.0.0.1:$u2;
        keepalive 512;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:$port backlog=4096;
        location / {
            proxy_pass http://backends;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
        }
    }
}
EOF
    start nginx nginx -p "$WORK_DIR/nginx" -e "$WORK_DIR/nginx.error.log" -c "$conf"
    TARGET_PID[nginx]=$STARTED_PID
    TARGET_URL[nginx]="http://127.0.0.1:$port/"
    wait_ready nginx "${TARGET_URL[nginx]}"
}

start_haproxy() {
    local port=$1 u1=$2 u2=$3 conf="$WORK_DIR/haproxy.cfg"
    cat >"$conf" <<EOF
global
    nbthread 1
    maxconn 4096

defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    option http-keep-alive
    option forwardfor
    http-reuse always

frontend bench
    bind 127.0.0.1:$port
    maxconn 4096
    default_backend upstreams

backend upstreams
    balance roundrobin
    server u1 127.0.0.1:$u1
    server u2 127.0.0.1:$u2
EOF
    start haproxy haproxy -db -f "$conf"
    TARGET_PID[haproxy]=$STARTED_PID
    TARGET_URL[haproxy]="http://127.0.0.1:$port/"
    wait_ready haproxy "${TARGET_URL[haproxy]}"
}

# Copy lb/ (and worker/, common/) once, so that every scenario measures the same code even
# while they are being edited.
snapshot_lb() {
    LB_SRC="$WORK_DIR/src"
    mkdir -p "$LB_SRC"
    local head
    head=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
    if [[ -n $LB_REV ]]; then
        # Older revisions may lack some of these folders (common/ came with the restructuring).
        local present=() dir
        for dir in lb worker common; do
            if git -C "$ROOT" cat-file -e "$LB_REV:$dir" 2>/dev/null; then
                present+=("$dir")
            fi
        done
        git -C "$ROOT" archive "$LB_REV" "${present[@]}" | tar -x -C "$LB_SRC" ||
            die "cannot read lb/ at revision $LB_REV"
        LB_REVISION="$(git -C "$ROOT" rev-parse --short "$LB_REV")"
    elif [[ -d $ROOT/lb ]]; then
        local dir
        for dir in lb worker common; do
            if [[ -d $ROOT/$dir ]]; then
                cp -r "$ROOT/$dir" "$LB_SRC/$dir"
            fi
        done
        LB_REVISION=$head
        if [[ -n $(git -C "$ROOT" status --porcelain -- lb worker common 2>/dev/null) ]]; then
            LB_REVISION="$head + uncommitted changes in lb/, worker/ or common/"
        fi
    fi
}

# Prints why the LB cannot be measured, or nothing when it can.
lb_unavailable() {
    if [[ ! -f $LB_SRC/lb/__main__.py ]]; then
        echo "lb/__main__.py does not exist yet"
    elif ! (cd "$LB_SRC" && "$PY" -m lb --help >/dev/null 2>&1); then
        echo "python -m lb --help fails"
    fi
}

start_lb() {
    local port=$1 admin_port=$2 u1=$3 u2=$4
    mkdir -p "$WORK_DIR/lb-data"
    # -C: `python -m lb` imports the snapshot's lb/ ahead of any installed copy.
    start lb env -C "$LB_SRC" \
        LB_HOST=127.0.0.1 LB_PORT="$port" LB_ADMIN_HOST=127.0.0.1 LB_ADMIN_PORT="$admin_port" \
        LB_INSTANCES="http://127.0.0.1:$u1,http://127.0.0.1:$u2" \
        LB_LOG_LEVEL=warning LB_DATA_DIR="$WORK_DIR/lb-data" LB_SHUTDOWN_TIMEOUT_S=5 \
        "$PY" -m lb
    TARGET_PID[lb]=$STARTED_PID
    TARGET_URL[lb]="http://127.0.0.1:$port/"
    # Ready once both upstreams passed their health checks, so no run sees half a fleet.
    wait_ready lb "http://127.0.0.1:$admin_port/ready" --json-at-least routable_instances=2
    wait_ready lb "${TARGET_URL[lb]}"
}

# start_targets SCENARIO: upstreams and every proxy in $TARGETS, on fresh ports.
start_targets() {
    local scenario=$1 ports u1 u2
    mapfile -t ports < <("$PY" "$ROOT/bench/probe.py" ports 6)
    u1=${ports[0]}
    u2=${ports[1]}
    if [[ $scenario == latency ]]; then
        start_delayed_upstreams "$u1" "$u2"
    else
        start_nginx_upstreams "$u1" "$u2"
    fi
    local target reason
    for target in $TARGETS; do
        case $target in
            direct) TARGET_URL[direct]="http://127.0.0.1:$u1/" ;;
            nginx) start_nginx_proxy "${ports[2]}" "$u1" "$u2" ;;
            haproxy) start_haproxy "${ports[3]}" "$u1" "$u2" ;;
            lb)
                reason=$(lb_unavailable)
                if [[ -n $reason ]]; then
                    log "skipping graphfleet lb: $reason"
                    "$PY" "$ROOT/bench/report.py" skip --results "$RESULTS" \
                        --scenario "$scenario" --target lb --reason "$reason"
                else
                    start_lb "${ports[4]}" "${ports[5]}" "$u1" "$u2"
                fi
                ;;
            *) die "unknown target '$target' in BENCH_TARGETS" ;;
        esac
    done
}

# --- measuring ---------------------------------------------------------------------------------

# run_wrk OUTPUT WRK-ARGS...: wrk in the background, so that a signal reaches the trap at once.
run_wrk() {
    local output=$1
    shift
    wrk "$@" >"$output" &
    WRK_PID=$!
    wait "$WRK_PID"
    WRK_PID=""
}

cpu_s() {
    if [[ -n ${TARGET_PID[$1]:-} ]]; then
        "$PY" "$ROOT/bench/probe.py" cpu "${TARGET_PID[$1]}"
    fi
}

# measure SCENARIO TARGET ROUND CONNECTIONS
measure() {
    local scenario=$1 target=$2 round=$3 connections=$4 delay_ms=0 before after
    local output="$OUT_DIR/wrk-$scenario-$target-$round.txt"
    if [[ $scenario == latency ]]; then
        delay_ms=$LATENCY_DELAY_MS
    fi
    before=$(cpu_s "$target")
    run_wrk "$output" -t"$THREADS" -c"$connections" -d"${DURATION_S}s" --latency \
        "${TARGET_URL[$target]}"
    after=$(cpu_s "$target")
    local cpu_args=()
    if [[ -n $before ]]; then
        cpu_args=(--cpu-s-before "$before" --cpu-s-after "$after")
    fi
    "$PY" "$ROOT/bench/report.py" record --results "$RESULTS" --scenario "$scenario" \
        --target "$target" --round "$round" --connections "$connections" \
        --delay-ms "$delay_ms" --wrk-output "$output" "${cpu_args[@]}"
}

# py-spy from PATH (or put in .venv by hand for measuring), else through uv (cached after the
# first run); never a dependency of the project.
py_spy() {
    if command -v py-spy >/dev/null; then
        py-spy "$@"
    elif [[ -x $ROOT/.venv/bin/py-spy ]]; then
        "$ROOT/.venv/bin/py-spy" "$@"
    else
        "$ROOT/.venv/bin/uv" tool run --quiet py-spy "$@"
    fi
}

# profile_lb SCENARIO CONNECTIONS: sample the LB under the same load; not part of the figures.
profile_lb() {
    local scenario=$1 connections=$2
    local raw="$WORK_DIR/profile-$scenario.raw" summary="$OUT_DIR/profile-$scenario.txt"
    log "profiling graphfleet lb under load (${DURATION_S} s, py-spy)"
    wrk -t"$THREADS" -c"$connections" -d"$((DURATION_S + 3))s" "${TARGET_URL[lb]}" >/dev/null &
    WRK_PID=$!
    sleep 1
    py_spy record --duration "$DURATION_S" --rate 250 --format raw --output "$raw" \
        --pid "${TARGET_PID[lb]}" >"$WORK_DIR/py-spy.log" 2>&1 ||
        die "py-spy failed: $(tail -n 5 "$WORK_DIR/py-spy.log")"
    wait "$WRK_PID"
    WRK_PID=""
    "$PY" "$ROOT/bench/report.py" profile --raw "$raw" | tee "$summary"
    log "profile summary in $summary"
}

run_scenario() {
    local scenario=$1 connections=$CONNECTIONS target round
    if [[ $scenario == latency ]]; then
        connections=$LATENCY_CONNECTIONS
    fi
    log "scenario $scenario: starting upstreams and proxies"
    start_targets "$scenario"
    local measured=()
    for target in $TARGETS; do
        if [[ -n ${TARGET_URL[$target]:-} ]]; then
            measured+=("$target")
        fi
    done
    for target in "${measured[@]}"; do
        log "warm-up: $target (${WARMUP_S} s)"
        run_wrk /dev/null -t"$THREADS" -c"$connections" -d"${WARMUP_S}s" "${TARGET_URL[$target]}"
    done
    for ((round = 1; round <= REPEATS; round++)); do
        for target in "${measured[@]}"; do
            measure "$scenario" "$target" "$round" "$connections"
        done
    done
    if [[ $PROFILE == 1 && -n ${TARGET_PID[lb]:-} ]]; then
        profile_lb "$scenario" "$connections"
    fi
    stop_all
}

main() {
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    trap 'exit 129' HUP
    trap 'exit 141' PIPE
    ensure_tools
    WORK_DIR=$(mktemp -d -t graphfleet-bench.XXXXXX)
    # nginx workers run as nobody and must reach their temp paths.
    chmod 755 "$WORK_DIR"
    snapshot_lb
    mkdir -p "$OUT_DIR"
    rm -f "$OUT_DIR"/wrk-*.txt
    RESULTS="$OUT_DIR/results.jsonl"
    : >"$RESULTS"
    # The CPU counters now: the report says how much time the hypervisor took meanwhile.
    head -n 1 /proc/stat >"$WORK_DIR/cpu-at-start"
    # Someone else's load on this machine skews every figure: measure it and say so.
    BACKGROUND_BUSY_PCT=$("$PY" "$ROOT/bench/probe.py" busy --seconds 2)
    if ((BACKGROUND_BUSY_PCT > 10)); then
        log "warning: the machine is ${BACKGROUND_BUSY_PCT}% busy before the benchmark starts"
    fi
    local scenario
    for scenario in $SCENARIOS; do
        case $scenario in
            small | latency) run_scenario "$scenario" ;;
            runs) run_runs_scenario ;;
            sse) run_sse_scenario ;;
            routing) run_routing_scenario ;;
            *) die "unknown scenario '$scenario' in BENCH_SCENARIOS (small latency runs sse routing)" ;;
        esac
    done
    mkdir -p "$(dirname "$REPORT")"
    ensure_plotting
    "$PY" "$ROOT/bench/report.py" render --results "$RESULTS" --out "$REPORT" \
        --plot-python "$PLOT_VENV/bin/python" \
        --lb-revision "${LB_REVISION:-none}" \
        --threads "$THREADS" --duration-s "$DURATION_S" --warmup-s "$WARMUP_S" \
        --repeats "$REPEATS" --background-busy-pct "$BACKGROUND_BUSY_PCT" \
        --cpu-at-start "$WORK_DIR/cpu-at-start" --pg-dsn "$PG_ADMIN_DSN"
    log "report written to $REPORT"
}

# shellcheck source=bench/scenarios.sh
source "$ROOT/bench/scenarios.sh"

main "$@"
