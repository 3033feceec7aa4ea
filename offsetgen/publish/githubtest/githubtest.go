// Package githubtest is a fake of the parts of the GitHub REST API that
// package publish calls: git refs, commits, blobs and trees; pull requests
// (list, create, edit); releases (get by tag, create, edit) and their assets
// (list, delete, upload). It keeps a small in-memory repository, records
// every call, and can be told to fail the next calls in the ways GitHub does
// (rate limits, 5xx), so tests and rehearsals exercise the real client code
// against it.
//
// It implements only what publish uses, with GitHub's status codes for the
// cases publish handles (404 for a missing ref or release, 422 for a
// duplicate ref, pull request, release or asset, 401 for a wrong token).
package githubtest

import (
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Server is a fake GitHub serving one repository.
type Server struct {
	*httptest.Server
	Owner, Repo, Token string

	mu       sync.Mutex
	calls    []string
	faults   []fault
	blobs    map[string][]byte
	trees    map[string]map[string]string // tree sha -> path -> blob sha
	commits  map[string]commit
	refs     map[string]string // "heads/main" -> commit sha
	pulls    []*PullRequest
	releases []*Release
	nextID   int64
	seq      int
	// Log, when set, receives one line per call.
	Log func(format string, args ...any)
}

type commit struct {
	Tree    string
	Parents []string
	Message string
}

// PullRequest is a pull request as the fake holds it.
type PullRequest struct {
	Number           int
	Title, Body      string
	Head, Base       string
	State            string
	MaintainerCanMod bool
}

// Release is a release as the fake holds it.
type Release struct {
	ID          int64
	Tag, Target string
	Name, Body  string
	Assets      []*Asset
}

// Asset is a release asset as the fake holds it.
type Asset struct {
	ID          int64
	Name        string
	ContentType string
	Data        []byte
}

type fault struct {
	method, path string // path is a substring of the request path
	status       int
	header       http.Header
	body         string
}

// New starts a fake for owner/repo accepting token, on a free local port,
// with a branch main holding one commit with a README.
func New(owner, repo, token string) *Server {
	s := newServer(owner, repo, token)
	s.Server = httptest.NewServer(s.routes())
	return s
}

// NewAt is New listening on addr ("127.0.0.1:8765").
func NewAt(addr, owner, repo, token string) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := newServer(owner, repo, token)
	s.Server = httptest.NewUnstartedServer(s.routes())
	s.Server.Listener.Close()
	s.Server.Listener = ln
	s.Server.Start()
	return s, nil
}

func newServer(owner, repo, token string) *Server {
	s := &Server{
		Owner: owner, Repo: repo, Token: token,
		blobs: map[string][]byte{}, trees: map[string]map[string]string{},
		commits: map[string]commit{}, refs: map[string]string{},
	}
	readme := s.putBlob([]byte("# " + repo + "\n"))
	tree := s.putTree(map[string]string{"README.md": readme})
	s.refs["heads/main"] = s.putCommit(commit{Tree: tree, Message: "initial commit"})
	return s
}

// APIURL is the base URL to give the client.
func (s *Server) APIURL() string { return s.URL + "/" }

// Calls returns "METHOD /path" for every request so far.
func (s *Server) Calls() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

// ResetCalls forgets the calls recorded so far.
func (s *Server) ResetCalls() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = nil
}

// FailNext makes the next request whose method is method and whose path
// contains path fail with status, header and body (a JSON message). Faults
// queue up: call it twice to fail twice.
func (s *Server) FailNext(method, path string, status int, header http.Header, body string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if body == "" {
		body = fmt.Sprintf(`{"message": %q}`, http.StatusText(status))
	}
	s.faults = append(s.faults, fault{method, path, status, header, body})
}

// File returns the content of path on branch.
func (s *Server) File(branch, path string) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.commits[s.refs["heads/"+branch]]
	if !ok {
		return nil, false
	}
	b, ok := s.trees[c.Tree][path]
	if !ok {
		return nil, false
	}
	return s.blobs[b], true
}

// Files returns the paths of every file on branch, sorted.
func (s *Server) Files(branch string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for p := range s.trees[s.commits[s.refs["heads/"+branch]].Tree] {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// Releases returns the tags of every release, in creation order.
func (s *Server) Releases() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, r := range s.releases {
		out = append(out, r.Tag)
	}
	return out
}

// Head returns the commit sha branch points at, and its parents.
func (s *Server) Head(branch string) (sha string, parents []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sha = s.refs["heads/"+branch]
	return sha, slices.Clone(s.commits[sha].Parents)
}

// Commit adds a commit on branch that sets path to content, as a person
// pushing to the repository would.
func (s *Server) Commit(branch, path string, content []byte) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	parent := s.refs["heads/"+branch]
	files := map[string]string{}
	for p, b := range s.trees[s.commits[parent].Tree] {
		files[p] = b
	}
	files[path] = s.putBlob(content)
	sha := s.putCommit(commit{Tree: s.putTree(files), Parents: []string{parent}, Message: "update " + path})
	s.refs["heads/"+branch] = sha
	return sha
}

