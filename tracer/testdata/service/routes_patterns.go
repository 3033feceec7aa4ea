//go:build go1.22
// +build go1.22

package main

import "net/http"

// Go 1.22 ServeMux patterns: the route is recorded on the request.
func routes(mux *http.ServeMux) { mux.HandleFunc("GET /items/{id}", items) }
