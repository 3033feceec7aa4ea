// Package dbconv describes the calls the database client instrumentations
// (database/sql, go-redis) see as client spans, following the database
// semantic conventions (semconv v1.43.0: db.system.name, db.query.text,
// db.query.summary, db.operation.name, db.namespace, server.address,
// server.port, error.type).
package dbconv

import (
	"net"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/offsetdb/offsetdb/tracer/spans"
)

// Op is the kind of call a record describes (DB_OP_* in bpf/db.h).
type Op uint8

// The calls the instrumentations see.
const (
	OpQuery         Op = 1 // database/sql: a DB, Conn or Tx Query
	OpExec          Op = 2 // database/sql: a DB, Conn or Tx Exec
	OpStmtQuery     Op = 3 // database/sql: a prepared statement's Query
	OpStmtExec      Op = 4 // database/sql: a prepared statement's Exec
	OpCommit        Op = 5 // database/sql: Tx.Commit
	OpRollback      Op = 6 // database/sql: Tx.Rollback
	OpRedisCommand  Op = 7 // go-redis: one command
	OpRedisPipeline Op = 8 // go-redis: a pipeline or MULTI/EXEC transaction
	OpPgxQuery      Op = 9 // pgx: Conn.Query (QueryRow, a pool's Query)
	OpPgxExec       Op = 10
	OpPgxCopy       Op = 11 // pgx: Conn.CopyFrom; Query holds the table
	OpBegin         Op = 12 // database/sql: an attempt of DB.BeginTx, or Conn.BeginTx
	OpPgxBatch      Op = 13 // pgx: Conn.SendBatch; Query holds the first query, Commands each query's start
)

// Command is a Redis command as a span may show it: its name and how many
// arguments it had, never their values.
type Command struct {
	Name string
	Args int // arguments after the name; -1 when more than the record counts
}

// Event is one finished database call, decoded from the eBPF ring buffer.
type Event struct {
	Op           Op
	Start, End   time.Time
	TraceID      trace.TraceID
	SpanID       trace.SpanID
	ParentSpanID trace.SpanID // zero for a root span
	Unsampled    bool         // the parent's W3C trace-flags were not sampled

	Failed   bool // the call returned an error
	NotFound bool // go-redis: the call returned redis.Nil (no such key): not a failure
	// Status is the code of the server's last error response during the
	// call: PostgreSQL's SQLSTATE ("42P01"), MySQL's error number
	// ("1146"); empty when none was seen (the call failed in the client,
	// or its driver's responses are not read: lib/pq, others).
	Status string

	// Driver is the name the database/sql driver registered ("postgres",
	// "pgx", "mysql"); empty when unknown.
	Driver string
	// Addr is what the instrumentation knows of the server: the part of a
	// DSN after its credentials, go-redis' Options.Addr or pgx's
	// Config.Host; empty if unknown.
	Addr string
	// Port and Namespace are pgx's Config.Port and Config.Database; 0
	// and empty for the others.
	Port      int
	Namespace string
	// Query is the query text as the application passed it, its first
	// 255 bytes; QueryCut says it was longer.
	Query    string
	QueryCut bool
	// Commands are the Redis commands written, the first few of
	// NumCommands; DBIndex is the client's database number, -1 if unknown.
	Commands    []Command
	NumCommands int
	DBIndex     int
	// SameText says every query of a pgx batch is Query (the same
	// string); Commands then hold the start of each (their operations).
	SameText bool
}

// systems maps the names database/sql drivers register to db.system.name.
var systems = map[string]attribute.KeyValue{
	"postgres":         semconv.DBSystemNamePostgreSQL, // github.com/lib/pq
	"pgx":              semconv.DBSystemNamePostgreSQL, // github.com/jackc/pgx stdlib
	"pgx/v5":           semconv.DBSystemNamePostgreSQL,
	"cloudsqlpostgres": semconv.DBSystemNamePostgreSQL,
	"mysql":            semconv.DBSystemNameMySQL, // github.com/go-sql-driver/mysql
	"sqlite3":          semconv.DBSystemNameSQLite,
	"sqlite":           semconv.DBSystemNameSQLite,
	"sqlserver":        semconv.DBSystemNameMicrosoftSQLServer,
	"mssql":            semconv.DBSystemNameMicrosoftSQLServer,
	"godror":           semconv.DBSystemNameOracleDB,
	"oracle":           semconv.DBSystemNameOracleDB,
	"clickhouse":       semconv.DBSystemNameClickHouse,
}