// PullRequests returns copies of every pull request.
func (s *Server) PullRequests() []PullRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []PullRequest
	for _, p := range s.pulls {
		out = append(out, *p)
	}
	return out
}

// Release returns a copy of the release tagged tag.
func (s *Server) Release(tag string) (Release, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.releases {
		if r.Tag == tag {
			c := *r
			c.Assets = nil
			for _, a := range r.Assets {
				ac := *a
				c.Assets = append(c.Assets, &ac)
			}
			return c, true
		}
	}
	return Release{}, false
}

// Store: content-addressed like git, so equal trees have equal SHAs.

func (s *Server) putBlob(data []byte) string {
	sum := sha1.Sum(append([]byte(fmt.Sprintf("blob %d\x00", len(data))), data...))
	sha := hex.EncodeToString(sum[:])
	s.blobs[sha] = slices.Clone(data)
	return sha
}

func (s *Server) putTree(files map[string]string) string {
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	h := sha1.New()
	for _, p := range paths {
		fmt.Fprintf(h, "%s\x00%s\n", p, files[p])
	}
	sha := hex.EncodeToString(h.Sum(nil))
	s.trees[sha] = files
	return sha
}

func (s *Server) putCommit(c commit) string {
	s.seq++ // commits differ by time in git; here by a counter
	sum := sha1.Sum(fmt.Appendf(nil, "%s %v %s %d", c.Tree, c.Parents, c.Message, s.seq))
	sha := hex.EncodeToString(sum[:])
	s.commits[sha] = c
	return sha
}

// HTTP

type handler func(w http.ResponseWriter, r *http.Request) (int, any)

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	repo := "/repos/{owner}/{repo}"
	for pattern, h := range map[string]handler{
		"GET " + repo + "/git/ref/{ref...}":              s.getRef,
		"POST " + repo + "/git/refs":                     s.createRef,
		"PATCH " + repo + "/git/refs/{ref...}":           s.updateRef,
		"GET " + repo + "/git/commits/{sha}":             s.getCommit,
		"POST " + repo + "/git/commits":                  s.createCommit,
		"POST " + repo + "/git/blobs":                    s.createBlob,
		"POST " + repo + "/git/trees":                    s.createTree,
		"GET " + repo + "/pulls":                         s.listPulls,
		"POST " + repo + "/pulls":                        s.createPull,
		"PATCH " + repo + "/pulls/{number}":              s.editPull,
		"GET " + repo + "/releases/{a}/{b}":              s.getRelease,
		"POST " + repo + "/releases":                     s.createRelease,
		"PATCH " + repo + "/releases/{id}":               s.editRelease,
		"DELETE " + repo + "/releases/assets/{id}":       s.deleteAsset,
		"POST /uploads" + repo + "/releases/{id}/assets": s.uploadAsset,
	} {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) { s.serve(w, r, h) })
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { s.serve(w, r, notImplemented) })
	return mux
}

func notImplemented(w http.ResponseWriter, r *http.Request) (int, any) {
	return http.StatusNotImplemented, msg("githubtest: " + r.Method + " " + r.URL.Path + " is not implemented")
}

func msg(m string) map[string]string { return map[string]string{"message": m} }

