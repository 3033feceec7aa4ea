package main

import (
	"net/http"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"
)

// The PLAIN listener serves cleartext HTTP/2 with golang.org/x/net's
// server, with prior knowledge and after Upgrade: h2c; the XTLS listener
// HTTP/2 over TLS with it.
func init() {
	cleartext = func(h http.Handler) http.Handler { return h2c.NewHandler(h, &http2.Server{}) }
	configureXTLS = func(srv *http.Server) error { return http2.ConfigureServer(srv, &http2.Server{}) }
}
