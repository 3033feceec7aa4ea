// Command fakegithub serves the fake GitHub API of package githubtest, to
// rehearse "offsetgen publish" without touching GitHub. It logs every call
// to stderr and, when stopped (Ctrl-C), prints the pull requests and
// releases it holds and, with --dump DIR, writes the bot branch's files and
// the release assets there for inspection.
//
//	go run ./offsetgen/publish/githubtest/fakegithub --addr 127.0.0.1:8765 [--dump DIR]
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/offsetdb/offsetdb/offsetgen/publish/githubtest"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8765", "address to listen on")
	owner := flag.String("owner", "offsetdb", "repository owner")
	repo := flag.String("repo", "offsetdb", "repository name")
	token := flag.String("token", "test-token", "the token it accepts")
	branch := flag.String("branch", "offsetdb/update-offsets", "branch to dump")
	dump := flag.String("dump", "", "directory to write the branch's files and release assets to on exit")
	flag.Parse()

	srv, err := githubtest.NewAt(*addr, *owner, *repo, *token)
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	srv.Log = log.Printf
	log.Printf("fake GitHub for %s/%s at %s (token %q)", *owner, *repo, srv.APIURL(), *token)

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig

	for _, pr := range srv.PullRequests() {
		fmt.Printf("pull request #%d %s (%s -> %s): %q, body %d bytes\n", pr.Number, pr.State, pr.Head, pr.Base, pr.Title, len(pr.Body))
	}
	for _, tag := range srv.Releases() {
		rel, _ := srv.Release(tag)
		fmt.Printf("release %s (%q)\n", tag, rel.Name)
		for _, a := range rel.Assets {
			fmt.Printf("  asset %s %d bytes (%s)\n", a.Name, len(a.Data), a.ContentType)
		}
	}
	if *dump == "" {
		return
	}
	write := func(path string, data []byte) {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			log.Fatal(err)
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			log.Fatal(err)
		}
	}
	for _, p := range srv.Files(*branch) {
		data, _ := srv.File(*branch, p)
		write(filepath.Join(*dump, "branch", p), data)
	}
	for _, tag := range srv.Releases() {
		rel, _ := srv.Release(tag)
		for _, a := range rel.Assets {
			write(filepath.Join(*dump, "releases", tag, a.Name), a.Data)
		}
	}
	fmt.Printf("dumped to %s\n", *dump)
}
