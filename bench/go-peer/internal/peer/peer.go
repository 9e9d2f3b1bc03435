// Package peer holds what the benchmark's go-plugin host and plugin share: the
// handshake configuration, the go-plugin GRPCPlugin carrying the benchmark's
// services, and the services themselves (an echo that does the same work as
// Switchyard's testkit plugin: append a tag to metadata["chain"]).
package peer

import (
	"context"
	"errors"
	"io"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	benchpeerv1 "github.com/switchyard/switchyard/bench/go-peer/gen/benchpeer/v1"
	switchyardv1 "github.com/switchyard/switchyard/bench/go-peer/gen/switchyard/v1"
)

// Handshake is the go-plugin handshake configuration of the benchmark peer.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  1,
	MagicCookieKey:   "SWITCHYARD_BENCH_PEER_COOKIE",
	MagicCookieValue: "3c0e1d5a9b7f4e2a8d6c0b1e9f3a5d7c",
}

// PluginName is the key the host dispenses.
const PluginName = "bench"

// Tag is what Echo appends to metadata["chain"], like testkit's default tag.
const Tag = "go"

// Clients is what Dispense returns on the host side.
type Clients struct {
	Echo     benchpeerv1.EchoClient
	Enricher switchyardv1.EnricherClient
	Output   switchyardv1.OutputClient
}

// GRPCPlugin is the go-plugin plugin for the benchmark (used as go-plugin's
// docs recommend: GRPCServer registers services, GRPCClient wraps the conn).
type GRPCPlugin struct {
	plugin.NetRPCUnsupportedPlugin
}

// GRPCServer registers the benchmark services (plugin side).
func (GRPCPlugin) GRPCServer(_ *plugin.GRPCBroker, server *grpc.Server) error {
	benchpeerv1.RegisterEchoServer(server, echoServer{})
	switchyardv1.RegisterEnricherServer(server, enricherServer{})
	switchyardv1.RegisterOutputServer(server, outputServer{})
	return nil
}

// GRPCClient builds the clients (host side).
func (GRPCPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, conn *grpc.ClientConn) (interface{}, error) {
	return &Clients{
		Echo:     benchpeerv1.NewEchoClient(conn),
		Enricher: switchyardv1.NewEnricherClient(conn),
		Output:   switchyardv1.NewOutputClient(conn),
	}, nil
}

// Plugins is the plugin set both sides use.
var Plugins = plugin.PluginSet{PluginName: GRPCPlugin{}}

// tag appends Tag to the record's metadata["chain"], as testkit's Enrich does.
func tag(record *switchyardv1.Record) {
	if record.Metadata == nil {
		record.Metadata = map[string]string{}
	}
	chain := record.Metadata["chain"]
	if chain == "" {
		chain = Tag
	} else {
		chain += "," + Tag
	}
	record.Metadata["chain"] = chain
}

type echoServer struct {
	benchpeerv1.UnimplementedEchoServer
}

func (echoServer) Echo(_ context.Context, record *switchyardv1.Record) (*switchyardv1.Record, error) {
	tag(record)
	return record, nil
}

type enricherServer struct {
	switchyardv1.UnimplementedEnricherServer
}

// Enrich answers each request with one response carrying every item, tagged.
func (enricherServer) Enrich(stream switchyardv1.Enricher_EnrichServer) error {
	for {
		request, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		results := make([]*switchyardv1.EnrichResult, 0, len(request.Items))
		for _, item := range request.Items {
			tag(item.Record)
			results = append(results, &switchyardv1.EnrichResult{
				Sequence: item.Sequence,
				Outcome:  &switchyardv1.EnrichResult_Record{Record: item.Record},
			})
		}
		if err := stream.Send(&switchyardv1.EnrichResponse{Results: results}); err != nil {
			return err
		}
	}
}

type outputServer struct {
	switchyardv1.UnimplementedOutputServer
}

// HandleEvent acknowledges every event, one response per request.
func (outputServer) HandleEvent(stream switchyardv1.Output_HandleEventServer) error {
	for {
		request, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		acks := make([]*switchyardv1.EventAck, 0, len(request.Events))
		for _, event := range request.Events {
			acks = append(acks, &switchyardv1.EventAck{DeliveryId: event.DeliveryId})
		}
		if err := stream.Send(&switchyardv1.EventResponse{Acks: acks}); err != nil {
			return err
		}
	}
}
