#!/usr/bin/env bash
# make demo: build the example service and the tracer, run the service under
# the tracer with the console exporter, send a few requests, show the spans.
# Needs root (or CAP_BPF + CAP_PERFMON) for the uprobes.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bin
go build -o bin/tracer ./tracer
go build -o bin/example-service ./tracer/testdata/service

out=$(mktemp) err=$(mktemp)
trap 'rm -f "$out" "$err"' EXIT
OTEL_TRACES_EXPORTER=console OTEL_BSP_SCHEDULE_DELAY=200 ./bin/tracer -- ./bin/example-service >"$out" 2>"$err" &
tracer=$!
for _ in $(seq 100); do grep -q '^listening on ' "$out" && break; sleep 0.1; done
if ! grep -q '^listening on ' "$out"; then
  echo "the traced service did not start:" >&2; cat "$err" >&2; exit 1
fi
addr=$(sed -n 's/^listening on //p' "$out" | head -1)
echo "== service listening on $addr (traced by tracer pid $tracer)"
for path in /items/1 /items/2 /fail; do
  printf '== GET %s -> ' "$path"; curl -s -o /dev/null -w '%{http_code}\n' "http://$addr$path"
done
sleep 1
kill -TERM "$tracer"; wait "$tracer" || true
echo "== tracer log"; cat "$err"
echo "== spans (one JSON object per line)"; grep '^{' "$out"
