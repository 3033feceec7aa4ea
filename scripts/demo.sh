#!/usr/bin/env bash
# make demo: three copies of the chain service (tracer/testdata/chain), each
# built with another Go release and the first one stripped, traced by ONE
# `tracer --exe 'demo-*'` with the console exporter; a few requests cross the
# services (a chain, a fan-out from goroutines, a failing hop), and the spans
# are printed as one trace tree per request.
# Needs root (or CAP_BPF + CAP_PERFMON) for the uprobes, and the module proxy
# once: two older Go toolchains are fetched and cached in
# ~/.cache/offsetdb-test/toolchains (scripts/demo/main.go).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bin
go build -o bin/tracer ./tracer
go build -o bin/demo ./scripts/demo

tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

# The stripped service is the entry point: a stripped binary cannot read
# incoming trace context yet (docs/tracer.md, Trace context), so it starts
# every trace, and the others continue it.
echo "== building the services (tracer/testdata/chain)"
rm -rf bin/demo-services
./bin/demo build -out bin/demo-services go1.20.14:stripped go1.22.12 >"$tmp/built"
names=()
while read -r name release strip; do
  names+=("$name")
  printf '   %s  %s  %s\n' "$name" "$release" "$strip"
done <"$tmp/built"

# One tracer for every process named demo-*, started before them.
OTEL_TRACES_EXPORTER=console OTEL_BSP_SCHEDULE_DELAY=200 \
  ./bin/tracer --exe 'demo-*' >"$tmp/spans" 2>"$tmp/tracer.log" &
tracer=$!
pids+=("$tracer")
tracer_log() { echo "== tracer log" >&2; cat "$tmp/tracer.log" >&2; }
for _ in $(seq 100); do
  grep -q 'watching for processes' "$tmp/tracer.log" && break
  kill -0 "$tracer" 2>/dev/null || break
  sleep 0.1
done
if ! grep -q 'watching for processes' "$tmp/tracer.log"; then
  echo "the tracer did not start (it needs root, or CAP_BPF and CAP_PERFMON):" >&2; tracer_log; exit 1
fi
echo "== tracer pid $tracer watching for demo-*"

addrs=()
for name in "${names[@]}"; do
  ./bin/demo-services/"$name" >"$tmp/$name.out" 2>"$tmp/$name.err" &
  pid=$!
  pids+=("$pid")
  for _ in $(seq 100); do
    grep -q '^listening on ' "$tmp/$name.out" && grep -q "msg=attached pid=$pid" "$tmp/tracer.log" && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if ! grep -q '^listening on ' "$tmp/$name.out"; then
    echo "the traced service $name did not start:" >&2; cat "$tmp/$name.err" >&2; tracer_log; exit 1
  fi
  if ! grep -q "msg=attached pid=$pid" "$tmp/tracer.log"; then
    echo "the tracer did not attach to $name (pid $pid):" >&2; tracer_log; exit 1
  fi
  addr=$(sed -n 's/^listening on //p' "$tmp/$name.out" | head -1)
  addrs+=("$addr")
  echo "== $name listening on $addr, traced"
done
a=${addrs[0]} b=${addrs[1]} c=${addrs[2]}

request() {
  printf '== GET %s -> ' "$1"
  curl -s -o /dev/null -w '%{http_code}\n' "http://$a$1"
}
request "/hop/1?next=$b,$c"      # ${names[0]} -> ${names[1]} -> ${names[2]}
request "/fan/2?next=$c&n=3"     # three goroutines of ${names[0]} each call ${names[2]}
request "/hop/3?next=$b,127.0.0.1:1" # ${names[1]} cannot reach its next hop: errors up the chain
sleep 1
kill -TERM "$tracer"; wait "$tracer" || true
cp "$tmp/spans" bin/demo-spans.jsonl
cp "$tmp/tracer.log" bin/demo-tracer.log
echo "== tracer log (whole: bin/demo-tracer.log)"
missing='instrumentation runs without field'
grep -v "$missing" "$tmp/tracer.log" || true
if n=$(grep -c "$missing" "$tmp/tracer.log"); then
  echo "   ($n lines \"$missing...\" left out: the stripped ${names[0]} has no DWARF for the fields" \
    "that wait in fieldset/std.pending; each line says what is lost)"
fi
echo "== traces (one per request; the spans, one JSON object per line, are in bin/demo-spans.jsonl)"
./bin/demo tree "$tmp/spans"