func (s *Server) serve(w http.ResponseWriter, r *http.Request, h handler) {
	s.mu.Lock()
	call := r.Method + " " + r.URL.Path
	s.calls = append(s.calls, call)
	var f *fault
	for i, ft := range s.faults {
		if ft.method == r.Method && strings.Contains(r.URL.Path, ft.path) {
			f = &ft
			s.faults = slices.Delete(s.faults, i, i+1)
			break
		}
	}
	logf := s.Log
	s.mu.Unlock()

	var status int
	var body any
	switch {
	case f != nil:
		for k, vs := range f.header {
			for _, v := range vs {
				w.Header().Add(k, v)
			}
		}
		status, body = f.status, json.RawMessage(f.body)
	case r.Header.Get("Authorization") != "Bearer "+s.Token:
		status, body = http.StatusUnauthorized, msg("Bad credentials")
	case r.PathValue("owner") != s.Owner || r.PathValue("repo") != s.Repo:
		status, body = http.StatusNotFound, msg("Not Found")
	default:
		s.mu.Lock()
		status, body = h(w, r)
		s.mu.Unlock()
	}
	if logf != nil {
		logf("%s -> %d", call, status)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	if status == http.StatusNoContent {
		w.WriteHeader(status)
		return
	}
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(body)
}

func decode(r *http.Request, v any) error {
	return json.NewDecoder(r.Body).Decode(v)
}

func refJSON(ref, sha string) map[string]any {
	return map[string]any{"ref": "refs/" + ref, "object": map[string]string{"sha": sha, "type": "commit"}}
}

func (s *Server) getRef(w http.ResponseWriter, r *http.Request) (int, any) {
	ref := r.PathValue("ref")
	sha, ok := s.refs[ref]
	if !ok {
		return http.StatusNotFound, msg("Not Found")
	}
	return http.StatusOK, refJSON(ref, sha)
}

func (s *Server) createRef(w http.ResponseWriter, r *http.Request) (int, any) {
	var in struct{ Ref, SHA string }
	if err := decode(r, &in); err != nil {
		return http.StatusBadRequest, msg(err.Error())
	}
	ref := strings.TrimPrefix(in.Ref, "refs/")
	if _, ok := s.refs[ref]; ok {
		return http.StatusUnprocessableEntity, msg("Reference already exists")
	}
	if _, ok := s.commits[in.SHA]; !ok {
		return http.StatusUnprocessableEntity, msg("Object does not exist")
	}
	s.refs[ref] = in.SHA
	return http.StatusCreated, refJSON(ref, in.SHA)
}

func (s *Server) updateRef(w http.ResponseWriter, r *http.Request) (int, any) {
	var in struct {
		SHA   string
		Force bool
	}
	if err := decode(r, &in); err != nil {
		return http.StatusBadRequest, msg(err.Error())
	}
	ref := r.PathValue("ref")
	old, ok := s.refs[ref]
	if !ok {
		return http.StatusUnprocessableEntity, msg("Reference does not exist")
	}
	if _, ok := s.commits[in.SHA]; !ok {
		return http.StatusUnprocessableEntity, msg("Object does not exist")
	}
	if !in.Force && !s.isAncestor(old, in.SHA) {
		return http.StatusUnprocessableEntity, msg("Update is not a fast forward")
	}
	s.refs[ref] = in.SHA
	return http.StatusOK, refJSON(ref, in.SHA)
}

func (s *Server) isAncestor(a, b string) bool {
	if a == b {
		return true
	}
	for _, p := range s.commits[b].Parents {
		if s.isAncestor(a, p) {
			return true
		}
	}
	return false
}

func (s *Server) commitJSON(sha string) map[string]any {
	c := s.commits[sha]
	parents := []map[string]string{}
	for _, p := range c.Parents {
		parents = append(parents, map[string]string{"sha": p})
	}
	return map[string]any{"sha": sha, "message": c.Message, "tree": map[string]string{"sha": c.Tree}, "parents": parents}
}

func (s *Server) getCommit(w http.ResponseWriter, r *http.Request) (int, any) {
	sha := r.PathValue("sha")
	if _, ok := s.commits[sha]; !ok {
		return http.StatusNotFound, msg("Not Found")
	}
	return http.StatusOK, s.commitJSON(sha)
}

func (s *Server) createCommit(w http.ResponseWriter, r *http.Request) (int, any) {
	var in struct {
		Message string
		Tree    string
		Parents []string
	}
	if err := decode(r, &in); err != nil {
		return http.StatusBadRequest, msg(err.Error())
	}
	if _, ok := s.trees[in.Tree]; !ok {
		return http.StatusUnprocessableEntity, msg("Tree SHA does not exist")
	}
	for _, p := range in.Parents {
		if _, ok := s.commits[p]; !ok {
			return http.StatusUnprocessableEntity, msg("Parent SHA does not exist or is not a commit object")
		}
	}
	sha := s.putCommit(commit{Tree: in.Tree, Parents: in.Parents, Message: in.Message})
	return http.StatusCreated, s.commitJSON(sha)
}

func (s *Server) createBlob(w http.ResponseWriter, r *http.Request) (int, any) {
	var in struct{ Content, Encoding string }
	if err := decode(r, &in); err != nil {
		return http.StatusBadRequest, msg(err.Error())
	}
	data := []byte(in.Content)
	if in.Encoding == "base64" {
		var err error
		if data, err = base64.StdEncoding.DecodeString(in.Content); err != nil {
			return http.StatusBadRequest, msg(err.Error())
		}
	}
	return http.StatusCreated, map[string]string{"sha": s.putBlob(data)}
}

func (s *Server) createTree(w http.ResponseWriter, r *http.Request) (int, any) {
	var in struct {
		BaseTree string `json:"base_tree"`
		Tree     []struct {
			Path, Mode, Type string
			SHA              *string
			Content          *string
		}
	}
	if err := decode(r, &in); err != nil {
		return http.StatusBadRequest, msg(err.Error())
	}
	files := map[string]string{}
	if in.BaseTree != "" {
		base, ok := s.trees[in.BaseTree]
		if !ok {
			return http.StatusUnprocessableEntity, msg("base_tree does not exist")
		}
		for p, b := range base {
			files[p] = b
		}
	}
	for _, e := range in.Tree {
		switch {
		case e.Content != nil:
			files[e.Path] = s.putBlob([]byte(*e.Content))
		case e.SHA == nil:
			delete(files, e.Path)
		default:
			if _, ok := s.blobs[*e.SHA]; !ok {
				return http.StatusUnprocessableEntity, msg("tree.sha " + *e.SHA + " is not a valid blob")
			}
			files[e.Path] = *e.SHA
		}
	}
	return http.StatusCreated, map[string]string{"sha": s.putTree(files)}
}

func (s *Server) pullJSON(p *PullRequest) map[string]any {
	return map[string]any{
		"number": p.Number, "title": p.Title, "body": p.Body, "state": p.State,
		"html_url": fmt.Sprintf("%s/%s/%s/pull/%d", s.URL, s.Owner, s.Repo, p.Number),
		"head":     map[string]string{"ref": p.Head, "label": s.Owner + ":" + p.Head},
		"base":     map[string]string{"ref": p.Base},
	}
}

func (s *Server) listPulls(w http.ResponseWriter, r *http.Request) (int, any) {
	q := r.URL.Query()
	out := []map[string]any{}
	for _, p := range s.pulls {
		if st := q.Get("state"); st != "" && st != "all" && p.State != st {
			continue
		}
		if h := q.Get("head"); h != "" && h != s.Owner+":"+p.Head {
			continue
		}
		if b := q.Get("base"); b != "" && b != p.Base {
			continue
		}
		out = append(out, s.pullJSON(p))
	}
	return http.StatusOK, out
}

func (s *Server) createPull(w http.ResponseWriter, r *http.Request) (int, any) {
	var in struct {
		Title, Head, Base, Body string
		MaintainerCanModify     bool `json:"maintainer_can_modify"`
	}
	if err := decode(r, &in); err != nil {
		return http.StatusBadRequest, msg(err.Error())
	}
	if _, ok := s.refs["heads/"+in.Head]; !ok {
		return http.StatusUnprocessableEntity, msg("head: invalid")
	}
	for _, p := range s.pulls {
		if p.State == "open" && p.Head == in.Head && p.Base == in.Base {
			return http.StatusUnprocessableEntity, msg("A pull request already exists for " + s.Owner + ":" + in.Head + ".")
		}
	}
	p := &PullRequest{Number: len(s.pulls) + 1, Title: in.Title, Body: in.Body, Head: in.Head, Base: in.Base, State: "open", MaintainerCanMod: in.MaintainerCanModify}
	s.pulls = append(s.pulls, p)
	return http.StatusCreated, s.pullJSON(p)
}

func (s *Server) editPull(w http.ResponseWriter, r *http.Request) (int, any) {
	n, _ := strconv.Atoi(r.PathValue("number"))
	if n < 1 || n > len(s.pulls) {
		return http.StatusNotFound, msg("Not Found")
	}
	var in struct{ Title, Body *string }
	if err := decode(r, &in); err != nil {
		return http.StatusBadRequest, msg(err.Error())
	}
	p := s.pulls[n-1]
	if in.Title != nil {
		p.Title = *in.Title
	}
	if in.Body != nil {
		p.Body = *in.Body
	}
	return http.StatusOK, s.pullJSON(p)
}

func (s *Server) releaseJSON(rel *Release) map[string]any {
	assets := []map[string]any{}
	for _, a := range rel.Assets {
		assets = append(assets, s.assetJSON(a))
	}
	return map[string]any{
		"id": rel.ID, "tag_name": rel.Tag, "target_commitish": rel.Target, "name": rel.Name, "body": rel.Body,
		"html_url":   fmt.Sprintf("%s/%s/%s/releases/tag/%s", s.URL, s.Owner, s.Repo, rel.Tag),
		"upload_url": fmt.Sprintf("%s/uploads/repos/%s/%s/releases/%d/assets{?name,label}", s.URL, s.Owner, s.Repo, rel.ID),
		"assets":     assets,
	}
}

func (s *Server) assetJSON(a *Asset) map[string]any {
	return map[string]any{"id": a.ID, "name": a.Name, "size": len(a.Data), "content_type": a.ContentType, "state": "uploaded"}
}

func (s *Server) release(id string) *Release {
	n, _ := strconv.ParseInt(id, 10, 64)
	for _, rel := range s.releases {
		if rel.ID == n {
			return rel
		}
	}
	return nil
}

// getRelease serves GET releases/tags/{tag} and releases/{id}/assets,
// which one ServeMux pattern must cover (they overlap).
func (s *Server) getRelease(w http.ResponseWriter, r *http.Request) (int, any) {
	a, b := r.PathValue("a"), r.PathValue("b")
	switch {
	case a == "tags":
		return s.getReleaseByTag(b)
	case b == "assets":
		return s.listAssets(a)
	}
	return notImplemented(w, r)
}

func (s *Server) getReleaseByTag(tag string) (int, any) {
	for _, rel := range s.releases {
		if rel.Tag == tag {
			return http.StatusOK, s.releaseJSON(rel)
		}
	}
	return http.StatusNotFound, msg("Not Found")
}

func (s *Server) createRelease(w http.ResponseWriter, r *http.Request) (int, any) {
	var in struct {
		TagName         string `json:"tag_name"`
		TargetCommitish string `json:"target_commitish"`
		Name, Body      string
	}
	if err := decode(r, &in); err != nil {
		return http.StatusBadRequest, msg(err.Error())
	}
	for _, rel := range s.releases {
		if rel.Tag == in.TagName {
			return http.StatusUnprocessableEntity, msg("Validation Failed: tag_name already_exists")
		}
	}
	target := in.TargetCommitish
	sha, ok := s.refs["heads/"+target]
	if !ok {
		return http.StatusUnprocessableEntity, msg("Validation Failed: target_commitish invalid")
	}
	s.nextID++
	rel := &Release{ID: s.nextID, Tag: in.TagName, Target: target, Name: in.Name, Body: in.Body}
	s.refs["tags/"+in.TagName] = sha
	s.releases = append(s.releases, rel)
	return http.StatusCreated, s.releaseJSON(rel)
}

func (s *Server) editRelease(w http.ResponseWriter, r *http.Request) (int, any) {
	rel := s.release(r.PathValue("id"))
	if rel == nil {
		return http.StatusNotFound, msg("Not Found")
	}
	var in struct{ Name, Body *string }
	if err := decode(r, &in); err != nil {
		return http.StatusBadRequest, msg(err.Error())
	}
	if in.Name != nil {
		rel.Name = *in.Name
	}
	if in.Body != nil {
		rel.Body = *in.Body
	}
	return http.StatusOK, s.releaseJSON(rel)
}

func (s *Server) listAssets(id string) (int, any) {
	rel := s.release(id)
	if rel == nil {
		return http.StatusNotFound, msg("Not Found")
	}
	out := []map[string]any{}
	for _, a := range rel.Assets {
		out = append(out, s.assetJSON(a))
	}
	return http.StatusOK, out
}

func (s *Server) deleteAsset(w http.ResponseWriter, r *http.Request) (int, any) {
	id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
	for _, rel := range s.releases {
		for i, a := range rel.Assets {
			if a.ID == id {
				rel.Assets = slices.Delete(rel.Assets, i, i+1)
				return http.StatusNoContent, nil
			}
		}
	}
	return http.StatusNotFound, msg("Not Found")
}

func (s *Server) uploadAsset(w http.ResponseWriter, r *http.Request) (int, any) {
	rel := s.release(r.PathValue("id"))
	if rel == nil {
		return http.StatusNotFound, msg("Not Found")
	}
	name := r.URL.Query().Get("name")
	if name == "" {
		return http.StatusUnprocessableEntity, msg("name is required")
	}
	for _, a := range rel.Assets {
		if a.Name == name {
			return http.StatusUnprocessableEntity, map[string]any{"message": "Validation Failed", "errors": []map[string]string{{"resource": "ReleaseAsset", "code": "already_exists", "field": "name"}}}
		}
	}
	data, err := io.ReadAll(r.Body)
	if err != nil {
		return http.StatusBadRequest, msg(err.Error())
	}
	s.nextID++
	a := &Asset{ID: s.nextID, Name: name, ContentType: r.Header.Get("Content-Type"), Data: data}
	rel.Assets = append(rel.Assets, a)
	return http.StatusCreated, s.assetJSON(a)
}
