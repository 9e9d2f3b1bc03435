// Package e2e runs host-go (a real hashicorp/go-plugin host) against real
// plugin processes: echo-go, a plugin that ignores Shutdown, the Python
// keyword-tagger and, when it has been built, the Rust SDK's testkit.
package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/plugins/go/internal/host"
)

var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "switchyard-go-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	build := exec.Command("go", "build", "-o", dir+string(os.PathSeparator),
		"./cmd/echo-go", "./cmd/host-go", "./e2e/testdata/stubborn")
	build.Dir = ".."
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "building the test binaries: %v\n", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type logLine struct {
	Level   string `json:"@level"`
	Message string `json:"@message"`
	Module  string `json:"@module"`
}

type run struct {
	exitCode int
	report   host.Report
	logs     []logLine
	stderr   string
}

// runHost runs host-go with JSON logs at trace level and decodes its report and logs.
func runHost(t *testing.T, args ...string) run {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "host-go"), append([]string{"-log-json", "-log-level", "trace"}, args...)...)
	// go-plugin hosts without a RunnerFunc let plugins put their sockets in the temp dir;
	// give each run its own, removed with the test, so even a SIGKILLed plugin leaves nothing.
	cmd.Env = append(os.Environ(), "TMPDIR="+t.TempDir())
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	result := run{stderr: stderr.String()}
	if exitErr, ok := err.(*exec.ExitError); ok {
		result.exitCode = exitErr.ExitCode()
	} else if err != nil {
		t.Fatalf("running host-go: %v", err)
	}
	if err := json.Unmarshal(stdout.Bytes(), &result.report); err != nil {
		t.Fatalf("host-go printed no JSON report (%v):\nstdout: %s\nstderr: %s", err, stdout.String(), stderr.String())
	}
	scanner := bufio.NewScanner(&stderr)
	scanner.Buffer(make([]byte, 1<<20), 1<<20)
	for scanner.Scan() {
		var line logLine
		if json.Unmarshal(scanner.Bytes(), &line) == nil {
			result.logs = append(result.logs, line)
		}
	}
	return result
}

func (r run) levelOf(message string) string {
	for _, line := range r.logs {
		if line.Message == message {
			return line.Level
		}
	}
	return ""
}

func TestHostGoAgainstEchoGo(t *testing.T) {
	r := runHost(t, "-records", "4", "-config", `{"tag":"go"}`, filepath.Join(binDir, "echo-go"))
	if r.exitCode != 0 {
		t.Fatalf("host-go exited %d: %s\n%s", r.exitCode, r.report.Error, r.stderr)
	}
	rep := r.report
	if rep.NegotiatedVersion != 1 || rep.Health != "SERVING" {
		t.Errorf("version %d, health %q", rep.NegotiatedVersion, rep.Health)
	}
	if rep.Metadata == nil || rep.Metadata.Name != "echo-go" || strings.Join(rep.Metadata.Roles, ",") != "ROLE_ENRICHMENT,ROLE_OUTPUT" {
		t.Fatalf("metadata: %+v", rep.Metadata)
	}
	if len(rep.Enriched) != 4 {
		t.Fatalf("want 4 enrich results, got %+v", rep.Enriched)
	}
	for i, result := range rep.Enriched {
		want := host.TestRecord(i + 1)
		if result.Sequence != uint64(i+1) || result.Failure != nil || result.Record == nil {
			t.Fatalf("result %d: %+v", i, result)
		}
		if result.Record.ID != want.Id || result.Record.Source != want.Source {
			t.Errorf("result %d changed id/source: %+v", i, result.Record)
		}
		if result.Record.Metadata["chain"] != "go" || result.Record.Metadata["origin"] != "host-go" {
			t.Errorf("result %d metadata: %v", i, result.Record.Metadata)
		}
		if !jsonEqual(t, result.Record.Payload, want.Payload) {
			t.Errorf("result %d payload %s, want %s", i, result.Record.Payload, want.Payload)
		}
	}
	if len(rep.Acks) != 4 {
		t.Fatalf("want 4 acks, got %+v", rep.Acks)
	}
	for i, ack := range rep.Acks {
		if ack.DeliveryID != uint64(i+1) || ack.Failure != nil {
			t.Errorf("ack %d: %+v", i, ack)
		}
	}
	if !rep.Graceful || !rep.Exited {
		t.Errorf("graceful=%v exited=%v", rep.Graceful, rep.Exited)
	}
	// echo-go's hclog lines (its own and the Go SDK's) reach the host at their own levels.
	for message, level := range map[string]string{
		"echoing record":        "trace",
		"enrich batch received": "debug",
		"echo-go configured":    "info",
		"events acknowledged":   "debug",
	} {
		if got := r.levelOf(message); got != level {
			t.Errorf("log %q at level %q, want %q", message, got, level)
		}
	}
}

