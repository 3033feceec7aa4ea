package export_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/trace"

	"github.com/offsetdb/offsetdb/tracer/export"
)

// spoolFiles lists the segment files in dir.
func spoolFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.spool"))
	require.NoError(t, err)
	return m
}

func openSpool(t *testing.T, dir string, limit int64, log *bytes.Buffer) *export.Spool {
	t.Helper()
	s, err := export.OpenSpool(dir, limit, slog.New(slog.NewTextHandler(log, nil)))
	require.NoError(t, err)
	return s
}

// TestSpoolKeepsWhatTheBufferCannot: with a spool, an outage longer than
// the memory buffer loses nothing: the overflow goes to disk and comes
// back, and the disk is empty afterwards.
func TestSpoolKeepsWhatTheBufferCannot(t *testing.T) {
	dir := t.TempDir()
	var spoolLog bytes.Buffer
	buf := fastRetry
	buf.MaxQueue = 200
	buf.Spool = openSpool(t, dir, 0, &spoolLog)
	r := &faultRun{rate: 1000, before: 100 * time.Millisecond, during: time.Second, total: 1300 * time.Millisecond,
		buffer: buf, flush: 20 * time.Second, fault: down}
	r.run(t)
	require.NoError(t, r.shutdownErr)
	s := r.accountedFor(t)
	assert.Zero(t, s.Dropped(), "without the spool a 200-span buffer drops over 300 of these (TestProcessorDropsOldestBeyondTheBoundAndCountsThem)")
	assert.EqualValues(t, r.sent, r.coll.received())
	assert.Contains(t, r.log.String(), "keeping the oldest spans in the spool")
	assert.Empty(t, spoolFiles(t, dir), "every segment was exported and removed")
}

// TestSpoolSurvivesATracerRestart: spans the collector never took before
// the tracer stopped stay in the spool, counted as spooled, and the next
// run exports them, with their resource, counting them there.
func TestSpoolSurvivesATracerRestart(t *testing.T) {
	dir := t.TempDir()
	var spoolLog bytes.Buffer
	buf := fastRetry
	buf.MaxQueue = 300
	buf.Spool = openSpool(t, dir, 0, &spoolLog)
	// The collector is down from 100 ms on, to the end of the run and its
	// 1 s flush.
	r := &faultRun{rate: 1000, before: 100 * time.Millisecond, during: time.Hour, total: 800 * time.Millisecond,
		buffer: buf, flush: time.Second, fault: down}
	r.run(t)
	require.Error(t, r.shutdownErr)
	assert.ErrorIs(t, r.shutdownErr, export.ErrKeptInSpool)
	assert.Contains(t, r.shutdownErr.Error(), "kept in "+dir+" for the next run")
	s := r.accountedFor(t)
	assert.Zero(t, s.Dropped(), "nothing lost")
	assert.Positive(t, s.By[export.Spooled])
	assert.EqualValues(t, r.sent, int64(r.coll.received())+s.By[export.Spooled])
	left := spoolFiles(t, dir)
	require.NotEmpty(t, left)

	// The next run: the same directory, the collector back.
	buf.Spool.Close()
	r.coll.set(healthy)
	before := r.coll.received()
	var log2 bytes.Buffer
	sp2 := openSpool(t, dir, 0, &log2)
	segs, spans := sp2.Left()
	assert.Equal(t, len(left), segs)
	assert.EqualValues(t, s.By[export.Spooled], spans, "the spool lists what the last run counted as spooled")
	counts := new(export.Counts)
	replay, err := sp2.StartReplay(export.Options{Log: slog.New(slog.NewTextHandler(&log2, nil))}, counts)
	require.NoError(t, err)
	require.NotNil(t, replay)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, replay.Shutdown(ctx), "log:\n%s", log2.String())
	got := counts.Snapshot()
	assert.EqualValues(t, s.By[export.Spooled], got.Recorded)
	assert.EqualValues(t, s.By[export.Spooled], got.By[export.Exported])
	assert.Zero(t, got.Pending())
	assert.EqualValues(t, r.sent, r.coll.received(), "every span sent reached the collector, %d of them in the second run", r.coll.received()-before)
	assert.Empty(t, spoolFiles(t, dir))
	// The newest span of the first run, sent while the collector was down,
	// arrived with its resource.
	var last trace.SpanID
	binary.BigEndian.PutUint64(last[:], uint64(r.sent))
	r.coll.mu.Lock()
	assert.True(t, r.coll.ids[last])
	r.coll.mu.Unlock()
}

// TestSpoolDropsItsOldestBeyondItsBound: a spool of a few segments drops
// the oldest when full, counted as queue_full, and keeps the newest.
func TestSpoolDropsItsOldestBeyondItsBound(t *testing.T) {
	dir := t.TempDir()
	var spoolLog bytes.Buffer
	buf := fastRetry
	buf.MaxQueue = 100
	buf.BatchSize = 100
	buf.Spool = openSpool(t, dir, 64<<10, &spoolLog) // about 4 segments of 100 spans
	r := &faultRun{rate: 1000, before: 100 * time.Millisecond, during: 1500 * time.Millisecond, total: 1800 * time.Millisecond,
		buffer: buf, flush: 20 * time.Second, fault: down}
	r.run(t)
	require.NoError(t, r.shutdownErr)
	s := r.accountedFor(t)
	assert.Greater(t, s.By[export.QueueFull], int64(500), "1,500 spans do not fit in 64 KiB and 100 in memory")
	assert.Contains(t, spoolLog.String(), "spool full: dropping its oldest spans")
	assert.Equal(t, 1, strings.Count(spoolLog.String(), "spool full"), "logged once per outage")
	var last trace.SpanID
	binary.BigEndian.PutUint64(last[:], uint64(r.sent))
	r.coll.mu.Lock()
	assert.True(t, r.coll.ids[last], "the newest span is kept")
	r.coll.mu.Unlock()
}

