# shellcheck shell=bash
# scripts/lib.sh: shared helpers for scripts/test.sh, scripts/demo.sh and test/e2e/*.sh.
# Source it:  . "$(dirname "$0")/lib.sh"   (it sets no shell options of its own)
#
# Functions
#   li_ensure_packages [PKG...]   install missing Debian packages (default: $LI_PACKAGES);
#                                 no apt at all when everything is already installed
#   li_pg_bindir                  print the PostgreSQL 15 bin directory (initdb, pg_ctl, ...)
#   li_free_port [FIRST [LAST]]   print a TCP port free on 127.0.0.1 (default 54320-54399)
#   li_start_cluster DIR PORT [-c name=value ...]
#                                 initdb a throwaway cluster in DIR/data (as postgres), start it
#                                 on PORT: socket in DIR/sock, also listening on 127.0.0.1,
#                                 server log in DIR/log. PostgreSQL defaults otherwise (extra
#                                 "-c name=value" arguments are passed to postgres).
#   li_cluster_ctl DIR start|stop|restart|status
#                                 pg_ctl on an existing cluster (same port, socket, log)
#   li_stop_cluster DIR           stop the cluster of DIR (fast, then immediate); idempotent
#   li_remove_cluster DIR         stop it and delete DIR; idempotent
#   li_sockdir DIR                print the socket directory of the cluster of DIR
#   li_psql DIR PORT [psql args]  psql as postgres over the socket, -X, ON_ERROR_STOP
#   li_build                      build and install the extension (make, make install), then
#                                 build the shim (make shim, when shim/Makefile exists);
#                                 returns 1 when the extension fails, 2 when the shim fails
#   li_shim_role_sql ROLE         print the SQL that creates ROLE as the shim's login role
#                                 (docs/shim.md): member of leadintake_shim, and of
#                                 leadintake_console when the extension has it (1.6: the
#                                 console's calls, docs/console.md), and no statement
#                                 parameter (the request body) in the server log
#   li_vicidial_url BASE KEY      print docs/vicidial.md's Dispo Call URL (every field as
#                                 VICIdial's --A--field--B--) on BASE (the intake URL) with
#                                 api_key=KEY (KEY URL-safe, e.g. hex); fails without it
#   li_log MSG / li_die MSG       messages on stderr
#
# Variables
#   LI_ROOT       the repository root (absolute)
#   LI_PACKAGES   the Debian packages the build, the tests and the demo need
#   LI_BENCH_PACKAGES  the extra ones `make bench` (test/bench/run.sh) needs
#   LI_PG_VERSION 15

LI_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LI_PG_VERSION=15

# Why each package:
#   make gcc libc6-dev          the build;  g++ libphonenumber-dev: extension/phonelib.cpp
#                               (phone_e164 and phone_valid by Google's libphonenumber)
#   postgresql-15               server, initdb/pg_ctl, psql, dblink (contrib ships in it)
#   postgresql-server-dev-15    PGXS, server headers, pg_regress
#   postgresql-15-pgtap         the pgTAP extension;  libtap-parser-sourcehandler-pgtap-perl: pg_prove
#   postgresql-15-cron          pg_cron, the scheduler the README shows for process_inbox
#   postgresql-15-pgaudit       pgaudit: test/e2e/audit.sh checks that a call's lead writes
#                               are audited as statements
#   libmicrohttpd-dev libpq-dev libgnutls28-dev pkg-config   the shim (HTTP, libpq, TLS)
#   curl ca-certificates        the demo's and the end-to-end tests' HTTP client
#   openssl                     self-signed certificates for the shim's TLS test
#   python3                     helpers of the end-to-end tests
#   clang-14 libclang-rt-14-dev the libFuzzer harnesses (test/fuzz; -fsanitize=fuzzer,address)
#   valgrind                    the memcheck run of the shim (test/e2e/sanitize.sh)
#   postgresql-15-auto-failover pg-auto-failover-cli   the failover test (test/ha/run.sh)
#   chromium chromium-driver python3-selenium   the console in a real browser, headless
#                               (test/e2e/console_browser.sh): no mouse, a phone's width
LI_PACKAGES=(make gcc libc6-dev g++ libphonenumber-dev
             postgresql-15 postgresql-server-dev-15
             postgresql-15-pgtap libtap-parser-sourcehandler-pgtap-perl postgresql-15-cron
             postgresql-15-pgaudit
             libmicrohttpd-dev libpq-dev libgnutls28-dev pkg-config
             curl ca-certificates openssl python3
             clang-14 libclang-rt-14-dev valgrind
             postgresql-15-auto-failover pg-auto-failover-cli
             chromium chromium-driver python3-selenium)
