package switchyard

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/proto"

	pb "github.com/switchyard/switchyard/sdk/go/switchyardv1"
)

// connect serves p over an in-memory gRPC connection with the server
// options Serve uses (message sizes, and p.Health's interceptors when set)
// and a health service like go-plugin's.
func connect(t *testing.T, p *Plugin) *grpc.ClientConn {
	t.Helper()
	listener := bufconn.Listen(1 << 20)
	server := grpc.NewServer(p.serverOptions()...)
	if err := p.Register(server); err != nil {
		t.Fatal(err)
	}
	// go-plugin registers a health service that always says SERVING; the interceptors must win over it.
	grpc_health_v1.RegisterHealthServer(server, alwaysServing{})
	go func() { _ = server.Serve(listener) }()
	t.Cleanup(server.Stop)
	conn, err := grpc.NewClient("passthrough:///bufconn",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return listener.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(MaxMessageBytes), grpc.MaxCallRecvMsgSize(MaxMessageBytes)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// alwaysServing stands in for go-plugin's health service.
type alwaysServing struct {
	grpc_health_v1.UnimplementedHealthServer
}

func (alwaysServing) Check(context.Context, *grpc_health_v1.HealthCheckRequest) (*grpc_health_v1.HealthCheckResponse, error) {
	return &grpc_health_v1.HealthCheckResponse{Status: grpc_health_v1.HealthCheckResponse_SERVING}, nil
}

// configure calls Configure and fails the test unless it succeeds.
func configure(t *testing.T, conn *grpc.ClientConn, config string) {
	t.Helper()
	response, err := pb.NewPluginClient(conn).Configure(context.Background(), &pb.ConfigureRequest{ConfigJson: []byte(config), InstanceName: "test"})
	if err != nil || len(response.GetErrors()) > 0 {
		t.Fatalf("Configure(%s): %v %v", config, err, response.GetErrors())
	}
}

// enricher marks records, failing those whose id starts with "bad" (permanently) or "later" (retryably).
type enricher struct{}

func (enricher) Enrich(_ context.Context, record *pb.Record) (*pb.Record, error) {
	switch {
	case strings.HasPrefix(record.GetId(), "bad"):
		return nil, Permanent("record %q is bad", record.GetId()).WithCode("bad_record")
	case strings.HasPrefix(record.GetId(), "later"):
		return nil, Retryable(3*time.Second, "upstream busy")
	}
	if record.Metadata == nil {
		record.Metadata = map[string]string{}
	}
	record.Metadata["seen"] = "yes"
	return record, nil
}

// output records the delivery ids it was given and fails odd ones.
type output struct {
	mu   sync.Mutex
	seen []uint64
}

func (o *output) HandleEvent(_ context.Context, event *pb.RecordEvent) error {
	o.mu.Lock()
	o.seen = append(o.seen, event.GetDeliveryId())
	o.mu.Unlock()
	if event.GetDeliveryId()%2 == 1 {
		return errors.New("downstream refused")
	}
	return nil
}

// poller emits two batches after a numeric checkpoint; the second without checkpoint first.
type poller struct{}

func (poller) Poll(_ context.Context, checkpoint []byte, emit func([]*pb.Record, []byte) error) error {
	if string(checkpoint) == "broken" {
		return Permanent("checkpoint %q is not mine", checkpoint).WithCode("bad_checkpoint")
	}
	start := string(checkpoint)
	if err := emit([]*pb.Record{{Id: start + "a"}, {Id: start + "b"}}, []byte(start+"1")); err != nil {
		return err
	}
	if err := emit([]*pb.Record{{Id: start + "c"}}, nil); err != nil {
		return err
	}
	return emit(nil, []byte(start+"2"))
}

// webhook answers with one record, and errors for bodies "bad" and "busy".
type webhook struct{}

func (webhook) HandleWebhook(_ context.Context, request *pb.WebhookRequest) (*pb.WebhookResponse, error) {
	switch string(request.GetBody()) {
	case "bad":
		return nil, Permanent("the body is not JSON")
	case "busy":
		return nil, fmt.Errorf("wrapped: %w", Retryable(1500*time.Millisecond, "try later").WithCode("busy"))
	}
	return &pb.WebhookResponse{Records: []*pb.Record{{Id: request.GetDeliveryId()}}}, nil
}

// tagConfig is a config table for the tests.
type tagConfig struct {
	Tag   string `json:"tag"`
	Limit int    `json:"limit"`
}

func TestMetadataAdvertisesTheSetRoles(t *testing.T) {
	p := &Plugin{Name: "both", Version: "1.2.3", Description: "d", ConfigSchema: "{}", WebhookSyncReply: true, Enricher: enricher{}, Output: &output{}}
	got, err := pb.NewPluginClient(connect(t, p)).GetMetadata(context.Background(), &pb.GetMetadataRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if got.GetName() != "both" || got.GetVersion() != "1.2.3" || got.GetDescription() != "d" || got.GetConfigSchema() != "{}" || !got.GetWebhookSyncReply() {
		t.Errorf("metadata %v", got)
	}
	if want := []pb.Role{pb.Role_ROLE_ENRICHMENT, pb.Role_ROLE_OUTPUT}; !reflect.DeepEqual(got.GetRoles(), want) {
		t.Errorf("roles %v, want %v", got.GetRoles(), want)
	}
}

func TestRegisterRefusesAPluginWithoutNameOrRole(t *testing.T) {
	if err := (&Plugin{Name: "none"}).Register(grpc.NewServer()); err == nil {
		t.Error("a plugin without a role must be refused")
	}
	if err := (&Plugin{Enricher: enricher{}}).Register(grpc.NewServer()); err == nil {
		t.Error("a plugin without a name must be refused")
	}
}

func TestConfigureReportsProblemsByField(t *testing.T) {
	p := &Plugin{Name: "cfg", Enricher: enricher{}, Configure: func(_ context.Context, raw []byte) error {
		config := tagConfig{Tag: "go"}
		problems := DecodeConfig(raw, &config)
		if config.Tag == "" {
			problems.Add("tag", "must not be empty")
		}
		return problems.Err()
	}}
	conn := connect(t, p)
	client := pb.NewPluginClient(conn)
	cases := map[string][]string{
		`{"tag":7,"limit":"x","zzz":1}`: {"limit", "tag", "zzz"},
		`{"tag":""}`:                    {"tag"},
		`[1]`:                           {""},
	}
	for raw, want := range cases {
		response, err := client.Configure(context.Background(), &pb.ConfigureRequest{ConfigJson: []byte(raw)})
		if err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		var fields []string
		for _, problem := range response.GetErrors() {
			fields = append(fields, problem.GetField())
			if problem.GetMessage() == "" {
				t.Errorf("%s: empty message for %q", raw, problem.GetField())
			}
		}
		if !reflect.DeepEqual(fields, want) {
			t.Errorf("%s: fields %v, want %v", raw, fields, want)
		}
	}
	// Still unconfigured: role calls are refused.
	stream, err := pb.NewEnricherClient(conn).Enrich(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("before Configure: got %v, want FailedPrecondition", err)
	}
	configure(t, conn, `{"tag":"blue","limit":3}`)
}

func TestAPluginWithoutConfigureAcceptsOnlyAnEmptyTable(t *testing.T) {
	conn := connect(t, &Plugin{Name: "plain", Output: &output{}})
	response, err := pb.NewPluginClient(conn).Configure(context.Background(), &pb.ConfigureRequest{ConfigJson: []byte(`{"b":1,"a":2}`)})
	if err != nil || len(response.GetErrors()) != 2 || response.GetErrors()[0].GetField() != "a" {
		t.Fatalf("got %v %v", response.GetErrors(), err)
	}
	configure(t, conn, `{}`)
}

func TestARetryableConfigureErrorIsUnavailable(t *testing.T) {
	p := &Plugin{Name: "flaky", Enricher: enricher{}, Configure: func(context.Context, []byte) error {
		return Retryable(2*time.Second, "the database is unreachable")
	}}
	var trailer metadata.MD
	_, err := pb.NewPluginClient(connect(t, p)).Configure(context.Background(), &pb.ConfigureRequest{}, grpc.Trailer(&trailer))
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "database is unreachable") {
		t.Fatalf("got %v, want UNAVAILABLE", err)
	}
	if got := trailer.Get(retryAfterKey); !reflect.DeepEqual(got, []string{"2000"}) {
		t.Errorf("retry-after %v", got)
	}
}

func TestEnrichAnswersEveryItemInOrderWithItsSequence(t *testing.T) {
	conn := connect(t, &Plugin{Name: "enrich", Enricher: enricher{}})
	configure(t, conn, "")
	stream, err := pb.NewEnricherClient(conn).Enrich(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	items := []*pb.EnrichItem{
		{Sequence: 9, Record: &pb.Record{Id: "a"}},
		{Sequence: 4, Record: &pb.Record{Id: "bad-1"}},
		{Sequence: 7, Record: &pb.Record{Id: "later-1"}},
		{Sequence: 5, Record: &pb.Record{Id: "b", Metadata: map[string]string{"k": "v"}}},
	}
	if err := stream.Send(&pb.EnrichRequest{Items: items}); err != nil {
		t.Fatal(err)
	}
	got, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	results := got.GetResults()
	var sequences []uint64
	for _, result := range results {
		sequences = append(sequences, result.GetSequence())
	}
	if !reflect.DeepEqual(sequences, []uint64{9, 4, 7, 5}) {
		t.Fatalf("sequences %v", sequences)
	}
	if r := results[0].GetRecord(); r.GetId() != "a" || r.GetMetadata()["seen"] != "yes" {
		t.Errorf("first %v", results[0])
	}
	if f := results[1].GetFailure(); f == nil || f.GetRetryable() || f.GetCode() != "bad_record" || !strings.Contains(f.GetMessage(), "bad-1") {
		t.Errorf("permanent failure %v", results[1])
	}
	if f := results[2].GetFailure(); f == nil || !f.GetRetryable() || f.GetRetryAfter().AsDuration() != 3*time.Second {
		t.Errorf("retryable failure %v", results[2])
	}
	if r := results[3].GetRecord(); r.GetMetadata()["k"] != "v" || r.GetMetadata()["seen"] != "yes" {
		t.Errorf("last %v", results[3])
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != io.EOF {
		t.Errorf("want EOF after CloseSend, got %v", err)
	}
}

func TestMessagesLargerThanGRPCsDefaultAreTaken(t *testing.T) {
	// gRPC's default limit for a received message is 4 MiB; Serve raises it
	// to MaxMessageBytes, so one large record or webhook body gets through.
	big := make([]byte, 5<<20)
	conn := connect(t, &Plugin{Name: "big", Enricher: enricher{}, WebhookInput: webhook{}})
	configure(t, conn, "")
	stream, err := pb.NewEnricherClient(conn).Enrich(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	item := &pb.EnrichItem{Sequence: 1, Record: &pb.Record{Id: "large", Payload: big}}
	if err := stream.Send(&pb.EnrichRequest{Items: []*pb.EnrichItem{item}}); err != nil {
		t.Fatal(err)
	}
	got, err := stream.Recv()
	if err != nil {
		t.Fatalf("a 5 MiB record: %v", err)
	}
	if r := got.GetResults()[0].GetRecord(); len(r.GetPayload()) != len(big) || r.GetMetadata()["seen"] != "yes" {
		t.Errorf("the large record came back with %d bytes and metadata %v", len(r.GetPayload()), r.GetMetadata())
	}
	response, err := pb.NewWebhookInputClient(conn).HandleWebhook(context.Background(), &pb.WebhookRequest{DeliveryId: "d-large", Body: big})
	if err != nil {
		t.Fatalf("a 5 MiB webhook body: %v", err)
	}
	if records := response.GetRecords(); len(records) != 1 || records[0].GetId() != "d-large" {
		t.Errorf("records %v", records)
	}
}

func TestOutputAnswersEachDeliveryOnce(t *testing.T) {
	out := &output{}
	conn := connect(t, &Plugin{Name: "out", Output: out})
	configure(t, conn, "")
	stream, err := pb.NewOutputClient(conn).HandleEvent(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	batches := [][]uint64{{2, 3, 4}, {6}}
	var acked []uint64
	for _, batch := range batches {
		var events []*pb.RecordEvent
		for _, id := range batch {
			events = append(events, &pb.RecordEvent{DeliveryId: id, Kind: pb.EventKind_EVENT_KIND_CREATED, Attempt: 1, Record: &pb.Record{Id: "r"}})
		}
		if err := stream.Send(&pb.EventRequest{Events: events}); err != nil {
			t.Fatal(err)
		}
		response, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		for _, ack := range response.GetAcks() {
			acked = append(acked, ack.GetDeliveryId())
			if failed := ack.GetFailure() != nil; failed != (ack.GetDeliveryId()%2 == 1) {
				t.Errorf("ack %v", ack)
			}
			if f := ack.GetFailure(); f != nil && (!f.GetRetryable() || f.GetMessage() != "downstream refused") {
				t.Errorf("a plain error must nack retryably with its message: %v", f)
			}
		}
	}
	if want := []uint64{2, 3, 4, 6}; !reflect.DeepEqual(acked, want) || !reflect.DeepEqual(out.seen, want) {
		t.Errorf("acked %v, handled %v, want %v", acked, out.seen, want)
	}
}

func TestPollEmitsBatchesWithCheckpoints(t *testing.T) {
	conn := connect(t, &Plugin{Name: "poll", PollingInput: poller{}})
	configure(t, conn, "")
	stream, err := pb.NewPollingInputClient(conn).Poll(context.Background(), &pb.PollRequest{Checkpoint: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for {
		response, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, record := range response.GetRecords() {
			ids = append(ids, record.GetId())
		}
		checkpoint := "-"
		if response.Checkpoint != nil {
			checkpoint = string(response.GetCheckpoint())
		}
		got = append(got, fmt.Sprintf("%v@%s", ids, checkpoint))
	}
	if want := []string{"[xa xb]@x1", "[xc]@-", "[]@x2"}; !reflect.DeepEqual(got, want) {
		t.Errorf("batches %v, want %v", got, want)
	}
}

func TestErrorsMapToStatusesAndMetadata(t *testing.T) {
	conn := connect(t, &Plugin{Name: "errs", PollingInput: poller{}, WebhookInput: webhook{}})
	configure(t, conn, "")

	stream, err := pb.NewPollingInputClient(conn).Poll(context.Background(), &pb.PollRequest{Checkpoint: []byte("broken")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); status.Code(err) != codes.InvalidArgument {
		t.Errorf("poll: got %v, want INVALID_ARGUMENT", err)
	}
	if got := stream.Trailer().Get(failureCodeKey); !reflect.DeepEqual(got, []string{"bad_checkpoint"}) {
		t.Errorf("poll failure code %v", got)
	}

	client := pb.NewWebhookInputClient(conn)
	response, err := client.HandleWebhook(context.Background(), &pb.WebhookRequest{Body: []byte("{}"), DeliveryId: "d-1"})
	if err != nil || len(response.GetRecords()) != 1 || response.GetRecords()[0].GetId() != "d-1" {
		t.Fatalf("webhook: %v %v", response, err)
	}
	if _, err := client.HandleWebhook(context.Background(), &pb.WebhookRequest{Body: []byte("bad")}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("bad body: got %v, want INVALID_ARGUMENT", err)
	}
	var trailer metadata.MD
	_, err = client.HandleWebhook(context.Background(), &pb.WebhookRequest{Body: []byte("busy")}, grpc.Trailer(&trailer))
	if status.Code(err) != codes.Unavailable || status.Convert(err).Message() != "wrapped: try later" {
		t.Errorf("busy: got %v, want UNAVAILABLE", err)
	}
	if !reflect.DeepEqual(trailer.Get(retryAfterKey), []string{"1500"}) || !reflect.DeepEqual(trailer.Get(failureCodeKey), []string{"busy"}) {
		t.Errorf("busy trailer %v", trailer)
	}
}

func TestHealthFlipsTheHealthService(t *testing.T) {
	health := NewHealth()
	conn := connect(t, &Plugin{Name: "healthy", Output: &output{}, Health: health})
	client := grpc_health_v1.NewHealthClient(conn)
	check := func(service string) grpc_health_v1.HealthCheckResponse_ServingStatus {
		t.Helper()
		response, err := client.Check(context.Background(), &grpc_health_v1.HealthCheckRequest{Service: service})
		if err != nil {
			t.Fatal(err)
		}
		return response.GetStatus()
	}
	watch, err := client.Watch(context.Background(), &grpc_health_v1.HealthCheckRequest{Service: "plugin"})
	if err != nil {
		t.Fatal(err)
	}
	next := func() grpc_health_v1.HealthCheckResponse_ServingStatus {
		t.Helper()
		response, err := watch.Recv()
		if err != nil {
			t.Fatal(err)
		}
		return response.GetStatus()
	}
	if check("plugin") != grpc_health_v1.HealthCheckResponse_SERVING || next() != grpc_health_v1.HealthCheckResponse_SERVING {
		t.Fatal("a new Health must say SERVING")
	}
	health.SetNotServing("the upstream API is down")
	for _, service := range []string{"plugin", ""} {
		if got := check(service); got != grpc_health_v1.HealthCheckResponse_NOT_SERVING {
			t.Errorf("%q: %v, want NOT_SERVING", service, got)
		}
	}
	if got := next(); got != grpc_health_v1.HealthCheckResponse_NOT_SERVING {
		t.Errorf("watch: %v, want NOT_SERVING", got)
	}
	if serving, reason := health.Serving(); serving || reason != "the upstream API is down" {
		t.Errorf("Serving() = %v %q", serving, reason)
	}
	health.SetServing()
	if check("plugin") != grpc_health_v1.HealthCheckResponse_SERVING || next() != grpc_health_v1.HealthCheckResponse_SERVING {
		t.Error("SetServing must say SERVING again")
	}
}

func TestErrorHelpers(t *testing.T) {
	base := errors.New("root cause")
	err := Retryable(time.Second, "fetch: %w", base).WithCode("http_503")
	if !errors.Is(err, base) || !err.IsRetryable() || err.RetryAfter() != time.Second || err.Code() != "http_503" || err.Error() != "fetch: root cause" {
		t.Errorf("retryable %v", err)
	}
	if failure := failureFromError(context.Canceled); !failure.GetRetryable() {
		t.Error("a plain error counts as retryable")
	}
	if code, _ := statusFromError(status.Error(codes.NotFound, "x")); status.Code(code) != codes.NotFound {
		t.Error("a gRPC status passes through")
	}
	if got := (ConfigErrors{{Field: "a", Message: "m"}, {Message: "n"}}).Error(); got != "invalid configuration: a: m; n" {
		t.Errorf("ConfigErrors.Error() = %q", got)
	}
}

// largePoller emits count records of size bytes each in one batch, with the checkpoint "done".
type largePoller struct{ count, size int }

func (p largePoller) Poll(_ context.Context, _ []byte, emit func([]*pb.Record, []byte) error) error {
	records := make([]*pb.Record, p.count)
	for i := range records {
		records[i] = &pb.Record{Id: fmt.Sprint(i), Payload: bytes.Repeat([]byte("7"), p.size)}
	}
	return emit(records, []byte("done"))
}

// pollAll runs one poll and returns its messages, or the error that ended it.
func pollAll(t *testing.T, conn *grpc.ClientConn) ([]*pb.PollResponse, error) {
	t.Helper()
	stream, err := pb.NewPollingInputClient(conn).Poll(context.Background(), &pb.PollRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var responses []*pb.PollResponse
	for {
		response, err := stream.Recv()
		if err == io.EOF {
			return responses, nil
		}
		if err != nil {
			return responses, err
		}
		responses = append(responses, response)
	}
}

func TestAPollBatchLargerThanAMessageArrivesInSeveral(t *testing.T) {
	// 70 records of 1 MB in one emit: 70 MB, over MaxMessageBytes.
	conn := connect(t, &Plugin{Name: "large", PollingInput: largePoller{count: 70, size: 1_000_000}})
	configure(t, conn, "")
	responses, err := pollAll(t, conn)
	if err != nil {
		t.Fatalf("poll: %v", err)
	}
	// Four records to a message of at most MessageBytes, the checkpoint on the last.
	if len(responses) != 18 {
		t.Fatalf("%d messages, want 18", len(responses))
	}
	next := 0
	for i, response := range responses {
		if size := proto.Size(response); size > MessageBytes+64<<10 {
			t.Errorf("message %d has %d bytes", i, size)
		}
		if last := i == len(responses)-1; (response.Checkpoint != nil) != last {
			t.Errorf("message %d: checkpoint %q", i, response.GetCheckpoint())
		}
		for _, record := range response.GetRecords() {
			if record.GetId() != fmt.Sprint(next) || len(record.GetPayload()) != 1_000_000 {
				t.Fatalf("record %q (%d bytes), want %d", record.GetId(), len(record.GetPayload()), next)
			}
			next++
		}
	}
	if next != 70 || string(responses[len(responses)-1].GetCheckpoint()) != "done" {
		t.Errorf("%d records, last checkpoint %q", next, responses[len(responses)-1].GetCheckpoint())
	}
}

func TestARecordLargerThanAnyMessageFailsThePollNamingIt(t *testing.T) {
	conn := connect(t, &Plugin{Name: "huge", PollingInput: largePoller{count: 2, size: 65 << 20}})
	configure(t, conn, "")
	_, err := pollAll(t, conn)
	if status.Code(err) != codes.ResourceExhausted || !strings.HasPrefix(status.Convert(err).Message(), `record "0" is 68157`) {
		t.Errorf("got %v", err)
	}
}

// inflater makes each record's payload as many MiB as its id says ("3" ->
// 3 MiB), and one byte more than a message may carry for any other id.
type inflater struct{}

func (inflater) Enrich(_ context.Context, record *pb.Record) (*pb.Record, error) {
	size := MaxMessageBytes + 1
	if mebibytes, err := strconv.Atoi(record.GetId()); err == nil {
		size = mebibytes << 20
	}
	out := proto.Clone(record).(*pb.Record)
	out.Payload = make([]byte, size)
	return out, nil
}

func TestEnrichAnswersLargerThanAMessageArriveInSeveralAndOnlyARecordTooLargeFails(t *testing.T) {
	conn := connect(t, &Plugin{Name: "inflate", Enricher: inflater{}})
	configure(t, conn, "")
	stream, err := pb.NewEnricherClient(conn).Enrich(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// Small records in, 8 + 30 + 30 + 1 MiB and one over 65 MiB out: answers
	// (134 MiB) that no one message can carry.
	ids := []string{"8", "30", "huge", "30", "1"}
	var items []*pb.EnrichItem
	for i, id := range ids {
		items = append(items, &pb.EnrichItem{Sequence: uint64(i), Record: &pb.Record{Id: id, Type: "t"}})
	}
	if err := stream.Send(&pb.EnrichRequest{Items: items}); err != nil {
		t.Fatal(err)
	}
	results := map[uint64]*pb.EnrichResult{}
	for len(results) < len(ids) {
		response, err := stream.Recv()
		if err != nil {
			t.Fatalf("after %d results: %v (an answer too large must fail its item alone)", len(results), err)
		}
		if size := proto.Size(response); len(response.GetResults()) > 1 && size > MessageBytes+64<<10 {
			t.Errorf("%d results in a message of %d bytes", len(response.GetResults()), size)
		}
		for _, result := range response.GetResults() {
			results[result.GetSequence()] = result
		}
	}
	for i, id := range ids {
		result := results[uint64(i)]
		if id == "huge" {
			f := result.GetFailure()
			if f == nil || f.GetRetryable() || f.GetCode() != "too_large" || !strings.HasPrefix(f.GetMessage(), `the enriched record "huge" is 68157`) {
				t.Errorf("huge: %v", f)
			}
			continue
		}
		mebibytes, _ := strconv.Atoi(id)
		if r := result.GetRecord(); r.GetId() != id || len(r.GetPayload()) != mebibytes<<20 {
			t.Errorf("record %s came back as %q with %d bytes (failure %v)", id, r.GetId(), len(r.GetPayload()), result.GetFailure())
		}
	}
}
