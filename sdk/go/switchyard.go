// Package switchyard is the Go SDK for Switchyard plugins: a plugin is a
// Plugin value holding its metadata, its Configure function and one or more
// roles, handed to Serve in main. The SDK speaks hashicorp/go-plugin's
// protocol with the Switchyard handshake, serves the switchyard.v1 gRPC
// services (generated into the switchyardv1 package of this module), drives
// the enrichment and output streams, and maps errors made with Permanent and
// Retryable to what the hub expects.
//
// A role is an interface with one method in plain terms:
//
//   - PollingInput.Poll fetches what is new since a checkpoint;
//   - WebhookInput.HandleWebhook turns one HTTP delivery into records;
//   - Enricher.Enrich changes one record;
//   - Output.HandleEvent delivers one record event downstream.
//
// Role calls arrive only after Configure succeeded; before that the SDK
// answers FAILED_PRECONDITION.
package switchyard

import (
	"context"

	"github.com/hashicorp/go-plugin"

	"github.com/switchyard/switchyard/sdk/go/switchyardv1"
)

// MagicCookieKey is the environment variable the Switchyard hub sets for its plugins.
const MagicCookieKey = "SWITCHYARD_PLUGIN_MAGIC_COOKIE"

// MagicCookieValue is the value of MagicCookieKey (a UX guard, not a security control).
const MagicCookieValue = "7f1c9a4e2b5d8e03a6c1f9b27d4e8a15"

// AppProtocolVersion is the switchyard.v1 app protocol version.
const AppProtocolVersion = 1

// PluginName is the key under which go-plugin dispenses the Switchyard
// services. go-plugin only uses it inside the process; it never goes on the wire.
const PluginName = "switchyard"

// Handshake is the go-plugin handshake configuration of a Switchyard plugin.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  AppProtocolVersion,
	MagicCookieKey:   MagicCookieKey,
	MagicCookieValue: MagicCookieValue,
}

// Plugin describes a Switchyard plugin: what GetMetadata answers, how it is
// configured, and its roles. The roles it advertises are the non-nil ones;
// at least one must be set.
type Plugin struct {
	// Name identifies the plugin (for example "github-issues"); required.
	Name string
	// Version is the plugin's own version (for example "0.1.0").
	Version string
	// Description is one sentence about what the plugin does.
	Description string
	// ConfigSchema is a JSON Schema (draft 2020-12) of the config table; may be empty.
	ConfigSchema string
	// WebhookSyncReply says the webhook input's HttpReply is sent to the
	// sender (otherwise the hub answers 202 before calling the plugin).
	WebhookSyncReply bool

	// Configure checks and applies the config table (as JSON) before any role
	// call; it is called again on every restart of the plugin instance.
	// Return ConfigErrors for problems with the table (reported by field), or
	// a Retryable error when something the configuration depends on is
	// unreachable (the hub retries the start with backoff); any other error
	// is reported as one problem with the whole table. Nil accepts only an
	// empty table.
	Configure func(ctx context.Context, configJSON []byte) error

	// PollingInput, when set, makes the plugin a polling input.
	PollingInput PollingInput
	// WebhookInput, when set, makes the plugin a webhook input.
	WebhookInput WebhookInput
	// Enricher, when set, makes the plugin an enrichment step.
	Enricher Enricher
	// Output, when set, makes the plugin an output.
	Output Output

	// Health, when set, is what the plugin's gRPC health service reports;
	// otherwise go-plugin's health service always says SERVING.
	Health *Health
}

// PollingInput is an input the hub polls on a schedule (never two polls of
// one instance at once).
type PollingInput interface {
	// Poll fetches what is new since checkpoint (nil on the very first poll;
	// otherwise exactly what an earlier poll emitted). It calls emit for each
	// batch, in order; a non-nil checkpoint says that every record emitted so
	// far in this poll is covered by it, and a nil one sends records only.
	// Records emitted after the last checkpoint are fetched again if the poll
	// fails. Return when there is nothing more to fetch now; if emit returns
	// an error (the hub went away), return it.
	Poll(ctx context.Context, checkpoint []byte, emit func(records []*switchyardv1.Record, checkpoint []byte) error) error
}

// WebhookInput is an input that receives HTTP webhooks through the hub, which
// authenticates them before calling the plugin.
type WebhookInput interface {
	// HandleWebhook turns one delivery into records (and, with
	// Plugin.WebhookSyncReply, the reply to send). Return a Permanent error
	// for a malformed body (the sender gets 400, no retry); any other error
	// is retried.
	HandleWebhook(ctx context.Context, request *switchyardv1.WebhookRequest) (*switchyardv1.WebhookResponse, error)
}

// Enricher is a step that records pass through before they are stored.
type Enricher interface {
	// Enrich returns the record changed (keep its id and source), or an error
	// that becomes this record's Failure (Permanent or Retryable; any other
	// error counts as retryable). The SDK answers every item of the hub's
	// stream once, in order, with the hub's sequence number.
	Enrich(ctx context.Context, record *switchyardv1.Record) (*switchyardv1.Record, error)
}

// Output is a destination that receives record events.
type Output interface {
	// HandleEvent delivers one event; return nil only once it is durable
	// downstream (the SDK then acks it), or an error (the SDK nacks it with
	// the error as its Failure; Permanent or Retryable, any other error counts
	// as retryable). A redelivered event has the same DeliveryId and a higher
	// Attempt, so it can be deduplicated.
	HandleEvent(ctx context.Context, event *switchyardv1.RecordEvent) error
}

// roles lists the roles p advertises, in the order of the Role enum.
func (p *Plugin) roles() []switchyardv1.Role {
	var roles []switchyardv1.Role
	if p.PollingInput != nil {
		roles = append(roles, switchyardv1.Role_ROLE_POLLING_INPUT)
	}
	if p.WebhookInput != nil {
		roles = append(roles, switchyardv1.Role_ROLE_WEBHOOK_INPUT)
	}
	if p.Enricher != nil {
		roles = append(roles, switchyardv1.Role_ROLE_ENRICHMENT)
	}
	if p.Output != nil {
		roles = append(roles, switchyardv1.Role_ROLE_OUTPUT)
	}
	return roles
}
