// Command dbsvcold is dbsvc (../dbsvc) for Go releases before the
// register calling convention (Go 1.12 to 1.16), which pgx v5 and go-redis
// v9 do not build with: the same setup and /sql handler, through lib/pq
// and go-sql-driver/mysql only. It takes dbsvc's flags (-redis is
// ignored).
//
//	dbsvcold setup -pg DSN -mysql DSN
//	dbsvcold serve -http ADDR -pg DSN -mysql DSN
//
// serve prints "http ADDR" once it listens.
package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"

	_ "github.com/go-sql-driver/mysql"
	_ "github.com/lib/pq"
)

func main() {
	log.SetFlags(0)
	if len(os.Args) < 2 {
		log.Fatal("usage: dbsvcold setup|serve [flags]")
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	pgDSN := fs.String("pg", "", "PostgreSQL DSN (URL form)")
	myDSN := fs.String("mysql", "", "go-sql-driver/mysql DSN")
	fs.String("redis", "", "ignored")
	httpAddr := fs.String("http", "127.0.0.1:0", "HTTP listen address")
	fs.Parse(os.Args[2:])
	switch os.Args[1] {
	case "setup":
		if err := setup(*pgDSN, *myDSN); err != nil {
			log.Fatal(err)
		}
	case "serve":
		serve(*httpAddr, *pgDSN, *myDSN)
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

func serve(addr, pgDSN, myDSN string) {
	dollar := func(n int) string { return "$" + strconv.Itoa(n) }
	question := func(int) string { return "?" }
	dbs := map[string]sqlDB{}
	for name, c := range map[string]struct {
		driver, dsn string
		ph          func(int) string
	}{"pq": {"postgres", pgDSN, dollar}, "mysql": {"mysql", myDSN, question}} {
		db, err := sql.Open(c.driver, c.dsn)
		if err != nil {
			log.Fatal(err)
		}
		dbs[name] = sqlDB{db, c.ph}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/sql", func(w http.ResponseWriter, r *http.Request) {
		id, _ := strconv.Atoi(r.URL.Query().Get("id"))
		d, ok := dbs[r.URL.Query().Get("db")]
		if !ok {
			http.Error(w, "unknown db", http.StatusInternalServerError)
			return
		}
		if err := sqlCalls(r.Context(), d, id); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "ok")
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
