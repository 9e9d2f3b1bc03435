package echo

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	switchyard "github.com/switchyard/switchyard/sdk/go"
	pb "github.com/switchyard/switchyard/sdk/go/switchyardv1"
)

func TestAppendToChain(t *testing.T) {
	if got := AppendToChain("", "go"); got != "go" {
		t.Errorf("got %q", got)
	}
	if got := AppendToChain("rust,python", "go"); got != "rust,python,go" {
		t.Errorf("got %q", got)
	}
}

func TestParseConfig(t *testing.T) {
	cases := []struct {
		raw    string
		tag    string
		fields []string
	}{
		{"", "go", nil},
		{"{}", "go", nil},
		{`{"tag":"blue"}`, "blue", nil},
		{`{"tag":""}`, "", []string{"tag"}},
		{`{"tag":"a,b"}`, "", []string{"tag"}},
		{`{"tag":7,"x":1}`, "", []string{"tag", "x"}},
		{`[1]`, "", []string{""}},
		{`not json`, "", []string{""}},
	}
	for _, c := range cases {
		tag, err := parseConfig([]byte(c.raw))
		var problems switchyard.ConfigErrors
		if err != nil && !errors.As(err, &problems) {
			t.Errorf("%s: %v is not ConfigErrors", c.raw, err)
		}
		var fields []string
		for _, problem := range problems {
			fields = append(fields, problem.Field)
			if problem.Message == "" {
				t.Errorf("%s: empty message", c.raw)
			}
		}
		if len(problems) == 0 && tag != c.tag {
			t.Errorf("%s: tag %q, want %q", c.raw, tag, c.tag)
		}
		if len(fields) != len(c.fields) {
			t.Errorf("%s: fields %v, want %v", c.raw, fields, c.fields)
			continue
		}
		for i := range fields {
			if fields[i] != c.fields[i] {
				t.Errorf("%s: fields %v, want %v", c.raw, fields, c.fields)
			}
		}
	}
}

func connect(t *testing.T) *grpc.ClientConn {
	t.Helper()
	listener := bufconn.Listen(1 << 20)
	server := grpc.NewServer()
	if err := New().Register(server); err != nil {
		t.Fatal(err)
	}
	go func() { _ = server.Serve(listener) }()
	t.Cleanup(server.Stop)
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return listener.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func TestRoleCallsNeedConfigure(t *testing.T) {
	conn := connect(t)
	stream, err := pb.NewEnricherClient(conn).Enrich(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("got %v, want FailedPrecondition", err)
	}
}

func TestEnrichAndOutputOverGRPC(t *testing.T) {
	conn := connect(t)
	ctx := context.Background()
	resp, err := pb.NewPluginClient(conn).Configure(ctx, &pb.ConfigureRequest{ConfigJson: []byte(`{"tag":"echo"}`)})
	if err != nil || len(resp.GetErrors()) != 0 {
		t.Fatalf("configure: %v %v", err, resp.GetErrors())
	}

	stream, err := pb.NewEnricherClient(conn).Enrich(ctx)
	if err != nil {
		t.Fatal(err)
	}
	items := []*pb.EnrichItem{
		{Sequence: 7, Record: &pb.Record{Id: "a", Metadata: map[string]string{"chain": "rust"}}},
		{Sequence: 9, Record: &pb.Record{Id: "b", Payload: []byte(`{"x":1}`)}},
	}
	if err := stream.Send(&pb.EnrichRequest{Items: items}); err != nil {
		t.Fatal(err)
	}
	got, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if len(got.GetResults()) != 2 {
		t.Fatalf("results %v", got.GetResults())
	}
	if r := got.GetResults()[0]; r.GetSequence() != 7 || r.GetRecord().GetMetadata()["chain"] != "rust,echo" {
		t.Errorf("first result %v", r)
	}
	if r := got.GetResults()[1]; r.GetSequence() != 9 || r.GetRecord().GetMetadata()["chain"] != "echo" || string(r.GetRecord().GetPayload()) != `{"x":1}` {
		t.Errorf("second result %v", r)
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != io.EOF {
		t.Errorf("want EOF after CloseSend, got %v", err)
	}

	events, err := pb.NewOutputClient(conn).HandleEvent(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := events.Send(&pb.EventRequest{Events: []*pb.RecordEvent{{DeliveryId: 3}, {DeliveryId: 4}}}); err != nil {
		t.Fatal(err)
	}
	acks, err := events.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if len(acks.GetAcks()) != 2 || acks.GetAcks()[0].GetDeliveryId() != 3 || acks.GetAcks()[1].GetFailure() != nil {
		t.Errorf("acks %v", acks.GetAcks())
	}
}
