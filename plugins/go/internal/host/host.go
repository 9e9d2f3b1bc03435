// Package host drives one Switchyard plugin through hashicorp/go-plugin's own
// client: launch and handshake (plugin.NewClient), health, GetMetadata,
// Configure, a few records through Enrich and/or events through HandleEvent,
// then Kill, reporting whether the plugin exited gracefully or had to be
// SIGKILLed.
package host

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/switchyard/switchyard/plugins/go/internal/shared"
	pb "github.com/switchyard/switchyard/sdk/go/switchyardv1"
)

// NotGracefulMessage is what go-plugin logs (at warn) when Kill had to SIGKILL the plugin.
const NotGracefulMessage = "plugin failed to exit gracefully"

// Options say which plugin to run and what to send it.
type Options struct {
	// Command is the plugin executable; Args its arguments.
	Command string
	Args    []string
	// ConfigJSON is handed to Configure ("{}" when empty).
	ConfigJSON string
	// InstanceName is sent with Configure.
	InstanceName string
	// Records is how many records (and events) to send.
	Records int
	// StartTimeout bounds the handshake; CallTimeout bounds every call after it.
	StartTimeout time.Duration
	CallTimeout  time.Duration
	// Logger receives go-plugin's and the plugin's log lines (the plugin's stderr, parsed).
	Logger hclog.Logger
	// AutoMTLS turns on go-plugin's AutoMTLS (ClientConfig.AutoMTLS): the host
	// sends its certificate in PLUGIN_CLIENT_CERT and trusts only the one the
	// plugin prints in its handshake line.
	AutoMTLS bool
	// CookieValue overrides the magic cookie value sent to the plugin (empty:
	// the Switchyard cookie). For handshake-failure tests.
	CookieValue string
	// Versions are the app protocol versions offered in
	// PLUGIN_PROTOCOL_VERSIONS (empty: switchyard.v1 only).
	Versions []int
}

// Report is what host-go prints as JSON.
type Report struct {
	Plugin            string         `json:"plugin"`
	NegotiatedVersion int            `json:"negotiated_version,omitempty"`
	Health            string         `json:"health,omitempty"`
	Metadata          *Metadata      `json:"metadata,omitempty"`
	ConfigureErrors   []ConfigError  `json:"configure_errors"`
	Enriched          []EnrichResult `json:"enriched,omitempty"`
	Acks              []Ack          `json:"acks,omitempty"`
	Graceful          bool           `json:"graceful"`
	Exited            bool           `json:"exited"`
	Error             string         `json:"error,omitempty"`
}

// Metadata is GetMetadata's answer in JSON-friendly form.
type Metadata struct {
	Name             string          `json:"name"`
	Version          string          `json:"version"`
	Roles            []string        `json:"roles"`
	Description      string          `json:"description"`
	ConfigSchema     json.RawMessage `json:"config_schema,omitempty"`
	WebhookSyncReply bool            `json:"webhook_sync_reply"`
}

// ConfigError is one problem Configure reported.
type ConfigError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// Record is a switchyard.v1.Record with its payload shown as JSON when it is JSON.
type Record struct {
	ID       string            `json:"id"`
	Source   string            `json:"source"`
	Type     string            `json:"type,omitempty"`
	Payload  json.RawMessage   `json:"payload"`
	Metadata map[string]string `json:"metadata,omitempty"`
}

// Failure is a switchyard.v1.Failure.
type Failure struct {
	Message   string `json:"message"`
	Retryable bool   `json:"retryable"`
	Code      string `json:"code,omitempty"`
}

// EnrichResult is one answer of the Enrich stream.
type EnrichResult struct {
	Sequence uint64   `json:"sequence"`
	Record   *Record  `json:"record,omitempty"`
	Failure  *Failure `json:"failure,omitempty"`
}

// Ack is one answer of the HandleEvent stream.
type Ack struct {
	DeliveryID uint64   `json:"delivery_id"`
	Failure    *Failure `json:"failure,omitempty"`
}

// Run drives the plugin and always kills it before returning. The error says
// what went wrong first; the report holds everything learned until then.
func Run(opts Options) (*Report, error) {
	report := &Report{Plugin: opts.Command, ConfigureErrors: []ConfigError{}}
	detector := &lineDetector{needle: NotGracefulMessage}
	logger := opts.Logger
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	// go-plugin logs through this logger; tee it so the not-graceful warning is detected.
	hostLogger := hclog.New(&hclog.LoggerOptions{
		Name:       "host-go",
		Level:      hclog.Trace,
		Output:     io.MultiWriter(detector, &hclogWriter{logger: logger}),
		JSONFormat: true,
	})

	handshake := shared.Handshake
	if opts.CookieValue != "" {
		handshake.MagicCookieValue = opts.CookieValue
	}
	versions := opts.Versions
	if len(versions) == 0 {
		versions = []int{shared.AppProtocolVersion}
	}
	versioned := map[int]plugin.PluginSet{}
	for _, version := range versions {
		versioned[version] = shared.PluginSet()
	}
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  handshake,
		VersionedPlugins: versioned,
		Cmd:              exec.Command(opts.Command, opts.Args...),
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		StartTimeout:     opts.StartTimeout,
		Logger:           hostLogger,
		AutoMTLS:         opts.AutoMTLS,
	})
	runErr := drive(client, opts, report)
	client.Kill()
	report.Exited = client.Exited()
	report.Graceful = !detector.Seen() && report.Exited
	if runErr == nil && !report.Graceful {
		runErr = errors.New("the plugin did not exit gracefully after GRPCController.Shutdown: go-plugin had to kill it")
	}
	if runErr != nil {
		report.Error = runErr.Error()
	}
	return report, runErr
}

