package publish

import (
	"cmp"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path"
	"slices"

	"github.com/google/go-github/v57/github"

	"github.com/offsetdb/offsetdb/offsets"
)

// PullRequestResult says what PullRequest did.
type PullRequestResult struct {
	// NoChange is set when the new database holds nothing the old one does
	// not; nothing was called.
	NoChange bool
	Number   int
	URL      string
	// Created is set when the pull request was opened by this run, false
	// when an open one was updated.
	Created bool
	// Commit is the head of the bot branch; BranchUpdated is false when it
	// already held this database on top of the current base.
	Commit        string
	BranchUpdated bool
}

// PullRequest proposes the new database as a pull request against the base
// branch. It commits the database's files under Config.Path on the bot
// branch through the Git data API (blobs, a tree on top of the base commit's
// tree, a commit whose parent is the base head), points the branch at that
// commit (creating it, or force-updating it: the branch belongs to the bot),
// then opens a pull request from it or, when one is open, updates its title
// and body. The body is the changelog of u.Diff.
//
// When u.Diff is empty PullRequest calls nothing. When the bot branch
// already holds the same tree on the current base, no commit is made.
// It refuses (see Gate) to change published values without u.AllowChanges.
func (p *Publisher) PullRequest(ctx context.Context, u Update) (*PullRequestResult, error) {
	if u.Diff.Empty() {
		p.log.Info("no change: nothing to propose")
		return &PullRequestResult{NoChange: true}, nil
	}
	if err := Gate(u.Diff, u.AllowChanges); err != nil {
		return nil, err
	}
	files, err := databaseFiles(u.Dir)
	if err != nil {
		return nil, err
	}
	stale, err := staleFiles(u.Old, files)
	if err != nil {
		return nil, err
	}
	o, r := p.cfg.Owner, p.cfg.Repo

	baseRef, err := call(ctx, p, "get base branch "+p.cfg.Base, func() (*github.Reference, *github.Response, error) {
		return p.client.Git.GetRef(ctx, o, r, "heads/"+p.cfg.Base)
	})
	if err != nil {
		return nil, err
	}
	baseSHA := baseRef.GetObject().GetSHA()
	baseCommit, err := call(ctx, p, "get base commit "+baseSHA, func() (*github.Commit, *github.Response, error) {
		return p.client.Git.GetCommit(ctx, o, r, baseSHA)
	})
	if err != nil {
		return nil, err
	}

	var entries []*github.TreeEntry
	for _, f := range files {
		repoPath := path.Join(p.cfg.Path, f.path)
		blob, err := call(ctx, p, "create blob "+repoPath, func() (*github.Blob, *github.Response, error) {
			return p.client.Git.CreateBlob(ctx, o, r, &github.Blob{
				Content:  github.String(base64.StdEncoding.EncodeToString(f.data)),
				Encoding: github.String("base64"),
			})
		})
		if err != nil {
			return nil, err
		}
		entries = append(entries, &github.TreeEntry{Path: github.String(repoPath), Mode: github.String("100644"), Type: github.String("blob"), SHA: blob.SHA})
	}
	for _, name := range stale {
		// No SHA and no content: the entry deletes the file.
		entries = append(entries, &github.TreeEntry{Path: github.String(path.Join(p.cfg.Path, name)), Mode: github.String("100644"), Type: github.String("blob")})
	}
	tree, err := call(ctx, p, "create tree", func() (*github.Tree, *github.Response, error) {
		return p.client.Git.CreateTree(ctx, o, r, baseCommit.GetTree().GetSHA(), entries)
	})
	if err != nil {
		return nil, err
	}

	res := &PullRequestResult{}
	res.Commit, res.BranchUpdated, err = p.updateBranch(ctx, baseSHA, tree.GetSHA(), commitMessage(u.Diff))
	if err != nil {
		return nil, err
	}

	title, body := Title(u.Diff), p.changelog("This pull request updates the offset database.", u)
	open, err := call(ctx, p, "list pull requests", func() ([]*github.PullRequest, *github.Response, error) {
		return p.client.PullRequests.List(ctx, o, r, &github.PullRequestListOptions{State: "open", Head: o + ":" + p.cfg.Branch, Base: p.cfg.Base})
	})
	if err != nil {
		return nil, err
	}
	var pr *github.PullRequest
	if len(open) > 0 {
		n := open[0].GetNumber()
		pr, err = call(ctx, p, fmt.Sprintf("update pull request #%d", n), func() (*github.PullRequest, *github.Response, error) {
			return p.client.PullRequests.Edit(ctx, o, r, n, &github.PullRequest{Title: github.String(title), Body: github.String(body)})
		})
	} else {
		res.Created = true
		pr, err = call(ctx, p, "open pull request", func() (*github.PullRequest, *github.Response, error) {
			return p.client.PullRequests.Create(ctx, o, r, &github.NewPullRequest{
				Title: github.String(title), Head: github.String(p.cfg.Branch), Base: github.String(p.cfg.Base),
				Body: github.String(body), MaintainerCanModify: github.Bool(true),
			})
		})
	}
	if err != nil {
		return nil, err
	}
	res.Number, res.URL = pr.GetNumber(), pr.GetHTMLURL()
	p.log.Info("pull request ready", "number", res.Number, "url", res.URL, "created", res.Created, "commit", res.Commit, "branch_updated", res.BranchUpdated)
	return res, nil
}

