#!/usr/bin/env bash
# Install, start, stop and report the real servers that the integration tests
# talk to: RabbitMQ, Redis, ClickHouse, PostgreSQL, FerretDB (a
# MongoDB-protocol server) and slapd (an LDAP directory for webadmin's sign-in).  Every server listens on 127.0.0.1 only, on fixed
# test ports away from the default ones, and keeps its data, logs and pid file
# under ${ALTCRAFT_HARNESS_DIR:-/tmp/altcraft-harness}/<name>/, so it never
# clashes with a system instance.  No systemd is needed.
#
# Run `servers.sh --help` for usage.
set -euo pipefail

PROG=$(basename "$0")
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)

ALL_SERVERS=(rabbitmq redis clickhouse postgresql ferretdb slapd)

HOST=127.0.0.1
RABBITMQ_PORT=35672
RABBITMQ_DIST_PORT_=35673   # Erlang distribution port of our node
RABBITMQ_EPMD_PORT=35674    # our own epmd, not the system one on 4369
RABBITMQ_NODE=altcraft-test@localhost
REDIS_PORT=36379
CLICKHOUSE_PORT=39000
CLICKHOUSE_HTTP_PORT=38123
CLICKHOUSE_INTERSERVER_PORT=39009
POSTGRES_PORT=35432
FERRETDB_PORT=37017
SLAPD_PORT=36389            # ldap:// (StartTLS required for a simple bind)
SLAPD_LDAPS_PORT=36636      # ldaps://
SLAPD_BASE=dc=altcraft,dc=test

TEST_USER=altcraft
TEST_PASSWORD=altcraft-test-pass
TEST_VHOST=altcraft
TEST_DATABASE=altcraft