func drive(client *plugin.Client, opts Options, report *Report) error {
	rpcClient, err := client.Client()
	if err != nil {
		return fmt.Errorf("starting the plugin: %w", err)
	}
	report.NegotiatedVersion = client.NegotiatedVersion()
	raw, err := rpcClient.Dispense(shared.PluginName)
	if err != nil {
		return fmt.Errorf("dispensing the plugin: %w", err)
	}
	conn, ok := raw.(*grpc.ClientConn)
	if !ok {
		return fmt.Errorf("dispensing the plugin gave %T, not a *grpc.ClientConn", raw)
	}
	if err := rpcClient.Ping(); err != nil {
		report.Health = "NOT_SERVING"
		return fmt.Errorf("health check of service \"plugin\": %w", err)
	}
	report.Health = "SERVING"

	ctx, cancel := context.WithTimeout(context.Background(), opts.CallTimeout)
	defer cancel()
	pluginClient := pb.NewPluginClient(conn)
	meta, err := pluginClient.GetMetadata(ctx, &pb.GetMetadataRequest{})
	if err != nil {
		return fmt.Errorf("GetMetadata: %w", err)
	}
	report.Metadata = metadataOf(meta)

	config := opts.ConfigJSON
	if strings.TrimSpace(config) == "" {
		config = "{}"
	}
	configured, err := pluginClient.Configure(ctx, &pb.ConfigureRequest{ConfigJson: []byte(config), InstanceName: opts.InstanceName})
	if err != nil {
		return fmt.Errorf("Configure: %w", err)
	}
	for _, problem := range configured.GetErrors() {
		report.ConfigureErrors = append(report.ConfigureErrors, ConfigError{Field: problem.GetField(), Message: problem.GetMessage()})
	}
	if len(report.ConfigureErrors) > 0 {
		return fmt.Errorf("Configure rejected the configuration with %d error(s)", len(report.ConfigureErrors))
	}

	if hasRole(meta, pb.Role_ROLE_ENRICHMENT) {
		if report.Enriched, err = enrich(ctx, pb.NewEnricherClient(conn), opts.Records); err != nil {
			return fmt.Errorf("Enrich: %w", err)
		}
	}
	if hasRole(meta, pb.Role_ROLE_OUTPUT) {
		if report.Acks, err = handleEvents(ctx, pb.NewOutputClient(conn), opts.Records); err != nil {
			return fmt.Errorf("HandleEvent: %w", err)
		}
	}
	return nil
}

// TestRecord is the i-th record host-go sends (1-based).
func TestRecord(i int) *pb.Record {
	payload, _ := json.Marshal(map[string]any{"text": fmt.Sprintf("record %d from host-go", i), "n": i})
	return &pb.Record{
		Id:       fmt.Sprintf("host-go-%d", i),
		Source:   "host-go",
		Type:     "test",
		Payload:  payload,
		Metadata: map[string]string{"origin": "host-go"},
	}
}

func enrich(ctx context.Context, client pb.EnricherClient, count int) ([]EnrichResult, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := client.Enrich(ctx)
	if err != nil {
		return nil, err
	}
	req := &pb.EnrichRequest{}
	for i := 1; i <= count; i++ {
		req.Items = append(req.Items, &pb.EnrichItem{Sequence: uint64(i), Record: TestRecord(i)})
	}
	if err := stream.Send(req); err != nil {
		return nil, err
	}
	answered := map[uint64]EnrichResult{}
	for len(answered) < count {
		resp, err := stream.Recv()
		if err != nil {
			return nil, fmt.Errorf("after %d of %d answers: %w", len(answered), count, err)
		}
		for _, result := range resp.GetResults() {
			seq := result.GetSequence()
			if seq == 0 || seq > uint64(count) {
				return nil, fmt.Errorf("answer for unknown sequence %d", seq)
			}
			if _, dup := answered[seq]; dup {
				return nil, fmt.Errorf("sequence %d answered twice", seq)
			}
			entry := EnrichResult{Sequence: seq}
			switch outcome := result.GetOutcome().(type) {
			case *pb.EnrichResult_Record:
				entry.Record = recordOf(outcome.Record)
			case *pb.EnrichResult_Failure:
				entry.Failure = failureOf(outcome.Failure)
			default:
				return nil, fmt.Errorf("sequence %d answered with neither a record nor a failure", seq)
			}
			answered[seq] = entry
		}
	}
	_ = stream.CloseSend()
	results := make([]EnrichResult, 0, count)
	for i := 1; i <= count; i++ {
		results = append(results, answered[uint64(i)])
	}
	return results, nil
}

