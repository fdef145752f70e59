#!/usr/bin/env bash
# Run a command next to a throwaway Ray head, inside a fresh network namespace with only loopback
# up, so the head (whose servers bind every interface) is reachable on 127.0.0.1 alone. The head's
# address is in RAY_HEAD (127.0.0.1:PORT); it is stopped, by its process group, when the command ends.
#   scripts/with-ray-head.sh CPUS -- COMMAND ...
# Needs root (or unprivileged user namespaces) for `unshare -n`, and Ray (pip install 'trainio[ray]')
# in the Python that $PYTHON names (default python3).
set -euo pipefail
if [[ "${1:-}" != "--inside" ]]; then
    exec unshare -n "$0" --inside "$@"
fi
shift
cpus=$1; shift; [[ "${1:-}" == "--" ]] && shift
ip link set lo up
port=6380
tmp=$(mktemp -d /tmp/ray-head.XXXXXX)
export RAY_USAGE_STATS_ENABLED=0 RAY_HEAD="127.0.0.1:$port"
setsid "${PYTHON:-python3}" -m ray.scripts.scripts start --head --block --node-ip-address=127.0.0.1 --port="$port" --num-cpus="$cpus" \
    --include-dashboard=false --disable-usage-stats --object-store-memory=200000000 \
    --temp-dir="$tmp" >"$tmp/head.log" 2>&1 &
head=$!
stop() { kill -KILL -- "-$head" 2>/dev/null || true; wait "$head" 2>/dev/null || true; rm -rf "$tmp"; }
trap stop EXIT
for _ in $(seq 300); do
    (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    kill -0 "$head" 2>/dev/null || { cat "$tmp/head.log" >&2; exit 1; }
    sleep 0.1
done
"$@"
