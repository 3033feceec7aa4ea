// Command muxsvc is the gorilla/mux service of the route instrumentation's
// tests: it prints "http ADDR" and serves until killed.
package main

import (
	"fmt"
	"net"
	"net/http"

	"github.com/gorilla/mux"
)

func reply(status int, what string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(status)
		fmt.Fprintf(w, "%s %s", what, mux.Vars(r)["id"])
	}
}

func main() {
	r := mux.NewRouter()
	r.HandleFunc("/users/{id}", reply(200, "user")).Methods("GET")
	r.HandleFunc("/users/{id}", reply(201, "created")).Methods("POST")
	r.HandleFunc("/fail/{id}", reply(500, "failed")).Methods("GET")
	api := r.PathPrefix("/api/v1").Subrouter()
	api.HandleFunc("/items/{id}", reply(200, "item"))
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