func handleEvents(ctx context.Context, client pb.OutputClient, count int) ([]Ack, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := client.HandleEvent(ctx)
	if err != nil {
		return nil, err
	}
	req := &pb.EventRequest{}
	for i := 1; i <= count; i++ {
		req.Events = append(req.Events, &pb.RecordEvent{DeliveryId: uint64(i), Kind: pb.EventKind_EVENT_KIND_CREATED, Record: TestRecord(i), Attempt: 1})
	}
	if err := stream.Send(req); err != nil {
		return nil, err
	}
	answered := map[uint64]Ack{}
	for len(answered) < count {
		resp, err := stream.Recv()
		if err != nil {
			return nil, fmt.Errorf("after %d of %d acks: %w", len(answered), count, err)
		}
		for _, ack := range resp.GetAcks() {
			id := ack.GetDeliveryId()
			if id == 0 || id > uint64(count) {
				return nil, fmt.Errorf("ack for unknown delivery id %d", id)
			}
			if _, dup := answered[id]; dup {
				return nil, fmt.Errorf("delivery id %d acknowledged twice", id)
			}
			entry := Ack{DeliveryID: id}
			if ack.GetFailure() != nil {
				entry.Failure = failureOf(ack.GetFailure())
			}
			answered[id] = entry
		}
	}
	_ = stream.CloseSend()
	acks := make([]Ack, 0, count)
	for i := 1; i <= count; i++ {
		acks = append(acks, answered[uint64(i)])
	}
	return acks, nil
}

func hasRole(meta *pb.PluginMetadata, role pb.Role) bool {
	for _, r := range meta.GetRoles() {
		if r == role {
			return true
		}
	}
	return false
}

func metadataOf(meta *pb.PluginMetadata) *Metadata {
	out := &Metadata{
		Name:             meta.GetName(),
		Version:          meta.GetVersion(),
		Roles:            []string{},
		Description:      meta.GetDescription(),
		WebhookSyncReply: meta.GetWebhookSyncReply(),
	}
	for _, role := range meta.GetRoles() {
		out.Roles = append(out.Roles, role.String())
	}
	if schema := meta.GetConfigSchema(); schema != "" {
		if json.Valid([]byte(schema)) {
			out.ConfigSchema = json.RawMessage(schema)
		} else {
			quoted, _ := json.Marshal(schema)
			out.ConfigSchema = quoted
		}
	}
	return out
}

func recordOf(record *pb.Record) *Record {
	payload := json.RawMessage(record.GetPayload())
	if !json.Valid(payload) {
		quoted, _ := json.Marshal(string(record.GetPayload()))
		payload = quoted
	}
	return &Record{ID: record.GetId(), Source: record.GetSource(), Type: record.GetType(), Payload: payload, Metadata: record.GetMetadata()}
}

func failureOf(failure *pb.Failure) *Failure {
	return &Failure{Message: failure.GetMessage(), Retryable: failure.GetRetryable(), Code: failure.GetCode()}
}

// lineDetector remembers whether any written text contained needle. hclog
// writes each entry with one Write call, so the needle is never split.
type lineDetector struct {
	needle string
	mu     sync.Mutex
	seen   bool
}

func (d *lineDetector) Write(p []byte) (int, error) {
	if bytes.Contains(p, []byte(d.needle)) {
		d.mu.Lock()
		d.seen = true
		d.mu.Unlock()
	}
	return len(p), nil
}

// Seen reports whether the needle was written.
func (d *lineDetector) Seen() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.seen
}

// hclogWriter forwards hclog JSON lines to another logger, keeping their level.
type hclogWriter struct {
	logger hclog.Logger
}

func (w *hclogWriter) Write(p []byte) (int, error) {
	for _, line := range bytes.Split(bytes.TrimRight(p, "\n"), []byte("\n")) {
		var entry map[string]any
		if err := json.Unmarshal(line, &entry); err != nil {
			w.logger.Debug(string(line))
			continue
		}
		message, _ := entry["@message"].(string)
		levelText, _ := entry["@level"].(string)
		module, _ := entry["@module"].(string)
		args := []any{}
		if module != "" {
			args = append(args, "module", module)
		}
		keys := make([]string, 0, len(entry))
		for key := range entry {
			if !strings.HasPrefix(key, "@") {
				keys = append(keys, key)
			}
		}
		sort.Strings(keys)
		for _, key := range keys {
			args = append(args, key, entry[key])
		}
		level := hclog.LevelFromString(levelText)
		if level == hclog.NoLevel {
			level = hclog.Debug
		}
		w.logger.Log(level, message, args...)
	}
	return len(p), nil
}
