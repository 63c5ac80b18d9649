# shellcheck shell=bash
# The scenarios of what users run — graph runs, SSE streams, routing of mixed runs — sourced by
# bench/run.sh, whose helpers (start, wait_ready, stop_all, log, die) and settings they use.
#
# Settings (environment):
#   BENCH_RUNS_CONCURRENCY="1 4 16"   closed-loop clients, runs scenario
#   BENCH_RUNS_TARGETS="langgraph-dev lb-sqlite worker-sqlite lb-postgres"
#     (also: lb-postgres-async, the Postgres fleet with WORKER_POSTGRES_SYNCHRONOUS_COMMIT=off)
#   BENCH_INPROCESS="none/default sqlite/default sqlite/exit postgres/default postgres/exit"
#   BENCH_SSE_STREAMS=5000  BENCH_SSE_OPEN_PER_S=1000  BENCH_SSE_HOLD_S=10
#   BENCH_SSE_INTERVAL_S=0.5  BENCH_SSE_IDLE_STREAMS=50   (low-load time to first event)
#   BENCH_ROUTING_LOADS="0.5 0.75"   offered load as a share of the measured fleet capacity
#   BENCH_ROUTING_WORKERS=2
#   BENCH_PG_ADMIN_DSN=postgresql://postgres@127.0.0.1:5432/test  (creates the bench's databases)
#   BENCH_REDIS_URL=redis://127.0.0.1:6379/0