TIMEOUT=${ALTCRAFT_HARNESS_TIMEOUT:-90}
: "${HOME:=$(getent passwd "$(id -u)" | cut -d: -f6)}"
HARNESS_DIR=${ALTCRAFT_HARNESS_DIR:-/tmp/altcraft-harness}
[[ $HARNESS_DIR == /* ]] || HARNESS_DIR=$PWD/$HARNESS_DIR
CACHE_DIR=${ALTCRAFT_HARNESS_CACHE:-$HOME/.cache/altcraft-harness}
FERRETDB_SRC=$SCRIPT_DIR/../../tools/ferretdb
FERRETDB_BIN=$CACHE_DIR/bin/altcraft-ferretdb
MONGODB_URI=${ALTCRAFT_TEST_MONGODB_URI:-}

usage() {
    cat <<EOF
Usage: $PROG COMMAND [NAME...]

Real servers for the integration tests, on 127.0.0.1 only:
  rabbitmq     AMQP 127.0.0.1:$RABBITMQ_PORT  vhost '$TEST_VHOST', user '$TEST_USER'
  redis        127.0.0.1:$REDIS_PORT  no password
  clickhouse   native 127.0.0.1:$CLICKHOUSE_PORT, http :$CLICKHOUSE_HTTP_PORT, user '$TEST_USER' (and 'default', no password)
  postgresql   127.0.0.1:$POSTGRES_PORT  role and database '$TEST_DATABASE'
  ferretdb     MongoDB protocol 127.0.0.1:$FERRETDB_PORT (SQLite storage)
  slapd        LDAP 127.0.0.1:$SLAPD_PORT (StartTLS), ldaps :$SLAPD_LDAPS_PORT, base $SLAPD_BASE,
               a test CA, a service account, users and groups (see slapd_seed)
All test passwords are '$TEST_PASSWORD'.  NAME may also be 'mongodb' (= ferretdb)
or 'postgres' (= postgresql); no NAME means all servers.

Commands:
  install [NAME...]   apt-get install what is missing (apt-get update first, only
                      if something is missing) and build FerretDB if needed
  start [NAME...]     install if needed, start what is not running, wait until
                      each server accepts connections (timeout ${TIMEOUT}s each),
                      print "ok   <name>  127.0.0.1:<port>" per server and write
                      \$ALTCRAFT_HARNESS_DIR/harness.json; exit 1 on failure
  stop [NAME...]      stop the servers this script started, gracefully, waiting
                      until their ports are closed
  restart [NAME...]   stop, then start
  rabbitmqctl ARGS... the test RabbitMQ node's rabbitmqctl (tests make a vhost each)
  status              one line per server, running or stopped; exit 0 if all
                      are running, 3 otherwise
  -h, --help          this help

Environment:
  ALTCRAFT_HARNESS_DIR      data, logs, pid files, harness.json (now: $HARNESS_DIR)
  ALTCRAFT_HARNESS_CACHE    FerretDB binary cache (now: $CACHE_DIR)
  ALTCRAFT_HARNESS_TIMEOUT  seconds to wait for each server (now: $TIMEOUT)
  ALTCRAFT_TEST_MONGODB_URI use this MongoDB instead of FerretDB: it is neither
                            built nor started, and harness.json reports the URI
EOF
}

# ---------------------------------------------------------------- helpers ---

log() { printf '%s\n' "$*"; }
info() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() { printf '%s: error: %s\n' "$PROG" "$*" >&2; exit 1; }

# fail NAME REASON [LOGFILE...]: print FAIL line and the tail of logs, exit 1.
fail() {
    local name=$1 reason=$2 f
    shift 2
    printf 'FAIL %s: %s\n' "$name" "$reason" >&2
    for f in "$@"; do
        if [[ -s $f ]]; then
            printf -- '---- last lines of %s ----\n' "$f" >&2
            tail -n 40 "$f" >&2 || true
        fi
    done
    exit 1
}

is_root() { [[ $(id -u) -eq 0 ]]; }

# tcp_open PORT [HOST]: true if something accepts TCP connections there.
tcp_open() {
    local port=$1 host=${2:-$HOST}
    # shellcheck disable=SC2016  # expanded by the inner bash
    timeout 3 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$host" "$port" 2>/dev/null
}

# pid_of PIDFILE PATTERN: print the pid if the file names a live process
# whose command line matches PATTERN (guards against a recycled pid).
pid_of() {
    local pidfile=$1 pattern=$2 pid
    [[ -s $pidfile ]] || return 1
    pid=$(head -n 1 "$pidfile" | tr -dc '0-9')
    [[ -n $pid ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$pattern" || return 1
    printf '%s\n' "$pid"
}

# wait_gone PID PORT SECONDS: wait until the process is gone and the port closed.
wait_gone() {
    local pid=$1 port=$2 deadline=$((SECONDS + $3))
    while ((SECONDS < deadline)); do
        if ! kill -0 "$pid" 2>/dev/null && ! tcp_open "$port"; then
            return 0
        fi
        sleep 0.3
    done
    return 1
}

# stop_pid NAME PID PORT: SIGTERM, wait, SIGKILL as a last resort.
stop_pid() {
    local name=$1 pid=$2 port=$3
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_gone "$pid" "$port" "$TIMEOUT"; then
        info "$name (pid $pid) did not stop within ${TIMEOUT}s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        wait_gone "$pid" "$port" 10 || die "$name: port $port still open after SIGKILL"
    fi
}

# launch LOGFILE CMD...: start CMD detached from this shell, in its own
# session, without stdin and without the lock on fd 9.
launch() {
    local logfile=$1
    shift
    setsid nohup "$@" >>"$logfile" 2>&1 </dev/null 9>&- &
    LAUNCHED_PID=$!
}

json_str() {
    local s=$1
    s=${s//\\/\\\\}
    s=${s//\"/\\\"}
    printf '"%s"' "$s"
}

canonical_name() {
    case $1 in
        rabbitmq | rabbit | amqp) echo rabbitmq ;;
        redis) echo redis ;;
        clickhouse) echo clickhouse ;;
        postgresql | postgres | pg) echo postgresql ;;
        ferretdb | mongodb | mongo) echo ferretdb ;;
        slapd | ldap) echo slapd ;;
        *) die "unknown server '$1' (known: ${ALL_SERVERS[*]})" ;;
    esac
}

# ---------------------------------------------------------------- install ---

packages_for() {
    case $1 in
        rabbitmq) echo rabbitmq-server ;;
        redis) echo redis-server redis-tools ;;
        clickhouse) echo clickhouse-server clickhouse-client ;;
        postgresql) echo postgresql ;;
        ferretdb) ;;
        slapd) echo slapd ldap-utils ;;
        # no server kept running: promtool and the binaries tests/lib/prometheus.py starts
        monitoring) echo prometheus prometheus-pushgateway ;;
    esac
}

pkg_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

install_packages() {
    local name pkg missing=()
    for name in "$@"; do
        for pkg in $(packages_for "$name"); do
            pkg_installed "$pkg" || missing+=("$pkg")
        done
    done
    ((${#missing[@]})) || return 0
    is_root || die "missing Debian packages: ${missing[*]} (run as root, or apt-get install them)"
    info "installing ${missing[*]} (apt-get update first)"
    export DEBIAN_FRONTEND=noninteractive
    # slapd's package must not make a directory of its own (nor start one on port 389)
    echo "slapd slapd/no_configuration boolean true" | debconf-set-selections
    local apt=(apt-get -q -y -o DPkg::Lock::Timeout=300 -o Dpkg::Options::=--force-confdef
        -o Dpkg::Options::=--force-confold)
    "${apt[@]}" update >&2 || die "apt-get update failed"
    "${apt[@]}" install --no-install-recommends "${missing[@]}" </dev/null >&2 \
        || die "apt-get install ${missing[*]} failed"
    # the monitoring packages' own services (ports 9090, 9091 on every address) are not the
    # tests': those start their own on loopback ports
    if [[ " ${missing[*]} " == *" prometheus "* ]] && command -v systemctl >/dev/null; then
        systemctl disable --now prometheus prometheus-pushgateway >&2 2>/dev/null || true
    fi
}

find_go() {
    local go
    for go in "$(command -v go 2>/dev/null || true)" /usr/local/go/bin/go /usr/lib/go/bin/go; do
        if [[ -n $go && -x $go ]]; then
            printf '%s\n' "$go"
            return 0
        fi
    done
    return 1
}

ferretdb_src_hash() {
    (cd "$FERRETDB_SRC" && cat main.go go.mod go.sum 2>/dev/null) | sha256sum | cut -d' ' -f1
}

# Build the FerretDB binary when it is missing or its source changed.
build_ferretdb() {
    [[ -f $FERRETDB_SRC/main.go && -f $FERRETDB_SRC/go.mod ]] \
        || die "FerretDB source not found in $FERRETDB_SRC"
    local stamp=$FERRETDB_BIN.src-sha256 f stale=
    if [[ ! -x $FERRETDB_BIN ]]; then
        stale=1
    elif [[ -s $stamp ]]; then
        # Source content unchanged since the build: nothing to do, even when a
        # fresh clone gave the files newer mtimes than the cached binary.
        [[ $(cat "$stamp") == "$(ferretdb_src_hash)" ]] || stale=1
    else
        for f in main.go go.mod go.sum; do
            [[ -e $FERRETDB_SRC/$f && $FERRETDB_SRC/$f -nt $FERRETDB_BIN ]] && stale=1
        done
    fi
    [[ -n $stale ]] || return 0

    local go
    go=$(find_go) || die "ferretdb: the Go toolchain (go) is needed to build FerretDB and was not found"
    mkdir -p "$(dirname "$FERRETDB_BIN")"
    local blog=$CACHE_DIR/ferretdb-build.log tmp=$FERRETDB_BIN.tmp.$$
    info "building FerretDB with $("$go" version | cut -d' ' -f3) -> $FERRETDB_BIN (log: $blog)"
    local t0=$SECONDS
    if ! (cd "$FERRETDB_SRC" \
        && "$go" mod tidy \
        && CGO_ENABLED=0 "$go" build -buildvcs=false -trimpath -o "$tmp" .) >"$blog" 2>&1; then
        rm -f "$tmp"
        fail ferretdb "go build failed" "$blog"
    fi
    mv -f "$tmp" "$FERRETDB_BIN"
    ferretdb_src_hash >"$stamp"
    info "FerretDB built in $((SECONDS - t0))s"
}

do_install() {
    install_packages "$@" monitoring
    local name
    for name in "$@"; do
        if [[ $name == ferretdb && -z $MONGODB_URI ]]; then
            build_ferretdb
        fi
    done
}

# --------------------------------------------------------------- rabbitmq ---

RMQ_DIR=$HARNESS_DIR/rabbitmq
RMQ_BIN=/usr/lib/rabbitmq/bin

# Run a RabbitMQ command with our node's environment.  The scripts in
# /usr/lib/rabbitmq/bin are called directly (not the /usr/sbin wrappers, which
# su to the rabbitmq user and cd to /var/lib/rabbitmq), as whoever runs this
# script, with HOME in the harness dir so server and CLI share our own
# .erlang.cookie instead of the system one.
RMQ_ENV=(
    -u RABBITMQ_ERLANG_COOKIE -u RABBITMQ_NODE_PORT -u RABBITMQ_NODE_IP_ADDRESS
    "HOME=$RMQ_DIR/home"
    "RABBITMQ_NODENAME=$RABBITMQ_NODE"
    "RABBITMQ_DIST_PORT=$RABBITMQ_DIST_PORT_"
    "ERL_EPMD_PORT=$RABBITMQ_EPMD_PORT"
    "ERL_EPMD_ADDRESS=$HOST"
    "RABBITMQ_CONF_ENV_FILE=$RMQ_DIR/rabbitmq-env.conf"
    "RABBITMQ_CONFIG_FILE=$RMQ_DIR/rabbitmq.conf"
    "RABBITMQ_ADVANCED_CONFIG_FILE=$RMQ_DIR/advanced.config"
    "RABBITMQ_ENABLED_PLUGINS_FILE=$RMQ_DIR/enabled_plugins"
    "RABBITMQ_MNESIA_BASE=$RMQ_DIR/mnesia"
    "RABBITMQ_LOG_BASE=$RMQ_DIR/log"
    "RABBITMQ_PID_FILE=$RMQ_DIR/rabbitmq.pid"
    "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1}"
    "RABBITMQ_CTL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1}"
)
rmq() { (cd "$RMQ_DIR" && env "${RMQ_ENV[@]}" "$@"); }
rmqctl() { rmq "$RMQ_BIN/rabbitmqctl" "$@"; }

rabbitmq_pid() { pid_of "$RMQ_DIR/rabbitmq.pid" beam; }
RMQ_LOGS=("$RMQ_DIR/log/startup.log" "$RMQ_DIR/log/$RABBITMQ_NODE.log")

rabbitmq_launch() {
    mkdir -p "$RMQ_DIR/home" "$RMQ_DIR/mnesia" "$RMQ_DIR/log"
    if [[ ! -s $RMQ_DIR/home/.erlang.cookie ]]; then
        (umask 077 && head -c 24 /dev/urandom | od -An -tx1 | tr -dc 'a-f0-9' | tr a-f A-F \
            >"$RMQ_DIR/home/.erlang.cookie")
    fi
    chmod 400 "$RMQ_DIR/home/.erlang.cookie"
    : >"$RMQ_DIR/rabbitmq-env.conf"
    echo '[].' >"$RMQ_DIR/enabled_plugins"
    echo '[].' >"$RMQ_DIR/advanced.config"
    cat >"$RMQ_DIR/rabbitmq.conf" <<EOF
# written by tests/harness/servers.sh
listeners.tcp.default = $HOST:$RABBITMQ_PORT
listeners.ssl = none
log.file.level = info
log.console = false
EOF
    : >"$RMQ_DIR/log/startup.log"
    (cd "$RMQ_DIR" && launch "$RMQ_DIR/log/startup.log" env "${RMQ_ENV[@]}" "$RMQ_BIN/rabbitmq-server" \
        && echo "$LAUNCHED_PID" >"$RMQ_DIR/launcher.pid")
}

rabbitmq_wait() {
    local deadline=$((SECONDS + TIMEOUT)) launcher
    launcher=$(cat "$RMQ_DIR/launcher.pid" 2>/dev/null || true)
    while ! tcp_open "$RABBITMQ_PORT"; do
        if [[ -n $launcher ]] && ! kill -0 "$launcher" 2>/dev/null && ! rabbitmq_pid >/dev/null; then
            fail rabbitmq "server exited during startup" "${RMQ_LOGS[@]}"
        fi
        ((SECONDS < deadline)) || fail rabbitmq "port $RABBITMQ_PORT not open after ${TIMEOUT}s" "${RMQ_LOGS[@]}"
        sleep 0.5
    done
    local left=$((deadline - SECONDS))
    ((left > 5)) || left=5
    rmqctl -q await_startup --timeout "$left" >/dev/null 2>"$RMQ_DIR/log/ctl.err" \
        || fail rabbitmq "rabbitmqctl await_startup failed" "$RMQ_DIR/log/ctl.err" "${RMQ_LOGS[@]}"
    # vhost, user and permissions (idempotent: only what is missing)
    local err=$RMQ_DIR/log/ctl.err
    if ! rmqctl -q list_permissions -p "$TEST_VHOST" 2>"$err" | cut -f1 | grep -qx "$TEST_USER"; then
        if ! rmqctl -q list_vhosts name 2>>"$err" | grep -qx "$TEST_VHOST"; then
            rmqctl -q add_vhost "$TEST_VHOST" >/dev/null 2>>"$err" \
                || fail rabbitmq "add_vhost $TEST_VHOST failed" "$err"
        fi
        if ! rmqctl -q list_users 2>>"$err" | cut -f1 | grep -qx "$TEST_USER"; then
            rmqctl -q add_user "$TEST_USER" "$TEST_PASSWORD" >/dev/null 2>>"$err" \
                || fail rabbitmq "add_user $TEST_USER failed" "$err"
            rmqctl -q set_user_tags "$TEST_USER" administrator >/dev/null 2>>"$err" || true
        fi
        rmqctl -q set_permissions -p "$TEST_VHOST" "$TEST_USER" '.*' '.*' '.*' >/dev/null 2>>"$err" \
            || fail rabbitmq "set_permissions failed" "$err"
    fi
    # Real AMQP check: the server answers a protocol header with Connection.Start.
    amqp_hello || fail rabbitmq "no AMQP Connection.Start on port $RABBITMQ_PORT" "${RMQ_LOGS[@]}"
}

amqp_hello() {
    command -v python3 >/dev/null || return 0
    python3 - "$HOST" "$RABBITMQ_PORT" <<'EOF'
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
s.sendall(b"AMQP\x00\x00\x09\x01")
data = s.recv(7)
s.close()
# frame type 1 (method) on channel 0
sys.exit(0 if len(data) >= 3 and data[0] == 1 and data[1:3] == b"\x00\x00" else 1)
EOF
}

rabbitmq_stop() {
    local pid
    if pid=$(rabbitmq_pid); then
        rmqctl -q stop "$RMQ_DIR/rabbitmq.pid" >/dev/null 2>&1 || kill -TERM "$pid" 2>/dev/null || true
        wait_gone "$pid" "$RABBITMQ_PORT" "$TIMEOUT" || stop_pid rabbitmq "$pid" "$RABBITMQ_PORT"
    fi
    rm -f "$RMQ_DIR/rabbitmq.pid" "$RMQ_DIR/launcher.pid"
    # our own epmd (started by our node on its own port)
    if tcp_open "$RABBITMQ_EPMD_PORT"; then
        ERL_EPMD_PORT=$RABBITMQ_EPMD_PORT epmd -kill >/dev/null 2>&1 || true
    fi
}

# ------------------------------------------------------------------ redis ---

REDIS_DIR=$HARNESS_DIR/redis

redis_pid() { pid_of "$REDIS_DIR/redis.pid" redis-server; }
REDIS_LOGS=("$REDIS_DIR/redis.log" "$REDIS_DIR/stdout.log")

redis_launch() {
    mkdir -p "$REDIS_DIR/data"
    rm -f "$REDIS_DIR/redis.pid"
    redis-server --port "$REDIS_PORT" --bind "$HOST" --protected-mode yes \
        --daemonize yes --supervised no \
        --dir "$REDIS_DIR/data" --pidfile "$REDIS_DIR/redis.pid" \
        --logfile "$REDIS_DIR/redis.log" --save '' --appendonly no \
        >>"$REDIS_DIR/stdout.log" 2>&1 </dev/null 9>&- \
        || fail redis "redis-server did not start" "${REDIS_LOGS[@]}"
}

redis_wait() {
    local deadline=$((SECONDS + TIMEOUT))
    until [[ $(redis-cli -h "$HOST" -p "$REDIS_PORT" ping 2>/dev/null) == PONG ]]; do
        ((SECONDS < deadline)) || fail redis "no PONG on port $REDIS_PORT after ${TIMEOUT}s" "${REDIS_LOGS[@]}"
        sleep 0.2
    done
}

redis_stop() {
    local pid
    if pid=$(redis_pid); then
        stop_pid redis "$pid" "$REDIS_PORT"
    fi
    rm -f "$REDIS_DIR/redis.pid"
}

# ------------------------------------------------------------- clickhouse ---

CH_DIR=$HARNESS_DIR/clickhouse

clickhouse_pid() { pid_of "$CH_DIR/clickhouse.pid" clickhouse; }
CH_LOGS=("$CH_DIR/log/clickhouse-server.err.log" "$CH_DIR/log/stdout.log")

clickhouse_write_config() {
    mkdir -p "$CH_DIR/data" "$CH_DIR/tmp" "$CH_DIR/user_files" "$CH_DIR/format_schemas" "$CH_DIR/log"
    cat >"$CH_DIR/config.xml" <<EOF
<?xml version="1.0"?>
<!-- written by tests/harness/servers.sh: test instance, loopback only -->
<yandex>
    <logger>
        <level>information</level>
        <log>$CH_DIR/log/clickhouse-server.log</log>
        <errorlog>$CH_DIR/log/clickhouse-server.err.log</errorlog>
        <size>100M</size>
        <count>3</count>
    </logger>
    <listen_host>$HOST</listen_host>
    <http_port>$CLICKHOUSE_HTTP_PORT</http_port>
    <tcp_port>$CLICKHOUSE_PORT</tcp_port>
    <interserver_http_port>$CLICKHOUSE_INTERSERVER_PORT</interserver_http_port>
    <interserver_http_host>$HOST</interserver_http_host>
    <max_connections>4096</max_connections>
    <keep_alive_timeout>3</keep_alive_timeout>
    <max_concurrent_queries>100</max_concurrent_queries>
    <uncompressed_cache_size>268435456</uncompressed_cache_size>
    <mark_cache_size>268435456</mark_cache_size>
    <path>$CH_DIR/data/</path>
    <tmp_path>$CH_DIR/tmp/</tmp_path>
    <user_files_path>$CH_DIR/user_files/</user_files_path>
    <format_schema_path>$CH_DIR/format_schemas/</format_schema_path>
    <users_config>$CH_DIR/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <umask>022</umask>
    <mlock_executable>false</mlock_executable>
    <remote_servers>
        <test_shard_localhost>
            <shard>
                <replica>
                    <host>$HOST</host>
                    <port>$CLICKHOUSE_PORT</port>
                </replica>
            </shard>
        </test_shard_localhost>
    </remote_servers>
    <builtin_dictionaries_reload_interval>3600</builtin_dictionaries_reload_interval>
    <max_session_timeout>3600</max_session_timeout>
    <default_session_timeout>60</default_session_timeout>
    <query_log>
        <database>system</database>
        <table>query_log</table>
        <partition_by>toYYYYMM(event_date)</partition_by>
        <flush_interval_milliseconds>7500</flush_interval_milliseconds>
    </query_log>
    <dictionaries_config>$CH_DIR/*_dictionary.xml</dictionaries_config>
    <max_table_size_to_drop>0</max_table_size_to_drop>
    <max_partition_size_to_drop>0</max_partition_size_to_drop>
</yandex>
EOF
    cat >"$CH_DIR/users.xml" <<EOF
<?xml version="1.0"?>
<!-- written by tests/harness/servers.sh -->
<yandex>
    <profiles>
        <default>
            <max_memory_usage>10000000000</max_memory_usage>
            <use_uncompressed_cache>0</use_uncompressed_cache>
            <load_balancing>random</load_balancing>
        </default>
        <readonly>
            <readonly>1</readonly>
        </readonly>
    </profiles>
    <users>
        <default>
            <password></password>
            <networks>
                <ip>127.0.0.1</ip>
                <ip>::1</ip>
            </networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
        <$TEST_USER>
            <password>$TEST_PASSWORD</password>
            <networks>
                <ip>127.0.0.1</ip>
                <ip>::1</ip>
            </networks>
            <profile>default</profile>
            <quota>default</quota>
        </$TEST_USER>
    </users>
    <quotas>
        <default>
            <interval>
                <duration>3600</duration>
                <queries>0</queries>
                <errors>0</errors>
                <result_rows>0</result_rows>
                <read_rows>0</read_rows>
                <execution_time>0</execution_time>
            </interval>
        </default>
    </quotas>
</yandex>
EOF
}

clickhouse_launch() {
    clickhouse_write_config
    rm -f "$CH_DIR/clickhouse.pid"
    : >"$CH_DIR/log/clickhouse-server.err.log"
    # --daemon forks; the pid file names the server process.
    (cd "$CH_DIR" && clickhouse-server --config-file="$CH_DIR/config.xml" \
        --pid-file="$CH_DIR/clickhouse.pid" --daemon >>"$CH_DIR/log/stdout.log" 2>&1 </dev/null 9>&-) \
        || fail clickhouse "clickhouse-server did not start" "${CH_LOGS[@]}"
}

ch_query() {
    clickhouse-client --host "$HOST" --port "$CLICKHOUSE_PORT" "$@"
}

clickhouse_wait() {
    local deadline=$((SECONDS + TIMEOUT)) dead_since=
    until [[ $(ch_query -q 'SELECT 1' 2>/dev/null) == 1 ]]; do
        if clickhouse_pid >/dev/null; then
            dead_since=
        elif [[ -z $dead_since ]]; then
            dead_since=$SECONDS
        elif ((SECONDS - dead_since >= 5)); then
            fail clickhouse "server exited during startup" "${CH_LOGS[@]}"
        fi
        ((SECONDS < deadline)) || fail clickhouse "no answer on port $CLICKHOUSE_PORT after ${TIMEOUT}s" "${CH_LOGS[@]}"
        sleep 0.3
    done
    [[ $(ch_query --user "$TEST_USER" --password "$TEST_PASSWORD" -q 'SELECT 1' 2>"$CH_DIR/log/login.err") == 1 ]] \
        || fail clickhouse "user $TEST_USER cannot log in" "$CH_DIR/log/login.err" "${CH_LOGS[@]}"
}

clickhouse_stop() {
    local pid
    if pid=$(clickhouse_pid); then
        stop_pid clickhouse "$pid" "$CLICKHOUSE_PORT"
    fi
    rm -f "$CH_DIR/clickhouse.pid"
}

# ------------------------------------------------------------- postgresql ---

PG_DIR=$HARNESS_DIR/postgresql
PG_DATA=$PG_DIR/data
PG_SOCK=$PG_DIR/run
PG_LOG=$PG_DIR/postgresql.log

pg_bindir() {
    local d
    d=$(printf '%s\n' /usr/lib/postgresql/*/bin | grep -v '\*' | sort -V | tail -n 1)
    [[ -n $d ]] || die "postgresql: no server binaries in /usr/lib/postgresql/*/bin"
    printf '%s\n' "$d"
}

