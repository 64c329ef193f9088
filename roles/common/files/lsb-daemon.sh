# shellcheck shell=bash
# LSB init script body for the platform's daemons on hosts whose PID 1 is not systemd
# (containers, hosts running sysvinit). Installed by the common role as
# /usr/local/lib/altcraft/lsb-daemon.sh; an /etc/init.d/<name> script written by a role sets
# the variables below and sources this file. On systemd hosts the roles write units instead.
#
#   NAME          service name (pid file, messages)
#   DAEMON        absolute path of the program; it must stay in the foreground
#   DAEMON_ARGS   bash array of its arguments
#   RUN_AS        user:group to run as (empty: root)
#   PIDFILE       default /run/$NAME.pid (written here, the program need not write it)
#   LOGFILE       its stdout/stderr (default /var/log/$NAME.log)
#   CHDIR         working directory (default /)
#   CHECK         bash array: configuration test run before start and reload (optional)
#   WAIT_HOST, WAIT_PORT  after start, wait until this TCP port accepts (optional)
#   START_TIMEOUT seconds to wait for it (default 60)
#   RELOAD_SIGNAL signal for reload (empty: reload = restart)
#   STOP_RETRY    start-stop-daemon schedule (default TERM/30/KILL/5)
#   DAEMON_ENV    bash array of VAR=value for the program's environment (optional)

: "${PIDFILE:=/run/$NAME.pid}" "${LOGFILE:=/var/log/$NAME.log}" "${CHDIR:=/}"
[ -n "${DAEMON_ENV+x}" ] || DAEMON_ENV=()
[ -n "${CHECK+x}" ] || CHECK=()
: "${START_TIMEOUT:=60}" "${STOP_RETRY:=TERM/30/KILL/5}" "${WAIT_HOST:=127.0.0.1}"

# The process is matched by its pid file and its user, not by --exec: reading another user's
# /proc/<pid>/exe needs CAP_SYS_PTRACE, which root inside a container usually lacks.
if [ -n "${RUN_AS:-}" ]; then
    lsb_ssd() { start-stop-daemon --quiet --pidfile "$PIDFILE" --user "${RUN_AS%%:*}" "$@"; }
else
    lsb_ssd() { start-stop-daemon --quiet --pidfile "$PIDFILE" --exec "$DAEMON" "$@"; }
fi

lsb_running() { lsb_ssd --status; }

lsb_port_open() {
    timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$WAIT_HOST" "$WAIT_PORT" 2>/dev/null
}

lsb_check() {
    if [ "${#CHECK[@]}" -gt 0 ] && ! "${CHECK[@]}" >/dev/null 2>&1; then
        echo "$NAME: configuration test failed: ${CHECK[*]}" >&2
        "${CHECK[@]}" >&2 || true
        return 6
    fi
}

lsb_start() {
    if lsb_running; then
        echo "$NAME is running"
        return 0
    fi
    lsb_check || return $?
    mkdir -p "$(dirname "$PIDFILE")" "$(dirname "$LOGFILE")"
    touch "$LOGFILE"
    [ -z "${RUN_AS:-}" ] || chown "$RUN_AS" "$LOGFILE"
    # shellcheck disable=SC2086
    if ! env "${DAEMON_ENV[@]}" start-stop-daemon --start --quiet --background --make-pidfile \
        --pidfile "$PIDFILE" --chdir "$CHDIR" --output "$LOGFILE" \
        ${RUN_AS:+--chuid "$RUN_AS"} --exec "$DAEMON" -- "${DAEMON_ARGS[@]}"; then
        echo "$NAME: failed to start (see $LOGFILE)" >&2
        return 1
    fi
    local deadline=$((SECONDS + START_TIMEOUT))
    while :; do
        if ! lsb_running; then
            sleep 0.5
            lsb_running || { echo "$NAME: exited during startup (see $LOGFILE)" >&2; return 1; }
        fi
        if [ -z "${WAIT_PORT:-}" ]; then
            sleep 1
            lsb_running || { echo "$NAME: exited during startup (see $LOGFILE)" >&2; return 1; }
            break
        fi
        lsb_port_open && break
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "$NAME: port $WAIT_HOST:$WAIT_PORT not open after ${START_TIMEOUT}s (see $LOGFILE)" >&2
            return 1
        fi
        sleep 0.3
    done
    echo "$NAME started"
}

lsb_stop() {
    lsb_ssd --stop --retry="$STOP_RETRY"
    local rc=$?
    rm -f "$PIDFILE"
    [ "$rc" -le 1 ] || { echo "$NAME: failed to stop" >&2; return 1; }
    echo "$NAME stopped"
}

lsb_reload() {
    lsb_check || return $?
    if [ -z "${RELOAD_SIGNAL:-}" ]; then
        lsb_stop && lsb_start
        return $?
    fi
    lsb_running || { echo "$NAME is not running" >&2; return 7; }
    lsb_ssd --stop --signal "$RELOAD_SIGNAL" && echo "$NAME reloaded"
}

lsb_main() {
    case "${1:-}" in
        start) lsb_start ;;
        stop) lsb_stop ;;
        restart | force-reload) lsb_stop && lsb_start ;;
        reload) lsb_reload ;;
        status)
            lsb_running
            case $? in
                0) echo "$NAME is running"; return 0 ;;
                4) echo "$NAME: status unknown"; return 4 ;;
                *) echo "$NAME is not running"; return 3 ;;
            esac ;;
        *) echo "Usage: $0 {start|stop|restart|reload|force-reload|status}" >&2; return 2 ;;
    esac
}