// updateBranch points the bot branch at a commit of tree on base, making
// the commit only when the branch does not already hold exactly that.
func (p *Publisher) updateBranch(ctx context.Context, baseSHA, treeSHA, message string) (string, bool, error) {
	o, r, ref := p.cfg.Owner, p.cfg.Repo, "heads/"+p.cfg.Branch
	cur, err := call(ctx, p, "get branch "+p.cfg.Branch, func() (*github.Reference, *github.Response, error) {
		return p.client.Git.GetRef(ctx, o, r, ref)
	})
	exists := err == nil
	if err != nil && !isNotFound(err) {
		return "", false, err
	}
	if exists {
		head := cur.GetObject().GetSHA()
		c, err := call(ctx, p, "get branch head "+head, func() (*github.Commit, *github.Response, error) {
			return p.client.Git.GetCommit(ctx, o, r, head)
		})
		if err != nil {
			return "", false, err
		}
		if c.GetTree().GetSHA() == treeSHA && len(c.Parents) == 1 && c.Parents[0].GetSHA() == baseSHA {
			p.log.Info("bot branch already up to date", "branch", p.cfg.Branch, "commit", head)
			return head, false, nil
		}
	}
	commit, err := call(ctx, p, "create commit", func() (*github.Commit, *github.Response, error) {
		return p.client.Git.CreateCommit(ctx, o, r, &github.Commit{
			Message: github.String(message),
			Tree:    &github.Tree{SHA: github.String(treeSHA)},
			Parents: []*github.Commit{{SHA: github.String(baseSHA)}},
		}, nil)
	})
	if err != nil {
		return "", false, err
	}
	newRef := &github.Reference{Ref: github.String("refs/" + ref), Object: &github.GitObject{SHA: commit.SHA}}
	if exists {
		_, err = call(ctx, p, "update branch "+p.cfg.Branch, func() (*github.Reference, *github.Response, error) {
			return p.client.Git.UpdateRef(ctx, o, r, newRef, true)
		})
	} else {
		_, err = call(ctx, p, "create branch "+p.cfg.Branch, func() (*github.Reference, *github.Response, error) {
			return p.client.Git.CreateRef(ctx, o, r, newRef)
		})
	}
	if err != nil {
		return "", false, err
	}
	return commit.GetSHA(), true, nil
}

// staleFiles lists the files of the old database (in the repository) that
// the new one no longer has: shards of modules that were removed.
func staleFiles(oldDir string, files []file) ([]string, error) {
	if oldDir == "" {
		return nil, nil
	}
	ix, err := offsets.ReadIndex(os.DirFS(oldDir))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("old database %s: %w", oldDir, err)
	}
	var stale []string
	for _, e := range ix.Shards {
		if !slices.ContainsFunc(files, func(f file) bool { return f.path == e.File }) {
			stale = append(stale, e.File)
		}
	}
	return stale, nil
}

func sortFiles(files []file) {
	slices.SortFunc(files, func(a, b file) int { return cmp.Compare(a.path, b.path) })
}

func commitMessage(d *offsets.Diff) string {
	return "offsets: " + summary(d) + "\n\nGenerated by offsetgen publish."
}
