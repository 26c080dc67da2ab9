# Sourced by .ci/run: start a throwaway PostgreSQL on 127.0.0.1 for the session-store tests.
# Exports AGENTKIT_TEST_POSTGRES (a DSN) and stops the server (and removes its data) at exit.
# PostgreSQL refuses to run as root, so as root the server runs as a system user made for it.

PG_PORT_TRIES=5 # ports tried before giving up (each one taken by another process meanwhile)

# A TCP port free right now. PostgreSQL can neither be handed a bound socket nor pick a port
# and report it, so the port is found by binding and letting go: another process may take it
# before the server binds it, and start_postgres then tries another.
pg_free_port() {
    python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start_postgres() {
    if ! command -v initdb >/dev/null || ! command -v pg_ctl >/dev/null; then
        echo "postgres: initdb/pg_ctl not on the PATH" >&2
        return 1
    fi
    local as=()
    PG_DATA_DIR="$(mktemp -d)"
    if [ "$(id -u)" = 0 ]; then
        id -u agentkit-pg >/dev/null 2>&1 ||
            useradd --system --no-create-home --shell /usr/sbin/nologin agentkit-pg
        chown agentkit-pg "$PG_DATA_DIR"
        as=(runuser -u agentkit-pg --)
    fi
    PG_AS=("${as[@]}")
    # --lc-messages=C: the server's log is read below (and its errors are the same everywhere)
    "${as[@]}" initdb -D "$PG_DATA_DIR/db" -U agentkit --auth=trust -E UTF8 --lc-messages=C \
        >"$PG_DATA_DIR/initdb.log" 2>&1 ||
        { cat "$PG_DATA_DIR/initdb.log" >&2; rm -rf "$PG_DATA_DIR"; return 1; }
    local port log="$PG_DATA_DIR/db/server.log" try
    for ((try = 1; ; try++)); do
        port="$(pg_free_port)"
        rm -f "$log" # this try's log only (made by pg_ctl, as the server's user)
        # fsync off: the data is thrown away at exit, and the tests commit often.
        if "${as[@]}" pg_ctl -D "$PG_DATA_DIR/db" -w -t 120 -l "$log" \
            -o "-h 127.0.0.1 -p $port -k $PG_DATA_DIR/db -F -c max_connections=300" start >/dev/null; then
            break
        fi
        if ! grep -q "could not create any TCP/IP sockets" "$log"; then
            cat "$log" >&2
            rm -rf "$PG_DATA_DIR"
            return 1
        fi
        if [ "$try" -ge "$PG_PORT_TRIES" ]; then
            cat "$log" >&2
            echo "postgres: gave up after $try tries: each free port picked (the last $port) was" \
                "taken by another process before the server could bind it" >&2
            rm -rf "$PG_DATA_DIR"
            return 1
        fi
        echo "postgres: port $port was taken before the server bound it; trying another" >&2
    done
    export AGENTKIT_TEST_POSTGRES="postgresql://agentkit@127.0.0.1:$port/postgres"
    trap stop_postgres EXIT
}

stop_postgres() {
    if [ -n "${PG_DATA_DIR:-}" ] && [ -d "$PG_DATA_DIR/db" ]; then
        "${PG_AS[@]}" pg_ctl -D "$PG_DATA_DIR/db" -m immediate stop >/dev/null 2>&1 || true
        rm -rf "$PG_DATA_DIR"
    fi
}
