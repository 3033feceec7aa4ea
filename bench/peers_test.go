package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// peerLog is what OpenTelemetry Go auto-instrumentation v0.24.0 logged here
// (lines shortened): its notice on stderr has no newline.
const peerLog = `{"time":"2026-11-30T10:54:25.9Z","level":"INFO","msg":"loading probe","name":{"SpanKind":3}}
the Linux Kernel doesn't support context propagation, please check if the kernel is in lockdown mode (/sys/kernel/security/lockdown){"time":"2026-11-30T10:54:27.2Z","level":"ERROR","msg":"Failed to set memlock on process","error":"failed to set memlock rlimit: operation not permitted"}
{"time":"2026-11-30T10:54:27.3Z","level":"INFO","msg":"Detaching from process","pid":1674}
{"time":"2026-11-30T10:54:30.2Z","level":"INFO","msg":"instrumentation loaded successfully, starting..."}`

func TestPeerNotesKeepsWarningsErrorsAndPlainText(t *testing.T) {
	assert.Equal(t, []string{
		"the Linux Kernel doesn't support context propagation, please check if the kernel is in lockdown mode (/sys/kernel/security/lockdown)",
		"ERROR Failed to set memlock on process: failed to set memlock rlimit: operation not permitted",
	}, peerNotes(peerLog+"\n"+peerLog))
}

func TestPeerErrorIsTheLastErrorLine(t *testing.T) {
	log := peerLog + "\n" + `{"level":"ERROR","msg":"failed to load instrumentation","error":"program uprobe_writeSubset: load program: invalid argument: program of this type cannot use helper bpf_probe_write_user#36"}`
	assert.Equal(t, "failed to load instrumentation: program uprobe_writeSubset: load program: invalid argument: program of this type cannot use helper bpf_probe_write_user#36", peerError(log))
	assert.Empty(t, peerError(`{"level":"INFO","msg":"ok"}`))
}

func TestPeersReportShowsRatiosOursOverPeerAndLinks(t *testing.T) {
	arms := peersArms()
	require.Len(t, arms, 4)
	sp := func(v float64) Spread { return newSpread([]float64{v}) }
	pt := PeersPart{Name: "two-hop chain", Route: "/hop/ID?next=B", Workers: 16, Arms: arms, SpansPerRequest: 3, OutgoingPerRequest: 1,
		PerSecond: map[string]Spread{}, P50: map[string]Spread{}, P99: map[string]Spread{},
		Ratio: map[string]Spread{}, P50Ratio: map[string]Spread{}, P99Ratio: map[string]Spread{},
		ServiceCPUPer1k: map[string]Spread{}, TracerCPUPer1k: map[string]Spread{},
		OursOverPeer: map[string]Spread{arms[2].Name: sp(1.8)},
		Links: []ChainLinks{
			{Arm: arms[2].Name, Seconds: 2, Requests: 10, AServers: 10, AClients: 10, BServers: 10, AClientChildOfAServer: 10, BChildOfAClient: 10},
			{Arm: otelAutoArm.Name, Seconds: 2, Requests: 10, AServers: 10, AClients: 10, BServers: 10, BRoot: 10},
		}}
	for i, a := range arms {
		pt.PerSecond[a.Name], pt.P50[a.Name], pt.P99[a.Name] = sp(1000/float64(i+1)), sp(1), sp(2)
		if a.traced() {
			pt.Ratio[a.Name] = sp(1 / float64(i+1))
		}
	}
	p := &Peers{Rounds: 3, Duration: 5, Binary: "go1.26.8", Parts: []PeersPart{pt},
		Peer: PeerSetup{Name: "OpenTelemetry Go auto-instrumentation", Module: "go.opentelemetry.io/auto@v0.24.0",
			AsShipped: "failed to load instrumentation: bpf_probe_write_user", Workaround: "securityfs", Notes: []string{"a notice"}}}
	rows := peersSummaryRows(p)
	require.Len(t, rows, 1)
	assert.Contains(t, rows[0][2], "OTel Go auto v0.24.0: ×0.250 req/s")
	assert.Contains(t, rows[0][2], "ours, with propagation ÷ OTel Go auto v0.24.0 req/s: ×1.80")
	assert.Contains(t, rows[0][2], "ours, with propagation 100.0% / 100.0%, OTel Go auto v0.24.0 0.0% / 0.0%")
	md := peersMarkdown(p)
	assert.Contains(t, md, "**As shipped it does not run here.**")
	assert.Contains(t, md, "| OTel Go auto v0.24.0 | 250 | 0.250 | — |")
	assert.Contains(t, md, "| OTel Go auto v0.24.0 | 10 | 30 of 30 (100.0%) | 0 of 10 (0.0%) | 0 of 10 (0.0%) | 10 |")
}