// System returns db.system.name for a database/sql driver name: other_sql
// for a driver it does not know or an unknown one.
func System(driver string) attribute.KeyValue {
	if kv, ok := systems[driver]; ok {
		return kv
	}
	return semconv.DBSystemNameOtherSQL
}

// Describe fills out with the client span of ev.
//
// SQL: the name is db.query.summary, made of the query's first keyword and
// the table it names ("SELECT items"), or BEGIN / COMMIT / ROLLBACK (a
// database/sql transaction's, which have no text: db.operation.name),
// else the system. Redis: the name is db.operation.name, the command
// ("GET") or, for a pipeline, "BATCH GET" when every command is the same
// and "BATCH" otherwise; db.query.text has each command's name and a "?" per
// argument. A failed call is an error whose error.type and
// db.response.status_code are the server's error code (Status) when one
// was seen, as the database conventions ask; else error.type is _OTHER
// (the Go error's type is not read). redis.Nil is not a failure.
func Describe(ev *Event, out *spans.Span) {
	out.Kind = trace.SpanKindClient
	out.Start, out.End = ev.Start, ev.End
	out.TraceID, out.SpanID, out.ParentSpanID = ev.TraceID, ev.SpanID, ev.ParentSpanID
	out.Unsampled = ev.Unsampled
	attrs := out.Attributes[:0]
	switch ev.Op {
	case OpRedisCommand, OpRedisPipeline:
		attrs = describeRedis(ev, out, attrs)
	default:
		attrs = describeSQL(ev, out, attrs)
	}
	out.Attributes = attrs
	switch {
	case ev.Failed && ev.Status != "":
		out.Attributes = append(out.Attributes, semconv.DBResponseStatusCode(ev.Status))
		out.SetError(semconv.ErrorTypeKey.String(ev.Status), "")
	case ev.Failed:
		out.SetError(semconv.ErrorTypeOther, "")
	}
}

// attrTruncatedQuery marks a span whose db.query.text is the start of a
// longer text (the record holds 255 bytes), as offsetdb.truncated marks
// cut URL parts on HTTP spans: a cut is never silent.
var attrTruncatedQuery = spans.TruncatedKey.StringSlice([]string{"db.query.text"})

func describeSQL(ev *Event, out *spans.Span, attrs []attribute.KeyValue) []attribute.KeyValue {
	system := System(ev.Driver)
	pgx := ev.Op == OpPgxQuery || ev.Op == OpPgxExec || ev.Op == OpPgxCopy || ev.Op == OpPgxBatch
	if pgx {
		system = semconv.DBSystemNamePostgreSQL
	}
	attrs = append(attrs, system)
	out.Name = system.Value.AsString()
	switch ev.Op {
	case OpBegin:
		out.Name = "BEGIN"
		attrs = append(attrs, semconv.DBOperationName("BEGIN"))
	case OpCommit:
		out.Name = "COMMIT"
		attrs = append(attrs, semconv.DBOperationName("COMMIT"))
	case OpRollback:
		out.Name = "ROLLBACK"
		attrs = append(attrs, semconv.DBOperationName("ROLLBACK"))
	case OpPgxCopy:
		// COPY FROM STDIN: no query text was passed, the operation and
		// the table name it (db.query.summary "COPY hits").
		out.Name = "COPY"
		attrs = append(attrs, semconv.DBOperationName("COPY"))
		if ev.Query != "" {
			out.Name = "COPY " + ev.Query
			attrs = append(attrs, semconv.DBCollectionName(ev.Query), semconv.DBQuerySummary(out.Name))
		}
	}
	if ev.Op == OpPgxBatch && ev.NumCommands > 1 {
		attrs = describeBatch(ev, out, attrs)
	} else if ev.Query != "" && ev.Op != OpPgxCopy {
		attrs = appendQuery(attrs, ev, out, "")
	}
	host, port, ns := "", 0, ""
	switch {
	case pgx:
		host, port, ns = ev.Addr, ev.Port, ev.Namespace
	case system == semconv.DBSystemNamePostgreSQL:
		host, port, ns = postgresServer(ev.Addr)
	case system == semconv.DBSystemNameMySQL:
		host, port, ns = mysqlServer(ev.Addr)
	}
	if ns != "" {
		attrs = append(attrs, semconv.DBNamespace(ns))
	}
	return appendServer(attrs, host, port)
}

