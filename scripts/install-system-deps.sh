#!/usr/bin/env bash
# Install the Debian 12 packages that scripts/ceph-dev.sh and the integration tests need:
# a single-node Ceph 16.2 (mon, mgr, osd, mds, radosgw, CLI, ceph-fuse for bench/accuracy.py's
# memory-mapped runs on CephFS, Python bindings), fio, chromium (the
# report test opens a report in it, headless) and iproute2 (scripts/with-ray-head.sh brings up loopback).
# Idempotent and quiet: does nothing when every package is installed; otherwise runs
# `apt-get update` once and installs the missing set (~30 s, ~270 MB). Needs root or sudo.
set -euo pipefail

PACKAGES=(ceph-mon ceph-mgr ceph-osd ceph-mds radosgw ceph-common ceph-fuse python3-rados python3-rbd python3-cephfs fio chromium iproute2)

missing=()
for pkg in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    [[ "$status" == "install ok installed" ]] || missing+=("$pkg")
done

if ((${#missing[@]} == 0)); then
    echo "install-system-deps: all ${#PACKAGES[@]} packages already installed"
    exit 0
fi

SUDO=()
if ((EUID != 0)); then
    command -v sudo >/dev/null || { echo "install-system-deps: needs root (or sudo) to run apt-get" >&2; exit 1; }
    SUDO=(sudo)
fi

log=$(mktemp -t install-system-deps.XXXXXX.log)
echo "install-system-deps: installing ${missing[*]} (log: $log)"
start=$SECONDS
if ! "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >"$log" 2>&1 ||
    ! "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends "${PACKAGES[@]}" >>"$log" 2>&1; then
    tail -n 20 "$log" >&2
    echo "install-system-deps: apt-get failed; full log: $log" >&2
    exit 1
fi
rm -f "$log"
echo "install-system-deps: done in $((SECONDS - start)) s"
