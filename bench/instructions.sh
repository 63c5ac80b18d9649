#!/usr/bin/env bash
# Instructions the LB executes per proxied request, under callgrind: a count that does not move
# with the machine's load, for comparing revisions on a busy machine (wall-clock figures do).
#
#   bash bench/instructions.sh [REV ...]     (default: HEAD; "." is the work tree)
#
# For each revision, the LB (its lb/, worker/, common/) runs under valgrind's callgrind twice in
# front of one nginx upstream, serving 500 and then 2,500 sequential keep-alive requests
# (bench/sequential_client.py); the difference of the two totals over 2,000 is the
# per-request count, start-up and shutdown cancelling out. User-space instructions only: the
# kernel's share of a socket write is not in it. Needs valgrind and nginx (Debian packages).
set -euo pipefail
shopt -s inherit_errexit # a failure inside "$(instructions ...)" stops the script too
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY="$ROOT/.venv/bin/python"
SMALL=500
LARGE=2500

for tool in valgrind nginx; do
    command -v "$tool" >/dev/null || { echo "instructions.sh: needs $tool" >&2; exit 1; }
done
WORK=$(mktemp -d)
NGINX_PID=""
LB_PID=""
cleanup() {
    for pid in $LB_PID $NGINX_PID; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

read -r upstream lb_port admin_port < <("$PY" "$ROOT/bench/probe.py" ports 3 | paste -sd' ')
mkdir -p "$WORK/nginx"
cat >"$WORK/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $WORK/nginx.pid;
error_log $WORK/nginx.err warn;
events { worker_connections 1024; }
http {
    access_log off;
    keepalive_requests 1000000;
    default_type application/json;
    client_body_temp_path $WORK/nginx/body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    server {
        listen 127.0.0.1:$upstream;
        location = /health { return 200 '{"status":"ok","current_load":0,"max_capacity":1000}'; }
        location / { return 200 '{"ok":true,"service":"bench-upstream","items":[1,2,3,4,5,6,7,8]}'; }
    }
}
CONF
nginx -p "$WORK/nginx" -c "$WORK/nginx.conf" &
NGINX_PID=$!
"$PY" "$ROOT/bench/probe.py" wait "http://127.0.0.1:$upstream/health" >/dev/null

# instructions SRC COUNT: the LB's total instruction count for COUNT requests (plus start-up).
instructions() {
    local src=$1 count=$2 out="$WORK/callgrind.out"
    env -C "$src" LB_HOST=127.0.0.1 LB_PORT="$lb_port" LB_ADMIN_HOST=127.0.0.1 \
        LB_ADMIN_PORT="$admin_port" LB_INSTANCES="http://127.0.0.1:$upstream" \
        LB_LOG_LEVEL=warning LB_DATA_DIR="$WORK/lb-data" LB_HEALTH_INTERVAL_S=60 \
        PYTHONHASHSEED=0 valgrind --tool=callgrind --callgrind-out-file="$out" "$PY" -m lb \
        2>"$WORK/valgrind.log" &
    LB_PID=$!
    # Python under valgrind starts some fifty times slower than without.
    "$PY" "$ROOT/bench/probe.py" wait "http://127.0.0.1:$lb_port/" --timeout-s 600 \
        --pid "$LB_PID" >/dev/null
    "$PY" "$ROOT/bench/sequential_client.py" "$lb_port" 50 # warm: upstream connection open
    "$PY" "$ROOT/bench/sequential_client.py" "$lb_port" "$count"
    kill -INT "$LB_PID"
    wait "$LB_PID" || true
    LB_PID=""
    awk '/^summary:/ { print $2; exit }' "$out"
}

printf '%-12s %14s\n' revision "instr/request"
for rev in "${@:-HEAD}"; do
    src="$WORK/src-$rev"
    mkdir -p "$src"
    for dir in lb worker common; do
        if [[ $rev == . ]]; then
            [[ -d $ROOT/$dir ]] && cp -r "$ROOT/$dir" "$src/$dir"
        elif git -C "$ROOT" cat-file -e "$rev:$dir" 2>/dev/null; then
            git -C "$ROOT" archive "$rev" "$dir" | tar -x -C "$src"
        fi
    done
    small=$(instructions "$src" "$SMALL")
    large=$(instructions "$src" "$LARGE")
    printf '%-12s %14s\n' "$rev" "$(( (large - small) / (LARGE - SMALL) ))"
done