RUNS_CONCURRENCY=${BENCH_RUNS_CONCURRENCY:-1 4 16}
RUNS_TARGETS=${BENCH_RUNS_TARGETS:-langgraph-dev lb-sqlite worker-sqlite lb-postgres}
INPROCESS=${BENCH_INPROCESS:-none/default sqlite/default sqlite/exit postgres/default postgres/exit}
SSE_STREAMS=${BENCH_SSE_STREAMS:-5000}
SSE_OPEN_PER_S=${BENCH_SSE_OPEN_PER_S:-1000}
SSE_HOLD_S=${BENCH_SSE_HOLD_S:-10}
SSE_INTERVAL_S=${BENCH_SSE_INTERVAL_S:-0.5}
SSE_IDLE_STREAMS=${BENCH_SSE_IDLE_STREAMS:-50}
ROUTING_LOADS=${BENCH_ROUTING_LOADS:-0.5 0.75}
ROUTING_WORKERS=${BENCH_ROUTING_WORKERS:-2}
PG_ADMIN_DSN=${BENCH_PG_ADMIN_DSN:-postgresql://postgres@127.0.0.1:5432/test}
REDIS_URL=${BENCH_REDIS_URL:-redis://127.0.0.1:6379/0}

# langgraph dev and matplotlib live in the benchmark's own virtualenvs, never the project's.
LANGGRAPH_CLI_PIN="langgraph-cli[inmem]==0.4.40"
LANGGRAPH_API_PIN="langgraph-api==0.16.7"
MATPLOTLIB_PIN="matplotlib==3.10.7"
ORACLE_VENV="$ROOT/.bench/oracle-venv"
PLOT_VENV="$ROOT/.bench/plot-venv"
PG_DATABASES=()      # databases this run created, dropped by cleanup_stores
REDIS_PREFIX="graphfleet-bench-$$:"
REDIS_USED=0

# bench_venv DIR PACKAGE...: a virtualenv with exactly these pins, made once with uv.
bench_venv() {
    local dir=$1 stamp
    shift
    stamp="$dir/.pins"
    if [[ -f $stamp && $(cat "$stamp") == "$*" ]]; then
        return
    fi
    log "installing $* into $dir"
    if [[ ! -x $dir/bin/python ]]; then
        "$ROOT/.venv/bin/uv" venv --quiet --python 3.11 "$dir" >/dev/null
    fi
    "$ROOT/.venv/bin/uv" pip install --quiet --python "$dir/bin/python" "$@" ||
        die "could not install $* into $dir"
    echo "$*" >"$stamp"
}

ensure_oracle() { bench_venv "$ORACLE_VENV" "$LANGGRAPH_CLI_PIN" "$LANGGRAPH_API_PIN"; }
ensure_plotting() { bench_venv "$PLOT_VENV" "$MATPLOTLIB_PIN"; }

# --- stores ------------------------------------------------------------------------------------

postgres_up() { psql "$PG_ADMIN_DSN" -qAtc 'select 1' >/dev/null 2>&1; }
redis_up() { redis-cli -u "$REDIS_URL" ping >/dev/null 2>&1; }

# fresh_database NAME: a new, empty database of the benchmark's own; its DSN in DATABASE_DSN.
# (Not printed: in a $(...) subshell the note for cleanup_stores would be lost.)
DATABASE_DSN=""
fresh_database() {
    local name=$1
    psql "$PG_ADMIN_DSN" -qAt -c "DROP DATABASE IF EXISTS $name WITH (FORCE)" \
        -c "CREATE DATABASE $name" >/dev/null || die "cannot create database $name"
    PG_DATABASES+=("$name")
    DATABASE_DSN="${PG_ADMIN_DSN%/*}/$name"
}

# Called by cleanup after every server stopped: nothing of the benchmark stays in the stores.
cleanup_stores() {
    local name
    for name in "${PG_DATABASES[@]}"; do
        psql "$PG_ADMIN_DSN" -qAtc "DROP DATABASE IF EXISTS $name WITH (FORCE)" >/dev/null 2>&1 ||
            log "could not drop database $name"
    done
    PG_DATABASES=()
    if ((REDIS_USED)); then
        redis-cli -u "$REDIS_URL" --scan --pattern "${REDIS_PREFIX}*" |
            xargs -r redis-cli -u "$REDIS_URL" del >/dev/null 2>&1 || true
    fi
}

# --- servers -----------------------------------------------------------------------------------

# start_worker NAME PORT STORE [VAR=VALUE...]: a graphfleet worker serving the bench graph.
start_worker() {
    local name=$1 port=$2 store=$3
    shift 3
    start "$name" env -C "$LB_SRC" WORKER_HOST=127.0.0.1 WORKER_PORT="$port" \
        WORKER_GRAPHS="$WORK_DIR/graphs/langgraph.json" WORKER_STORE="$store" \
        WORKER_LOG_LEVEL=warning WORKER_SHUTDOWN_TIMEOUT_S=2 "$@" "$PY" -m worker
    # A worker imports LangGraph first: on a busy machine that alone may take half a minute.
    READY_TIMEOUT_S=90 wait_ready "$name" "http://127.0.0.1:$port/health"
}

# start_fleet_lb NAME PORT ADMIN_PORT INSTANCES COUNT [VAR=VALUE...]: the LB as shipped, in
# front of COUNT comma-separated instance URLs; ready once all of them are routable.
start_fleet_lb() {
    local name=$1 port=$2 admin_port=$3 instances=$4 count=$5
    shift 5
    mkdir -p "$WORK_DIR/$name-data"
    start "$name" env -C "$LB_SRC" LB_HOST=127.0.0.1 LB_PORT="$port" LB_ADMIN_HOST=127.0.0.1 \
        LB_ADMIN_PORT="$admin_port" LB_INSTANCES="$instances" LB_LOG_LEVEL=warning \
        LB_DATA_DIR="$WORK_DIR/$name-data" LB_SHUTDOWN_TIMEOUT_S=2 "$@" "$PY" -m lb
    TARGET_PID[$name]=$STARTED_PID
    wait_ready "$name" "http://127.0.0.1:$admin_port/ready" --json-at-least routable_instances="$count"
}

start_langgraph_dev() {
    local port=$1
    # Analytics off: no call leaves the machine during a measurement.
    start langgraph-dev env -C "$WORK_DIR/graphs" LANGGRAPH_CLI_NO_ANALYTICS=1 \
        "$ORACLE_VENV/bin/langgraph" dev --config langgraph.json --host 127.0.0.1 \
        --port "$port" --no-browser --no-reload
    READY_TIMEOUT_S=120 wait_ready langgraph-dev "http://127.0.0.1:$port/ok"
}

# nginx_proxy NAME PORT UPSTREAM-BLOCK-LINES LOCATION-EXTRA: nginx, 1 worker, as a proxy.
nginx_proxy() {
    local name=$1 port=$2 upstream=$3 extra=$4
    local conf="$WORK_DIR/$name.conf"
    mkdir -p "$WORK_DIR/$name"
    cat >"$conf" <<EOF
worker_processes 1;
worker_rlimit_nofile 65536;
daemon off;
pid $WORK_DIR/$name.pid;
error_log $WORK_DIR/$name.error.log warn;
events { worker_connections 30000; }
http {
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path $WORK_DIR/$name/body;
    proxy_temp_path $WORK_DIR/$name/proxy;
    fastcgi_temp_path $WORK_DIR/$name/fastcgi;
    uwsgi_temp_path $WORK_DIR/$name/uwsgi;
    scgi_temp_path $WORK_DIR/$name/scgi;
    upstream backends {
$upstream
        keepalive 512;
    }
    server {
        listen 127.0.0.1:$port backlog=8192;
        location / {
            proxy_pass http://backends;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_read_timeout 3600s;
            $extra
        }
    }
}
EOF
    start "$name" nginx -p "$WORK_DIR/$name" -e "$WORK_DIR/$name.error.log" -c "$conf"
    TARGET_PID[$name]=$STARTED_PID
}

copy_graphs() {
    mkdir -p "$WORK_DIR/graphs"
    cp "$ROOT/bench/graphs/langgraph.json" "$ROOT/bench/graphs/chain.py" "$WORK_DIR/graphs/"
}

# --- scenario: graph runs ----------------------------------------------------------------------

# start_runs_targets PORTS...: every target of $RUNS_TARGETS; fills RUN_URL[target].
declare -A RUN_URL=()
start_runs_targets() {
    local ports=("$@") target store
    for target in $RUNS_TARGETS; do
        case $target in
            langgraph-dev)
                ensure_oracle
                start_langgraph_dev "${ports[0]}"
                RUN_URL[$target]="http://127.0.0.1:${ports[0]}/runs/wait"
                ;;
            lb-sqlite)
                store="sqlite:///$WORK_DIR/fleet.sqlite"
                start_worker lb-sqlite-w1 "${ports[1]}" "$store"
                start_worker lb-sqlite-w2 "${ports[2]}" "$store"
                start_fleet_lb lb-sqlite "${ports[3]}" "${ports[4]}" \
                    "http://127.0.0.1:${ports[1]},http://127.0.0.1:${ports[2]}" 2
                RUN_URL[$target]="http://127.0.0.1:${ports[3]}/runs/wait"
                ;;
            worker-sqlite)
                start_worker worker-sqlite "${ports[5]}" "sqlite:///$WORK_DIR/single.sqlite"
                RUN_URL[$target]="http://127.0.0.1:${ports[5]}/runs/wait"
                ;;
            lb-postgres | lb-postgres-async)
                if ! postgres_up || ! redis_up; then
                    "$PY" "$ROOT/bench/report.py" skip --results "$RESULTS" --scenario runs \
                        --target "$target" --reason "PostgreSQL or Redis not reachable"
                    continue
                fi
                # The same fleet; -async commits without waiting for the flush (as SQLite's
                # default, WAL with synchronous=normal, does not sync per commit either).
                local first=6 commit=server
                if [[ $target == lb-postgres-async ]]; then
                    first=10 commit=off
                fi
                fresh_database "graphfleet_bench_${target//-/_}"
                store=$DATABASE_DSN
                REDIS_USED=1
                local worker_env=(WORKER_REDIS_URL="$REDIS_URL"
                    WORKER_REDIS_PREFIX="$REDIS_PREFIX$target:"
                    WORKER_POSTGRES_SYNCHRONOUS_COMMIT="$commit")
                start_worker "$target-w1" "${ports[first]}" "$store" "${worker_env[@]}"
                start_worker "$target-w2" "${ports[first + 1]}" "$store" "${worker_env[@]}"
                start_fleet_lb "$target" "${ports[first + 2]}" "${ports[first + 3]}" \
                    "http://127.0.0.1:${ports[first]},http://127.0.0.1:${ports[first + 1]}" 2
                RUN_URL[$target]="http://127.0.0.1:${ports[first + 2]}/runs/wait"
                ;;
            *) die "unknown target '$target' in BENCH_RUNS_TARGETS" ;;
        esac
    done
}

