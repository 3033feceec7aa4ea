package publish

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/google/go-github/v57/github"
)

// RollingTag is the tag of the release that always carries the newest
// database, so a download URL can point at it without knowing the date.
const RollingTag = "offsets"

// LatestName is the name under which the rolling release also carries the
// newest archive, with LatestName+".sha256" naming the dated archive it is
// (the alias form the tracer's --offsets-url reads), so
// .../releases/download/offsets/offsets-latest.tar.gz is a stable URL.
const LatestName = "offsets-latest.tar.gz"

// ReleaseResult says what Release did.
type ReleaseResult struct {
	// NoChange is set when there was nothing new to release; nothing was
	// called.
	NoChange bool
	// Tags are the releases the assets were uploaded to.
	Tags []string
	// Assets are the uploaded file names (the rolling release also gets
	// LatestName and its .sha256); SHA256 is the archive's digest.
	Assets []string
	SHA256 string
}

// Archive is a database packed for a release.
type Archive struct {
	Name    string // offsets-2006-01-02.tar.gz
	Data    []byte
	SHA256  string
	SumName string // Name + ".sha256"
	Sum     []byte // "<hex>  <Name>\n", as sha256sum writes it
}

// PackArchive packs the database in dir as a gzipped tar named after date.
// The archive is deterministic: the index and the shards it lists under
// "data/", in sorted order, with zero modification times, owner 0:0 and
// mode 0644, so the same database gives the same bytes on any machine.
func PackArchive(dir string, date time.Time) (*Archive, error) {
	files, err := databaseFiles(dir)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	tw := tar.NewWriter(zw)
	epoch := time.Unix(0, 0).UTC()
	hdr := func(name string, mode int64, typ byte, size int64) *tar.Header {
		return &tar.Header{Name: name, Mode: mode, Typeflag: typ, Size: size, ModTime: epoch, Format: tar.FormatUSTAR}
	}
	if err := tw.WriteHeader(hdr("data/", 0o755, tar.TypeDir, 0)); err != nil {
		return nil, err
	}
	for _, f := range files {
		if err := tw.WriteHeader(hdr("data/"+f.path, 0o644, tar.TypeReg, int64(len(f.data)))); err != nil {
			return nil, fmt.Errorf("pack %s: %w", f.path, err)
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, fmt.Errorf("pack %s: %w", f.path, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	a := &Archive{Name: "offsets-" + date.UTC().Format(time.DateOnly) + ".tar.gz", Data: buf.Bytes()}
	sum := sha256.Sum256(a.Data)
	a.SHA256 = hex.EncodeToString(sum[:])
	a.SumName = a.Name + ".sha256"
	a.Sum = []byte(a.SHA256 + "  " + a.Name + "\n")
	return a, nil
}

// datedAsset matches the assets of any dated archive, which the rolling
// release sheds when it gets a newer one.
var datedAsset = regexp.MustCompile(`^offsets-\d{4}-\d{2}-\d{2}\.tar\.gz(\.sha256)?$`)

// Release uploads the database as offsets-<date>.tar.gz and its .sha256 to
// the release tagged offsets-<date> and to the rolling release tagged
// "offsets" (which also gets it as offsets-latest.tar.gz, see LatestName),
// creating either (on the base branch) when missing. An asset of the same
// name is replaced, and the rolling release drops the archives of other
// dates, so running Release again leaves the same releases.
//
// When u.Diff is empty Release calls nothing unless force is set. It refuses
// (see Gate) to change published values without u.AllowChanges.
func (p *Publisher) Release(ctx context.Context, u Update, date time.Time, force bool) (*ReleaseResult, error) {
	if u.Diff.Empty() && !force {
		p.log.Info("no change: nothing to release")
		return &ReleaseResult{NoChange: true}, nil
	}
	if err := Gate(u.Diff, u.AllowChanges); err != nil {
		return nil, err
	}
	a, err := PackArchive(u.Dir, date)
	if err != nil {
		return nil, err
	}
	day := date.UTC().Format(time.DateOnly)
	dated := "offsets-" + day
	notes := p.changelog(fmt.Sprintf("Offset database of %s: `%s` (sha256 `%s`).", day, a.Name, a.SHA256), u)
	res := &ReleaseResult{Assets: []string{a.Name, a.SumName}, SHA256: a.SHA256}
	for _, rel := range []struct {
		tag, name, body string
		rolling         bool
	}{
		{dated, "Offsets " + day, notes, false},
		{RollingTag, "Offsets (latest)", fmt.Sprintf("The newest offset database, currently of %s (release `%s`), also as `%s` (for `tracer --offsets-url`).\n\n", day, dated, LatestName) + notes, true},
	} {
		r, err := p.ensureRelease(ctx, rel.tag, rel.name, rel.body)
		if err != nil {
			return nil, err
		}
		ups := []upload{{a.Name, "application/gzip", a.Data}, {a.SumName, "text/plain", a.Sum}}
		if rel.rolling {
			ups = append(ups, upload{LatestName, "application/gzip", a.Data}, upload{LatestName + ".sha256", "text/plain", a.Sum})
		}
		if err := p.replaceAssets(ctx, r, ups, rel.rolling); err != nil {
			return nil, err
		}
		res.Tags = append(res.Tags, rel.tag)
		p.log.Info("release ready", "tag", rel.tag, "url", r.GetHTMLURL(), "assets", res.Assets)
	}
	return res, nil
}

// ensureRelease returns the release tagged tag, creating it on the base
// branch or updating its name and notes.
func (p *Publisher) ensureRelease(ctx context.Context, tag, name, body string) (*github.RepositoryRelease, error) {
	o, r := p.cfg.Owner, p.cfg.Repo
	rel, err := call(ctx, p, "get release "+tag, func() (*github.RepositoryRelease, *github.Response, error) {
		return p.client.Repositories.GetReleaseByTag(ctx, o, r, tag)
	})
	switch {
	case isNotFound(err):
		return call(ctx, p, "create release "+tag, func() (*github.RepositoryRelease, *github.Response, error) {
			return p.client.Repositories.CreateRelease(ctx, o, r, &github.RepositoryRelease{
				TagName: github.String(tag), TargetCommitish: github.String(p.cfg.Base),
				Name: github.String(name), Body: github.String(body),
			})
		})
	case err != nil:
		return nil, err
	case rel.GetName() == name && rel.GetBody() == body:
		return rel, nil
	}
	id := rel.GetID()
	return call(ctx, p, "update release "+tag, func() (*github.RepositoryRelease, *github.Response, error) {
		return p.client.Repositories.EditRelease(ctx, o, r, id, &github.RepositoryRelease{Name: github.String(name), Body: github.String(body)})
	})
}

// upload is one release asset to upload.
type upload struct {
	name, mediaType string
	data            []byte
}

// replaceAssets uploads ups to rel, deleting assets of the same names first
// (and, on the rolling release, archives of other dates).
func (p *Publisher) replaceAssets(ctx context.Context, rel *github.RepositoryRelease, uploads []upload, rolling bool) error {
	drop := func(name string) bool {
		return slices.ContainsFunc(uploads, func(u upload) bool { return u.name == name }) || (rolling && datedAsset.MatchString(name))
	}
	if err := p.deleteAssets(ctx, rel, drop); err != nil {
		return err
	}
	for _, up := range uploads {
		err := p.uploadAsset(ctx, rel, up.name, up.mediaType, up.data)
		var er *github.ErrorResponse
		if errors.As(err, &er) && er.Response != nil && er.Response.StatusCode == http.StatusUnprocessableEntity {
			// A retried upload may have left a half-made asset of this name: drop it, try once more.
			if err := p.deleteAssets(ctx, rel, func(n string) bool { return n == up.name }); err != nil {
				return err
			}
			err = p.uploadAsset(ctx, rel, up.name, up.mediaType, up.data)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (p *Publisher) deleteAssets(ctx context.Context, rel *github.RepositoryRelease, drop func(string) bool) error {
	o, r, id := p.cfg.Owner, p.cfg.Repo, rel.GetID()
	type page struct {
		assets []*github.ReleaseAsset
		next   int
	}
	var assets []*github.ReleaseAsset
	opts := &github.ListOptions{PerPage: 100}
	for {
		pg, err := call(ctx, p, "list assets of "+rel.GetTagName(), func() (page, *github.Response, error) {
			as, resp, err := p.client.Repositories.ListReleaseAssets(ctx, o, r, id, opts)
			if err != nil {
				return page{}, resp, err
			}
			return page{as, resp.NextPage}, resp, nil
		})
		if err != nil {
			return err
		}
		assets = append(assets, pg.assets...)
		if pg.next == 0 {
			break
		}
		opts.Page = pg.next
	}
	for _, as := range assets {
		if !drop(as.GetName()) {
			continue
		}
		aid := as.GetID()
		if _, err := call(ctx, p, "delete asset "+as.GetName(), func() (*github.Response, *github.Response, error) {
			resp, err := p.client.Repositories.DeleteReleaseAsset(ctx, o, r, aid)
			return resp, resp, err
		}); err != nil && !isNotFound(err) {
			return err
		}
	}
	return nil
}

// uploadAsset posts data to the release's upload URL as GitHub gave it
// (uploads.github.com, or the Enterprise server's), named name.
func (p *Publisher) uploadAsset(ctx context.Context, rel *github.RepositoryRelease, name, mediaType string, data []byte) error {
	tmpl := rel.GetUploadURL()
	if tmpl == "" {
		return fmt.Errorf("release %s has no upload URL", rel.GetTagName())
	}
	if i := strings.IndexByte(tmpl, '{'); i >= 0 {
		tmpl = tmpl[:i] // drop the "{?name,label}" template
	}
	u := tmpl + "?name=" + url.QueryEscape(name)
	_, err := call(ctx, p, "upload "+name+" to "+rel.GetTagName(), func() (*github.ReleaseAsset, *github.Response, error) {
		req, err := p.client.NewUploadRequest(u, bytes.NewReader(data), int64(len(data)), mediaType)
		if err != nil {
			return nil, nil, err
		}
		asset := new(github.ReleaseAsset)
		resp, err := p.client.Do(ctx, req, asset)
		return asset, resp, err
	})
	return err
}