# Run as the postgres user when we are root (the server refuses root).
pg_as() {
    if is_root; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

postgresql_pid() { pid_of "$PG_DATA/postmaster.pid" postgres; }

postgresql_launch() {
    local bin
    bin=$(pg_bindir)
    mkdir -p "$PG_DIR" "$PG_SOCK"
    if is_root; then
        chown postgres: "$PG_DIR" "$PG_SOCK"
        runuser -u postgres -- test -x "$PG_DIR" \
            || die "postgresql: the postgres user cannot reach $PG_DIR (choose an ALTCRAFT_HARNESS_DIR outside private home directories)"
    fi
    if [[ ! -s $PG_DATA/PG_VERSION ]]; then
        rm -rf "$PG_DATA"
        pg_as "$bin/initdb" -D "$PG_DATA" -U postgres -E UTF8 --locale=C.UTF-8 \
            --auth-local=trust --auth-host=scram-sha-256 --no-sync >"$PG_DIR/initdb.log" 2>&1 \
            || fail postgresql "initdb failed" "$PG_DIR/initdb.log"
    fi
    rm -f "$PG_DATA/postmaster.pid"
    # -W: don't wait here; postgresql_wait does.
    pg_as "$bin/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -W \
        -o "-p $POSTGRES_PORT -k $PG_SOCK -c listen_addresses=$HOST -c max_connections=200 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c password_encryption=scram-sha-256" \
        start >"$PG_DIR/pg_ctl.log" 2>&1 </dev/null 9>&- \
        || fail postgresql "pg_ctl start failed" "$PG_DIR/pg_ctl.log" "$PG_LOG"
}

postgresql_wait() {
    local bin deadline=$((SECONDS + TIMEOUT))
    bin=$(pg_bindir)
    until "$bin/pg_isready" -q -h "$HOST" -p "$POSTGRES_PORT" -d postgres; do
        ((SECONDS < deadline)) || fail postgresql "pg_isready failed for ${TIMEOUT}s" "$PG_LOG"
        sleep 0.3
    done
    # role and database (idempotent), as the superuser over the unix socket
    pg_as "$bin/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_SOCK" -p "$POSTGRES_PORT" -U postgres -d postgres \
        >"$PG_DIR/setup.log" 2>&1 <<EOF || fail postgresql "creating role/database failed" "$PG_DIR/setup.log"
DO \$\$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$TEST_USER') THEN
        CREATE ROLE $TEST_USER LOGIN CREATEDB PASSWORD '$TEST_PASSWORD';
    END IF;
END
\$\$;
SELECT 'CREATE DATABASE $TEST_DATABASE OWNER $TEST_USER'
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$TEST_DATABASE')\gexec
EOF
    # a real password login over TCP
    PGPASSWORD=$TEST_PASSWORD PGCONNECT_TIMEOUT=10 "$bin/psql" -X -A -t -h "$HOST" -p "$POSTGRES_PORT" \
        -U "$TEST_USER" -d "$TEST_DATABASE" -c 'SELECT 1' >"$PG_DIR/login.log" 2>&1 \
        || fail postgresql "user $TEST_USER cannot log in over TCP" "$PG_DIR/login.log" "$PG_LOG"
}

postgresql_stop() {
    local pid bin
    if pid=$(postgresql_pid); then
        bin=$(pg_bindir)
        pg_as "$bin/pg_ctl" -D "$PG_DATA" -m fast -w -t "$TIMEOUT" stop >/dev/null 2>&1 || true
        wait_gone "$pid" "$POSTGRES_PORT" 10 || stop_pid postgresql "$pid" "$POSTGRES_PORT"
    fi
}

# --------------------------------------------------------------- ferretdb ---

FDB_DIR=$HARNESS_DIR/ferretdb

ferretdb_pid() { pid_of "$FDB_DIR/ferretdb.pid" altcraft-ferretdb; }

ferretdb_launch() {
    [[ -x $FERRETDB_BIN ]] || build_ferretdb
    mkdir -p "$FDB_DIR/data"
    launch "$FDB_DIR/ferretdb.log" "$FERRETDB_BIN" -listen-addr "$HOST:$FERRETDB_PORT" \
        -handler sqlite -sqlite-url "file:$FDB_DIR/data/"
    echo "$LAUNCHED_PID" >"$FDB_DIR/ferretdb.pid"
}

# MongoDB wire protocol check: OP_MSG {ping: 1, $db: "admin"} -> ok: 1.0
mongo_ping() {
    command -v python3 >/dev/null || return 0
    python3 - "$1" "$2" <<'EOF'
import socket, struct, sys
def bson(items):
    body = b""
    for k, v in items:
        if isinstance(v, int):
            body += b"\x10" + k.encode() + b"\x00" + struct.pack("<i", v)
        else:
            e = v.encode() + b"\x00"
            body += b"\x02" + k.encode() + b"\x00" + struct.pack("<i", len(e)) + e
    return struct.pack("<i", len(body) + 5) + body + b"\x00"
payload = struct.pack("<I", 0) + b"\x00" + bson([("ping", 1), ("$db", "admin")])
msg = struct.pack("<iiii", 16 + len(payload), 1, 0, 2013) + payload
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
s.sendall(msg)
data = b""
while len(data) < 4 or len(data) < struct.unpack("<i", data[:4])[0]:
    chunk = s.recv(4096)
    if not chunk:
        break
    data += chunk
s.close()
# reply body must hold {ok: 1.0}
sys.exit(0 if b"\x01ok\x00" + struct.pack("<d", 1.0) in data else 1)
EOF
}

ferretdb_wait() {
    local deadline=$((SECONDS + TIMEOUT)) pid
    pid=$(cat "$FDB_DIR/ferretdb.pid" 2>/dev/null || true)
    until tcp_open "$FERRETDB_PORT"; do
        if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then
            fail ferretdb "server exited during startup" "$FDB_DIR/ferretdb.log"
        fi
        ((SECONDS < deadline)) || fail ferretdb "port $FERRETDB_PORT not open after ${TIMEOUT}s" "$FDB_DIR/ferretdb.log"
        sleep 0.2
    done
    mongo_ping "$HOST" "$FERRETDB_PORT" || fail ferretdb "no answer to a MongoDB ping" "$FDB_DIR/ferretdb.log"
}

ferretdb_stop() {
    local pid
    if pid=$(ferretdb_pid); then
        stop_pid ferretdb "$pid" "$FERRETDB_PORT"
    fi
    rm -f "$FDB_DIR/ferretdb.pid"
}

# external MongoDB given by ALTCRAFT_TEST_MONGODB_URI: "host port" if simple
mongodb_uri_hostport() {
    local re='^mongodb://([^@/]*@)?([A-Za-z0-9._-]+)(:([0-9]+))?/?([^,]*)$'
    if [[ $MONGODB_URI =~ $re ]]; then
        printf '%s %s\n' "${BASH_REMATCH[2]}" "${BASH_REMATCH[4]:-27017}"
        return 0
    fi
    return 1
}

# ------------------------------------------------------------------ slapd ---

SLAPD_DIR=$HARNESS_DIR/slapd
SLAPD_TLS=$SLAPD_DIR/tls
SLAPD_ROOT_DN=cn=root,$SLAPD_BASE
SLAPD_SERVICE_DN=cn=altcraft-reader,ou=services,$SLAPD_BASE
SLAPD_LOG=$SLAPD_DIR/slapd.log

slapd_pid() { pid_of "$SLAPD_DIR/slapd.pid" slapd; }

# A test CA and a server certificate for 127.0.0.1 and localhost, made once.
slapd_tls() {
    [[ -s $SLAPD_TLS/server.pem && -s $SLAPD_TLS/ca.pem ]] && return 0
    mkdir -p "$SLAPD_TLS"
    local log=$SLAPD_TLS/openssl.log
    (
        cd "$SLAPD_TLS"
        openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=altcraft test CA" \
            -keyout ca.key -out ca.pem -addext "basicConstraints=critical,CA:TRUE" \
            -addext "keyUsage=critical,keyCertSign,cRLSign"
        openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout server.key -out server.csr
        printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >server.ext
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 3650 \
            -extfile server.ext -out server.pem
        chmod 600 ca.key server.key
    ) >"$log" 2>&1 || fail slapd "making the test CA failed" "$log"
}

slapd_write_config() {
    mkdir -p "$SLAPD_DIR/data"
    local hash
    hash=$(slappasswd -s "$TEST_PASSWORD")
    cat >"$SLAPD_DIR/slapd.conf" <<EOF
# written by tests/harness/servers.sh
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload memberof
pidfile $SLAPD_DIR/slapd.pid
argsfile $SLAPD_DIR/slapd.args
TLSCACertificateFile $SLAPD_TLS/ca.pem
TLSCertificateFile $SLAPD_TLS/server.pem
TLSCertificateKeyFile $SLAPD_TLS/server.key
# a password is only ever sent over TLS (StartTLS or ldaps)
security simple_bind=128
disallow bind_anon

database mdb
suffix "$SLAPD_BASE"
rootdn "$SLAPD_ROOT_DN"
rootpw $hash
directory $SLAPD_DIR/data
maxsize 104857600
overlay memberof
access to attrs=userPassword by anonymous auth by * none
access to * by dn.exact="$SLAPD_SERVICE_DN" read by self read by * none
EOF
}

slapd_launch() {
    slapd_tls
    slapd_write_config
    rm -f "$SLAPD_DIR/slapd.pid"
    : >"$SLAPD_LOG"
    # -d 0: stay in the foreground (launch detaches it), logging nothing but errors
    launch "$SLAPD_LOG" /usr/sbin/slapd -d 0 -f "$SLAPD_DIR/slapd.conf" \
        -h "ldap://$HOST:$SLAPD_PORT/ ldaps://$HOST:$SLAPD_LDAPS_PORT/"
    echo "$LAUNCHED_PID" >"$SLAPD_DIR/launcher.pid"
}

# slapd_ldap TOOL ARGS...: an OpenLDAP client as the directory's root, over StartTLS
slapd_ldap() {
    local tool=$1
    shift
    LDAPTLS_CACERT=$SLAPD_TLS/ca.pem LDAPTLS_REQCERT=demand "$tool" -x -ZZ -H "ldap://$HOST:$SLAPD_PORT" \
        -D "$SLAPD_ROOT_DN" -w "$TEST_PASSWORD" "$@"
}

# The directory the tests sign in with, once (a directory that has its base keeps it).
# Every password is $TEST_PASSWORD.  memberOf is kept by the overlay, so groups come after
# their members.
slapd_seed() {
    if slapd_ldap ldapsearch -LLL -b "$SLAPD_BASE" -s base dn >/dev/null 2>&1; then
        return 0
    fi
    local user ou entries=$SLAPD_DIR/seed.ldif people=ou=people,$SLAPD_BASE
    {
        printf 'dn: %s\nobjectClass: dcObject\nobjectClass: organization\ndc: altcraft\no: altcraft test\n\n' "$SLAPD_BASE"
        for ou in people groups services; do
            printf 'dn: ou=%s,%s\nobjectClass: organizationalUnit\nou: %s\n\n' "$ou" "$SLAPD_BASE" "$ou"
        done
        printf 'dn: %s\nobjectClass: person\nobjectClass: simpleSecurityObject\ncn: altcraft-reader\nsn: reader\nuserPassword: %s\n\n' \
            "$SLAPD_SERVICE_DN" "$TEST_PASSWORD"
        for user in ldap-admin ldap-viewer ldap-outsider; do
            printf 'dn: uid=%s,%s\nobjectClass: inetOrgPerson\nuid: %s\ncn: %s\nsn: %s\nmail: %s@altcraft.test\nuserPassword: %s\n\n' \
                "$user" "$people" "$user" "$user" "$user" "$user" "$TEST_PASSWORD"
        done
        printf 'dn: cn=altcraft-admins,ou=groups,%s\nobjectClass: groupOfNames\ncn: altcraft-admins\nmember: uid=ldap-admin,%s\n\n' \
            "$SLAPD_BASE" "$people"
        printf 'dn: cn=altcraft-viewers,ou=groups,%s\nobjectClass: groupOfNames\ncn: altcraft-viewers\nmember: uid=ldap-viewer,%s\n\n' \
            "$SLAPD_BASE" "$people"
        printf 'dn: cn=staff,ou=groups,%s\nobjectClass: groupOfNames\ncn: staff\nmember: uid=ldap-outsider,%s\nmember: uid=ldap-admin,%s\n\n' \
            "$SLAPD_BASE" "$people" "$people"
    } >"$entries"
    slapd_ldap ldapadd -f "$entries" >"$SLAPD_DIR/seed.log" 2>&1 \
        || fail slapd "seeding the directory failed" "$SLAPD_DIR/seed.log" "$SLAPD_LOG"
}

slapd_wait() {
    local deadline=$((SECONDS + TIMEOUT)) launcher
    launcher=$(cat "$SLAPD_DIR/launcher.pid" 2>/dev/null || true)
    until tcp_open "$SLAPD_PORT" && tcp_open "$SLAPD_LDAPS_PORT"; do
        if [[ -n $launcher ]] && ! kill -0 "$launcher" 2>/dev/null; then
            fail slapd "server exited during startup" "$SLAPD_LOG"
        fi
        ((SECONDS < deadline)) || fail slapd "port $SLAPD_PORT not open after ${TIMEOUT}s" "$SLAPD_LOG"
        sleep 0.2
    done
    slapd_seed
    # a real StartTLS bind and search as the service account
    LDAPTLS_CACERT=$SLAPD_TLS/ca.pem LDAPTLS_REQCERT=demand ldapsearch -x -ZZ -H "ldap://$HOST:$SLAPD_PORT" \
        -D "$SLAPD_SERVICE_DN" -w "$TEST_PASSWORD" -LLL -b "ou=people,$SLAPD_BASE" "(uid=ldap-admin)" dn \
        >"$SLAPD_DIR/check.log" 2>&1 && grep -q '^dn: uid=ldap-admin' "$SLAPD_DIR/check.log" \
        || fail slapd "the service account cannot search over StartTLS" "$SLAPD_DIR/check.log" "$SLAPD_LOG"
}

slapd_stop() {
    local pid
    if pid=$(slapd_pid); then
        stop_pid slapd "$pid" "$SLAPD_PORT"
    fi
    rm -f "$SLAPD_DIR/slapd.pid" "$SLAPD_DIR/launcher.pid"
}

# ------------------------------------------------------------- dispatch ---

port_of() {
    case $1 in
        rabbitmq) echo "$RABBITMQ_PORT" ;;
        redis) echo "$REDIS_PORT" ;;
        clickhouse) echo "$CLICKHOUSE_PORT" ;;
        postgresql) echo "$POSTGRES_PORT" ;;
        ferretdb) echo "$FERRETDB_PORT" ;;
        slapd) echo "$SLAPD_PORT" ;;
    esac
}

