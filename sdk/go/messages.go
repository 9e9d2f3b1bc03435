package switchyard

import (
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	pb "github.com/switchyard/switchyard/sdk/go/switchyardv1"
)

// MessageBytes is the most encoded bytes of records one PollResponse of
// several records carries: gRPC's default limit for a received message
// (4 MiB) less 64 KiB of room for the checkpoint and the framework, as the
// hub packs its own messages. An emitted batch larger than that is sent as
// several messages, the checkpoint on the last one, so a poll batch of any
// size arrives; before, a batch over MaxMessageBytes could never be sent and
// its poll failed on every retry.
const MessageBytes = 4<<20 - 64<<10

// pollResponses packs one emitted batch into PollResponses of at most
// MessageBytes of records each (a record larger than that alone goes in a
// message of its own), in order, with checkpoint on the last. A record too
// large for any message (over MaxMessageBytes) is a RESOURCE_EXHAUSTED error
// that names it.
func pollResponses(records []*pb.Record, checkpoint []byte) ([]*pb.PollResponse, error) {
	var responses []*pb.PollResponse
	current := &pb.PollResponse{}
	currentBytes := 0
	for _, record := range records {
		size := proto.Size(record)
		bytes := protowire.SizeTag(1) + protowire.SizeBytes(size)
		if len(current.Records) > 0 && currentBytes+bytes > MessageBytes {
			responses = append(responses, current)
			current = &pb.PollResponse{}
			currentBytes = 0
		}
		if bytes > MaxMessageBytes {
			return nil, status.Errorf(codes.ResourceExhausted,
				"record %q is %d bytes on the wire, over the %d bytes one message may carry; emit it smaller",
				record.GetId(), bytes, MaxMessageBytes)
		}
		current.Records = append(current.Records, record)
		currentBytes += bytes
	}
	current.Checkpoint = checkpoint
	return append(responses, current), nil
}

// enrichResponses packs one batch's results into EnrichResponses of at most
// MessageBytes of results each (a result larger than that alone goes in a
// message of its own), in order: an enricher may make its records larger
// than they came, and the hub reads any number of answers. A result too
// large for any message (over MaxMessageBytes) is replaced by a permanent
// Failure that names the record: that item fails alone, where sending it
// would end the stream with RESOURCE_EXHAUSTED and fail every item on it.
func enrichResponses(results []*pb.EnrichResult) []*pb.EnrichResponse {
	var responses []*pb.EnrichResponse
	current := &pb.EnrichResponse{}
	currentBytes := 0
	for _, result := range results {
		bytes := protowire.SizeTag(1) + protowire.SizeBytes(proto.Size(result))
		if bytes > MaxMessageBytes {
			failure := Permanent("the enriched record %q is %d bytes on the wire, over the %d bytes one message may carry",
				result.GetRecord().GetId(), bytes, MaxMessageBytes).WithCode("too_large")
			result = &pb.EnrichResult{Sequence: result.GetSequence(), Outcome: &pb.EnrichResult_Failure{Failure: failureFromError(failure)}}
			bytes = protowire.SizeTag(1) + protowire.SizeBytes(proto.Size(result))
		}
		if len(current.Results) > 0 && currentBytes+bytes > MessageBytes {
			responses = append(responses, current)
			current = &pb.EnrichResponse{}
			currentBytes = 0
		}
		current.Results = append(current.Results, result)
		currentBytes += bytes
	}
	if len(current.Results) > 0 {
		responses = append(responses, current)
	}
	return responses
}
