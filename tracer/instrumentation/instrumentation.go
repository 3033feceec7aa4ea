// Package instrumentation is the registry of the tracer's instrumentations:
// one explicit list, in the order they are attached, like the openers list
// of cmd/internal/objfile. Adding an instrumentation is one package under
// this folder (its Go declaration, its BPF C and the generated objects
// beside it), one line in All, and its fields in fieldset/.
package instrumentation

import (
	"github.com/offsetdb/offsetdb/tracer/instrumentation/databasesql"
	"github.com/offsetdb/offsetdb/tracer/instrumentation/goredis"
	"github.com/offsetdb/offsetdb/tracer/instrumentation/goroutine"
	grpcclient "github.com/offsetdb/offsetdb/tracer/instrumentation/grpc/client"
	grpcserver "github.com/offsetdb/offsetdb/tracer/instrumentation/grpc/server"
	"github.com/offsetdb/offsetdb/tracer/instrumentation/kafkago"
	httpclient "github.com/offsetdb/offsetdb/tracer/instrumentation/nethttp/client"
	httpserver "github.com/offsetdb/offsetdb/tracer/instrumentation/nethttp/server"
	"github.com/offsetdb/offsetdb/tracer/instrumentation/pgx"
	"github.com/offsetdb/offsetdb/tracer/instrumentation/routes"
	"github.com/offsetdb/offsetdb/tracer/uprobe"
)

// All returns a fresh copy of every instrumentation's declaration.
//
// Server-side instrumentations come first: within one goroutine they set
// the active span that client-side ones read, and the order documents
// that, though attachment order does not matter to the BPF side.
func All() []uprobe.Instrumentation {
	return []uprobe.Instrumentation{
		httpserver.Instrumentation(),
		// Routers run inside a server request and hand it their route.
		routes.Gin(),
		routes.Echo(),
		routes.Chi(),
		routes.GorillaMux(),
		httpclient.Instrumentation(),
		grpcserver.Instrumentation(),
		grpcclient.Instrumentation(),
		databasesql.Instrumentation(),
		goredis.Instrumentation(),
		pgx.Instrumentation(),
		kafkago.Instrumentation(),
		goroutine.Instrumentation(),
	}
}
