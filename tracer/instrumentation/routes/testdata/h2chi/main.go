// Command h2chisvc is the chi v5 service of the route instrumentation's
// HTTP/2 tests: it prints "http PLAIN TLS" and serves the routes of chisvc
// until killed, on PLAIN over HTTP/1.1 and cleartext HTTP/2
// (golang.org/x/net/http2/h2c: prior knowledge and Upgrade: h2c), on TLS
// over HTTP/2 (net/http's, by ALPN) with a self-signed certificate.
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"
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
	serve(r)
}

// serve serves h on PLAIN (HTTP/1.1 and h2c) and TLS (h2), after printing
// "http PLAIN TLS".
func serve(h http.Handler) {
	plain, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	cert := selfSigned()
	fmt.Println("http", plain.Addr(), ln.Addr())
	srv := &http.Server{Handler: h, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}}}
	go func() { panic(srv.ServeTLS(ln, "", "")) }()
	panic(http.Serve(plain, h2c.NewHandler(h, &http2.Server{})))
}

// selfSigned makes a certificate for 127.0.0.1, valid for a day.
func selfSigned() tls.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "h2svc"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		panic(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
