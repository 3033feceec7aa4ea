// Command dbsvc is the test service of the database instrumentations: an
// HTTP server whose handlers query PostgreSQL (through lib/pq and pgx's
// database/sql driver, and pgx natively), MariaDB (go-sql-driver/mysql) and
// Redis (go-redis v9), and produce to Kafka (kafka-go), so that each client
// call is made while a request is handled. It compiles against every
// library version package dbtest builds it with; it uses only APIs they
// all have.
//
//	dbsvc setup -pg DSN -mysql DSN       create the tables (before tracing)
//	dbsvc serve -http ADDR -pg DSN -mysql DSN -redis ADDR [-broker ADDR -topic T]
//	dbsvc load -workers N -pg DSN -mysql DSN -redis ADDR
//
// serve prints "http ADDR" once it listens. Every handler answers "ok" or
// a 500 with the error. With -broker, /all also produces one message to T
// through a kafka-go Writer: key "req-ID", value "request ID". load is the bench harness's load generator: it
// prints "listening on -" once connected, then for each stdin line
// "run DURATION KIND" (KIND pq, mysql, pgx or redis) has N workers make
// one-row queries (a GET for redis) back to back for DURATION and prints
// "calls=N errors=E seconds=S".
package main

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	_ "github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/jackc/pgx/v5/stdlib"
	_ "github.com/lib/pq"
	"github.com/redis/go-redis/v9"
	kafka "github.com/segmentio/kafka-go"
)

