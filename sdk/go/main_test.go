package switchyard

import (
	"os"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// TestMain silences the SDK's logger: the tests check answers, not log lines.
func TestMain(m *testing.M) {
	setLogger(hclog.NewNullLogger())
	os.Exit(m.Run())
}
