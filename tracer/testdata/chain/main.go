// Command chain is a service of the trace-context tests: copies of it, built
// with different Go releases, call each other, so one request crosses
// several processes. It must build with every Go release from 1.12 on.
//
// Routes (ID is any path segment, carried to every hop):
//
//	/hop/ID?next=A,B  calls http://A/hop/ID?next=B on the handler's goroutine, then answers
//	/ctxhop/ID?next=A  calls http://A/hop/ID with the request's context (r.Context()), as code that passes contexts does, and answers with its response body
//	/fan/ID?next=A&n=N  calls http://A/hop/ID-i from N goroutines started with go
//	/pool/ID?next=A  hands the call to a worker goroutine started before any request
//	/relay/ID?to=URL  GETs URL and answers with its response body
//	/post/ID?to=URL&n=N  POSTs N bytes to URL and answers with its response body
//	/own/ID?to=URL  GETs URL with its own traceparent header (as an SDK would) and answers with its response body
//	/echo (and any other path)  answers the request it received as JSON: method, URI, proto, host, headers, body
//
// It prints "listening on ADDR" once it accepts connections.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"io/ioutil"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
)

// job is a call a pool worker makes for a /pool request.
type job struct {
	url  string
	done chan error
}

var jobs = make(chan job)

func main() {
	for i := 0; i < 4; i++ {
		go worker()
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/hop/", hop)
	mux.HandleFunc("/ctxhop/", ctxhop)
	mux.HandleFunc("/fan/", fan)
	mux.HandleFunc("/pool/", pool)
	mux.HandleFunc("/relay/", relay)
	mux.HandleFunc("/post/", post)
	mux.HandleFunc("/own/", own)
	mux.HandleFunc("/", echo)
	fmt.Printf("listening on %s\n", ln.Addr())
	if err := http.Serve(ln, mux); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// client has no idle timeout, so every hop reuses its connections.
var client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}

func get(url string) error {
	resp, err := client.Get(url)
	if err != nil {
		return err
	}
	io.Copy(ioutil.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return nil
}

// nextHop splits ?next=A,B into the first address and the rest.
func nextHop(r *http.Request) (first, rest string) {
	next := r.URL.Query().Get("next")
	if i := strings.IndexByte(next, ','); i >= 0 {
		return next[:i], next[i+1:]
	}
	return next, ""
}

func id(r *http.Request, prefix string) string {
	return strings.TrimPrefix(r.URL.Path, prefix)
}

func hop(w http.ResponseWriter, r *http.Request) {
	first, rest := nextHop(r)
	if first != "" {
		url := "http://" + first + "/hop/" + id(r, "/hop/")
		if rest != "" {
			url += "?next=" + rest
		}
		if err := get(url); err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
	}
	io.WriteString(w, "ok\n")
}

// ctxhop is /hop/ for one address, the call carrying the handler's request
// context: tracers that find a client span's parent through the request's
// context.Context (OpenTelemetry Go auto-instrumentation) need it.
func ctxhop(w http.ResponseWriter, r *http.Request) {
	first, _ := nextHop(r)
	req, err := http.NewRequest("GET", "http://"+first+"/hop/"+id(r, "/ctxhop/"), nil)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	resp, err := client.Do(req.WithContext(r.Context()))
	answer(w, resp, err)
}

func fan(w http.ResponseWriter, r *http.Request) {
	first, _ := nextHop(r)
	n, _ := strconv.Atoi(r.URL.Query().Get("n"))
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			errs <- get(fmt.Sprintf("http://%s/hop/%s-%d", first, id(r, "/fan/"), i))
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
	}
	io.WriteString(w, "ok\n")
}

func worker() {
	for j := range jobs {
		j.done <- get(j.url)
	}
}

func pool(w http.ResponseWriter, r *http.Request) {
	first, _ := nextHop(r)
	j := job{url: "http://" + first + "/hop/" + id(r, "/pool/"), done: make(chan error, 1)}
	jobs <- j
	if err := <-j.done; err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	io.WriteString(w, "ok\n")
}

// answer answers with the response (or error) of a call made for the request.
func answer(w http.ResponseWriter, resp *http.Response, err error) {
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, resp.Body)
}

func relay(w http.ResponseWriter, r *http.Request) {
	resp, err := client.Get(r.URL.Query().Get("to"))
	answer(w, resp, err)
}

func post(w http.ResponseWriter, r *http.Request) {
	n, _ := strconv.Atoi(r.URL.Query().Get("n"))
	resp, err := client.Post(r.URL.Query().Get("to"), "text/plain", strings.NewReader(strings.Repeat("y", n)))
	answer(w, resp, err)
}

// ownTraceparent is what /own sends, as an application instrumented with an SDK would.
const ownTraceparent = "00-11111111111111111111111111111111-2222222222222222-01"

func own(w http.ResponseWriter, r *http.Request) {
	req, err := http.NewRequest("GET", r.URL.Query().Get("to"), nil)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	req.Header.Set("Traceparent", ownTraceparent)
	resp, err := client.Do(req)
	answer(w, resp, err)
}

func echo(w http.ResponseWriter, r *http.Request) {
	body, _ := ioutil.ReadAll(r.Body)
	json.NewEncoder(w).Encode(map[string]interface{}{
		"method": r.Method, "uri": r.RequestURI, "proto": r.Proto, "host": r.Host,
		"headers": r.Header, "body": string(body),
	})
}