# The in-process baseline: the same graph and savers, no server; alternating like the targets.
measure_inprocess() {
    local round=$1 config pg_dsn="" args
    if [[ $INPROCESS == *postgres* ]] && postgres_up; then
        fresh_database graphfleet_bench_inprocess
        pg_dsn=$DATABASE_DSN
    fi
    for config in $INPROCESS; do
        if [[ $config == postgres/* && -z $pg_dsn ]]; then
            continue
        fi
        rm -f "$WORK_DIR"/inprocess.sqlite*
        args=(--checkpointer "${config%/*}" --durability "${config#*/}"
            --sqlite-path "$WORK_DIR/inprocess.sqlite" --concurrency 16 --round "$round"
            --duration-s "$DURATION_S" --results "$RESULTS")
        if [[ -n $pg_dsn ]]; then
            args+=(--postgres-dsn "$pg_dsn")
        fi
        "$PY" -W ignore "$ROOT/bench/inprocess.py" "${args[@]}" >&2
    done
}

run_runs_scenario() {
    log "scenario runs: starting langgraph dev, workers and LBs"
    copy_graphs
    local ports round concurrency target
    mapfile -t ports < <("$PY" "$ROOT/bench/probe.py" ports 14)
    start_runs_targets "${ports[@]}"
    for target in "${!RUN_URL[@]}"; do
        log "warm-up: $target"
        "$PY" "$ROOT/bench/loadgen.py" closed --url "${RUN_URL[$target]}" --concurrency 4 \
            --duration-s "$WARMUP_S" --warmup-s 0 --label warmup --results /dev/null >/dev/null
    done
    for ((round = 1; round <= REPEATS; round++)); do
        for concurrency in $RUNS_CONCURRENCY; do
            for target in $RUNS_TARGETS; do
                [[ -n ${RUN_URL[$target]:-} ]] || continue
                "$PY" "$ROOT/bench/loadgen.py" closed --url "${RUN_URL[$target]}" \
                    --concurrency "$concurrency" --duration-s "$DURATION_S" --warmup-s 1 \
                    --label "$target" --round "$round" --results "$RESULTS" >&2
            done
        done
    done
    stop_all
    RUN_URL=()
    log "scenario runs: in-process baseline"
    for ((round = 1; round <= REPEATS; round++)); do
        measure_inprocess "$round"
    done
    cleanup_stores
}