func TestHostGoReportsConfigErrors(t *testing.T) {
	r := runHost(t, "-config", `{"tag":"a,b","colour":"blue"}`, filepath.Join(binDir, "echo-go"))
	if r.exitCode != 1 {
		t.Fatalf("host-go exited %d, want 1", r.exitCode)
	}
	fields := []string{}
	for _, problem := range r.report.ConfigureErrors {
		fields = append(fields, problem.Field)
	}
	if strings.Join(fields, ",") != "colour,tag" {
		t.Errorf("config error fields %v", fields)
	}
	if got := r.levelOf("configuration rejected"); got != "warn" {
		t.Errorf("rejection logged at %q, want warn", got)
	}
	if !r.report.Graceful {
		t.Errorf("echo-go should still stop gracefully: %s", r.stderr)
	}
}

func TestHostGoFailsWhenThePluginMustBeKilled(t *testing.T) {
	r := runHost(t, filepath.Join(binDir, "stubborn"))
	if r.exitCode != 1 {
		t.Fatalf("host-go exited %d, want 1\n%s", r.exitCode, r.stderr)
	}
	if r.report.Graceful {
		t.Errorf("report says graceful")
	}
	if got := r.levelOf(host.NotGracefulMessage); got != "warn" {
		t.Errorf("%q logged at %q, want warn", host.NotGracefulMessage, got)
	}
	if !strings.Contains(r.report.Error, "did not exit gracefully") {
		t.Errorf("error %q", r.report.Error)
	}
}

func TestHostGoAgainstPythonKeywordTagger(t *testing.T) {
	launcher, _ := filepath.Abs("../../python/keyword-tagger/keyword-tagger")
	if _, err := os.Stat("../../python/.venv/bin/python"); err != nil {
		if os.Getenv("SWITCHYARD_REQUIRE_ALL") != "" {
			t.Fatalf("the Python plugins are not built (run plugins/python/build.sh): %v", err)
		}
		t.Skip("the Python plugins are not built (run plugins/python/build.sh)")
	}
	r := runHost(t, "-records", "2", "-config", `{"keywords":{"greeting":["host"],"other":["nope"]}}`, launcher)
	if r.exitCode != 0 {
		t.Fatalf("host-go exited %d: %s\n%s", r.exitCode, r.report.Error, r.stderr)
	}
	if r.report.Metadata.Name != "keyword-tagger" || len(r.report.Enriched) != 2 {
		t.Fatalf("report: %+v", r.report)
	}
	for _, result := range r.report.Enriched {
		var payload struct {
			Tags []string `json:"tags"`
		}
		if result.Record == nil || json.Unmarshal(result.Record.Payload, &payload) != nil {
			t.Fatalf("result %+v", result)
		}
		if strings.Join(payload.Tags, ",") != "greeting" {
			t.Errorf("tags %v", payload.Tags)
		}
	}
	if !r.report.Graceful {
		t.Errorf("the Python plugin was not stopped gracefully:\n%s", r.stderr)
	}
	if got := r.levelOf("keyword-tagger configured"); got != "info" {
		t.Errorf("Python log line at level %q, want info", got)
	}
}

