// Command chisvc is the chi v5 service of the route instrumentation's
// tests: it prints "http ADDR" and serves until killed.
package main

import (
	"fmt"
	"net"
	"net/http"

	"github.com/go-chi/chi/v5"
)

func reply(status int, what string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(status)
		fmt.Fprintf(w, "%s %s", what, chi.URLParam(r, "id"))
	}
}

func main() {
	r := chi.NewRouter()
	r.Get("/users/{id}", reply(200, "user"))
	r.Post("/users/{id}", reply(201, "created"))
	r.Get("/fail/{id}", reply(500, "failed"))
	api := chi.NewRouter()
	api.Get("/items/{id}", reply(200, "item"))
	r.Mount("/api/v1", api)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	fmt.Println("http", l.Addr())
	// Behind a ServeMux, as many services are: the router's template,
	// not the mux's "/", is the route (the innermost router wins).
	front := http.NewServeMux()
	front.Handle("/", r)
	panic(http.Serve(l, front))
}
