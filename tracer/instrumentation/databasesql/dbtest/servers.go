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

// A Server is a database server started for a test or a benchmark.
type Server struct {
	// Addr is the DSN of its database (PostgreSQL, MariaDB) or its
	// host:port (Redis).
	Addr string
	stop []func()
}

// Stop stops the server and removes its files.
func (s *Server) Stop() {
	for i := len(s.stop) - 1; i >= 0; i-- {
		s.stop[i]()
	}
}

// freePort returns a TCP port of 127.0.0.1 nobody listens on now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitPort waits until something accepts connections on port.
func waitPort(what string, port int, exited <-chan error) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case err := <-exited:
			return fmt.Errorf("%s exited before listening: %v", what, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s does not listen on port %d after 60s", what, port)
}

// need returns the path of a server program, or an error naming the Debian
// package that has it.
func need(pkg string, candidates ...string) (string, error) {
	for _, c := range candidates {
		if matches, _ := filepath.Glob(c); len(matches) > 0 {
			return matches[len(matches)-1], nil
		}
		if p, err := exec.LookPath(c); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("none of %v found: install %s (apt-get install %s; .ci/run does)", candidates, pkg, pkg)
}

// tempDir is a directory for a server's files, removed by Stop; its
// parents are readable by the server's user (t.TempDir's are not).
func (s *Server) tempDir(name string) (string, error) {
	dir, err := os.MkdirTemp("", "offsetdb-"+name+"-")
	if err != nil {
		return "", err
	}
	s.stop = append(s.stop, func() { os.RemoveAll(dir) })
	return dir, os.Chmod(dir, 0o755)
}

// run runs a command, with its output in the error if it fails.
func run(cmd *exec.Cmd) error {
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %v\n%s", cmd, err, out)
	}
	return nil
}

// started is a server wrapper for tests: the server, stopped at cleanup,
// or the test failed with the reason.
func started(tb testing.TB, what string, s *Server, err error) string {
	tb.Helper()
	if err != nil {
		s.Stop()
		tb.Fatalf("dbtest: start %s: %v", what, err)
	}
	tb.Cleanup(s.Stop)
	return s.Addr
}

// StartPostgres starts a PostgreSQL server for the test (StartPostgresServer)
// and returns the DSN of its database. It is stopped at cleanup.
func StartPostgres(tb testing.TB) string {
	s, err := StartPostgresServer()
	return started(tb, "PostgreSQL", s, err)
}

// StartMariaDB starts a MariaDB server for the test (StartMariaDBServer)
// and returns the DSN of its database. It is stopped at cleanup.
func StartMariaDB(tb testing.TB) string {
	s, err := StartMariaDBServer()
	return started(tb, "MariaDB", s, err)
}

// StartRedis starts a Redis server for the test (StartRedisServer) and
// returns its address. It is stopped at cleanup.
func StartRedis(tb testing.TB) string {
	s, err := StartRedisServer()
	return started(tb, "Redis", s, err)
}

