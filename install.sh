#!/usr/bin/env bash
# Install (or reconfigure) the Altcraft platform: preflight that changes nothing, a private
# virtual environment with pinned Ansible, then playbooks/site.yml on an inventory
# (inventories/local - all-in-one on this host - unless -i names another). Safe to rerun:
# a second run changes nothing. Run `./install.sh --help` for the options.
set -euo pipefail

PROG=$(basename "$0")
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)

# Pinned Ansible: the newest line that runs on Debian 12's Python 3.11. The roles use
# ansible.builtin only, so no collections are needed.
ANSIBLE_CORE_VERSION=2.19.14

# ------------------------------------------------------------------- options ---
INVENTORY=${ALTCRAFT_INVENTORY:-local}
VENV=${ALTCRAFT_ANSIBLE_VENV:-/opt/akd/ansible-venv}
PREFLIGHT_ONLY=${ALTCRAFT_PREFLIGHT_ONLY:-0}
SKIP_PREFLIGHT=${ALTCRAFT_SKIP_PREFLIGHT:-0}
VERBOSE=${ALTCRAFT_VERBOSE:-0}
TAGS=${ALTCRAFT_TAGS:-}
LIMIT=${ALTCRAFT_LIMIT:-}
LOG=${ALTCRAFT_INSTALL_LOG:-/var/log/altcraft-install.log}
DOCUMENTS_ENGINE=${ALTCRAFT_DOCUMENTS_ENGINE:-}
KV_ENGINE=${ALTCRAFT_KV_ENGINE:-}
SSDB_ENGINE=${ALTCRAFT_SSDB_ENGINE:-}
CLICKHOUSE_SOURCE=${ALTCRAFT_CLICKHOUSE_SOURCE:-}
WHEEL=${ALTCRAFT_WHEEL:-}
# Ansible runs on the system's Python, the one the hosts run too: the platform's wheelhouse
# is downloaded by it, and dependency markers (python_full_version) follow the interpreter.
PYTHON=${ALTCRAFT_PYTHON:-/usr/bin/python3}