// describeBatch names a batch of queries as the database conventions
// say: db.operation.name "BATCH" and the operation of its queries when
// all have the same ("BATCH INSERT"), db.operation.batch.size, and, when
// every query is the same text, that text and db.query.summary "BATCH
// INSERT hits" (the span's name). A batch of different texts has no
// db.query.text: the record holds the first text only, not the whole
// concatenation the conventions ask for.
func describeBatch(ev *Event, out *spans.Span, attrs []attribute.KeyValue) []attribute.KeyValue {
	op := ""
	if ev.NumCommands <= len(ev.Commands) {
		for i, c := range ev.Commands {
			kw := ""
			if f := strings.Fields(c.Name); len(f) > 0 && len(f[0]) < len(c.Name) {
				kw = strings.ToUpper(f[0]) // a whole word, not cut by the record
			}
			if _, known := summaryOps[kw]; !known || (i > 0 && kw != op) {
				op = ""
				break
			}
			op = kw
		}
	}
	name := "BATCH"
	if op != "" {
		name += " " + op
	}
	out.Name = name
	attrs = append(attrs, semconv.DBOperationName(name), semconv.DBOperationBatchSize(ev.NumCommands))
	if ev.SameText && ev.Query != "" {
		attrs = appendQuery(attrs, ev, out, "BATCH ")
	}
	return attrs
}

// appendQuery adds ev's query text, marked when the record cut it, and,
// when the text can be summarised, db.query.summary prefix+summary, which
// also names out.
func appendQuery(attrs []attribute.KeyValue, ev *Event, out *spans.Span, prefix string) []attribute.KeyValue {
	attrs = append(attrs, semconv.DBQueryText(ev.Query))
	if ev.QueryCut {
		attrs = append(attrs, attrTruncatedQuery)
	}
	if s := Summary(ev.Query); s != "" {
		out.Name = prefix + s
		attrs = append(attrs, semconv.DBQuerySummary(out.Name))
	}
	return attrs
}

func appendServer(attrs []attribute.KeyValue, host string, port int) []attribute.KeyValue {
	if host != "" {
		attrs = append(attrs, semconv.ServerAddress(host))
		if port > 0 {
			attrs = append(attrs, semconv.ServerPort(port))
		}
	}
	return attrs
}

func describeRedis(ev *Event, out *spans.Span, attrs []attribute.KeyValue) []attribute.KeyValue {
	attrs = append(attrs, semconv.DBSystemNameRedis)
	op := ""
	var text strings.Builder
	for i, c := range ev.Commands {
		name := strings.ToUpper(c.Name)
		switch {
		case i == 0:
			op = name
		case op != name:
			op = ""
		}
		if i > 0 {
			text.WriteString("; ")
		}
		text.WriteString(name)
		if c.Args < 0 {
			text.WriteString(" ...")
		}
		for range max(c.Args, 0) {
			text.WriteString(" ?")
		}
	}
	if ev.NumCommands > len(ev.Commands) {
		if len(ev.Commands) > 0 {
			text.WriteString("; ")
		}
		text.WriteString("...")
		op = ""
	}
	if ev.Op == OpRedisPipeline {
		if op != "" {
			op = "BATCH " + op
		} else {
			op = "BATCH"
		}
		attrs = append(attrs, semconv.DBOperationBatchSize(ev.NumCommands))
	}
	out.Name = "redis"
	if op != "" {
		out.Name = op
		attrs = append(attrs, semconv.DBOperationName(op))
	}
	if text.Len() > 0 {
		attrs = append(attrs, semconv.DBQueryText(text.String()))
	}
	if ev.DBIndex >= 0 {
		attrs = append(attrs, semconv.DBNamespace(strconv.Itoa(ev.DBIndex)))
	}
	host, port := spans.SplitHostPort(ev.Addr)
	return appendServer(attrs, host, port)
}

