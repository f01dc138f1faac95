#!/usr/bin/env bash
# A throw-away Redis for moco's tests: Debian's redis-server on a free loopback port, no
# persistence, its files under target/redis-test/.
#
#   scripts/redis-test-server.sh start [--until-pid PID]   prints the URL (redis://127.0.0.1:PORT)
#   scripts/redis-test-server.sh stop
#
# `start` installs redis-server with apt-get when it is missing (root on Debian), and reuses a
# server this script already started. With --until-pid, the server is stopped once process PID
# has exited (the Redis tests pass their own pid, so a plain `cargo test` leaves nothing
# running). Exit status 3: redis-server is missing and could not be installed.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
dir="${CARGO_TARGET_DIR:-$root/target}/redis-test"
pidfile="$dir/redis.pid"
urlfile="$dir/url"

running() {
    [[ -f "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

ensure_installed() {
    command -v redis-server >/dev/null && return 0
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
        echo "redis-test-server: installing redis-server (apt-get)" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -qq redis-server >&2 \
            || { apt-get update -qq >&2 && apt-get install -y -qq redis-server >&2; } || true
    fi
    command -v redis-server >/dev/null || {
        echo "redis-test-server: redis-server is not installed and could not be installed" >&2
        exit 3
    }
}

port_free() {
    ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

start() {
    local until_pid=""
    if [[ "${1:-}" == "--until-pid" ]]; then until_pid="$2"; fi
    mkdir -p "$dir"
    exec 9>"$dir/lock"
    flock 9
    if running && [[ -f "$urlfile" ]]; then
        cat "$urlfile"
        return 0
    fi
    ensure_installed
    local port tries=0
    while :; do
        port=$((20000 + RANDOM % 40000))
        tries=$((tries + 1))
        port_free "$port" || continue
        rm -f "$pidfile"
        if redis-server --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
            --dir "$dir" --pidfile "$pidfile" --logfile "$dir/redis.log" \
            --daemonize yes >&2 9>&-; then
            for _ in $(seq 50); do
                redis-cli -p "$port" ping 2>/dev/null | grep -q PONG && break
                sleep 0.1
            done
            if redis-cli -p "$port" ping 2>/dev/null | grep -q PONG; then break; fi
        fi
        if ((tries >= 5)); then
            echo "redis-test-server: could not start redis-server (see $dir/redis.log)" >&2
            exit 1
        fi
    done
    echo "redis://127.0.0.1:$port" >"$urlfile"
    if [[ -n "$until_pid" ]]; then
        # Stop the server once the owner has gone (setsid: not killed with the caller's group).
        setsid bash -c 'while kill -0 "$1" 2>/dev/null; do sleep 1; done; "$2" stop' \
            _ "$until_pid" "$0" </dev/null >/dev/null 2>&1 9>&- &
    fi
    cat "$urlfile"
}

stop() {
    if running; then
        local pid
        pid="$(cat "$pidfile")"
        kill "$pid"
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -f "$pidfile" "$urlfile"
}

case "${1:-}" in
    start) shift; start "$@" ;;
    stop) stop ;;
    *) echo "usage: $0 start [--until-pid PID] | stop" >&2; exit 2 ;;
esac
