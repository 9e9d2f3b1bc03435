package host

import (
	"bytes"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

func TestLineDetector(t *testing.T) {
	d := &lineDetector{needle: NotGracefulMessage}
	_, _ = d.Write([]byte(`{"@level":"debug","@message":"plugin exited"}` + "\n"))
	if d.Seen() {
		t.Fatal("seen too early")
	}
	_, _ = d.Write([]byte(`{"@level":"warn","@message":"plugin failed to exit gracefully"}` + "\n"))
	if !d.Seen() {
		t.Fatal("not seen")
	}
}

func TestHclogWriterKeepsLevelsAndFields(t *testing.T) {
	var out bytes.Buffer
	logger := hclog.New(&hclog.LoggerOptions{Level: hclog.Info, Output: &out})
	w := &hclogWriter{logger: logger}
	_, _ = w.Write([]byte(`{"@level":"warn","@message":"careful","@module":"p","b":2,"a":"x"}` + "\n" +
		`{"@level":"debug","@message":"hidden"}` + "\n" + "not json\n"))
	text := out.String()
	if !strings.Contains(text, "[WARN]  careful: module=p a=x b=2") {
		t.Errorf("got %q", text)
	}
	if strings.Contains(text, "hidden") || strings.Contains(text, "not json") {
		t.Errorf("debug lines should be filtered at info: %q", text)
	}
}