# The bench only (test/bench/run.sh installs them; the tests do not need them):
#   wrk                  HTTP load generator;  linux-perf   perf record/report (profiles)
#   postgresql-contrib   pgbench and pg_stat_statements (on Debian 12 postgresql-15 ships
#                        them; this metapackage then costs nothing)
LI_BENCH_PACKAGES=(wrk linux-perf postgresql-contrib)

li_log() { printf '%s\n' "$*" >&2; }
li_die() { printf 'error: %s\n' "$*" >&2; exit 1; }

li_ensure_packages() {
    local pkgs=("$@") missing=() p
    [ ${#pkgs[@]} -gt 0 ] || pkgs=("${LI_PACKAGES[@]}")
    for p in "${pkgs[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' \
            || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    li_log "installing: ${missing[*]}"
    if [ "$(id -u)" -ne 0 ]; then
        li_log "not root: cannot install ${missing[*]}"
        return 1
    fi
    # We make our own throwaway clusters: keep the postgresql-15 package from creating
    # (and starting) Debian's default 'main' cluster on a machine that has none yet.
    if [ ! -d "/etc/postgresql/$LI_PG_VERSION" ]; then
        mkdir -p /etc/postgresql-common/createcluster.d
        printf '%s\n' '# written by leadintake scripts/lib.sh: no default cluster' \
            'create_main_cluster = off' \
            > /etc/postgresql-common/createcluster.d/leadintake-no-main.conf
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null || { li_log "apt-get update failed"; return 1; }
    apt-get install -y -q --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        "${missing[@]}" >/dev/null \
        || { li_log "apt-get install ${missing[*]} failed"; return 1; }
}

li_pg_bindir() {
    local d
    d=$(pg_config --bindir 2>/dev/null)
    if [ -n "$d" ] && [ -x "$d/initdb" ]; then printf '%s\n' "$d"; return 0; fi
    d=/usr/lib/postgresql/$LI_PG_VERSION/bin
    if [ -x "$d/initdb" ]; then printf '%s\n' "$d"; return 0; fi
    li_log "PostgreSQL $LI_PG_VERSION server binaries not found"
    return 1
}

# True when something accepts TCP connections on 127.0.0.1:$1, or any TCP socket (a client's
# too: floods in the tests use many ephemeral ports) has it as its local port.
li_port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    li_tcp_sockets "$1" | grep -q .
}

# li_tcp_sockets PORT [STATE]: the lines of /proc/net/tcp{,6} whose local port is PORT (and
# whose state is STATE, in the kernel's hex: 08 is CLOSE-WAIT). No iproute2 needed.
li_tcp_sockets() {
    local hex
    hex=$(printf '%04X' "$1")
    cat /proc/net/tcp /proc/net/tcp6 2>/dev/null \
        | awk -v p=":$hex" -v st="${2:-}" 'substr($2, length($2) - 4) == p && (st == "" || $4 == st)'
}

li_free_port() {
    local first=${1:-54320} last=${2:-54399} n i p k
    n=$((last - first + 1))
    # Start at a random offset so that two runs at once rarely race for the same port.
    i=$((RANDOM % n))
    for ((k = 0; k < n; k++)); do
        p=$((first + (i + k) % n))
        if ! li_port_in_use "$p" && [ ! -e "/tmp/.s.PGSQL.$p" ] \
           && [ ! -e "/var/run/postgresql/.s.PGSQL.$p" ]; then
            printf '%s\n' "$p"
            return 0
        fi
    done
    li_log "no free port in $first-$last"
    return 1
}

li_sockdir() { printf '%s\n' "$1/sock"; }

# Run a command as postgres from / (postgres cannot read root's working directory).
li_as_postgres() {
    (cd / && runuser -u postgres -- "$@")
}

li_start_cluster() {
    local dir=$1 port=$2 bindir
    shift 2
    if [ -z "$dir" ] || [ -z "$port" ]; then li_log "usage: li_start_cluster DIR PORT"; return 1; fi
    bindir=$(li_pg_bindir) || return 1
    mkdir -p "$dir/sock" || return 1
    dir=$(cd "$dir" && pwd)
    chown postgres:postgres "$dir" "$dir/sock" || return 1
    chmod 700 "$dir" "$dir/sock"
    # postgres must be able to reach DIR: every parent must be searchable by it.
    local p=$dir
    while p=$(dirname "$p"); [ "$p" != / ]; do
        runuser -u postgres -- test -x "$p" 2>/dev/null \
            || { li_log "postgres cannot enter $p (parent of $dir)"; return 1; }
    done
    if ! li_as_postgres "$bindir/initdb" -D "$dir/data" -U postgres -E UTF8 \
            --locale=C.UTF-8 --auth=trust >"$dir/initdb.log" 2>&1; then
        li_log "initdb failed:"; cat "$dir/initdb.log" >&2
        return 1
    fi
    # In postgresql.conf, not on pg_ctl's command line, so that li_cluster_ctl DIR start
    # brings the same server back.
    {
        echo "# leadintake throwaway cluster (scripts/lib.sh)"
        echo "port = $port"
        echo "unix_socket_directories = '$dir/sock'"
        echo "listen_addresses = '127.0.0.1'"
        local a
        for a in "$@"; do
            [ "$a" = -c ] && continue
            echo "${a%%=*} = '${a#*=}'"
        done
    } >>"$dir/data/postgresql.conf"
    if ! li_cluster_ctl "$dir" start; then
        li_log "the cluster in $dir did not start on port $port:"
        tail -n 20 "$dir/log" >&2 2>/dev/null
        cat "$dir/pg_ctl.log" >&2
        return 1
    fi
    echo "$port" >"$dir/port"
}

# li_cluster_ctl DIR start|stop|restart|status: pg_ctl on the cluster of DIR (as postgres).
li_cluster_ctl() {
    local dir=$1 action=$2 bindir
    bindir=$(li_pg_bindir) || return 1
    case $action in
        start|restart)
            li_as_postgres "$bindir/pg_ctl" -D "$dir/data" -l "$dir/log" -w -t 60 "$action" \
                >"$dir/pg_ctl.log" 2>&1 ;;
        stop)
            li_as_postgres "$bindir/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop \
                >"$dir/pg_ctl.log" 2>&1 ;;
        *)
            li_as_postgres "$bindir/pg_ctl" -D "$dir/data" "$action" ;;
    esac
}

