// Command service is the program the tracer's end-to-end tests trace: an
// HTTP server whose /items handler calls its own /backend with an outgoing
// request, so one incoming request yields a server span with a client child.
// It must build with every Go release from 1.17 on.
package main

import (
	"fmt"
	"io"
	"io/ioutil"
	"net"
	"net/http"
	"os"
	"path"
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
	fmt.Printf("listening on %s\n", ln.Addr())
	if err := http.Serve(ln, mux); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

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
