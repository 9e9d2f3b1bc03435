// Package echo implements the echo-go plugin's services: an enricher that
// appends its tag to each record's metadata["chain"], and an output that
// acknowledges every event.
package echo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/switchyard/switchyard/plugins/go/gen/switchyard/v1"
)

// Name and Version identify the plugin in GetMetadata.
const (
	Name    = "echo-go"
	Version = "0.1.0"
	// DefaultTag is what the enricher appends to metadata["chain"] unless configured otherwise.
	DefaultTag = "go"
	// ChainKey is the metadata key the enricher appends its tag to.
	ChainKey = "chain"
)

// configSchema describes the config table (JSON Schema draft 2020-12).
const configSchema = `{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object","additionalProperties":false,` +
	`"properties":{"tag":{"type":"string","minLength":1,"pattern":"^[^,]+$","default":"go",` +
	`"description":"Appended to metadata[\"chain\"] (comma-separated) of every record."}}}`

// Server implements switchyard.v1 Plugin, Enricher and Output.
type Server struct {
	pb.UnimplementedPluginServer
	pb.UnimplementedEnricherServer
	pb.UnimplementedOutputServer

	log hclog.Logger

	mu         sync.RWMutex
	tag        string
	configured bool
}

// New returns an unconfigured server logging to log.
func New(log hclog.Logger) *Server {
	return &Server{log: log, tag: DefaultTag}
}

// Register adds the Plugin, Enricher and Output services to a gRPC server.
func (s *Server) Register(server *grpc.Server) {
	pb.RegisterPluginServer(server, s)
	pb.RegisterEnricherServer(server, s)
	pb.RegisterOutputServer(server, s)
}

// GetMetadata says what echo-go is.
func (s *Server) GetMetadata(context.Context, *pb.GetMetadataRequest) (*pb.PluginMetadata, error) {
	s.log.Debug("metadata requested")
	return &pb.PluginMetadata{
		Name:         Name,
		Version:      Version,
		Roles:        []pb.Role{pb.Role_ROLE_ENRICHMENT, pb.Role_ROLE_OUTPUT},
		ConfigSchema: configSchema,
		Description:  "Echoes records, appending its tag to metadata[\"chain\"], and acknowledges every output event.",
	}, nil
}

// Configure validates {"tag": "..."}; every problem is reported with its field.
func (s *Server) Configure(_ context.Context, req *pb.ConfigureRequest) (*pb.ConfigureResponse, error) {
	tag, problems := parseConfig(req.GetConfigJson())
	if len(problems) > 0 {
		s.log.Warn("configuration rejected", "instance", req.GetInstanceName(), "errors", len(problems))
		return &pb.ConfigureResponse{Errors: problems}, nil
	}
	s.mu.Lock()
	s.tag, s.configured = tag, true
	s.mu.Unlock()
	s.log.Info("echo-go configured", "instance", req.GetInstanceName(), "tag", tag)
	return &pb.ConfigureResponse{}, nil
}

func parseConfig(raw []byte) (string, []*pb.ConfigError) {
	if len(strings.TrimSpace(string(raw))) == 0 {
		raw = []byte("{}")
	}
	var table map[string]json.RawMessage
	if err := json.Unmarshal(raw, &table); err != nil || table == nil {
		return "", []*pb.ConfigError{{Message: "the configuration must be a table (JSON object)"}}
	}
	tag := DefaultTag
	var problems []*pb.ConfigError
	keys := make([]string, 0, len(table))
	for key := range table {
		keys = append(keys, key)
	}
	sort.Strings(keys)
	for _, key := range keys {
		switch key {
		case "tag":
			var value string
			if err := json.Unmarshal(table[key], &value); err != nil {
				problems = append(problems, &pb.ConfigError{Field: "tag", Message: "must be a string"})
			} else if value == "" || strings.Contains(value, ",") {
				problems = append(problems, &pb.ConfigError{Field: "tag", Message: fmt.Sprintf("must be non-empty and contain no comma, not %q", value)})
			} else {
				tag = value
			}
		default:
			problems = append(problems, &pb.ConfigError{Field: key, Message: "unknown key; expected tag"})
		}
	}
	return tag, problems
}

func (s *Server) currentTag() (string, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if !s.configured {
		return "", status.Error(codes.FailedPrecondition, "called before a successful Configure")
	}
	return s.tag, nil
}

// AppendToChain appends tag to a comma-separated chain.
func AppendToChain(chain, tag string) string {
	if chain == "" {
		return tag
	}
	return chain + "," + tag
}

// Enrich answers every item with the same record, metadata["chain"] extended by the tag.
func (s *Server) Enrich(stream grpc.BidiStreamingServer[pb.EnrichRequest, pb.EnrichResponse]) error {
	tag, err := s.currentTag()
	if err != nil {
		return err
	}
	for {
		req, err := stream.Recv()
		if err != nil {
			return s.endOfStream("enrich", err)
		}
		s.log.Debug("enrich batch received", "items", len(req.GetItems()))
		results := make([]*pb.EnrichResult, 0, len(req.GetItems()))
		for _, item := range req.GetItems() {
			record := item.GetRecord()
			if record == nil {
				record = &pb.Record{}
			}
			if record.GetId() == "" {
				s.log.Warn("record without an id; echoing it anyway, the hub will reject it", "sequence", item.GetSequence())
			}
			if record.Metadata == nil {
				record.Metadata = map[string]string{}
			}
			record.Metadata[ChainKey] = AppendToChain(record.Metadata[ChainKey], tag)
			s.log.Trace("echoing record", "sequence", item.GetSequence(), "id", record.GetId(), "chain", record.Metadata[ChainKey])
			results = append(results, &pb.EnrichResult{Sequence: item.GetSequence(), Outcome: &pb.EnrichResult_Record{Record: record}})
		}
		if len(results) == 0 {
			continue
		}
		if err := stream.Send(&pb.EnrichResponse{Results: results}); err != nil {
			return s.endOfStream("enrich", err)
		}
	}
}

// HandleEvent acknowledges every event.
func (s *Server) HandleEvent(stream grpc.BidiStreamingServer[pb.EventRequest, pb.EventResponse]) error {
	if _, err := s.currentTag(); err != nil {
		return err
	}
	for {
		req, err := stream.Recv()
		if err != nil {
			return s.endOfStream("output", err)
		}
		acks := make([]*pb.EventAck, 0, len(req.GetEvents()))
		for _, event := range req.GetEvents() {
			s.log.Trace("acknowledging event", "delivery_id", event.GetDeliveryId(), "kind", event.GetKind().String(), "attempt", event.GetAttempt())
			acks = append(acks, &pb.EventAck{DeliveryId: event.GetDeliveryId()})
		}
		if len(acks) == 0 {
			continue
		}
		if err := stream.Send(&pb.EventResponse{Acks: acks}); err != nil {
			return s.endOfStream("output", err)
		}
		s.log.Info("events acknowledged", "count", len(acks))
	}
}

// endOfStream turns the end of a stream into the handler's result: a client
// that closed or cancelled is normal; anything else is logged at error.
func (s *Server) endOfStream(what string, err error) error {
	if errors.Is(err, io.EOF) || status.Code(err) == codes.Canceled || errors.Is(err, context.Canceled) {
		s.log.Debug("stream closed by the host", "stream", what)
		return nil
	}
	s.log.Error("stream failed", "stream", what, "error", err)
	return err
}