li_stop_cluster() {
    local dir=$1 bindir
    [ -n "$dir" ] && [ -f "$dir/data/postmaster.pid" ] || return 0
    bindir=$(li_pg_bindir) || return 1
    li_as_postgres "$bindir/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >/dev/null 2>&1 \
        || li_as_postgres "$bindir/pg_ctl" -D "$dir/data" -m immediate -w -t 30 stop \
               >/dev/null 2>&1 \
        || { li_log "could not stop the cluster in $dir"; return 1; }
}

li_remove_cluster() {
    local dir=$1
    [ -n "$dir" ] && [ -d "$dir" ] || return 0
    li_stop_cluster "$dir"
    rm -rf -- "$dir"
}

li_psql() {
    local dir=$1 port=$2
    shift 2
    psql -X -q -v ON_ERROR_STOP=1 -h "$dir/sock" -p "$port" -U postgres "$@"
}

# The shim's one statement parameter that holds the dialer's data is the body; a JSON body
# goes as it came (the shim does not parse it), secrets included. The extension drops them
# before storing, but log_min_duration_statement, log_statement or an error would write the
# parameter to the server log: the role's settings keep it out (superuser-only settings).
li_shim_role_sql() {
    cat <<EOF
CREATE ROLE $1 LOGIN IN ROLE leadintake_shim;
ALTER ROLE $1 SET log_parameter_max_length = 0;
ALTER ROLE $1 SET log_parameter_max_length_on_error = 0;
DO \$\$
BEGIN
    IF EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'leadintake_console') THEN
        GRANT leadintake_console TO $1;
    END IF;
END
\$\$;
EOF
}

# One source for the URL: the line of docs/vicidial.md that admins paste (test/e2e/shim.sh
# and vicidial.sh send it), so the demo never prints a URL the docs do not show.
li_vicidial_url() {
    local doc url
    doc=https://crm.example.com/api/leads/from-dialer/
    url=$(grep -m1 "^${doc}?api_key=KEY&" "$LI_ROOT/docs/vicidial.md") || return 1
    url=${url#"$doc?api_key=KEY&"}
    printf '%s?api_key=%s&%s\n' "$1" "$2" "$url"
}

li_build() {
    local jobs
    jobs=$(nproc 2>/dev/null || echo 2)
    # -o shim: treat the phony 'shim' prerequisite of 'all' as up to date: the extension
    # first, on its own, so that a shim that does not build does not block it.
    make -C "$LI_ROOT" -s -j"$jobs" -o shim && make -C "$LI_ROOT" -s -o shim install \
        || return 1
    if [ -f "$LI_ROOT/shim/Makefile" ]; then
        make -C "$LI_ROOT" -s -j"$jobs" shim || return 2
    else
        li_log "shim/Makefile not there: the shim is not built"
    fi
}
