package dbtest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// Password is the password in the DSNs of the servers started here. The
// servers do not check it (trust authentication, skipped grant tables):
// it is there so that tests can check that no span carries it.
const Password = "s3cret-not-exported"

// Database is the database each SQL server serves the tests.
const Database = "shop"

// freePort returns a TCP port of 127.0.0.1 nobody listens on now.
func freePort(tb testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// waitPort waits until something accepts connections on port, or fails.
func waitPort(tb testing.TB, what string, port int, exited <-chan error) {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second)
		if err == nil {
			c.Close()
			return
		}
		select {
		case err := <-exited:
			tb.Fatalf("dbtest: %s exited before listening: %v", what, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
	tb.Fatalf("dbtest: %s does not listen on port %d after 60s", what, port)
}

// need returns the path of a server program, or fails naming the Debian
// package that has it.
func need(tb testing.TB, pkg string, candidates ...string) string {
	for _, c := range candidates {
		if matches, _ := filepath.Glob(c); len(matches) > 0 {
			return matches[len(matches)-1]
		}
		if p, err := exec.LookPath(c); err == nil {
			return p
		}
	}
	tb.Fatalf("dbtest: none of %v found: install %s (apt-get install %s; .ci/run does)", candidates, pkg, pkg)
	return ""
}

// tempDir is a directory for a server's files, removed at cleanup; unlike
// t.TempDir its parents are readable by the server's user.
func tempDir(tb testing.TB, name string) string {
	dir, err := os.MkdirTemp("", "offsetdb-"+name+"-")
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// run runs a command and fails with its output if it fails.
func run(tb testing.TB, cmd *exec.Cmd) {
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("dbtest: %s: %v\n%s", cmd, err, out)
	}
}

// StartPostgres starts a PostgreSQL server on 127.0.0.1 for the test (initdb
// and pg_ctl, as the postgres user, in a temporary directory), creates
// database Database and returns the URL DSN of it, with Password. The
// server is stopped at cleanup.
func StartPostgres(tb testing.TB) string {
	bin := filepath.Dir(need(tb, "postgresql", "/usr/lib/postgresql/*/bin/initdb", "initdb"))
	u, err := user.Lookup("postgres")
	if err != nil {
		tb.Fatalf("dbtest: no postgres user to run PostgreSQL as: %v (install postgresql)", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	dir := tempDir(tb, "pg")
	if err := os.Chown(dir, uid, gid); err != nil {
		tb.Fatal(err)
	}
	asPostgres := func(name string, args ...string) *exec.Cmd {
		cmd := exec.Command(filepath.Join(bin, name), args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
		cmd.Dir = dir
		return cmd
	}
	data := filepath.Join(dir, "data")
	run(tb, asPostgres("initdb", "-D", data, "-U", "postgres", "-A", "trust", "-N"))
	port := freePort(tb)
	run(tb, asPostgres("pg_ctl", "-D", data, "-l", filepath.Join(dir, "log"), "-w", "-o",
		fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300", port, dir), "start"))
	tb.Cleanup(func() {
		asPostgres("pg_ctl", "-D", data, "-m", "immediate", "-w", "stop").Run()
	})
	run(tb, asPostgres("createdb", "-h", "127.0.0.1", "-p", strconv.Itoa(port), "-U", "postgres", Database))
	return fmt.Sprintf("postgres://postgres:%s@127.0.0.1:%d/%s?sslmode=disable", Password, port, Database)
}

// StartMariaDB starts a MariaDB server on 127.0.0.1 for the test
// (mariadb-install-db and mariadbd, grant tables skipped, in a temporary
// directory), creates database Database and returns the
// go-sql-driver/mysql DSN of it, with Password. The server is stopped at
// cleanup.
func StartMariaDB(tb testing.TB) string {
	install := need(tb, "mariadb-server", "mariadb-install-db", "/usr/bin/mariadb-install-db")
	server := need(tb, "mariadb-server", "/usr/sbin/mariadbd", "mariadbd")
	client := need(tb, "mariadb-client", "mariadb")
	dir := tempDir(tb, "mariadb")
	data := filepath.Join(dir, "data")
	run(tb, exec.Command(install, "--no-defaults", "--datadir="+data, "--user=root", "--auth-root-authentication-method=normal", "--skip-test-db"))
	port := freePort(tb)
	cmd := exec.Command(server, "--no-defaults", "--datadir="+data, "--user=root", "--socket="+filepath.Join(dir, "sock"),
		"--port="+strconv.Itoa(port), "--bind-address=127.0.0.1", "--skip-grant-tables", "--skip-log-bin",
		"--innodb-buffer-pool-size=32M", "--max-connections=500", "--log-error="+filepath.Join(dir, "err.log"))
	if err := cmd.Start(); err != nil {
		tb.Fatalf("dbtest: start mariadbd: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	tb.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})
	waitPort(tb, "mariadbd", port, exited)
	run(tb, exec.Command(client, "--no-defaults", "-h", "127.0.0.1", "-P", strconv.Itoa(port), "-u", "root", "-e", "CREATE DATABASE "+Database))
	return fmt.Sprintf("root:%s@tcp(127.0.0.1:%d)/%s", Password, port, Database)
}

// StartRedis starts a Redis server on 127.0.0.1 for the test, without
// persistence, and returns its address. The server is stopped at cleanup.
func StartRedis(tb testing.TB) string {
	server := need(tb, "redis-server", "redis-server")
	dir := tempDir(tb, "redis")
	port := freePort(tb)
	cmd := exec.Command(server, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir)
	if err := cmd.Start(); err != nil {
		tb.Fatalf("dbtest: start redis-server: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	tb.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})
	waitPort(tb, "redis-server", port, exited)
	return "127.0.0.1:" + strconv.Itoa(port)
}
