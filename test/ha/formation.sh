# shellcheck shell=bash
# test/ha/formation.sh: a pg_auto_failover formation on one machine, as a recipe: a monitor,
# a primary and a synchronous secondary on loopback ports, the leadintake extension created
# once on the primary. Sourced by test/ha/run.sh; each step is the command a DBA would type.
#
#   HA_DIR      the directory that holds everything (data directories, pg_autoctl's own
#               configuration, state and sockets through XDG_*, logs); owned by postgres
#   HA_PORTS    "MONITOR NODE1 NODE2" (loopback ports)
#   HA_DB       the database (crm)
#
# Functions: ha_create, ha_kill_node NODE, ha_run NODE, ha_node_pgid NODE, ha_state,
# ha_primary (prints the node whose Postgres accepts writes), ha_wait_states PRIMARY SECONDARY
# SECONDS, ha_uri (the formation's multi-host URI), ha_destroy (stops and kills everything).

HA_DB=${HA_DB:-crm}
HA_PG_BIN=/usr/lib/postgresql/15/bin

# Every pg_autoctl runs as postgres, from /, with its XDG directories inside HA_DIR: run as
# root it would leave a root-owned /tmp/pg_autoctl that breaks later runs.
ha_autoctl() {
    (cd / && runuser -u postgres -- env XDG_CONFIG_HOME="$HA_DIR/xdg/config" \
        XDG_DATA_HOME="$HA_DIR/xdg/data" XDG_RUNTIME_DIR="$HA_DIR/xdg/run" \
        PATH="$HA_PG_BIN:$PATH" PG_CONFIG="$HA_PG_BIN/pg_config" pg_autoctl "$@")
}
ha_psql() {  # ha_psql PORT [DB] psql-args...
    local port=$1 db=$HA_DB; shift
    case "${1:-}" in -*) ;; *) db=$1; shift ;; esac
    (cd / && runuser -u postgres -- "$HA_PG_BIN/psql" -X -qAt -v ON_ERROR_STOP=1 \
        -h 127.0.0.1 -p "$port" -d "$db" "$@")
}
_ha_port_of() {  # monitor|node1|node2
    local m n1 n2; read -r m n1 n2 <<<"$HA_PORTS"
    case "$1" in monitor) echo "$m" ;; node1) echo "$n1" ;; node2) echo "$n2" ;; esac
}

# `pg_autoctl run` in its own session, so that its process group is the whole node: the
# keeper, its postgres supervisor, the postmaster and every backend.
ha_run() {
    local node=$1
    (cd / && exec setsid -f runuser -u postgres -- env XDG_CONFIG_HOME="$HA_DIR/xdg/config" \
        XDG_DATA_HOME="$HA_DIR/xdg/data" XDG_RUNTIME_DIR="$HA_DIR/xdg/run" \
        PATH="$HA_PG_BIN:$PATH" pg_autoctl run --pgdata "$HA_DIR/$node" \
        >>"$HA_DIR/$node.autoctl.log" 2>&1)
}
ha_node_pgid() {  # the process group of the node's live `pg_autoctl run`, or nothing
    local pid
    pid=$(head -n 1 "$HA_DIR/xdg/run/pg_autoctl$HA_DIR/$1/pg_autoctl.pid" 2>/dev/null)
    # a pid file outlives a killed node: only a process that is still that node counts
    [ -n "$pid" ] && tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -q "pg_autoctl run --pgdata $HA_DIR/$1 " \
        && ps -o pgid= -p "$pid" | tr -d ' '
}
# The node's host dies: SIGKILL to its keeper, postmaster and backends at once.
ha_kill_node() {
    local pid; pid=$(ha_node_pgid "$1")
    [ -n "$pid" ] && kill -KILL -- "-$pid" 2>/dev/null
}

# Settings each Postgres node gets after pg_autoctl's own (postgresql.conf includes
# pg_autoctl's file first; later lines win). pg_autoctl sizes shared_buffers and
# wal_keep_size for a dedicated host: three nodes on one test machine need less. pg_cron runs
# its jobs in background workers of the node itself: by default it connects to the host and
# port recorded in cron.job at cron.schedule() time, which here (two ports on one host) is
# the old primary, a standby after the failover.
_ha_node_conf() {
    cat >>"$HA_DIR/$1/postgresql.conf" <<CONF
# test/ha/formation.sh
shared_preload_libraries = 'pg_stat_statements,leadintake,pg_cron'
cron.database_name = '$HA_DB'
cron.use_background_workers = on
shared_buffers = '128MB'
wal_keep_size = '256MB'
maintenance_work_mem = '64MB'
CONF
}

