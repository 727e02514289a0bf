#!/usr/bin/env bash
# A loopback redis-server for manual runs and benchmarks of the gateway (no persistence).
#
#   scripts/redis-server.sh install         # only install redis-server if missing (make test runs this)
#   scripts/redis-server.sh start [PORT]    # default 6379; prints the URL to use
#   scripts/redis-server.sh stop [PORT]
#   scripts/redis-server.sh status [PORT]
#
# If redis-server is missing it installs Debian's redis-server package with apt-get, as CI does.
# Tests do not need this script: they start their own server (tests/gateway/redis_server.py).
set -euo pipefail

action="${1:-}"
port="${2:-${REDIS_PORT:-6379}}"
rundir="${TMPDIR:-/tmp}"
pidfile="$rundir/distillguard-redis-$port.pid"
logfile="$rundir/distillguard-redis-$port.log"

answers() { [ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" = "PONG" ]; }

install_redis() {
    command -v redis-server >/dev/null && return 0
    echo "redis-server not found; installing Debian's redis-server package" >&2
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server >/dev/null
}

case "$action" in
install)
    install_redis
    ;;
start)
    install_redis
    if answers; then
        echo "redis already answers on 127.0.0.1:$port"
    else
        redis-server --bind 127.0.0.1 --port "$port" --save "" --appendonly no --protected-mode yes \
            --daemonize yes --pidfile "$pidfile" --logfile "$logfile"
        for _ in $(seq 100); do answers && break; sleep 0.05; done
        answers || { echo "redis-server did not start on port $port; see $logfile" >&2; exit 1; }
    fi
    echo "redis://127.0.0.1:$port/0"
    ;;
stop)
    if [ -f "$pidfile" ]; then
        kill "$(cat "$pidfile")" 2>/dev/null || true
        for _ in $(seq 100); do answers || break; sleep 0.05; done
        rm -f "$pidfile"
        echo "stopped redis-server on port $port"
    else
        echo "no redis-server started by this script on port $port ($pidfile missing)" >&2
        exit 1
    fi
    ;;
status)
    if answers; then echo "up: redis://127.0.0.1:$port/0"; else echo "down: 127.0.0.1:$port"; exit 1; fi
    ;;
*)
    echo "usage: $0 start|stop|status [PORT]" >&2
    exit 2
    ;;
esac
