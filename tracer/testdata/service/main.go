// Command service is the program the tracer's end-to-end tests trace: an
// HTTP server whose /items handler calls its own /backend with an outgoing
// request, so one incoming request yields a server span with a client child.
// It must build with every Go release from 1.12 on (hence io/ioutil, and
// the old build-constraint lines beside //go:build).
package main

import (
	"fmt"
	"io"
	"io/ioutil"
	"net"
	"net/http"
	"os"
	"path"
	"strings"
)

func main() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	mux := http.NewServeMux()
	routes(mux)
	mux.HandleFunc("/backend", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "backend ok")
	})
	mux.HandleFunc("/fail", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "failing on purpose", http.StatusInternalServerError)
	})
	// /panic calls the backend, then panics: net/http recovers the panic
	// and closes the connection. /abort panics with http.ErrAbortHandler,
	// which net/http recovers without logging.
	mux.HandleFunc("/panic", func(w http.ResponseWriter, r *http.Request) {
		if resp, err := http.Get("http://" + r.Host + "/backend?item=panic"); err == nil {
			resp.Body.Close()
		}
		panic("panicking on purpose")
	})
	// /panic-error panics with an error of the program's own type,
	// /panic-nilmap with the runtime's error for a write to a nil map,
	// /panic-nil for a nil pointer dereference, /panic-index for an index
	// out of range, /panic-long with a string longer than the tracer
	// copies.
	mux.HandleFunc("/panic-error", func(w http.ResponseWriter, r *http.Request) {
		panic(&serviceError{msg: "service error on purpose"})
	})
	mux.HandleFunc("/panic-nilmap", func(w http.ResponseWriter, r *http.Request) {
		var m map[string]int
		m[r.URL.Path]++
	})
	mux.HandleFunc("/panic-nil", func(w http.ResponseWriter, r *http.Request) {
		var e *serviceError
		io.WriteString(w, e.msg)
	})
	mux.HandleFunc("/panic-index", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.URL.Path[len(r.URL.Path)+len(r.URL.RawQuery):][:1])
	})
	mux.HandleFunc("/panic-long", func(w http.ResponseWriter, r *http.Request) {
		panic(strings.Repeat("0123456789", 100))
	})
	mux.HandleFunc("/abort", func(w http.ResponseWriter, r *http.Request) {
		panic(http.ErrAbortHandler)
	})
	// /empty writes nothing: net/http answers 200 with an empty body.
	mux.HandleFunc("/empty", func(w http.ResponseWriter, r *http.Request) {})
	// /hijack takes the connection over and answers 204 itself.
	mux.HandleFunc("/hijack", func(w http.ResponseWriter, r *http.Request) {
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		buf.WriteString("HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
		buf.Flush()
	})
	// /long/... answers the length of its path and query, for paths and
	// queries longer than the tracer's buffers.
	mux.HandleFunc("/long/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%d %d\n", len(r.URL.Path), len(r.URL.RawQuery))
	})
	fmt.Printf("listening on %s\n", ln.Addr())
	if err := http.Serve(ln, mux); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// serviceError is the error /panic-error panics with.
type serviceError struct{ msg string }

func (e *serviceError) Error() string { return e.msg }

// items calls the backend on the same server, then answers.
func items(w http.ResponseWriter, r *http.Request) {
	resp, err := http.Get("http://" + r.Host + "/backend?item=" + path.Base(r.URL.Path))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	body, _ := ioutil.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Fprintf(w, "item %s: %s\n", r.URL.Path, body)
}
