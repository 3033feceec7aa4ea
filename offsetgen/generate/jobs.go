package generate

import (
	"context"
	"io"
	"log/slog"
	"sync"

	"github.com/offsetdb/offsetdb/offsetgen/progress"
)

// RunJobs runs do for each job on workers goroutines, with a progress bar
// on w (nil for none) that steps once per job, labelled by name. Jobs not
// yet started when ctx is cancelled are not run. It returns the errors of
// the jobs that failed while ctx was live, in the order they failed; each
// is also logged. The std and module generators share it, so both have
// the same parallelism and progress.
func RunJobs[J any](ctx context.Context, jobs []J, workers int, w io.Writer, log *slog.Logger, name func(J) string, do func(context.Context, J) error) []error {
	bar := progress.New(w, len(jobs))
	work := make(chan J)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for range max(workers, 1) {
		wg.Go(func() {
			for j := range work {
				if err := do(ctx, j); err != nil && ctx.Err() == nil {
					log.Error("version not done", "version", name(j), "err", err)
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
				bar.Step(name(j))
			}
		})
	}
feed:
	for _, j := range jobs {
		select {
		case work <- j:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	if len(jobs) > 0 {
		bar.Finish()
	}
	return errs
}
