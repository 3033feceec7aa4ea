// Command servemuxsvc is the net/http.ServeMux service (Go 1.22+) of the
// route instrumentation's tests: a middleware in front calls
// r.WithContext, and /api/v1/ is a second mux behind http.StripPrefix. It
// prints "http ADDR" and serves until killed.
package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
)

type key struct{}

func reply(status int, what string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(status)
		fmt.Fprintf(w, "%s %s %v", what, r.PathValue("id"), r.Context().Value(key{}))
	}
}

// withContext is the middleware that hides the pattern from the request
// net/http's server holds: the mux gets, and writes into, a copy.
func withContext(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), key{}, "mw")))
	})
}

func main() {
	inner := http.NewServeMux()
	inner.HandleFunc("GET /items/{id}", reply(200, "item"))
	outer := http.NewServeMux()
	outer.HandleFunc("GET /users/{id}", reply(200, "user"))
	outer.HandleFunc("POST /users/{id}", reply(201, "created"))
	outer.HandleFunc("GET /fail/{id}", reply(500, "failed"))
	outer.Handle("/api/v1/", http.StripPrefix("/api/v1", inner))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	fmt.Println("http", l.Addr())
	panic(http.Serve(l, withContext(outer)))
}
