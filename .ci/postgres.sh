# Sourced by .ci/run: start a throwaway PostgreSQL on 127.0.0.1 for the session-store tests.
# Exports AGENTKIT_TEST_POSTGRES (a DSN) and stops the server (and removes its data) at exit.
# PostgreSQL refuses to run as root, so as root the server runs as a system user made for it.
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
    "${as[@]}" initdb -D "$PG_DATA_DIR/db" -U agentkit --auth=trust -E UTF8 >"$PG_DATA_DIR/initdb.log" 2>&1 ||
        { cat "$PG_DATA_DIR/initdb.log" >&2; return 1; }
    local port
    port="$(python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    # fsync off: the data is thrown away at exit, and the tests commit often.
    "${as[@]}" pg_ctl -D "$PG_DATA_DIR/db" -w -t 120 -l "$PG_DATA_DIR/db/server.log" \
        -o "-h 127.0.0.1 -p $port -k $PG_DATA_DIR/db -F -c max_connections=300" start >/dev/null ||
        { cat "$PG_DATA_DIR/db/server.log" >&2; return 1; }
    export AGENTKIT_TEST_POSTGRES="postgresql://agentkit@127.0.0.1:$port/postgres"
    trap stop_postgres EXIT
}

stop_postgres() {
    if [ -n "${PG_DATA_DIR:-}" ] && [ -d "$PG_DATA_DIR/db" ]; then
        "${PG_AS[@]}" pg_ctl -D "$PG_DATA_DIR/db" -m immediate stop >/dev/null 2>&1 || true
        rm -rf "$PG_DATA_DIR"
    fi
}