// rustTestkit is the Rust SDK's target/debug/testkit; the test is skipped when it is
// not built, or fails with SWITCHYARD_REQUIRE_ALL set.
func rustTestkit(t *testing.T) string {
	t.Helper()
	testkit, _ := filepath.Abs("../../../target/debug/testkit")
	if _, err := os.Stat(testkit); err != nil {
		if os.Getenv("SWITCHYARD_REQUIRE_ALL") != "" {
			t.Fatalf("target/debug/testkit is not built (cargo build -p testkit): %v", err)
		}
		t.Skip("target/debug/testkit is not built (cargo build -p testkit)")
	}
	return testkit
}

func TestHostGoAgainstRustTestkit(t *testing.T) {
	testkit := rustTestkit(t)
	r := runHost(t, "-records", "3", testkit)
	if pretty, err := json.MarshalIndent(r.report, "", "  "); err == nil {
		t.Logf("host-go report for testkit:\n%s", pretty)
	}
	if r.exitCode != 0 {
		t.Fatalf("host-go exited %d: %s\n%s", r.exitCode, r.report.Error, r.stderr)
	}
	if !r.report.Graceful {
		t.Errorf("testkit had to be killed:\n%s", r.stderr)
	}
}

// enrichedChains checks the report's Enrich results (one per record, in order,
// ids unchanged) and returns each record's metadata["chain"].
func enrichedChains(t *testing.T, rep host.Report, records int) []string {
	t.Helper()
	if len(rep.Enriched) != records {
		t.Fatalf("want %d enrich results, got %+v", records, rep.Enriched)
	}
	chains := []string{}
	for i, result := range rep.Enriched {
		if result.Sequence != uint64(i+1) || result.Failure != nil || result.Record == nil || result.Record.ID != host.TestRecord(i+1).Id {
			t.Fatalf("result %d: %+v", i, result)
		}
		chains = append(chains, result.Record.Metadata["chain"])
	}
	return chains
}

// A go-plugin host with AutoMTLS (ClientConfig.AutoMTLS) launches the Rust SDK's
// testkit: the SDK reads PLUGIN_CLIENT_CERT, prints its own certificate, serves
// over TLS pinned to the host's certificate, and stops gracefully on Shutdown.
func TestHostGoWithAutoMTLSAgainstRustTestkit(t *testing.T) {
	testkit := rustTestkit(t)
	r := runHost(t, "-auto-mtls", "-records", "3", "-config", `{"tag":"mtls"}`, testkit)
	if r.exitCode != 0 {
		t.Fatalf("host-go exited %d: %s\n%s", r.exitCode, r.report.Error, r.stderr)
	}
	if r.levelOf("configuring client automatic mTLS") == "" {
		t.Errorf("go-plugin did not turn on AutoMTLS:\n%s", r.stderr)
	}
	if r.report.Health != "SERVING" || r.report.Metadata == nil || r.report.Metadata.Name != "testkit" {
		t.Fatalf("report: %+v", r.report)
	}
	if got := strings.Join(enrichedChains(t, r.report, 3), ","); got != "mtls,mtls,mtls" {
		t.Errorf("chains %q", got)
	}
	if len(r.report.Acks) != 3 {
		t.Errorf("want 3 acks, got %+v", r.report.Acks)
	}
	if !r.report.Graceful || !r.report.Exited {
		t.Errorf("testkit was not stopped gracefully (graceful=%v exited=%v):\n%s", r.report.Graceful, r.report.Exited, r.stderr)
	}
}

// The same host with AutoMTLS against go-plugin's own plugin.Serve (echo-go),
// as a reference for what the Rust side must match.
func TestHostGoWithAutoMTLSAgainstEchoGo(t *testing.T) {
	r := runHost(t, "-auto-mtls", "-records", "2", filepath.Join(binDir, "echo-go"))
	if r.exitCode != 0 {
		t.Fatalf("host-go exited %d: %s\n%s", r.exitCode, r.report.Error, r.stderr)
	}
	if r.levelOf("configuring server automatic mTLS") == "" {
		t.Errorf("echo-go did not turn on AutoMTLS:\n%s", r.stderr)
	}
	if got := strings.Join(enrichedChains(t, r.report, 2), ","); got != "go,go" {
		t.Errorf("chains %q", got)
	}
	if !r.report.Graceful {
		t.Errorf("echo-go was not stopped gracefully:\n%s", r.stderr)
	}
}