func main() {
	log.SetFlags(0)
	if len(os.Args) < 2 {
		log.Fatal("usage: dbsvc setup|serve [flags]")
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	pgDSN := fs.String("pg", "", "PostgreSQL DSN (URL form)")
	myDSN := fs.String("mysql", "", "go-sql-driver/mysql DSN")
	redisAddr := fs.String("redis", "", "Redis address")
	httpAddr := fs.String("http", "127.0.0.1:0", "HTTP listen address")
	workers := fs.Int("workers", 8, "load: concurrent callers")
	broker := fs.String("broker", "", "serve: Kafka broker address; /all produces to -topic")
	topic := fs.String("topic", "requests", "serve: Kafka topic")
	fs.Parse(os.Args[2:])
	switch os.Args[1] {
	case "setup":
		if err := setup(*pgDSN, *myDSN); err != nil {
			log.Fatal(err)
		}
	case "serve":
		serve(*httpAddr, *pgDSN, *myDSN, *redisAddr, *broker, *topic)
	case "load":
		if err := load(*workers, *pgDSN, *myDSN, *redisAddr); err != nil {
			log.Fatal(err)
		}
	default:
		log.Fatalf("unknown command %q", os.Args[1])
	}
}

func setup(pgDSN, myDSN string) error {
	for _, c := range []struct{ driver, dsn, serial string }{{"postgres", pgDSN, "SERIAL"}, {"mysql", myDSN, "INT AUTO_INCREMENT"}} {
		db, err := sql.Open(c.driver, c.dsn)
		if err != nil {
			return err
		}
		for _, q := range []string{
			"DROP TABLE IF EXISTS items", "DROP TABLE IF EXISTS hits",
			"CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(64), n INT)",
			"CREATE TABLE hits (id " + c.serial + " PRIMARY KEY, req INT)",
			"INSERT INTO items (id, name, n) VALUES (1, 'one', 0), (2, 'two', 0)",
		} {
			if _, err := db.Exec(q); err != nil {
				return fmt.Errorf("%s: %s: %w", c.driver, q, err)
			}
		}
		db.Close()
	}
	return nil
}

// sqlDB is a database/sql DB and its placeholder style.
type sqlDB struct {
	db *sql.DB
	ph func(n int) string
}

func serve(addr, pgDSN, myDSN, redisAddr, broker, topic string) {
	dollar := func(n int) string { return "$" + strconv.Itoa(n) }
	question := func(int) string { return "?" }
	dbs := map[string]sqlDB{}
	for name, c := range map[string]struct {
		driver, dsn string
		ph          func(int) string
	}{"pq": {"postgres", pgDSN, dollar}, "pgx": {"pgx", pgDSN, dollar}, "mysql": {"mysql", myDSN, question}} {
		db, err := sql.Open(c.driver, c.dsn)
		if err != nil {
			log.Fatal(err)
		}
		dbs[name] = sqlDB{db, c.ph}
	}
	// down: the PostgreSQL database at a port where nothing listens, so
	// that every call fails to get a connection, before the driver runs.
	u, err := url.Parse(pgDSN)
	if err != nil {
		log.Fatal(err)
	}
	u.Host = "127.0.0.1:1"
	down, err := sql.Open("postgres", u.String())
	if err != nil {
		log.Fatal(err)
	}
	pool, err := pgxpool.New(context.Background(), pgDSN)
	if err != nil {
		log.Fatal(err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr})
	// The Writer batches the messages of concurrent calls; a short batch
	// timeout keeps each call from waiting the default second.
	var kw *kafka.Writer
	if broker != "" {
		kw = kafka.NewWriter(kafka.WriterConfig{Brokers: []string{broker}, Topic: topic, BatchTimeout: 5 * time.Millisecond})
	}

	mux := http.NewServeMux()
	handle := func(path string, f func(ctx context.Context, r *http.Request, id int) error) {
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			id, _ := strconv.Atoi(r.URL.Query().Get("id"))
			if err := f(r.Context(), r, id); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			fmt.Fprintln(w, "ok")
		})
	}
	handle("/sql", func(ctx context.Context, r *http.Request, id int) error {
		d, ok := dbs[r.URL.Query().Get("db")]
		if !ok {
			return errors.New("unknown db")
		}
		return sqlCalls(ctx, d, id)
	})
	handle("/down", func(ctx context.Context, r *http.Request, id int) error {
		if _, err := down.QueryContext(ctx, "SELECT id FROM items WHERE id = $1", id); err == nil {
			return errors.New("a query to a server that is down succeeded")
		}
		// A text longer than a span keeps (255 bytes): cut, and marked so.
		if _, err := down.ExecContext(ctx, "INSERT INTO hits (req) VALUES ($1) -- "+strings.Repeat("long ", 60), id); err == nil {
			return errors.New("an exec to a server that is down succeeded")
		}
		return nil
	})
	handle("/conn", func(ctx context.Context, r *http.Request, id int) error {
		conn, err := dbs["pq"].db.Conn(ctx)
		if err != nil {
			return err
		}
		defer conn.Close()
		var n int
		if err := conn.QueryRowContext(ctx, "SELECT n FROM items WHERE id = $1", 1).Scan(&n); err != nil {
			return err
		}
		if _, err := conn.ExecContext(ctx, "INSERT INTO hits (req) VALUES ($1)", id); err != nil {
			return err
		}
		tx, err := conn.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		return tx.Rollback()
	})
	handle("/redis", func(ctx context.Context, r *http.Request, id int) error {
		return redisCalls(ctx, rdb, id)
	})
	handle("/pgx", func(ctx context.Context, r *http.Request, id int) error {
		return pgxCalls(ctx, pool, id)
	})
	// /all: one call of each client, for the many-requests test.
	handle("/all", func(ctx context.Context, r *http.Request, id int) error {
		for _, name := range []string{"pq", "mysql"} {
			d := dbs[name]
			var n int
			if err := d.db.QueryRowContext(ctx, "SELECT id FROM items WHERE id = "+d.ph(1)+" OR "+d.ph(2)+" < 0", 1, id).Scan(&n); err != nil {
				return err
			}
		}
		if err := rdb.Set(ctx, "all:"+strconv.Itoa(id), id, time.Minute).Err(); err != nil {
			return err
		}
		var n int
		if err := pool.QueryRow(ctx, "SELECT id FROM items WHERE id = $1 OR $2 < 0", 1, id).Scan(&n); err != nil {
			return err
		}
		if kw == nil {
			return nil
		}
		return kw.WriteMessages(ctx, kafka.Message{Key: []byte("req-" + strconv.Itoa(id)), Value: []byte("request " + strconv.Itoa(id))})
	})

	l, err := net.Listen("tcp", addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("http", l.Addr())
	log.Fatal(http.Serve(l, mux))
}

