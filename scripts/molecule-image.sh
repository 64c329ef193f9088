#!/usr/bin/env bash
# Build the systemd container image the Molecule scenarios run on, from Debian's archive with
# debootstrap (no image registry is needed), and start Docker's engine first if it is not
# running (on a host whose PID 1 is not systemd it is started by hand).
#
#   scripts/molecule-image.sh            build the image unless it exists
#   scripts/molecule-image.sh --rebuild  build it again
#   scripts/molecule-image.sh --dockerd  only make sure dockerd runs
#
# Environment: ALTCRAFT_TEST_IMAGE (default altcraft-test/debian-systemd:bookworm),
# ALTCRAFT_DEBIAN_MIRROR (default: the first Debian mirror in this host's apt sources).
set -euo pipefail

IMAGE=${ALTCRAFT_TEST_IMAGE:-altcraft-test/debian-systemd:bookworm}
SUITE=bookworm
DOCKERD_LOG=${ALTCRAFT_DOCKERD_LOG:-/var/log/dockerd.log}
PROG=$(basename "$0")

info() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() { printf '%s: error: %s\n' "$PROG" "$*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "run as root (debootstrap and dockerd need it)"

apt_install() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    ((${#missing[@]})) || return 0
    info "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -q -y -o DPkg::Lock::Timeout=300 update >&2
    apt-get -q -y -o DPkg::Lock::Timeout=300 install --no-install-recommends "${missing[@]}" >&2
}

docker_up() { docker info >/dev/null 2>&1; }

ensure_dockerd() {
    apt_install docker.io
    docker_up && return 0
    if [[ -d /run/systemd/system ]]; then
        systemctl start docker
    else
        info "starting dockerd by hand (log: $DOCKERD_LOG)"
        setsid nohup dockerd >>"$DOCKERD_LOG" 2>&1 </dev/null &
    fi
    local deadline=$((SECONDS + 60))
    until docker_up; do
        ((SECONDS < deadline)) || die "dockerd did not come up in 60 s; see $DOCKERD_LOG"
        sleep 0.5
    done
}

debian_mirror() {
    if [[ -n ${ALTCRAFT_DEBIAN_MIRROR:-} ]]; then
        printf '%s\n' "$ALTCRAFT_DEBIAN_MIRROR"
        return
    fi
    local m
    m=$(grep -hsE '^(URIs:|deb )' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list \
        /etc/apt/sources.list 2>/dev/null | grep -v security | grep -oE 'https?://[^ ]+' | head -n 1 || true)
    printf '%s\n' "${m:-http://deb.debian.org/debian}"
}

build_image() {
    apt_install debootstrap
    local mirror t0=$SECONDS
    ROOTFS=$(mktemp -d /tmp/altcraft-rootfs.XXXXXX)
    trap 'rm -rf "$ROOTFS"' EXIT
    local rootfs=$ROOTFS
    mirror=$(debian_mirror)
    info "debootstrap $SUITE from $mirror"
    debootstrap --variant=minbase \
        --include=systemd,systemd-sysv,python3,python3-apt,dbus,iproute2,ca-certificates,procps \
        "$SUITE" "$rootfs" "$mirror" >/tmp/altcraft-debootstrap.log 2>&1 \
        || { tail -n 30 /tmp/altcraft-debootstrap.log >&2; die "debootstrap failed"; }
    # the same apt sources inside, with updates and security
    cat >"$rootfs/etc/apt/sources.list" <<SRC
deb $mirror $SUITE main
deb $mirror $SUITE-updates main
deb ${mirror%/debian}/debian-security $SUITE-security main
SRC
    # units that make no sense in a container
    local u
    for u in systemd-remount-fs.service systemd-udevd.service systemd-udev-trigger.service \
        getty@tty1.service console-getty.service systemd-firstboot.service; do
        ln -sf /dev/null "$rootfs/etc/systemd/system/$u"
    done
    rm -f "$rootfs"/var/cache/apt/archives/*.deb
    tar -C "$rootfs" -c . | docker import \
        -c 'ENV container=docker' -c 'CMD ["/lib/systemd/systemd"]' \
        - "$IMAGE" >/dev/null
    info "built $IMAGE in $((SECONDS - t0)) s"
}

case ${1:-} in
    -h | --help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    --dockerd) ensure_dockerd; exit 0 ;;
    --rebuild) ensure_dockerd; build_image ;;
    "") ensure_dockerd
        if docker image inspect "$IMAGE" >/dev/null 2>&1; then
            info "$IMAGE exists (--rebuild to build it again)"
        else
            build_image
        fi ;;
    *) die "unknown argument: $1 (see --help)" ;;
esac
