package switchyard

import (
	"bytes"
	"encoding/json"
	"errors"
	"sort"
	"strings"
)

// DecodeConfig decodes the config table (JSON) into config, a pointer to a
// struct with json tags whose fields already hold the defaults, and returns
// every problem by key: a value of the wrong type, or a key the struct does
// not have. Keys are decoded one by one, so the good ones are set even when
// others are wrong. An empty input leaves config unchanged. Check the values
// themselves (ranges, required keys) after it, add to the problems, and
// return problems.Err() from Configure.
func DecodeConfig(configJSON []byte, config any) ConfigErrors {
	if len(bytes.TrimSpace(configJSON)) == 0 {
		return nil
	}
	var table map[string]json.RawMessage
	if err := json.Unmarshal(configJSON, &table); err != nil || table == nil {
		return ConfigErrors{{Message: "the configuration must be a table (JSON object)"}}
	}
	keys := make([]string, 0, len(table))
	for key := range table {
		keys = append(keys, key)
	}
	sort.Strings(keys)
	var problems ConfigErrors
	for _, key := range keys {
		// One key at a time, so each problem names its key.
		one, err := json.Marshal(map[string]json.RawMessage{key: table[key]})
		if err != nil {
			problems.Add(key, "cannot be read: %v", err)
			continue
		}
		decoder := json.NewDecoder(bytes.NewReader(one))
		decoder.DisallowUnknownFields()
		err = decoder.Decode(config)
		var typeErr *json.UnmarshalTypeError
		switch {
		case err == nil:
		case errors.As(err, &typeErr):
			problems.Add(key, "must be a %s, not a JSON %s", typeErr.Type, typeErr.Value)
		case strings.Contains(err.Error(), "unknown field"):
			problems.Add(key, "unknown key")
		default:
			problems.Add(key, "%v", err)
		}
	}
	return problems
}
