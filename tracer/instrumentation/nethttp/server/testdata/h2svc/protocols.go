//go:build go1.24
// +build go1.24

package main

import (
	"net/http"
	"os"
)

// With H2SVC_UNENCRYPTED_HTTP2=1, the PLAIN listener serves net/http's own
// cleartext HTTP/2 (Server.Protocols, Go 1.24+) besides HTTP/1.1: prior
// knowledge, no golang.org/x/net.
func init() {
	if os.Getenv("H2SVC_UNENCRYPTED_HTTP2") != "1" {
		return
	}
	configurePlain = func(srv *http.Server) {
		var p http.Protocols
		p.SetHTTP1(true)
		p.SetUnencryptedHTTP2(true)
		srv.Protocols = &p
	}
}
