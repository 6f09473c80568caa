#!/usr/bin/env bash
# make interop: starts `python -m server` on a free loopback port, runs the Go client
# ($GO_CLIENT, built by make interop-go) and the Node client's tests (tests/interop/node,
# `node --test`) against it with CHUNKWISE_ADDRESS, stops the server. Both run even when the
# first fails; the exit status is non-zero when either did.
set -euo pipefail
cd "$(dirname "$0")/../.."
python=${PYTHON:-.venv/bin/python}
go_client=${GO_CLIENT:-build/interop-go/bin/chunkwise-interop}
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
export CHUNKWISE_ADDRESS=$address
failed=
echo "chunkwise server on $address; running the Go client"
"$go_client" || failed="$failed go"
echo "running the Node tests"
(cd tests/interop/node && node --test) || failed="$failed node"
if [ -n "$failed" ]; then
    echo "failed:$failed; server stderr:" >&2
    cat "$logs/stderr" >&2
    exit 1
fi
