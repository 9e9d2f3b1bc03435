package switchyard

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestServeExplainsWhenRunByHand runs this test binary again as a plugin
// started without the hub's cookie: it must say so in Switchyard's words and exit 1.
func TestServeExplainsWhenRunByHand(t *testing.T) {
	if os.Getenv("SWITCHYARD_SDK_TEST_SERVE") == "1" {
		Serve(&Plugin{Name: "by-hand", Output: &output{}})
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestServeExplainsWhenRunByHand$")
	cmd.Env = append(withoutCookie(os.Environ()), "SWITCHYARD_SDK_TEST_SERVE=1")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("want exit status 1, got %v", err)
	}
	if !strings.Contains(stderr.String(), "This binary is a Switchyard plugin. It is not meant to be executed directly") {
		t.Errorf("stderr %q", stderr.String())
	}
}

// withoutCookie is env without the Switchyard magic cookie.
func withoutCookie(env []string) []string {
	var out []string
	for _, entry := range env {
		if !strings.HasPrefix(entry, MagicCookieKey+"=") {
			out = append(out, entry)
		}
	}
	return out
}