# --- scenario: SSE streams ---------------------------------------------------------------------

run_sse_scenario() {
    log "scenario sse: upstream, nginx and the LB"
    # Each stream holds a socket in the client, two in a proxy and one in the upstream.
    ulimit -n "$(ulimit -Hn)"
    local ports upstream round target
    mapfile -t ports < <("$PY" "$ROOT/bench/probe.py" ports 4)
    upstream="127.0.0.1:${ports[0]}"
    start sse-upstream "$PY" "$ROOT/bench/sse_upstream.py" --port "${ports[0]}" \
        --interval-s "$SSE_INTERVAL_S"
    wait_ready sse-upstream "http://$upstream/health"
    nginx_proxy nginx-sse "${ports[1]}" "        server $upstream;" "proxy_buffering off;"
    wait_ready nginx-sse "http://127.0.0.1:${ports[1]}/health"
    start_fleet_lb lb "${ports[2]}" "${ports[3]}" "http://$upstream" 1
    declare -A url=([direct]="http://$upstream/stream"
        [nginx]="http://127.0.0.1:${ports[1]}/stream" [lb]="http://127.0.0.1:${ports[2]}/stream")
    # The direct row under load is the client straight to the upstream: the floor that the
    # client, the upstream and the machine set for both proxies (no proxy to watch).
    declare -A watch=([direct]="" [nginx]="--watch-pid ${TARGET_PID[nginx-sse]}"
        [lb]="--watch-pid ${TARGET_PID[lb]}")
    for ((round = 1; round <= REPEATS; round++)); do
        for target in direct nginx lb; do
            "$PY" "$ROOT/bench/sse_client.py" --url "${url[$target]}" --label "$target" \
                --phase idle --streams "$SSE_IDLE_STREAMS" --open-per-s 20 --hold-s 1 \
                --round "$round" --results "$RESULTS" >&2
        done
        for target in lb nginx direct; do
            # shellcheck disable=SC2086 # ${watch[...]} is zero or two words
            "$PY" "$ROOT/bench/sse_client.py" --url "${url[$target]}" --label "$target" \
                --streams "$SSE_STREAMS" --open-per-s "$SSE_OPEN_PER_S" --hold-s "$SSE_HOLD_S" \
                ${watch[$target]} --round "$round" --results "$RESULTS" >&2
        done
    done
    if [[ $PROFILE == 1 ]]; then
        profile_sse_lb "${url[lb]}" "${TARGET_PID[lb]}"
    fi
    stop_all
}

