package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/offsetdb/offsetdb/offsetgen/publish"
)

func runPublish(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("publish", flag.ContinueOnError)
	mode := fs.String("mode", "", "pr: propose the database as a pull request; release: upload it as release assets")
	data := fs.String("data", "data", "the new database")
	old := fs.String("old", "", "the published database (e.g. a checkout of the base branch's data/); an existing empty directory means none")
	repo := fs.String("repo", os.Getenv("GITHUB_REPOSITORY"), "repository owner/name (default $GITHUB_REPOSITORY)")
	base := fs.String("base", envOr("GITHUB_BASE_REF", "main"), "base branch (default $GITHUB_BASE_REF or main)")
	branch := fs.String("branch", "offsetdb/update-offsets", "branch the pull request is made from (force-updated)")
	path := fs.String("path", "data", "directory of the database inside the repository")
	apiURL := fs.String("api-url", envOr("GITHUB_API_URL", "https://api.github.com/"), "GitHub REST API URL (default $GITHUB_API_URL)")
	allow := fs.String("allow-changes", "", "publish even though values already published change; the reason goes into the pull request and release notes")
	date := fs.String("date", time.Now().UTC().Format(time.DateOnly), "date of the release (YYYY-MM-DD)")
	force := fs.Bool("force", false, "release even when the database did not change")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, pos)
	}
	if *mode != "pr" && *mode != "release" {
		return fmt.Errorf("%w: --mode must be pr or release", errUsage)
	}
	if *old == "" {
		return fmt.Errorf("%w: --old DIR (the published database) is required", errUsage)
	}
	owner, name, ok := strings.Cut(*repo, "/")
	if !ok || owner == "" || name == "" || strings.Contains(name, "/") {
		return fmt.Errorf("%w: --repo %q: want owner/name (or set GITHUB_REPOSITORY)", errUsage, *repo)
	}
	day, err := time.Parse(time.DateOnly, *date)
	if err != nil {
		return fmt.Errorf("%w: --date: %v", errUsage, err)
	}

	diff, err := diffDirs(*old, *data)
	if err != nil {
		return err
	}
	p, err := publish.New(publish.Config{
		Owner: owner, Repo: name, Base: *base, Branch: *branch, Path: *path,
		Token: os.Getenv("GITHUB_TOKEN"), APIURL: *apiURL, RunURL: runURL(),
	})
	if err != nil {
		return err
	}
	u := publish.Update{Dir: *data, Old: *old, Diff: diff, AllowChanges: *allow}
	if *mode == "pr" {
		res, err := p.PullRequest(ctx, u)
		if err != nil {
			return err
		}
		switch {
		case res.NoChange:
			fmt.Fprintln(stdout, "no change: nothing to propose")
		case res.Created:
			fmt.Fprintf(stdout, "opened pull request #%d: %s\n", res.Number, res.URL)
		default:
			fmt.Fprintf(stdout, "updated pull request #%d: %s (branch updated: %t)\n", res.Number, res.URL, res.BranchUpdated)
		}
		return nil
	}
	res, err := p.Release(ctx, u, day, *force)
	if err != nil {
		return err
	}
	if res.NoChange {
		fmt.Fprintln(stdout, "no change: nothing to release (--force releases anyway)")
		return nil
	}
	fmt.Fprintf(stdout, "released %s to %s (sha256 %s)\n", strings.Join(res.Assets, ", "), strings.Join(res.Tags, ", "), res.SHA256)
	return nil
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// runURL links the GitHub Actions run this command runs in, if any.
func runURL() string {
	server, repo, id := os.Getenv("GITHUB_SERVER_URL"), os.Getenv("GITHUB_REPOSITORY"), os.Getenv("GITHUB_RUN_ID")
	if server == "" || repo == "" || id == "" {
		return ""
	}
	return server + "/" + repo + "/actions/runs/" + id
}
