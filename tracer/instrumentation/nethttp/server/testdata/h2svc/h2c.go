package main

import (
	"net/http"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"
)

// The PLAIN listener serves cleartext HTTP/2 with golang.org/x/net's
// server, with prior knowledge and after Upgrade: h2c.
func init() {
	cleartext = func(h http.Handler) http.Handler { return h2c.NewHandler(h, &http2.Server{}) }
}