# is_running NAME: our process alive and its port open
is_running() {
    "${1}_pid" >/dev/null && tcp_open "$(port_of "$1")"
}

write_harness_json() {
    local mongo hp
    if [[ -n $MONGODB_URI ]]; then
        mongo="{\"uri\": $(json_str "$MONGODB_URI")"
        if hp=$(mongodb_uri_hostport); then
            mongo+=", \"host\": $(json_str "${hp% *}"), \"port\": ${hp#* }"
        fi
        mongo+=', "engine": "mongodb"}'
    else
        mongo="{\"uri\": \"mongodb://$HOST:$FERRETDB_PORT/\", \"host\": \"$HOST\", \"port\": $FERRETDB_PORT, \"engine\": \"ferretdb\"}"
    fi
    local tmp=$HARNESS_DIR/harness.json.tmp.$$
    cat >"$tmp" <<EOF
{"mongodb": $mongo,
 "rabbitmq": {"host": "$HOST", "port": $RABBITMQ_PORT, "vhost": "$TEST_VHOST", "user": "$TEST_USER", "password": "$TEST_PASSWORD"},
 "redis": {"host": "$HOST", "port": $REDIS_PORT},
 "clickhouse": {"host": "$HOST", "port": $CLICKHOUSE_PORT, "http_port": $CLICKHOUSE_HTTP_PORT, "user": "$TEST_USER", "password": "$TEST_PASSWORD"},
 "postgresql": {"host": "$HOST", "port": $POSTGRES_PORT, "user": "$TEST_USER", "password": "$TEST_PASSWORD", "database": "$TEST_DATABASE"},
 "slapd": {"host": "$HOST", "port": $SLAPD_PORT, "ldaps_port": $SLAPD_LDAPS_PORT, "base": "$SLAPD_BASE", "ca_file": "$SLAPD_TLS/ca.pem",
           "bind_dn": "$SLAPD_SERVICE_DN", "password": "$TEST_PASSWORD"}}
EOF
    mv -f "$tmp" "$HARNESS_DIR/harness.json"
}