ha_create() {
    local m n1 n2 monitor_uri
    read -r m n1 n2 <<<"$HA_PORTS"
    install -d -o postgres -g postgres -m 700 "$HA_DIR" "$HA_DIR/xdg" "$HA_DIR/xdg/config" \
        "$HA_DIR/xdg/data" "$HA_DIR/xdg/run"
    # 1. The monitor (a Postgres with the pgautofailover extension). It adds the pg_hba rules
    #    the nodes need; --auth trust and --no-ssl are for loopback only.
    ha_autoctl create monitor --pgdata "$HA_DIR/monitor" --pgport "$m" \
        --hostname 127.0.0.1 --listen 127.0.0.1 --auth trust --no-ssl \
        >>"$HA_DIR/create.log" 2>&1 || return 1
    echo "shared_buffers = '64MB'" >>"$HA_DIR/monitor/postgresql.conf"
    ha_run monitor
    _ha_wait_sql "$m" pg_auto_failover || return 1
    # Failure detection, shortened for a test on one host (README, "High availability",
    # gives the values for production and why).
    ha_psql "$m" pg_auto_failover \
        -c 'ALTER SYSTEM SET pgautofailover.health_check_period = 1000' \
        -c 'ALTER SYSTEM SET pgautofailover.health_check_timeout = 1000' \
        -c 'ALTER SYSTEM SET pgautofailover.health_check_max_retries = 1' \
        -c 'ALTER SYSTEM SET pgautofailover.health_check_retry_delay = 500' \
        -c 'ALTER SYSTEM SET pgautofailover.node_considered_unhealthy_timeout = 3000' \
        -c 'ALTER SYSTEM SET pgautofailover.primary_demote_timeout = 3000' \
        -c 'SELECT pg_reload_conf()' >/dev/null || return 1
    monitor_uri="postgres://autoctl_node@127.0.0.1:$m/pg_auto_failover?sslmode=disable"

    # 2. The first node: initialised (stopped again by `create`), configured, then run; it
    #    becomes the primary. The extension is created once, there.
    ha_autoctl create postgres --pgdata "$HA_DIR/node1" --pgport "$n1" --name node1 \
        --hostname 127.0.0.1 --listen 127.0.0.1 --auth trust --no-ssl --dbname "$HA_DB" \
        --monitor "$monitor_uri" >>"$HA_DIR/create.log" 2>&1 || return 1
    _ha_node_conf node1
    ha_run node1
    ha_wait_states node1 '' 60 && _ha_wait_sql "$n1" "$HA_DB" || return 1
    ha_psql "$n1" -c 'CREATE EXTENSION leadintake' -c 'CREATE EXTENSION pg_cron' || return 1

    # 3. The second node: pg_autoctl clones the primary (pg_basebackup: postgresql.conf, the
    #    extension and all), then it follows as a synchronous standby (replication quorum:
    #    synchronous_standby_names is set on the primary while it is healthy).
    ha_autoctl create postgres --pgdata "$HA_DIR/node2" --pgport "$n2" --name node2 \
        --hostname 127.0.0.1 --listen 127.0.0.1 --auth trust --no-ssl --dbname "$HA_DB" \
        --monitor "$monitor_uri" >>"$HA_DIR/create.log" 2>&1 || return 1
    ha_run node2
    ha_wait_states node1 node2 120
}

_ha_wait_sql() {  # PORT DB: wait until it answers
    local i
    for i in $(seq 100); do
        ha_psql "$1" "$2" -c 'SELECT 1' >/dev/null 2>&1 && return 0
        sleep 0.3
    done
    return 1
}

ha_state() { ha_autoctl show state --pgdata "$HA_DIR/monitor" 2>/dev/null; }

# ha_wait_states PRIMARY SECONDARY SECONDS: until the monitor reports both as assigned and
# reached (SECONDARY '' for a lone node, in state "single").
ha_wait_states() {
    local p=$1 s=$2 secs=$3 i st
    for ((i = 0; i < secs * 2; i++)); do
        st=$(ha_state)
        if [ -z "$s" ]; then
            grep -Eq "^ *$p \|.*\| *single \| *single *$" <<<"$st" && return 0
        elif grep -Eq "^ *$p \|.*\| *primary \| *primary *$" <<<"$st" &&
             grep -Eq "^ *$s \|.*\| *secondary \| *secondary *$" <<<"$st"; then
            return 0
        fi
        sleep 0.5
    done
    printf '%s\n' "$st" >&2
    return 1
}

# The node that accepts writes now, or nothing: as libpq's target_session_attrs=read-write
# judges it. A promoted node stays read-only (default_transaction_read_only) until the
# monitor has seen the old primary demoted or gone.
ha_primary() {
    local n
    for n in node1 node2; do
        [ "$(ha_psql "$(_ha_port_of "$n")" -c 'SHOW transaction_read_only' 2>/dev/null)" = off ] \
            && { echo "$n"; return 0; }
    done
    return 1
}

# The formation's connection string: every node, and only the primary is taken
# (target_session_attrs=read-write): postgres://127.0.0.1:P1,127.0.0.1:P2/crm?...
ha_uri() { ha_autoctl show uri --pgdata "$HA_DIR/monitor" --formation default; }

# Stop everything this formation started: each node's process group, whatever its state.
ha_destroy() {
    local n pid
    for n in node1 node2 monitor; do
        pid=$(ha_node_pgid "$n")
        [ -n "$pid" ] && kill -TERM -- "-$pid" 2>/dev/null
    done
    for _ in $(seq 20); do
        pgrep -f -- "$HA_DIR/" >/dev/null || break
        sleep 0.5
    done
    for n in node1 node2 monitor; do
        pid=$(ha_node_pgid "$n")
        [ -n "$pid" ] && kill -KILL -- "-$pid" 2>/dev/null
    done
    # any postmaster left over (a crash restart by a keeper since killed)
    for n in node1 node2 monitor; do
        pid=$(head -n 1 "$HA_DIR/$n/postmaster.pid" 2>/dev/null)
        [ -n "$pid" ] && tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -q -- "-D $HA_DIR/$n " \
            && kill -KILL "$pid" 2>/dev/null
    done
    # and anything else pg_autoctl started for this formation (a `create` that failed half
    # way leaves its postgres supervisor): every process has HA_DIR in its environment.
    for pid in $(grep -lsz "^XDG_DATA_HOME=$HA_DIR/xdg/data\$" /proc/[0-9]*/environ | cut -d/ -f3); do
        kill -KILL "$pid" 2>/dev/null
    done
    return 0
}
