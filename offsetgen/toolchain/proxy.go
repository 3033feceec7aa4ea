// Package toolchain lists Go releases and fetches Go toolchains from a Go
// module proxy.
//
// The generator builds its probe programs with every Go release from 1.12 on.
// Toolchains come only from the module proxy, as versions of the module
// golang.org/toolchain ("v0.0.1-go1.22.5.linux-amd64"): one source that works
// behind a corporate proxy, is verified by the Go checksum database, and needs
// no access to go.dev. The proxy has quirks this package hides: its version
// list is incomplete, and it withholds many releases with HTTP 403, so
// [Proxy.Releases] probes for versions rather than trusting the list, and
// reports withheld releases instead of silently skipping them.
//
// We always fetch the linux-amd64 toolchain ([Platform]); it cross-compiles
// for other architectures through GOARCH.
package toolchain

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"golang.org/x/mod/module"

	"github.com/offsetdb/offsetdb/goversion"
)

// ModulePath is the module under which the Go project publishes its
// toolchains on the module proxy.
const ModulePath = "golang.org/toolchain"

// Platform is the GOOS-GOARCH of the toolchains this package fetches. The
// generator runs on linux-amd64 and cross-compiles for other targets, so one
// toolchain per release is enough.
const Platform = "linux-amd64"

// DefaultProxyURL is the module proxy used when [Proxy.URL] is empty.
const DefaultProxyURL = "https://proxy.golang.org"

// ErrUnavailable reports a toolchain version the module proxy does not serve:
// it answered 403, 404 or 410. The proxy gives the same answer for a release
// it withholds and for a version that never existed.
var ErrUnavailable = errors.New("toolchain not available from the module proxy")

// ErrChecksum reports a toolchain zip whose hash differs from the one the
// checksum database records for it. The zip is deleted, never unpacked.
var ErrChecksum = errors.New("checksum mismatch")

// ErrUnreachable reports that the module proxy could not be reached at all
// (DNS, connection or TLS failure after retries), as opposed to answering
// with an error.
var ErrUnreachable = errors.New("module proxy unreachable")

// Proxy is a Go module proxy serving golang.org/toolchain and, under
// /sumdb/<name>/, the checksum database. The zero value uses
// proxy.golang.org and sum.golang.org.
//
// A Proxy is safe for concurrent use once its fields are set.
type Proxy struct {
	// URL is the proxy's base URL; empty means [DefaultProxyURL].
	URL string
	// Client makes the HTTP requests; nil means a client with a response
	// header timeout, relying on the caller's context for overall limits.
	Client *http.Client

	// SumDB is the checksum database name, reached through the proxy at
	// <URL>/sumdb/<SumDB>/. Empty means "sum.golang.org", or the name in
	// SumDBKey when that is set.
	SumDB string
	// SumDBKey is the checksum database's verifier key ("name+hash+key").
	// Empty means [DefaultSumDBKey], the public key of sum.golang.org.
	SumDBKey string
	// ConfigDir is where the checksum database client keeps the latest
	// verified tree head and its tile cache, so that later runs detect a
	// database that rewrites history. Empty means
	// <user cache dir>/offsetdb/sumdb, or <Cache.Dir>/sumdb inside a [Cache].
	ConfigDir string

	// IncludePre makes Releases also return pre-releases (beta, rc).
	IncludePre bool
	// ProbeWindow is how many consecutive missing patch versions past a
	// line's highest available one end Releases' probing of that line;
	// 0 means 20. The proxy withholds long runs of releases (go1.12.1 to
	// go1.12.16), so a small window misses later ones.
	ProbeWindow int
	// Concurrency bounds the parallel requests of Releases, and of callers
	// that probe for versions or dates through this Proxy (packages
	// modversions and modgen); 0 means 8. See Parallel.
	Concurrency int

	// retryBase is the first retry delay; tests shorten it.
	retryBase time.Duration

	// Settled, if set, answers for releases whose availability an earlier
	// run already established (from the database), so Releases does not ask
	// the proxy about them again, and treats minor lines older than the two
	// newest as closed (Go only patches its two newest lines): a no-op
	// regeneration then costs a few dozen requests instead of hundreds.
	// Leave it nil to re-check everything, e.g. releases once withheld.
	Settled func(v goversion.Version) (available bool, reason string, ok bool)
}

// ProxyURLFromEnv returns the first HTTP(S) proxy listed in $GOPROXY, or
// [DefaultProxyURL] when there is none ("direct" and "off" are not proxies).
func ProxyURLFromEnv() string {
	for _, e := range strings.FieldsFunc(os.Getenv("GOPROXY"), func(r rune) bool { return r == ',' || r == '|' }) {
		e = strings.TrimSpace(e)
		if strings.HasPrefix(e, "https://") || strings.HasPrefix(e, "http://") {
			return strings.TrimRight(e, "/")
		}
	}
	return DefaultProxyURL
}

// ModuleVersion returns the golang.org/toolchain module version holding the
// [Platform] toolchain of v, such as "v0.0.1-go1.22.5.linux-amd64".
func ModuleVersion(v goversion.Version) string {
	return "v0.0.1-" + v.String() + "." + Platform
}

