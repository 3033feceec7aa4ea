// Command h2svc is the service of the HTTP/2 server tests: the same
// handlers served over HTTP/1.1 and HTTP/2 by net/http (plain and TLS, the
// TLS listener negotiating h2 by ALPN) and over cleartext HTTP/2 by
// golang.org/x/net/http2/h2c (prior knowledge and Upgrade: h2c), when
// built with h2c.go.
//
// It prints "listening on PLAIN TLS BACKEND [XTLS]" once it accepts
// connections: PLAIN serves HTTP/1.1 and h2c, TLS serves HTTP/1.1 and h2
// with a self-signed certificate made at start, BACKEND is a plain
// HTTP/1.1 server that /call calls; with h2c.go, XTLS serves h2 over TLS
// with golang.org/x/net/http2's server. main.go builds with every Go release from 1.12;
// with h2c.go, with Go 1.17 and every x/net release from v0.1.0.
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"io/ioutil"
	"math/big"
	"net"
	"net/http"
	"os"
	"time"
)

var backend, tlsAddr string

// cleartext wraps the handler of the PLAIN listener: the identity, unless
// h2c.go (built only against golang.org/x/net) makes it serve h2c too.
var cleartext = func(h http.Handler) http.Handler { return h }

// configurePlain, set by protocols.go (Go 1.24+), configures the server
// of the PLAIN listener: net/http's own h2c when H2SVC_UNENCRYPTED_HTTP2=1.
var configurePlain = func(*http.Server) {}

// configureXTLS, set by h2c.go, makes a server's HTTP/2 over TLS
// golang.org/x/net/http2's (http2.ConfigureServer), for a fourth listener.
var configureXTLS func(*http.Server) error

func handlers() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/ok/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, r.Proto)
	})
	mux.HandleFunc("/empty/", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("/headers/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Only", "headers")
		w.WriteHeader(http.StatusAccepted)
	})
	mux.HandleFunc("/double/", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusCreated)
		w.WriteHeader(http.StatusInternalServerError) // superfluous: the client gets 201
	})
	mux.HandleFunc("/fail/", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "failed", http.StatusServiceUnavailable)
	})
	mux.HandleFunc("/call/", func(w http.ResponseWriter, r *http.Request) {
		code := get("http://" + backend + "/backend")
		w.WriteHeader(code)
	})
	mux.HandleFunc("/panic/", func(w http.ResponseWriter, r *http.Request) {
		get("http://" + backend + "/backend")
		panic("h2svc: handler panics")
	})
	// /abort/ calls the backend, then panics with http.ErrAbortHandler,
	// which net/http recovers without logging.
	mux.HandleFunc("/abort/", func(w http.ResponseWriter, r *http.Request) {
		get("http://" + backend + "/backend")
		panic(http.ErrAbortHandler)
	})
	mux.HandleFunc("/writepanic/", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		w.Write([]byte("partial"))
		panic("h2svc: handler panics")
	})
	mux.HandleFunc("/long/", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
	})
	mux.HandleFunc("/upload/", func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(ioutil.Discard, r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintln(w, n)
	})
	mux.HandleFunc("/tlsdial/", func(w http.ResponseWriter, r *http.Request) {
		// A TLS handshake of the handler's own, on its goroutine (as a
		// database driver makes): the request stays what it came as.
		c, err := tls.Dial("tcp", tlsAddr, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		c.Close()
		w.WriteHeader(http.StatusOK)
	})
	// /hijack/ takes an HTTP/1.x connection over and answers 204 itself;
	// /hijack-elsewhere/ does so on another goroutine while the handler
	// waits. An HTTP/2 stream cannot be taken over: it answers 204 (on
	// the handler's goroutine).
	mux.HandleFunc("/hijack/", func(w http.ResponseWriter, r *http.Request) {
		hijack(w)
	})
	mux.HandleFunc("/hijack-elsewhere/", func(w http.ResponseWriter, r *http.Request) {
		if _, ok := w.(http.Hijacker); !ok {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			hijack(w)
		}()
		<-done
	})
	mux.HandleFunc("/slow/", func(w http.ResponseWriter, r *http.Request) {
		// The client gives up: the handler answers 504 once it notices.
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
		w.WriteHeader(http.StatusGatewayTimeout)
	})
	return mux
}

// hijack answers 204: on a connection it takes over, when w is an
// HTTP/1.x response writer.
func hijack(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	conn, buf, err := hj.Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	buf.WriteString("HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
	buf.Flush()
}

// get calls url with a client of its own and returns the status, or 502.
func get(url string) int {
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		return http.StatusBadGateway
	}
	io.Copy(ioutil.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run() error {
	cert, err := selfSigned()
	if err != nil {
		return err
	}
	var lns [3]net.Listener
	for i := range lns {
		if lns[i], err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			return err
		}
	}
	backend, tlsAddr = lns[2].Addr().String(), lns[1].Addr().String()
	errc := make(chan error, 3)
	go func() {
		errc <- http.Serve(lns[2], http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintln(w, "backend")
		}))
	}()
	go func() {
		srv := &http.Server{Handler: cleartext(handlers())}
		configurePlain(srv)
		errc <- srv.Serve(lns[0])
	}()
	go func() {
		srv := &http.Server{
			Handler:   handlers(),
			TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}},
		}
		errc <- srv.ServeTLS(lns[1], "", "")
	}()
	addrs := fmt.Sprintf("%s %s %s", lns[0].Addr(), lns[1].Addr(), lns[2].Addr())
	if configureXTLS != nil {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		srv := &http.Server{Handler: handlers(), TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}}
		if err := configureXTLS(srv); err != nil {
			return err
		}
		go func() { errc <- srv.ServeTLS(ln, "", "") }()
		addrs += " " + ln.Addr().String()
	}
	fmt.Printf("listening on %s\n", addrs)
	return <-errc
}

// selfSigned makes a certificate for 127.0.0.1, valid for a day.
func selfSigned() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
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
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
