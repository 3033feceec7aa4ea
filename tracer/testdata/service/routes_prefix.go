//go:build !go1.22
// +build !go1.22

package main

import "net/http"

func routes(mux *http.ServeMux) { mux.HandleFunc("/items/", items) }