do_start() {
    local name port
    do_install "$@"
    # Launch everything that is not running, then wait for each in turn, so
    # the slow starters (RabbitMQ, ClickHouse) boot in parallel.
    for name in "$@"; do
        if [[ $name == ferretdb && -n $MONGODB_URI ]]; then
            continue
        fi
        port=$(port_of "$name")
        if "${name}_pid" >/dev/null; then
            continue # running, or still starting: just wait for it below
        fi
        if tcp_open "$port"; then
            fail "$name" "port $HOST:$port is in use by a process this script did not start"
        fi
        "${name}_launch"
    done
    for name in "$@"; do
        if [[ $name == ferretdb && -n $MONGODB_URI ]]; then
            local hp
            if hp=$(mongodb_uri_hostport); then
                tcp_open "${hp#* }" "${hp% *}" \
                    || fail mongodb "ALTCRAFT_TEST_MONGODB_URI=$MONGODB_URI: ${hp% *}:${hp#* } does not accept connections"
                log "ok   mongodb  ${hp% *}:${hp#* } (ALTCRAFT_TEST_MONGODB_URI; ferretdb not started)"
            else
                log "ok   mongodb  $MONGODB_URI (ALTCRAFT_TEST_MONGODB_URI; not checked, ferretdb not started)"
            fi
            continue
        fi
        "${name}_wait"
        log "ok   $name  $HOST:$(port_of "$name")"
    done
    write_harness_json
}