// TestSpoolSetsAsideWhatItCannotRead: a segment that is not one (another
// program's file, a truncated write) is renamed *.bad and logged with its
// name, not read again and not silently deleted.
func TestSpoolSetsAsideWhatItCannotRead(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "00000000000000000001-000001.spool"), []byte("not a segment"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, ".tmp-123"), []byte("half written"), 0o600))
	var log bytes.Buffer
	s := openSpool(t, dir, 0, &log)
	segs, spans := s.Left()
	assert.Zero(t, segs)
	assert.Zero(t, spans)
	assert.FileExists(t, filepath.Join(dir, "00000000000000000001-000001.bad"))
	assert.NoFileExists(t, filepath.Join(dir, ".tmp-123"), "an unfinished write is removed")
	assert.Contains(t, log.String(), "spool segment cannot be read")
	assert.True(t, strings.Contains(log.String(), "00000000000000000001-000001.bad"), log.String())

	_, err := export.OpenSpool(filepath.Join(dir, "00000000000000000001-000001.bad", "sub"), 0, slog.New(slog.NewTextHandler(&log, nil)))
	assert.ErrorContains(t, err, "spool directory")
}

// TestSpoolHandsAStoppedProcessesSpansToTheReplay: a traced process that
// stops while the collector is away leaves its spans in the spool, pending;
// the tracer's replay processor exports them once the collector is back,
// and the tracer's totals add up exactly.
func TestSpoolHandsAStoppedProcessesSpansToTheReplay(t *testing.T) {
	dir := t.TempDir()
	var spoolLog bytes.Buffer
	totals := new(export.Counts)
	spool := openSpool(t, dir, 0, &spoolLog)
	buf := fastRetry
	buf.MaxQueue = 300
	r := &faultRun{rate: 1000, before: 100 * time.Millisecond, during: time.Hour, total: 600 * time.Millisecond,
		flush: 500 * time.Millisecond, fault: down, parent: totals}
	// The replay starts with the tracer, before the process; its exporter
	// reads the endpoint faultRun sets, so it is made inside the run.
	var replay *export.Processor
	r.collectorSetup = func(c *collector) {
		setEnv(t, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": c.endpoint(), "OTEL_EXPORTER_OTLP_TIMEOUT": "2000", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"})
		var err error
		replay, err = spool.StartReplay(export.Options{Buffer: fastRetry, Log: slog.New(slog.NewTextHandler(&spoolLog, nil))}, totals.Child())
		require.NoError(t, err)
	}
	buf.Spool = spool
	r.buffer = buf
	r.run(t)
	require.Error(t, r.shutdownErr)
	assert.ErrorIs(t, r.shutdownErr, export.ErrKeptInSpool)
	assert.Contains(t, r.shutdownErr.Error(), "left in "+dir+" for the tracer to export")
	process := r.counts.Snapshot()
	assert.EqualValues(t, r.sent, process.Recorded)
	assert.Positive(t, process.Pending(), "handed to the replay: still pending in the process's counts")
	assert.EqualValues(t, r.sent, int64(r.coll.received())+process.Pending()+process.Dropped())
	require.NotEmpty(t, spoolFiles(t, dir))

	r.coll.set(healthy)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, replay.Shutdown(ctx), "log:\n%s", spoolLog.String())
	got := totals.Snapshot()
	assert.EqualValues(t, r.sent, got.Recorded, "each span counted once in the totals")
	assert.EqualValues(t, r.sent, got.By[export.Exported])
	assert.Zero(t, got.Pending())
	assert.Zero(t, got.Dropped())
	assert.EqualValues(t, r.sent, r.coll.received())
	assert.Empty(t, spoolFiles(t, dir))
}

// TestSpoolDirectoryIsOneTracersAndWritable: a second tracer on the same
// directory is refused with the holder's pid (it would send the first
// one's spans again), and a directory that cannot take a segment is
// refused at start, not in the middle of an outage.
func TestSpoolDirectoryIsOneTracersAndWritable(t *testing.T) {
	dir := t.TempDir()
	var log bytes.Buffer
	first := openSpool(t, dir, 0, &log)
	_, err := export.OpenSpool(dir, 0, slog.New(slog.NewTextHandler(&log, nil)))
	assert.ErrorContains(t, err, fmt.Sprintf("spool directory %s is in use by another tracer (pid %d)", dir, os.Getpid()))
	first.Close()
	second := openSpool(t, dir, 0, &log)
	second.Close()

	t.Run("immutable directory", func(t *testing.T) {
		ro := t.TempDir()
		if out, err := exec.Command("chattr", "+i", ro).CombinedOutput(); err != nil {
			t.Skipf("SKIP (not counted): chattr +i is not supported here: %v %s", err, out)
		}
		defer exec.Command("chattr", "-i", ro).Run()
		_, err := export.OpenSpool(ro, 0, slog.New(slog.NewTextHandler(&log, nil)))
		assert.ErrorContains(t, err, "spool directory")
		assert.ErrorContains(t, err, "operation not permitted")
	})
}
