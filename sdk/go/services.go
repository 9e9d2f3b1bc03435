package switchyard

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"sort"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/switchyard/switchyard/sdk/go/switchyardv1"
)

// errNoRole is Register's answer for a Plugin without a role.
var errNoRole = errors.New("the plugin has no role: set PollingInput, WebhookInput, Enricher or Output")

// Register adds p's switchyard.v1 services (Plugin and one per role) to a
// gRPC server. Serve calls it on go-plugin's server; tests call it on their
// own (for example over google.golang.org/grpc/test/bufconn). Each call has
// its own configured state.
func (p *Plugin) Register(server *grpc.Server) error {
	if err := p.validate(); err != nil {
		return err
	}
	s := &services{plugin: p}
	pb.RegisterPluginServer(server, s)
	if p.PollingInput != nil {
		pb.RegisterPollingInputServer(server, s)
	}
	if p.WebhookInput != nil {
		pb.RegisterWebhookInputServer(server, s)
	}
	if p.Enricher != nil {
		pb.RegisterEnricherServer(server, s)
	}
	if p.Output != nil {
		pb.RegisterOutputServer(server, s)
	}
	return nil
}

// validate says what makes p unservable, if anything.
func (p *Plugin) validate() error {
	if p.Name == "" {
		return errors.New("the plugin has no Name")
	}
	if len(p.roles()) == 0 {
		return errNoRole
	}
	return nil
}

// services implements the switchyard.v1 services on top of a Plugin.
type services struct {
	pb.UnimplementedPluginServer
	pb.UnimplementedPollingInputServer
	pb.UnimplementedWebhookInputServer
	pb.UnimplementedEnricherServer
	pb.UnimplementedOutputServer

	plugin     *Plugin
	configured atomic.Bool
}

// GetMetadata answers with the Plugin's fields and its non-nil roles.
func (s *services) GetMetadata(context.Context, *pb.GetMetadataRequest) (*pb.PluginMetadata, error) {
	p := s.plugin
	return &pb.PluginMetadata{
		Name:             p.Name,
		Version:          p.Version,
		Roles:            p.roles(),
		ConfigSchema:     p.ConfigSchema,
		Description:      p.Description,
		WebhookSyncReply: p.WebhookSyncReply,
	}, nil
}

// Configure runs Plugin.Configure: ConfigErrors become the response's errors
// by field, a retryable Error becomes UNAVAILABLE (the hub retries the
// start), and any other error one problem about the whole table.
func (s *services) Configure(ctx context.Context, req *pb.ConfigureRequest) (*pb.ConfigureResponse, error) {
	configure := s.plugin.Configure
	if configure == nil {
		configure = noConfig
	}
	err := configure(ctx, req.GetConfigJson())
	if err == nil {
		s.configured.Store(true)
		Logger().Info("configured", "instance", req.GetInstanceName())
		return &pb.ConfigureResponse{}, nil
	}
	var problems ConfigErrors
	var failure *Error
	switch {
	case errors.As(err, &problems) && len(problems) > 0:
	case errors.As(err, &failure) && failure.retryable:
		Logger().Warn("configuration unavailable", "instance", req.GetInstanceName(), "error", err)
		code, trailer := statusFromError(failure)
		if trailer.Len() > 0 {
			_ = grpc.SetTrailer(ctx, trailer)
		}
		return nil, code
	default:
		problems = ConfigErrors{{Message: err.Error()}}
	}
	Logger().Warn("configuration rejected", "instance", req.GetInstanceName(), "errors", len(problems))
	out := make([]*pb.ConfigError, 0, len(problems))
	for _, problem := range problems {
		out = append(out, &pb.ConfigError{Field: problem.Field, Message: problem.Message})
	}
	return &pb.ConfigureResponse{Errors: out}, nil
}

// noConfig is the Configure of a Plugin without one: only an empty table.
func noConfig(_ context.Context, configJSON []byte) error {
	if len(bytes.TrimSpace(configJSON)) == 0 {
		return nil
	}
	var table map[string]json.RawMessage
	if err := json.Unmarshal(configJSON, &table); err != nil || table == nil {
		return ConfigErrors{{Message: "the configuration must be a table (JSON object)"}}
	}
	var problems ConfigErrors
	for key := range table {
		problems.Add(key, "unknown key; this plugin takes no configuration")
	}
	sort.Slice(problems, func(i, j int) bool { return problems[i].Field < problems[j].Field })
	return problems.Err()
}

// errNotConfigured answers role calls that arrive before a successful Configure.
var errNotConfigured = status.Error(codes.FailedPrecondition, "called before a successful Configure")

func (s *services) checkConfigured() error {
	if !s.configured.Load() {
		return errNotConfigured
	}
	return nil
}