do_stop() {
    local name
    for name in "$@"; do
        if [[ $name == ferretdb && -n $MONGODB_URI ]]; then
            # still stop a FerretDB that we started before the URI was set
            ferretdb_pid >/dev/null || continue
        fi
        "${name}_stop"
        log "stopped  $name"
    done
}

do_status() {
    local name rc=0 hp
    for name in "${ALL_SERVERS[@]}"; do
        if [[ $name == ferretdb && -n $MONGODB_URI ]]; then
            if hp=$(mongodb_uri_hostport) && ! tcp_open "${hp#* }" "${hp% *}"; then
                printf '%-11s stopped  %s (ALTCRAFT_TEST_MONGODB_URI)\n' mongodb "$MONGODB_URI"
                rc=3
            else
                printf '%-11s running  %s (ALTCRAFT_TEST_MONGODB_URI)\n' mongodb "$MONGODB_URI"
            fi
            continue
        fi
        if is_running "$name"; then
            printf '%-11s running  %s:%s pid %s\n' "$name" "$HOST" "$(port_of "$name")" "$("${name}_pid")"
        else
            printf '%-11s stopped\n' "$name"
            rc=3
        fi
    done
    return "$rc"
}

main() {
    local cmd=${1:-}
    [[ -n $cmd ]] || { usage >&2; exit 2; }
    shift
    case $cmd in
        -h | --help | help) usage; exit 0 ;;
        rabbitmqctl) rmqctl "$@"; exit $? ;;  # the test node's CLI (e.g. a vhost per test)
        install | start | stop | restart | status) ;;
        *) printf '%s: unknown command %s\n\n' "$PROG" "$cmd" >&2; usage >&2; exit 2 ;;
    esac

    local names=() n
    for n in "$@"; do
        case $n in
            -h | --help) usage; exit 0 ;;
        esac
        names+=("$(canonical_name "$n")")
    done
    ((${#names[@]})) || names=("${ALL_SERVERS[@]}")

    mkdir -p "$HARNESS_DIR"
    chmod 755 "$HARNESS_DIR" 2>/dev/null || true

    if [[ $cmd == status ]]; then
        do_status
        exit $?
    fi

    # one start/stop/install at a time (parallel test runners may all call start)
    exec 9>"$HARNESS_DIR/.lock"
    flock -w 900 9 || die "another $PROG holds $HARNESS_DIR/.lock"

    case $cmd in
        install) do_install "${names[@]}" ;;
        start) do_start "${names[@]}" ;;
        stop) do_stop "${names[@]}" ;;
        restart) do_stop "${names[@]}"; do_start "${names[@]}" ;;
    esac
}

main "$@"