// summaryOps are the statements Summary names; others have no summary.
var summaryOps = map[string]string{
	"SELECT": "FROM", "DELETE": "FROM", "INSERT": "INTO", "REPLACE": "INTO", "UPDATE": "",
	"CREATE": "", "DROP": "", "ALTER": "", "TRUNCATE": "", "BEGIN": "", "COMMIT": "", "ROLLBACK": "",
	"WITH": "", "SET": "", "SHOW": "", "CALL": "", "EXPLAIN": "",
}

// Summary returns a low-cardinality summary of a SQL query, for
// db.query.summary and the span name: its first keyword, upper-cased, and
// for SELECT, DELETE, INSERT, REPLACE and UPDATE the table it names
// ("SELECT items", "INSERT hits"); "" for text that starts with no SQL
// keyword it knows. It reads no more than the first two keywords and the
// table: literals in the query never reach the summary.
func Summary(query string) string {
	fields := strings.Fields(query)
	if len(fields) == 0 {
		return ""
	}
	op := strings.ToUpper(fields[0])
	after, ok := summaryOps[op]
	if !ok {
		return ""
	}
	table := ""
	switch {
	case op == "UPDATE" && len(fields) > 1:
		table = fields[1]
	case after != "":
		for i := 1; i+1 < len(fields); i++ {
			if strings.EqualFold(fields[i], after) {
				table = fields[i+1]
				break
			}
		}
	}
	table = strings.TrimRight(table, ",;)")
	if table == "" || !isIdentifier(table) {
		return op
	}
	return op + " " + table
}

// isIdentifier reports whether s is a (possibly qualified or quoted) table
// name and not a subquery, a placeholder or a literal.
func isIdentifier(s string) bool {
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '.', r == '"', r == '`':
		default:
			return false
		}
	}
	return s[0] < '0' || s[0] > '9'
}

// postgresServer reads host, port and database from the server part of a
// PostgreSQL DSN: a URL's "host:port/db?..." (its credentials already cut
// off by the BPF program) or the keyword/value form "host=h port=p
// dbname=d ...". Other keys, such as password, are never read.
func postgresServer(addr string) (host string, port int, db string) {
	if keywordValue(addr) {
		for _, kv := range strings.Fields(addr) {
			k, v, _ := strings.Cut(kv, "=")
			v = strings.Trim(v, "'")
			switch k {
			case "host":
				host = v
			case "port":
				port, _ = strconv.Atoi(v)
			case "dbname":
				db = v
			}
		}
		return host, port, db
	}
	addr, _, _ = strings.Cut(cutScheme(addr), "?")
	hostport, db, _ := strings.Cut(addr, "/")
	hostport, _, _ = strings.Cut(hostport, ",") // the first of several hosts
	host, port = spans.SplitHostPort(hostport)
	return host, port, db
}

// keywordValue reports whether a PostgreSQL DSN is of the keyword/value
// form: its first word is key=value with a plain key.
func keywordValue(dsn string) bool {
	fields := strings.Fields(dsn)
	if len(fields) == 0 {
		return false
	}
	k, _, ok := strings.Cut(fields[0], "=")
	return ok && k != "" && !strings.ContainsAny(k, "/:?@")
}

// mysqlServer reads host, port and database from the server part of a
// go-sql-driver/mysql DSN, "tcp(host:port)/db?...", "unix(/path)/db" or
// "/db" (the credentials already cut off by the BPF program).
func mysqlServer(addr string) (host string, port int, db string) {
	addr, _, _ = strings.Cut(addr, "?")
	i := strings.LastIndex(addr, "/")
	if i < 0 {
		return "", 0, ""
	}
	server, db := addr[:i], addr[i+1:]
	if open := strings.Index(server, "("); open >= 0 && strings.HasSuffix(server, ")") {
		network, a := server[:open], server[open+1:len(server)-1]
		if network == "unix" {
			return a, 0, db
		}
		server = a
	}
	if server == "" {
		return "", 0, db
	}
	if _, _, err := net.SplitHostPort(server); err != nil {
		return server, 0, db
	}
	host, port = spans.SplitHostPort(server)
	return host, port, db
}

// cutScheme drops a URL scheme ("postgres://").
func cutScheme(s string) string {
	if _, rest, ok := strings.Cut(s, "://"); ok {
		return rest
	}
	return s
}