// BaseURL returns the URL of the proxy: URL without a trailing slash, or
// [DefaultProxyURL] when it is empty (or p is nil).
func (p *Proxy) BaseURL() string {
	if p == nil || p.URL == "" {
		return DefaultProxyURL
	}
	return strings.TrimRight(p.URL, "/")
}

func (p *Proxy) url() string { return p.BaseURL() }

var defaultClient = &http.Client{Transport: func() http.RoundTripper {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.ResponseHeaderTimeout = time.Minute
	return t
}()}

func (p *Proxy) client() *http.Client {
	if p.Client != nil {
		return p.Client
	}
	return defaultClient
}

// moduleURL returns the proxy URL of a golang.org/toolchain file, suffix
// being ".info", ".zip" or ".mod".
func (p *Proxy) moduleURL(v goversion.Version, suffix string) (string, error) {
	path, err := moduleFilePath(ModulePath, ModuleVersion(v), suffix)
	if err != nil {
		return "", err
	}
	return p.url() + path, nil
}

// moduleFilePath returns the proxy path of a file of modulePath: the list
// when version is "" ("/<module>/@v/list"), else version's file with
// suffix (".info", ".mod", ".zip"), both escaped as the protocol wants.
func moduleFilePath(modulePath, version, suffix string) (string, error) {
	path, err := module.EscapePath(modulePath)
	if err != nil {
		return "", err
	}
	if version == "" {
		return "/" + path + "/@v/list", nil
	}
	vers, err := module.EscapeVersion(version)
	if err != nil {
		return "", fmt.Errorf("escape module version %s of %s: %w", version, modulePath, err)
	}
	return "/" + path + "/@v/" + vers + suffix, nil
}

// ModuleFile fetches a file of a module from the proxy, as GetFile does:
// the list of versions when version is "", else version's file with suffix
// (".info", ".mod", ".zip"). Path and version are escaped here.
func (p *Proxy) ModuleFile(ctx context.Context, modulePath, version, suffix string) ([]byte, error) {
	path, err := moduleFilePath(modulePath, version, suffix)
	if err != nil {
		return nil, err
	}
	return p.GetFile(ctx, path)
}

// statusError is a non-200 answer from the proxy. 403, 404 and 410 match
// ErrUnavailable.
type statusError struct {
	code int
	body string
}

func (e *statusError) Error() string {
	if e.body == "" {
		return fmt.Sprintf("proxy answered %d %s", e.code, http.StatusText(e.code))
	}
	return fmt.Sprintf("proxy answered %d: %s", e.code, e.body)
}

func (e *statusError) Is(target error) bool {
	return target == ErrUnavailable && isMiss(e.code)
}

func isMiss(code int) bool {
	return code == http.StatusForbidden || code == http.StatusNotFound || code == http.StatusGone
}

func retryable(code int) bool {
	return code >= 500 || code == http.StatusTooManyRequests
}

const (
	attempts     = 4
	maxSmallBody = 16 << 20
)

// GetFile fetches a small file (at most 16 MiB) from the proxy at path
// below its URL ("/golang.org/x/net/@v/list"), with the retries of every
// request here. An answer 403, 404 or 410 matches ErrUnavailable; an
// unreachable proxy, ErrUnreachable.
func (p *Proxy) GetFile(ctx context.Context, path string) ([]byte, error) {
	return p.get(ctx, p.url()+path)
}

// get fetches a small document (a list, an .info file, a checksum database
// tile) with retries.
func (p *Proxy) get(ctx context.Context, url string) ([]byte, error) {
	var data []byte
	err := p.fetch(ctx, url, func(r io.Reader) error {
		var err error
		data, err = io.ReadAll(io.LimitReader(r, maxSmallBody))
		return err
	})
	return data, err
}

// fetch GETs url and hands a 200 body to sink. Network errors, 5xx and 429
// are retried with exponential backoff; sink must therefore start over on
// each call. Other statuses return a *statusError.
func (p *Proxy) fetch(ctx context.Context, url string, sink func(io.Reader) error) error {
	delay := p.retryBase
	if delay == 0 {
		delay = 250 * time.Millisecond
	}
	var lastErr error
	netFailure := false
	for attempt := 0; attempt < attempts; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(delay):
			}
			delay *= 2
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		req.Header.Set("User-Agent", "offsetdb-offsetgen")
		resp, err := p.client().Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			// A transport error: DNS, connect, TLS or a dropped connection.
			lastErr, netFailure = err, true
			continue
		}
		if resp.StatusCode == http.StatusOK {
			err = sink(resp.Body)
			resp.Body.Close()
			if err == nil {
				return nil
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			lastErr, netFailure = fmt.Errorf("read %s: %w", url, err), false
			continue
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		resp.Body.Close()
		serr := &statusError{code: resp.StatusCode, body: strings.TrimSpace(string(body))}
		if !retryable(resp.StatusCode) {
			return serr
		}
		lastErr, netFailure = serr, false
	}
	if netFailure {
		return fmt.Errorf("%w: %s: %v (check network access, or set GOPROXY / --proxy to a reachable Go module proxy)",
			ErrUnreachable, p.url(), lastErr)
	}
	return fmt.Errorf("GET %s failed %d times: %w", url, attempts, lastErr)
}