// StartPostgresServer starts a PostgreSQL server on 127.0.0.1 (initdb and
// pg_ctl, as the postgres user, in a temporary directory) and creates
// database Database; Addr is the URL DSN of it, with Password. Stop it
// with Stop, also after an error.
func StartPostgresServer() (*Server, error) {
	s := &Server{}
	initdb, err := need("postgresql", "/usr/lib/postgresql/*/bin/initdb", "initdb")
	if err != nil {
		return s, err
	}
	bin := filepath.Dir(initdb)
	u, err := user.Lookup("postgres")
	if err != nil {
		return s, fmt.Errorf("no postgres user to run PostgreSQL as: %v (install postgresql)", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	dir, err := s.tempDir("pg")
	if err != nil {
		return s, err
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		return s, err
	}
	asPostgres := func(name string, args ...string) *exec.Cmd {
		cmd := exec.Command(filepath.Join(bin, name), args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
		cmd.Dir = dir
		return cmd
	}
	data := filepath.Join(dir, "data")
	if err := run(asPostgres("initdb", "-D", data, "-U", "postgres", "-A", "trust", "-N")); err != nil {
		return s, err
	}
	port, err := freePort()
	if err != nil {
		return s, err
	}
	s.stop = append(s.stop, func() { asPostgres("pg_ctl", "-D", data, "-m", "immediate", "-w", "stop").Run() })
	if err := run(asPostgres("pg_ctl", "-D", data, "-l", filepath.Join(dir, "log"), "-w", "-o",
		fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300", port, dir), "start")); err != nil {
		return s, err
	}
	if err := run(asPostgres("createdb", "-h", "127.0.0.1", "-p", strconv.Itoa(port), "-U", "postgres", Database)); err != nil {
		return s, err
	}
	s.Addr = fmt.Sprintf("postgres://postgres:%s@127.0.0.1:%d/%s?sslmode=disable", Password, port, Database)
	return s, nil
}

// process starts cmd and adds its stop (SIGTERM, then SIGKILL after
// grace) to s; exited receives its end.
func (s *Server) process(cmd *exec.Cmd, grace time.Duration) (exited <-chan error, err error) {
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	ch := make(chan error, 1)
	done := make(chan struct{})
	go func() { ch <- cmd.Wait(); close(done) }()
	s.stop = append(s.stop, func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(grace):
			cmd.Process.Kill()
			<-done
		}
	})
	return ch, nil
}

// StartMariaDBServer starts a MariaDB server on 127.0.0.1
// (mariadb-install-db and mariadbd, grant tables skipped, in a temporary
// directory) and creates database Database; Addr is the
// go-sql-driver/mysql DSN of it, with Password. Stop it with Stop, also
// after an error.
func StartMariaDBServer() (*Server, error) {
	s := &Server{}
	install, err := need("mariadb-server", "mariadb-install-db", "/usr/bin/mariadb-install-db")
	if err != nil {
		return s, err
	}
	server, err := need("mariadb-server", "/usr/sbin/mariadbd", "mariadbd")
	if err != nil {
		return s, err
	}
	client, err := need("mariadb-client", "mariadb")
	if err != nil {
		return s, err
	}
	dir, err := s.tempDir("mariadb")
	if err != nil {
		return s, err
	}
	data := filepath.Join(dir, "data")
	if err := run(exec.Command(install, "--no-defaults", "--datadir="+data, "--user=root", "--auth-root-authentication-method=normal", "--skip-test-db")); err != nil {
		return s, err
	}
	port, err := freePort()
	if err != nil {
		return s, err
	}
	exited, err := s.process(exec.Command(server, "--no-defaults", "--datadir="+data, "--user=root", "--socket="+filepath.Join(dir, "sock"),
		"--port="+strconv.Itoa(port), "--bind-address=127.0.0.1", "--skip-grant-tables", "--skip-log-bin",
		"--innodb-buffer-pool-size=32M", "--max-connections=500", "--log-error="+filepath.Join(dir, "err.log")), 20*time.Second)
	if err != nil {
		return s, err
	}
	if err := waitPort("mariadbd", port, exited); err != nil {
		return s, err
	}
	if err := run(exec.Command(client, "--no-defaults", "-h", "127.0.0.1", "-P", strconv.Itoa(port), "-u", "root", "-e", "CREATE DATABASE "+Database)); err != nil {
		return s, err
	}
	s.Addr = fmt.Sprintf("root:%s@tcp(127.0.0.1:%d)/%s", Password, port, Database)
	return s, nil
}

// StartRedisServer starts a Redis server on 127.0.0.1, without
// persistence; Addr is its address. Stop it with Stop, also after an
// error.
func StartRedisServer() (*Server, error) {
	s := &Server{}
	server, err := need("redis-server", "redis-server")
	if err != nil {
		return s, err
	}
	dir, err := s.tempDir("redis")
	if err != nil {
		return s, err
	}
	port, err := freePort()
	if err != nil {
		return s, err
	}
	exited, err := s.process(exec.Command(server, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir), 10*time.Second)
	if err != nil {
		return s, err
	}
	if err := waitPort("redis-server", port, exited); err != nil {
		return s, err
	}
	s.Addr = "127.0.0.1:" + strconv.Itoa(port)
	return s, nil
}