// Poll runs PollingInput.Poll, streaming each emitted batch.
func (s *services) Poll(req *pb.PollRequest, stream grpc.ServerStreamingServer[pb.PollResponse]) error {
	if err := s.checkConfigured(); err != nil {
		return err
	}
	emit := func(records []*pb.Record, checkpoint []byte) error {
		responses, err := pollResponses(records, checkpoint)
		if err != nil {
			return err
		}
		for _, response := range responses {
			if err := stream.Send(response); err != nil {
				return err
			}
		}
		return nil
	}
	if err := s.plugin.PollingInput.Poll(stream.Context(), req.Checkpoint, emit); err != nil {
		Logger().Warn("poll failed", "error", err)
		return streamError(stream, err)
	}
	return nil
}

// HandleWebhook runs WebhookInput.HandleWebhook.
func (s *services) HandleWebhook(ctx context.Context, req *pb.WebhookRequest) (*pb.WebhookResponse, error) {
	if err := s.checkConfigured(); err != nil {
		return nil, err
	}
	response, err := s.plugin.WebhookInput.HandleWebhook(ctx, req)
	if err != nil {
		Logger().Debug("webhook delivery failed", "delivery_id", req.GetDeliveryId(), "error", err)
		code, trailer := statusFromError(err)
		if trailer.Len() > 0 {
			_ = grpc.SetTrailer(ctx, trailer)
		}
		return nil, code
	}
	if response == nil {
		response = &pb.WebhookResponse{}
	}
	return response, nil
}

// Enrich answers every item of every batch, in order, with its sequence
// number: the enriched record or the Failure the Enricher's error makes.
func (s *services) Enrich(stream grpc.BidiStreamingServer[pb.EnrichRequest, pb.EnrichResponse]) error {
	if err := s.checkConfigured(); err != nil {
		return err
	}
	for {
		req, err := stream.Recv()
		if err != nil {
			return endOfStream("enrich", err)
		}
		Logger().Debug("enrich batch received", "items", len(req.GetItems()))
		results := make([]*pb.EnrichResult, 0, len(req.GetItems()))
		for _, item := range req.GetItems() {
			record := item.GetRecord()
			if record == nil {
				record = &pb.Record{}
			}
			result := &pb.EnrichResult{Sequence: item.GetSequence()}
			enriched, err := s.plugin.Enricher.Enrich(stream.Context(), record)
			switch {
			case err != nil:
				Logger().Debug("record failed", "id", record.GetId(), "error", err)
				result.Outcome = &pb.EnrichResult_Failure{Failure: failureFromError(err)}
			case enriched == nil:
				result.Outcome = &pb.EnrichResult_Failure{Failure: failureFromError(Permanent("the enricher returned no record for %q", record.GetId()))}
			default:
				result.Outcome = &pb.EnrichResult_Record{Record: enriched}
			}
			results = append(results, result)
		}
		for _, response := range enrichResponses(results) {
			if err := stream.Send(response); err != nil {
				return endOfStream("enrich", err)
			}
		}
	}
}

// HandleEvent answers every event of every batch once, in order: an ack when
// Output.HandleEvent returned nil, a nack with its error as the Failure otherwise.
func (s *services) HandleEvent(stream grpc.BidiStreamingServer[pb.EventRequest, pb.EventResponse]) error {
	if err := s.checkConfigured(); err != nil {
		return err
	}
	for {
		req, err := stream.Recv()
		if err != nil {
			return endOfStream("output", err)
		}
		acks := make([]*pb.EventAck, 0, len(req.GetEvents()))
		failed := 0
		for _, event := range req.GetEvents() {
			ack := &pb.EventAck{DeliveryId: event.GetDeliveryId()}
			if err := s.plugin.Output.HandleEvent(stream.Context(), event); err != nil {
				Logger().Debug("event failed", "delivery_id", event.GetDeliveryId(), "error", err)
				ack.Failure = failureFromError(err)
				failed++
			}
			acks = append(acks, ack)
		}
		if len(acks) == 0 {
			continue
		}
		if err := stream.Send(&pb.EventResponse{Acks: acks}); err != nil {
			return endOfStream("output", err)
		}
		Logger().Debug("events acknowledged", "count", len(acks)-failed, "failed", failed)
	}
}

// streamError is a streaming handler's result for err, its metadata set as trailers.
func streamError(stream grpc.ServerStream, err error) error {
	code, trailer := statusFromError(err)
	if trailer.Len() > 0 {
		stream.SetTrailer(trailer)
	}
	return code
}

// endOfStream turns the end of a stream into the handler's result: a host
// that closed or cancelled the stream is normal; anything else is logged.
func endOfStream(what string, err error) error {
	if errors.Is(err, io.EOF) || status.Code(err) == codes.Canceled || errors.Is(err, context.Canceled) {
		Logger().Debug("stream closed by the host", "stream", what)
		return nil
	}
	Logger().Error("stream failed", "stream", what, "error", err)
	return err
}