usage() {
    cat <<EOF
Usage: $PROG [OPTIONS]

Installs the Altcraft platform with Ansible: preflight (changes nothing), a private venv
with ansible-core $ANSIBLE_CORE_VERSION, then playbooks/site.yml. Rerunning reconfigures and
changes nothing when nothing changed. Every option has an environment-variable twin.

Options:
  -i, --inventory NAME|PATH   inventories/NAME (local, basic, failsafe) or a directory
                              holding hosts.yml              [ALTCRAFT_INVENTORY, default: local]
      --documents-engine E    mongodb | ferretdb             [ALTCRAFT_DOCUMENTS_ENGINE]
      --kv-engine E           kvrocks | redis                [ALTCRAFT_KV_ENGINE]
      --ssdb-engine E         ssdb | redis                   [ALTCRAFT_SSDB_ENGINE]
      --clickhouse-source S   vendor | debian                [ALTCRAFT_CLICKHOUSE_SOURCE]
                              (default for each: the inventory's group_vars/all)
      --wheel PATH            install this altcraft wheel instead of building one from
                              this checkout                  [ALTCRAFT_WHEEL]
      --venv PATH             Ansible's private venv         [ALTCRAFT_ANSIBLE_VENV, default: $VENV]
      --preflight-only        run the checks, change nothing [ALTCRAFT_PREFLIGHT_ONLY=1]
      --skip-preflight        skip this script's checks (Ansible's preflight play still runs)
                                                             [ALTCRAFT_SKIP_PREFLIGHT=1]
  -t, --tags TAGS             only these tags (e.g. nginx_configure)  [ALTCRAFT_TAGS]
  -l, --limit HOSTS           only these hosts               [ALTCRAFT_LIMIT]
      --log PATH              also write Ansible's output here [ALTCRAFT_INSTALL_LOG, default: $LOG]
  -v, --verbose               more Ansible output            [ALTCRAFT_VERBOSE=1]
  -h, --help                  this help

Preflight (one "FAIL <what>: <why>" line per problem, exit 1):
  root; Debian 12; the inventory and its engine choices; for the local inventory also
  RAM, cores and disk against the scheme's minimums, free ports (first install) and the
  Go toolchain for FerretDB; reachable package sources (Debian's archive, PyPI, and the
  Go module proxy when FerretDB is built).

Go: the compiled tracking front (trkfront, native/trkfront) is built on this machine (the
Ansible controller) with the Go on PATH, in /usr/local/go/bin or Debian's golang-go; when
there is none, golang-go is installed (apt) before the playbook runs.

Afterwards: the panel URL, where the generated admin password is, and \`akd status\`.
See docs/operations.md.
EOF
}

die_usage() { printf '%s: %s (see --help)\n' "$PROG" "$1" >&2; exit 2; }
need_arg() { [[ $# -ge 2 && -n $2 ]] || die_usage "$1 needs a value"; }

while [[ $# -gt 0 ]]; do
    case $1 in
        -i | --inventory) need_arg "$@"; INVENTORY=$2; shift 2 ;;
        --documents-engine) need_arg "$@"; DOCUMENTS_ENGINE=$2; shift 2 ;;
        --kv-engine) need_arg "$@"; KV_ENGINE=$2; shift 2 ;;
        --ssdb-engine) need_arg "$@"; SSDB_ENGINE=$2; shift 2 ;;
        --clickhouse-source) need_arg "$@"; CLICKHOUSE_SOURCE=$2; shift 2 ;;
        --wheel) need_arg "$@"; WHEEL=$2; shift 2 ;;
        --venv) need_arg "$@"; VENV=$2; shift 2 ;;
        --preflight-only) PREFLIGHT_ONLY=1; shift ;;
        --skip-preflight) SKIP_PREFLIGHT=1; shift ;;
        -t | --tags) need_arg "$@"; TAGS=$2; shift 2 ;;
        -l | --limit) need_arg "$@"; LIMIT=$2; shift 2 ;;
        --log) need_arg "$@"; LOG=$2; shift 2 ;;
        -v | --verbose) VERBOSE=1; shift ;;
        -h | --help) usage; exit 0 ;;
        *) die_usage "unknown option: $1" ;;
    esac
done

if [[ $INVENTORY == */* || -d $INVENTORY ]]; then
    INV_DIR=$(cd "$INVENTORY" 2>/dev/null && pwd -P || printf '%s' "$INVENTORY")
else
    INV_DIR=$ROOT/inventories/$INVENTORY
fi
INV_NAME=$(basename "$INV_DIR")

# ----------------------------------------------------------------- preflight ---
FAILS=0
fail() { printf 'FAIL %s\n' "$*" >&2; FAILS=$((FAILS + 1)); }
ok() { printf 'ok   %s\n' "$*"; }

# scheme_var NAME: the value of NAME in the inventory's group_vars/all/*.yml (simple
# "name: value" lines; quotes and comments stripped).
scheme_var() {
    local f v
    for f in "$INV_DIR"/group_vars/all/*.yml "$INV_DIR"/group_vars/all.yml; do
        [[ -f $f ]] || continue
        v=$(sed -n "s/^$1:[[:space:]]*\([^#]*\).*$/\1/p" "$f" | tail -n 1)
        v=${v%"${v##*[![:space:]]}"}
        v=${v#\"}; v=${v%\"}; v=${v#\'}; v=${v%\'}
        if [[ -n $v ]]; then
            printf '%s\n' "$v"
            return 0
        fi
    done
    return 1
}

# check_choice VAR VALUE CHOICE...: FAIL unless VALUE is one of the choices
check_choice() {
    local var=$1 value=$2 c
    shift 2
    for c in "$@"; do
        [[ $value == "$c" ]] && return 0
    done
    fail "$var: '$value' is not one of: $*"
    return 1
}

# url_reachable URL: any HTTP answer within 10 s (a 404 still proves the source is reachable)
# url_reachable URL: any HTTP answer counts (a 404 still proves the source is there). With
# the system Python, which the install needs anyway: a minimal Debian has no curl.
url_reachable() {
    "$PYTHON" - "$1" 2>/dev/null <<'PY'
import sys
import urllib.error
import urllib.request

try:
    urllib.request.urlopen(sys.argv[1], timeout=10).close()
except urllib.error.HTTPError:
    pass
except Exception:
    sys.exit(1)
PY
}

# listeners PORT: local addresses listening on TCP PORT
listeners() { ss -Htln "sport = :$1" 2>/dev/null | awk '{print $4}'; }

port_conflict() {
    local ip=$1 port=$2 addr
    while read -r addr; do
        [[ -n $addr ]] || continue
        case ${addr%:*} in
            "$ip" | 0.0.0.0 | '*' | '[::]' | '[::ffff:0.0.0.0]') return 0 ;;
        esac
    done < <(listeners "$port")
    return 1
}

preflight() {
    printf '== preflight (changes nothing)\n'
    if [[ $(id -u) -eq 0 ]]; then ok "root"; else fail "root: run $PROG as root (it installs packages and services)"; fi

    local os_id="" os_version=""
    if [[ -r /etc/os-release ]]; then
        os_id=$(. /etc/os-release && printf '%s' "${ID:-}")
        os_version=$(. /etc/os-release && printf '%s' "${VERSION_ID:-}")
    fi
    if [[ $os_id == debian && $os_version == 12 ]]; then
        ok "os: Debian 12"
    else
        fail "os: ${os_id:-unknown} ${os_version:-} is not supported (Debian 12 is)"
    fi
    if [[ -x $PYTHON ]]; then ok "python: $PYTHON"; else
        fail "python: $PYTHON not found (apt-get install python3, or name one in ALTCRAFT_PYTHON)"; fi

    if [[ ! -f $INV_DIR/hosts.yml ]]; then
        fail "inventory: no hosts.yml in $INV_DIR (known: $(cd "$ROOT/inventories" && printf '%s ' */ | tr -d /))"
        [[ -z $DOCUMENTS_ENGINE ]] || check_choice altcraft_documents_engine "$DOCUMENTS_ENGINE" mongodb ferretdb || true
        [[ -z $KV_ENGINE ]] || check_choice altcraft_kv_engine "$KV_ENGINE" kvrocks redis || true
        [[ -z $SSDB_ENGINE ]] || check_choice altcraft_ssdb_engine "$SSDB_ENGINE" ssdb redis || true
        [[ -z $CLICKHOUSE_SOURCE ]] || check_choice altcraft_clickhouse_source "$CLICKHOUSE_SOURCE" vendor debian || true
        return
    fi
    ok "inventory: $INV_DIR"
    if [[ -n $WHEEL ]]; then
        if [[ -f $WHEEL && $WHEEL == *.whl ]]; then ok "wheel: $WHEEL"; else fail "wheel: $WHEEL is not a wheel file"; fi
    fi

    local documents kv ssdb clickhouse
    documents=${DOCUMENTS_ENGINE:-$(scheme_var altcraft_documents_engine || true)}
    kv=${KV_ENGINE:-$(scheme_var altcraft_kv_engine || true)}
    ssdb=${SSDB_ENGINE:-$(scheme_var altcraft_ssdb_engine || true)}
    clickhouse=${CLICKHOUSE_SOURCE:-$(scheme_var altcraft_clickhouse_source || true)}
    local engines_ok=1
    check_choice altcraft_documents_engine "$documents" mongodb ferretdb || engines_ok=0
    check_choice altcraft_kv_engine "$kv" kvrocks redis || engines_ok=0
    check_choice altcraft_ssdb_engine "$ssdb" ssdb redis || engines_ok=0
    check_choice altcraft_clickhouse_source "$clickhouse" vendor debian || engines_ok=0
    ((engines_ok)) && ok "engines: documents=$documents kv=$kv ssdb=$ssdb clickhouse=$clickhouse"

    local local_install=0
    if [[ $INV_NAME == local ]] || grep -q 'ansible_connection: local' "$INV_DIR/hosts.yml"; then
        local_install=1
    fi

    if ((local_install)); then
        local mem_mb cpus disk_gb min_mem min_cpus min_disk
        min_mem=$(scheme_var altcraft_min_memory_mb || echo 3000)
        min_cpus=$(scheme_var altcraft_min_cpus || echo 2)
        min_disk=$(scheme_var altcraft_min_disk_gb || echo 10)
        mem_mb=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)
        cpus=$(nproc)
        disk_gb=$(df -P -BG /opt 2>/dev/null | awk 'NR == 2 {gsub("G", "", $4); print $4}')
        if ((mem_mb >= min_mem)); then ok "memory: $mem_mb MB"; else fail "memory: $mem_mb MB, the $INV_NAME scheme needs $min_mem MB"; fi
        if ((cpus >= min_cpus)); then ok "cpus: $cpus"; else fail "cpus: $cpus, the $INV_NAME scheme needs $min_cpus"; fi
        if ((${disk_gb:-0} >= min_disk)); then ok "disk: $disk_gb GB free under /opt"; else fail "disk: ${disk_gb:-?} GB free under /opt, the $INV_NAME scheme needs $min_disk GB"; fi

        # Free ports, on a first install only: on a rerun our own services hold them.
        if [[ -e /opt/akd/config/main.json ]]; then
            ok "ports: not checked (rerun: /opt/akd/config/main.json exists)"
        else
            local spec ip port busy=0
            for spec in 127.0.0.1:27017 127.0.0.1:9000 127.0.0.1:8123 127.0.0.1:9009 127.0.0.1:5672 \
                127.0.0.1:25672 127.0.0.1:6666 127.0.0.1:4410 127.0.0.1:4420 127.0.0.1:4430 127.0.0.1:4440 \
                127.0.0.1:8801 127.0.0.1:80 127.0.0.1:443 127.0.0.2:80 127.0.0.2:443 127.0.0.3:80 127.0.0.3:443; do
                ip=${spec%:*} port=${spec##*:}
                if port_conflict "$ip" "$port"; then
                    fail "port $spec: already in use ($(listeners "$port" | tr '\n' ' '))"
                    busy=1
                fi
            done
            ((busy)) || ok "ports: free"
        fi

        if [[ $documents == ferretdb ]]; then
            if command -v go >/dev/null 2>&1 || [[ -x /usr/local/go/bin/go ]]; then
                ok "go: $( (command -v go || echo /usr/local/go/bin/go) | head -n 1) (FerretDB is built with it)"
            else
                fail "go: the Go toolchain is needed to build FerretDB (documents engine ferretdb) and was not found"
            fi
        fi
    fi

    # Package sources: Debian's archive (every URI apt uses), PyPI, the Go module proxy.
    local uri unreachable=0
    while read -r uri; do
        [[ -n $uri ]] || continue
        if ! url_reachable "$uri/"; then
            fail "package source: $uri (apt) is not reachable"
            unreachable=1
        fi
    done < <(grep -hsE '^(URIs:|deb )' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list \
        /etc/apt/sources.list 2>/dev/null | grep -oE 'https?://[^ ]+' | sort -u)
    local index=${PIP_INDEX_URL:-$(python3 -m pip config get global.index-url 2>/dev/null || true)}
    index=${index:-https://pypi.org/simple}
    if url_reachable "${index%/}/ansible-core/"; then ok "package source: $index (pip)"; else
        fail "package source: $index (pip) is not reachable"; unreachable=1; fi
    if [[ $documents == ferretdb ]]; then
        local proxy
        proxy=$( (go env GOPROXY 2>/dev/null || /usr/local/go/bin/go env GOPROXY 2>/dev/null || echo https://proxy.golang.org) | cut -d, -f1)
        [[ $proxy == http* ]] || proxy=https://proxy.golang.org
        if url_reachable "$proxy/github.com/!ferret!d!b/!ferret!d!b/@v/list"; then ok "package source: $proxy (Go modules)"; else
            fail "package source: $proxy (Go modules, for FerretDB) is not reachable"; unreachable=1; fi
    fi
    ((unreachable)) || ok "package sources: reachable"
}

if [[ $SKIP_PREFLIGHT != 1 ]]; then
    preflight
    if ((FAILS > 0)); then
        printf '%s: preflight found %d problem(s); nothing was changed\n' "$PROG" "$FAILS" >&2
        exit 1
    fi
fi
if [[ $PREFLIGHT_ONLY == 1 ]]; then
    printf '%s: preflight passed; nothing was changed (--preflight-only)\n' "$PROG"
    exit 0
fi

# ------------------------------------------------------------ Ansible venv ---
printf '\n== Ansible (%s)\n' "$VENV"
if ! "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get -q -y -o DPkg::Lock::Timeout=300 install --no-install-recommends python3-venv
fi
# Go on the controller for trkfront (roles/common/tasks/go_build.yml looks on PATH, then in
# /usr/local/go/bin and /usr/lib/go/bin): Debian's golang-go when there is none.
if ! command -v go >/dev/null 2>&1 && [[ ! -x /usr/local/go/bin/go && ! -x /usr/lib/go/bin/go ]]; then
    printf 'go: not found; installing Debian'"'"'s golang-go (trkfront is built with it)\n'
    DEBIAN_FRONTEND=noninteractive apt-get -q -y -o DPkg::Lock::Timeout=300 install --no-install-recommends golang-go
fi
STAMP=$VENV/.altcraft-ansible-core
want="$ANSIBLE_CORE_VERSION $("$PYTHON" -c 'import platform; print(platform.python_version())')"
if [[ ! -x $VENV/bin/ansible-playbook || $(cat "$STAMP" 2>/dev/null) != "$want" ]]; then
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q -U pip
    "$VENV/bin/python" -m pip install -q "ansible-core==$ANSIBLE_CORE_VERSION"
    printf '%s\n' "$want" >"$STAMP"
fi
version=$("$VENV/bin/ansible-playbook" --version)
printf '%s\n' "${version%%$'\n'*}"

# ---------------------------------------------------------------- site.yml ---
printf '\n== playbooks/site.yml on %s\n' "$INV_DIR"
args=(-i "$INV_DIR/hosts.yml" "$ROOT/playbooks/site.yml")
[[ -z $DOCUMENTS_ENGINE ]] || args+=(-e "altcraft_documents_engine=$DOCUMENTS_ENGINE")
[[ -z $KV_ENGINE ]] || args+=(-e "altcraft_kv_engine=$KV_ENGINE")
[[ -z $SSDB_ENGINE ]] || args+=(-e "altcraft_ssdb_engine=$SSDB_ENGINE")
[[ -z $CLICKHOUSE_SOURCE ]] || args+=(-e "altcraft_clickhouse_source=$CLICKHOUSE_SOURCE")
[[ -z $WHEEL ]] || args+=(-e "altcraft_wheel=$(realpath "$WHEEL")")
[[ -z $TAGS ]] || args+=(--tags "$TAGS")
[[ -z $LIMIT ]] || args+=(--limit "$LIMIT")
[[ $VERBOSE != 1 ]] || args+=(-v)
mkdir -p "$(dirname "$LOG")"
printf -- '---- %s %s\n' "$(date -Is)" "$*" >>"$LOG"
set +e
ANSIBLE_CONFIG=$ROOT/ansible.cfg ANSIBLE_FORCE_COLOR=${ANSIBLE_FORCE_COLOR:-0} \
    "$VENV/bin/ansible-playbook" "${args[@]}" 2>&1 | tee -a "$LOG"
rc=${PIPESTATUS[0]}
set -e
if ((rc != 0)); then
    printf '\n%s: the playbook failed (exit %d); the output is also in %s\n' "$PROG" "$rc" "$LOG" >&2
    exit "$rc"
fi

# ------------------------------------------------------------------ summary ---
printf '\n== done\n'
if [[ $INV_NAME == local ]]; then
    printf 'Panel:          https://127.0.0.1/ (nginx-sites; self-signed certificate until you configure one)\n'
    printf 'API:            https://127.0.0.1/api/health\n'
    printf 'Admin password: /opt/akd/config/admin.password (login: admin; root only, 0600)\n'
    printf 'Health check:   %s/bin/ansible-playbook -i %s %s\n\n' "$VENV" "$INV_DIR/hosts.yml" "$ROOT/playbooks/healthcheck.yml"
    printf '$ akd status\n'
    /usr/local/bin/akd status || true
else
    printf 'Panel:          https://<the nginx-sites address of %s>/\n' "$INV_NAME"
    printf 'Admin password: /opt/akd/config/admin.password on the control server (root only, 0600)\n'
    printf 'Status:         run `akd status` on each control server\n'
fi
