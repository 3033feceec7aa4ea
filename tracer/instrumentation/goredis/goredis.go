// Package goredis instruments go-redis v9 clients
// (github.com/redis/go-redis/v9): one client span per command and per
// pipeline or MULTI/EXEC transaction a *redis.Client sends.
//
// It probes, with the BPF programs of goredis.c, (*baseClient).process
// (processStartingAt from v9.23.0, where process is inlined),
// processPipeline and processTxPipeline, which every command and pipeline
// of a Client (and of a Conn, Tx or Pipeline made from it) goes through
// after its hooks, and proto.(*Writer).WriteArgs, which writes each
// command to the connection on the calling goroutine: the span gets the
// command names and their argument counts from it (db.query.text
// "SET ? ?"), never the values. Their signatures have not changed in v9
// (processStartingAt has two more arguments after the command, unread).
//
// A span is a child of the calling goroutine's active span (the HTTP or
// gRPC request being handled), else the root of a new trace.
// server.address, server.port and db.namespace (the database number) come
// from the client's Options. redis.Nil, the answer for a missing key, is
// not a failure. Cluster and ring clients, which send through per-node
// clients, get a span per node call; the commands a cluster pipeline
// sends from goroutines of its own are not named.
package goredis

import (
	"github.com/offsetdb/offsetdb/offsets"
	"github.com/offsetdb/offsetdb/tracer/uprobe"
)

// The BPF objects, compiled for both targets and committed, come from
// goredis.c and the shared headers in bpf/; the build needs clang and
// libbpf-dev.
//go:generate go tool bpf2go -tags linux -target amd64,arm64 -type db_event goredis goredis.c -- -I../../../bpf -O2 -mcpu=v3 -Wall -Werror -I/usr/include/x86_64-linux-gnu -I/usr/include/aarch64-linux-gnu

// Symbols the instrumentation probes.
const (
	Process           = "github.com/redis/go-redis/v9.(*baseClient).process"
	ProcessStartingAt = "github.com/redis/go-redis/v9.(*baseClient).processStartingAt"
	ProcessPipeline   = "github.com/redis/go-redis/v9.(*baseClient).processPipeline"
	ProcessTxPipeline = "github.com/redis/go-redis/v9.(*baseClient).processTxPipeline"
	WriteArgs         = "github.com/redis/go-redis/v9/internal/proto.(*Writer).WriteArgs"
)

// Instrumentation returns the declaration of the go-redis instrumentation,
// for uprobe.Attach. Each call returns a new copy.
//
// Every probe is optional, so that a program that never pipelines (the
// linker then drops those functions) still gets its command spans; the
// command probe is bound to the versions where the function is not
// inlined (process before v9.23.0, processStartingAt from it).
func Instrumentation() uprobe.Instrumentation {
	f := offsets.MustParseFieldID
	return uprobe.Instrumentation{
		Name: "go-redis",
		Probes: []uprobe.Probe{
			// From v9.23.0 process is a one-line call of processStartingAt,
			// inlined into its callers.
			{Symbol: Process, Entry: "redis_command", Return: "redis_return", Versions: "<v9.23.0", Optional: true},
			{Symbol: ProcessStartingAt, Entry: "redis_command", Return: "redis_return", Versions: ">=v9.23.0", Optional: true},
			{Symbol: ProcessPipeline, Entry: "redis_pipeline", Return: "redis_return", Optional: true},
			{Symbol: ProcessTxPipeline, Entry: "redis_pipeline", Return: "redis_return", Optional: true},
			{Symbol: WriteArgs, Entry: "redis_write_args", Optional: true},
		},
		Fields: []uprobe.Field{
			{ID: f("runtime.g.goid"), Const: "off_g_goid"},
			{ID: f("github.com/redis/go-redis/v9.baseClient.opt"), Const: "off_baseClient_opt", IfResolved: true},
			{ID: f("github.com/redis/go-redis/v9.Options.Addr"), Const: "off_Options_Addr", IfResolved: true},
			{ID: f("github.com/redis/go-redis/v9.Options.DB"), Const: "off_Options_DB", IfResolved: true},
		},
		Spec:   spec,
		PIDAt:  recordPIDAt,
		Decode: decode,
	}
}