// sqlCalls makes, in order: a query, an exec, a prepared statement's query
// and exec, a committed transaction with an exec, a rolled-back one, and a
// failing exec: eight database/sql spans.
func sqlCalls(ctx context.Context, d sqlDB, id int) error {
	rows, err := d.db.QueryContext(ctx, "SELECT id, name FROM items WHERE id <= "+d.ph(1), 2)
	if err != nil {
		return err
	}
	for rows.Next() {
	}
	rows.Close()
	if _, err := d.db.ExecContext(ctx, "INSERT INTO hits (req) VALUES ("+d.ph(1)+")", id); err != nil {
		return err
	}
	stmt, err := d.db.PrepareContext(ctx, "SELECT name FROM items WHERE id = "+d.ph(1))
	if err != nil {
		return err
	}
	var name string
	if err := stmt.QueryRowContext(ctx, 1).Scan(&name); err != nil {
		return err
	}
	stmt.Close()
	ins, err := d.db.PrepareContext(ctx, "INSERT INTO hits (req) VALUES ("+d.ph(1)+")")
	if err != nil {
		return err
	}
	if _, err := ins.ExecContext(ctx, id); err != nil {
		return err
	}
	ins.Close()
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() // after Commit: ErrTxDone, no span
	if _, err := tx.ExecContext(ctx, "UPDATE items SET n = n + 1 WHERE id = "+d.ph(1), 1); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	tx2, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := tx2.Rollback(); err != nil {
		return err
	}
	if _, err := d.db.ExecContext(ctx, "SELECT * FROM no_such_table"); err == nil {
		return errors.New("query of a missing table did not fail")
	}
	return nil
}

// redisCalls makes SET, GET, a GET of a missing key (redis.Nil), an INCR
// that fails (the value is no integer), and a pipeline of SET, INCR and
// EXPIRE: five spans.
func redisCalls(ctx context.Context, rdb *redis.Client, id int) error {
	key := "k:" + strconv.Itoa(id)
	if err := rdb.Set(ctx, key, "v", time.Minute).Err(); err != nil {
		return err
	}
	if err := rdb.Get(ctx, key).Err(); err != nil {
		return err
	}
	if err := rdb.Get(ctx, "missing:"+key).Err(); err != redis.Nil {
		return fmt.Errorf("GET of a missing key: %v", err)
	}
	if err := rdb.Incr(ctx, key).Err(); err == nil {
		return errors.New("INCR of a string did not fail")
	}
	_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, "n:"+key, 1, 0)
		p.Incr(ctx, "n:"+key)
		p.Expire(ctx, "n:"+key, time.Minute)
		return nil
	})
	return err
}

