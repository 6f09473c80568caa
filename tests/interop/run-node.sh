#!/usr/bin/env bash
# make interop: starts `python -m server` on a free loopback port, runs the Node client's
# tests (tests/interop/node, `node --test`) against it with CHUNKWISE_ADDRESS, stops the server.
# Needs node >= 18 and tests/interop/node/node_modules (make interop runs npm ci first).
set -euo pipefail
cd "$(dirname "$0")/../.."
python=${PYTHON:-.venv/bin/python}
logs=$(mktemp -d)
"$python" -m server --host 127.0.0.1 --port 0 >"$logs/stdout" 2>"$logs/stderr" &
server=$!
stop() {
    kill -TERM "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
    rm -rf "$logs"
}
trap stop EXIT
address=
for _ in $(seq 600); do  # up to 60 s: a busy machine can be slow to start it
    address=$(sed -n 's/^chunkwise listening on \([^ ]*\).*/\1/p' "$logs/stdout")
    [ -n "$address" ] && break
    if ! kill -0 "$server" 2>/dev/null; then
        echo "the server exited before listening:" >&2
        cat "$logs/stderr" >&2
        exit 1
    fi
    sleep 0.1
done
if [ -z "$address" ]; then
    echo "the server printed no listening line within 60 s" >&2
    exit 1
fi
echo "chunkwise server on $address; running the Node tests"
cd tests/interop/node
status=0
CHUNKWISE_ADDRESS=$address node --test || status=$?
if [ "$status" -ne 0 ]; then
    echo "server stderr:" >&2
    cat "$logs/stderr" >&2
fi
exit "$status"
