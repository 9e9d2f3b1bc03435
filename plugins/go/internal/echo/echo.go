// Package echo is echo-go's role code, served by the Switchyard Go SDK: an
// enricher that appends its tag to each record's metadata["chain"], and an
// output that acknowledges every event.
package echo

import (
	"context"
	"strings"
	"sync"

	switchyard "github.com/switchyard/switchyard/sdk/go"
	pb "github.com/switchyard/switchyard/sdk/go/switchyardv1"
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

// Echo is echo-go's enricher and output; its tag is set by Configure.
type Echo struct {
	mu  sync.RWMutex
	tag string
}

// New returns echo-go as a Plugin for switchyard.Serve.
func New() *switchyard.Plugin {
	echo := &Echo{tag: DefaultTag}
	return &switchyard.Plugin{
		Name:         Name,
		Version:      Version,
		Description:  "Echoes records, appending its tag to metadata[\"chain\"], and acknowledges every output event.",
		ConfigSchema: configSchema,
		Configure:    echo.configure,
		Enricher:     echo,
		Output:       echo,
	}
}

// configure validates {"tag": "..."} and applies it.
func (e *Echo) configure(_ context.Context, configJSON []byte) error {
	tag, err := parseConfig(configJSON)
	if err != nil {
		return err
	}
	e.mu.Lock()
	e.tag = tag
	e.mu.Unlock()
	switchyard.Logger().Info("echo-go configured", "tag", tag)
	return nil
}

// parseConfig reads the tag; every problem is reported with its field.
func parseConfig(configJSON []byte) (string, error) {
	config := struct {
		Tag string `json:"tag"`
	}{Tag: DefaultTag}
	problems := switchyard.DecodeConfig(configJSON, &config)
	if config.Tag == "" || strings.Contains(config.Tag, ",") {
		problems.Add("tag", "must be non-empty and contain no comma, not %q", config.Tag)
	}
	return config.Tag, problems.Err()
}

// AppendToChain appends tag to a comma-separated chain.
func AppendToChain(chain, tag string) string {
	if chain == "" {
		return tag
	}
	return chain + "," + tag
}

// Enrich returns the record with the tag appended to metadata["chain"].
func (e *Echo) Enrich(_ context.Context, record *pb.Record) (*pb.Record, error) {
	e.mu.RLock()
	tag := e.tag
	e.mu.RUnlock()
	if record.GetId() == "" {
		switchyard.Logger().Warn("record without an id; echoing it anyway, the hub will reject it")
	}
	if record.Metadata == nil {
		record.Metadata = map[string]string{}
	}
	record.Metadata[ChainKey] = AppendToChain(record.Metadata[ChainKey], tag)
	switchyard.Logger().Trace("echoing record", "id", record.GetId(), "chain", record.Metadata[ChainKey])
	return record, nil
}

// HandleEvent acknowledges every event.
func (e *Echo) HandleEvent(_ context.Context, event *pb.RecordEvent) error {
	switchyard.Logger().Trace("acknowledging event", "delivery_id", event.GetDeliveryId(), "kind", event.GetKind().String(), "attempt", event.GetAttempt())
	return nil
}