# profile_sse_lb URL PID: one more load run through the LB under py-spy, not part of the figures;
# the hottest functions while streams open and flow go to $BENCH_OUT_DIR/profile-sse.txt.
profile_sse_lb() {
    local target_url=$1 lb_pid=$2
    local raw="$WORK_DIR/profile-sse.raw" summary="$OUT_DIR/profile-sse.txt" duration_s
    duration_s=$("$PY" -c "print(int($SSE_STREAMS / $SSE_OPEN_PER_S + $SSE_HOLD_S))")
    log "profiling graphfleet lb under the sse load (${duration_s} s, py-spy)"
    py_spy record --duration "$duration_s" --rate 250 --format raw --output "$raw" \
        --pid "$lb_pid" >"$WORK_DIR/py-spy.log" 2>&1 &
    local spy=$!
    "$PY" "$ROOT/bench/sse_client.py" --url "$target_url" --label lb-profiled \
        --streams "$SSE_STREAMS" --open-per-s "$SSE_OPEN_PER_S" --hold-s "$SSE_HOLD_S" \
        --results /dev/null >/dev/null
    wait "$spy" || die "py-spy failed: $(tail -n 5 "$WORK_DIR/py-spy.log")"
    "$PY" "$ROOT/bench/report.py" profile --raw "$raw" --top 25 | tee "$summary"
    log "profile summary in $summary"
}

# --- scenario: routing of mixed runs -----------------------------------------------------------

run_routing_scenario() {
    log "scenario routing: $ROUTING_WORKERS workers, three LBs and nginx least_conn"
    copy_graphs
    local ports n instances="" upstream="" health=() store="sqlite:///$WORK_DIR/routing.sqlite"
    mapfile -t ports < <("$PY" "$ROOT/bench/probe.py" ports $((ROUTING_WORKERS + 7)))
    for ((n = 0; n < ROUTING_WORKERS; n++)); do
        # Room for every run routed to one worker: its peak shows the routing, not refusals.
        start_worker "routing-w$n" "${ports[n]}" "$store" WORKER_MAX_CONCURRENCY=64
        instances+="${instances:+,}http://127.0.0.1:${ports[n]}"
        upstream+="        server 127.0.0.1:${ports[n]};"$'\n'
        health+=("http://127.0.0.1:${ports[n]}/health")
    done
    declare -A base=()
    local strategy index=$ROUTING_WORKERS
    for strategy in least_loaded round_robin power_of_two; do
        start_fleet_lb "lb-$strategy" "${ports[index]}" "${ports[index + 1]}" "$instances" \
            "$ROUTING_WORKERS" LB_STRATEGY="$strategy"
        base[$strategy]="http://127.0.0.1:${ports[index]}"
        index=$((index + 2))
    done
    nginx_proxy nginx-least-conn "${ports[index]}" "        least_conn;"$'\n'"$upstream" ""
    base[nginx_least_conn]="http://127.0.0.1:${ports[index]}"
    wait_ready nginx-least-conn "${base[nginx_least_conn]}/health"
    # The fleet's capacity: short runs, closed loop at 16 through the LB.
    local capacity
    capacity=$("$PY" "$ROOT/bench/loadgen.py" closed --url "${base[round_robin]}/runs/wait" \
        --concurrency 16 --duration-s "$DURATION_S" --warmup-s 1 --label capacity \
        --results "$WORK_DIR/capacity.jsonl" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["runs_per_s"])')
    log "fleet capacity: $capacity short runs/s"
    local round load target
    for ((round = 1; round <= REPEATS; round++)); do
        for load in $ROUTING_LOADS; do
            for target in least_loaded round_robin power_of_two nginx_least_conn; do
                "$PY" "$ROOT/bench/loadgen.py" mixed --base-url "${base[$target]}" \
                    --rate-per-s "$("$PY" -c "print($load * $capacity)")" --load "$load" \
                    --capacity-per-s "$capacity" \
                    --health "${health[@]}" --duration-s "$DURATION_S" --label "$target" \
                    --round "$round" --seed "$round" --results "$RESULTS" >&2
            done
        done
    done
    stop_all
}
