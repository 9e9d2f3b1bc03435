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

// itemBytes is what m takes as the item field (field 1) of another message:
// its key, length and body.
func itemBytes(m proto.Message) int {
	return protowire.SizeTag(1) + protowire.SizeBytes(proto.Size(m))
}

// pack splits items, in order, into runs of at most MessageBytes each by
// their sizes on the wire (bytes[i] is the itemBytes of items[i]); an item
// larger than that goes alone in a run of its own. The hub and the Rust SDK
// pack their messages the same way.
func pack[T any](items []T, bytes []int) [][]T {
	var runs [][]T
	start, runBytes := 0, 0
	for i, size := range bytes {
		if i > start && runBytes+size > MessageBytes {
			runs = append(runs, items[start:i:i])
			start, runBytes = i, 0
		}
		runBytes += size
	}
	if start < len(items) {
		runs = append(runs, items[start:])
	}
	return runs
}

// pollResponses packs one emitted batch into PollResponses of at most
// MessageBytes of records each (pack), in order, with checkpoint on the
// last. A record too large for any message (over MaxMessageBytes) is a
// RESOURCE_EXHAUSTED error that names it.
func pollResponses(records []*pb.Record, checkpoint []byte) ([]*pb.PollResponse, error) {
	bytes := make([]int, len(records))
	for i, record := range records {
		bytes[i] = itemBytes(record)
		if bytes[i] > MaxMessageBytes {
			return nil, status.Errorf(codes.ResourceExhausted,
				"record %q is %d bytes on the wire, over the %d bytes one message may carry; emit it smaller",
				record.GetId(), bytes[i], MaxMessageBytes)
		}
	}
	var responses []*pb.PollResponse
	for _, run := range pack(records, bytes) {
		responses = append(responses, &pb.PollResponse{Records: run})
	}
	if len(responses) == 0 {
		responses = append(responses, &pb.PollResponse{})
	}
	responses[len(responses)-1].Checkpoint = checkpoint
	return responses, nil
}

// enrichResponses packs one batch's results into EnrichResponses of at most
// MessageBytes of results each (pack), in order: an enricher may make its
// records larger than they came, and the hub reads any number of answers. A
// result too large for any message (over MaxMessageBytes) is replaced, in
// results, by a permanent Failure that names the record: that item fails alone, where
// sending it would end the stream with RESOURCE_EXHAUSTED and fail every item
// on it.
func enrichResponses(results []*pb.EnrichResult) []*pb.EnrichResponse {
	bytes := make([]int, len(results))
	for i, result := range results {
		bytes[i] = itemBytes(result)
		if bytes[i] > MaxMessageBytes {
			failure := Permanent("the enriched record %q is %d bytes on the wire, over the %d bytes one message may carry",
				result.GetRecord().GetId(), bytes[i], MaxMessageBytes).WithCode("too_large")
			results[i] = &pb.EnrichResult{Sequence: result.GetSequence(), Outcome: &pb.EnrichResult_Failure{Failure: failureFromError(failure)}}
			bytes[i] = itemBytes(results[i])
		}
	}
	var responses []*pb.EnrichResponse
	for _, run := range pack(results, bytes) {
		responses = append(responses, &pb.EnrichResponse{Results: run})
	}
	return responses
}