// A go-plugin host with the wrong magic cookie: the Rust plugin refuses to start
// (exit 1, Switchyard's message on stderr, which go-plugin logs) and the host
// reports that the plugin printed no handshake line.
func TestHostGoWithAWrongCookieGetsAClearErrorFromTheRustTestkit(t *testing.T) {
	testkit := rustTestkit(t)
	r := runHost(t, "-cookie", "not-the-switchyard-cookie", testkit)
	if r.exitCode != 1 {
		t.Fatalf("host-go exited %d, want 1\n%s", r.exitCode, r.stderr)
	}
	if !strings.Contains(r.report.Error, "Failed to read any lines from plugin's stdout") {
		t.Errorf("host error %q", r.report.Error)
	}
	if !r.hasPluginLine("This binary is a Switchyard plugin. It is not meant to be executed directly") {
		t.Errorf("the plugin's reason is not in the host's log:\n%s", r.stderr)
	}
}

// A go-plugin host offering only versions the plugin does not speak: the Rust
// plugin refuses to start and says which versions were offered and which it has.
func TestHostGoWithAVersionMismatchGetsAClearErrorFromTheRustTestkit(t *testing.T) {
	testkit := rustTestkit(t)
	// go-plugin sends the versions in map order, so the plugin may quote [2, 3] or [3, 2].
	r := runHost(t, "-versions", "2,3", testkit)
	if r.exitCode != 1 {
		t.Fatalf("host-go exited %d, want 1\n%s", r.exitCode, r.stderr)
	}
	if !strings.Contains(r.report.Error, "Failed to read any lines from plugin's stdout") {
		t.Errorf("host error %q", r.report.Error)
	}
	if !r.hasPluginLine("cannot start: no common app protocol version") ||
		!r.hasPluginLine("this plugin supports [1]") {
		t.Errorf("the plugin's reason is not in the host's log:\n%s", r.stderr)
	}
}

// The other way round: echo-go serves app protocol version 1 only, and a host
// that offers only version 2 gets go-plugin's own "incompatible API version".
func TestHostGoWithAVersionMismatchGetsAClearErrorFromEchoGo(t *testing.T) {
	r := runHost(t, "-versions", "2", filepath.Join(binDir, "echo-go"))
	if r.exitCode != 1 {
		t.Fatalf("host-go exited %d, want 1\n%s", r.exitCode, r.stderr)
	}
	if !strings.Contains(r.report.Error, "incompatible API version with plugin. Plugin version: 1, Client versions: [2]") {
		t.Errorf("host error %q", r.report.Error)
	}
}

// The reference case: echo-go (go-plugin's own plugin.Serve) launched by a
// go-plugin host with another magic cookie refuses to start with go-plugin's
// message, and the host reports that the plugin printed no handshake line.
func TestHostGoWithAWrongCookieGetsAClearErrorFromEchoGo(t *testing.T) {
	r := runHost(t, "-cookie", "not-the-switchyard-cookie", filepath.Join(binDir, "echo-go"))
	if r.exitCode != 1 {
		t.Fatalf("host-go exited %d, want 1\n%s", r.exitCode, r.stderr)
	}
	if !strings.Contains(r.report.Error, "Failed to read any lines from plugin's stdout") {
		t.Errorf("host error %q", r.report.Error)
	}
	if !r.hasPluginLine("It is not meant to be executed directly") {
		t.Errorf("go-plugin's reason is not in the host's log:\n%s", r.stderr)
	}
}

// hasPluginLine reports whether any log line (go-plugin logs a plugin's plain
// stderr lines as messages) contains text.
func (r run) hasPluginLine(text string) bool {
	for _, line := range r.logs {
		if strings.Contains(line.Message, text) {
			return true
		}
	}
	return false
}

func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var va, vb any
	if json.Unmarshal(a, &va) != nil || json.Unmarshal(b, &vb) != nil {
		return false
	}
	ja, _ := json.Marshal(va)
	jb, _ := json.Marshal(vb)
	return bytes.Equal(ja, jb)
}
