package switchyard_test

import (
	"context"
	"strings"

	switchyard "github.com/switchyard/switchyard/sdk/go"
	"github.com/switchyard/switchyard/sdk/go/switchyardv1"
)

// upper is an enricher that upper-cases one metadata value.
type upper struct {
	key string
}

// Enrich upper-cases metadata[key], refusing records without it.
func (u *upper) Enrich(_ context.Context, record *switchyardv1.Record) (*switchyardv1.Record, error) {
	value, ok := record.GetMetadata()[u.key]
	if !ok {
		return nil, switchyard.Permanent("record %q has no metadata %q", record.GetId(), u.key).WithCode("missing_key")
	}
	record.Metadata[u.key] = strings.ToUpper(value)
	return record, nil
}

// A complete plugin: main is only switchyard.Serve; the role is the upper type.
func Example() {
	enricher := &upper{key: "name"}
	plugin := &switchyard.Plugin{
		Name:         "upper",
		Version:      "0.1.0",
		Description:  "Upper-cases one metadata value.",
		ConfigSchema: `{"type":"object","properties":{"key":{"type":"string","minLength":1}},"additionalProperties":false}`,
		Configure: func(_ context.Context, configJSON []byte) error {
			config := struct {
				Key string `json:"key"`
			}{Key: "name"}
			problems := switchyard.DecodeConfig(configJSON, &config)
			if config.Key == "" {
				problems.Add("key", "must not be empty")
			}
			if problems.Err() == nil {
				enricher.key = config.Key
			}
			return problems.Err()
		},
		Enricher: enricher,
	}
	// In a real plugin this is main: it serves until the hub stops it. (The
	// example has no Output comment, so go test compiles it but does not run it.)
	switchyard.Serve(plugin)
}