// pgxCalls makes, with pgx's own API: a query, a QueryRow, an exec, a
// failing exec, a CopyFrom, a transaction (begin, update, commit) and two
// batches (the second failing).
func pgxCalls(ctx context.Context, pool *pgxpool.Pool, id int) error {
	rows, err := pool.Query(ctx, "SELECT id, name FROM items WHERE id <= $1", 2)
	if err != nil {
		return err
	}
	rows.Close()
	var name string
	if err := pool.QueryRow(ctx, "SELECT name FROM items WHERE id = $1", 1).Scan(&name); err != nil {
		return err
	}
	if _, err := pool.Exec(ctx, "INSERT INTO hits (req) VALUES ($1)", id); err != nil {
		return err
	}
	if _, err := pool.Exec(ctx, "SELECT * FROM no_such_table"); err == nil {
		return errors.New("query of a missing table did not fail")
	}
	n, err := pool.CopyFrom(ctx, pgx.Identifier{"hits"}, []string{"req"}, pgx.CopyFromRows([][]any{{id}, {id}}))
	if err != nil {
		return err
	}
	if n != 2 {
		return fmt.Errorf("CopyFrom copied %d rows, want 2", n)
	}
	// A transaction: pgx sends "begin" and "commit" with Exec.
	tx, err := pool.Begin(ctx)
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, "UPDATE items SET n = n + 1 WHERE id = $1", 1); err != nil {
		tx.Rollback(ctx)
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return err
	}
	// A batch of three inserts of one text, and one of two different
	// queries whose second cannot be prepared.
	b := &pgx.Batch{}
	for i := 0; i < 3; i++ {
		b.Queue("INSERT INTO hits (req) VALUES ($1)", id)
	}
	if err := pool.SendBatch(ctx, b).Close(); err != nil {
		return err
	}
	b = &pgx.Batch{}
	b.Queue("SELECT name FROM items WHERE id = $1", 1)
	b.Queue("SELECT * FROM no_such_table")
	if err := pool.SendBatch(ctx, b).Close(); err == nil {
		return errors.New("batch with a missing table did not fail")
	}
	return nil
}

func load(workers int, pgDSN, myDSN, redisAddr string) error {
	ctx := context.Background()
	pq, err := sql.Open("postgres", pgDSN)
	if err != nil {
		return err
	}
	my, err := sql.Open("mysql", myDSN)
	if err != nil {
		return err
	}
	for _, db := range []*sql.DB{pq, my} {
		db.SetMaxIdleConns(workers)
		db.SetMaxOpenConns(workers)
	}
	pool, err := pgxpool.New(ctx, pgDSN)
	if err != nil {
		return err
	}
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr, PoolSize: workers})
	if err := rdb.Set(ctx, "bench", "v", 0).Err(); err != nil {
		return err
	}
	var name string
	calls := map[string]func() error{
		"pq":    func() error { return pq.QueryRowContext(ctx, "SELECT name FROM items WHERE id = $1", 1).Scan(&name) },
		"mysql": func() error { return my.QueryRowContext(ctx, "SELECT name FROM items WHERE id = ?", 1).Scan(&name) },
		"pgx":   func() error { return pool.QueryRow(ctx, "SELECT name FROM items WHERE id = $1", 1).Scan(&name) },
		"redis": func() error { return rdb.Get(ctx, "bench").Err() },
	}
	for kind, call := range calls { // connect, and check every kind works
		if err := call(); err != nil {
			return fmt.Errorf("%s: %w", kind, err)
		}
	}
	fmt.Println("listening on -")
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		f := strings.Fields(in.Text())
		if len(f) != 3 || f[0] != "run" {
			return fmt.Errorf("load: want \"run DURATION KIND\", got %q", in.Text())
		}
		d, err := time.ParseDuration(f[1])
		if err != nil {
			return err
		}
		call, ok := calls[f[2]]
		if !ok {
			return fmt.Errorf("load: unknown kind %q", f[2])
		}
		var n, errs int64 // atomic.Int64 is Go 1.19+
		var wg sync.WaitGroup
		start := time.Now()
		end := start.Add(d)
		for i := 0; i < workers; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(end) {
					if err := call(); err != nil {
						atomic.AddInt64(&errs, 1)
					} else {
						atomic.AddInt64(&n, 1)
					}
				}
			}()
		}
		wg.Wait()
		fmt.Printf("calls=%d errors=%d seconds=%.3f\n", atomic.LoadInt64(&n), atomic.LoadInt64(&errs), time.Since(start).Seconds())
	}
	return in.Err()
}
