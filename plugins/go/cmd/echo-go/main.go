// Command echo-go is a Switchyard plugin served by the Switchyard Go SDK
// (sdk/go, itself on hashicorp/go-plugin's plugin.Serve): an enricher that
// appends its tag ("go" by default) to each record's metadata["chain"], and an
// output that acknowledges every event. It logs through the SDK's hclog
// logger, as JSON on stderr, so the hub shows each line at its level.
//
// It is launched by the Switchyard hub (or any go-plugin host using the
// Switchyard handshake); run by hand it explains that and exits 1.
//
// Two environment variables exist for handshake-failure tests only:
// ECHO_GO_MAGIC_COOKIE_VALUE makes it expect another cookie value (and leaves
// the check, and its message, to go-plugin's plugin.Serve), and
// ECHO_GO_APP_PROTOCOL_VERSION makes it serve another app protocol version.
// AutoMTLS needs nothing here: plugin.Serve turns it on by itself when the
// host sets PLUGIN_CLIENT_CERT.
package main

import (
	"fmt"
	"os"
	"strconv"

	"github.com/switchyard/switchyard/plugins/go/internal/echo"
	switchyard "github.com/switchyard/switchyard/sdk/go"
)

func main() {
	handshake := switchyard.Handshake
	if cookie, ok := os.LookupEnv("ECHO_GO_MAGIC_COOKIE_VALUE"); ok {
		// Test hook: expect another cookie; plugin.Serve checks it with go-plugin's own text.
		handshake.MagicCookieValue = cookie
	}
	if text, ok := os.LookupEnv("ECHO_GO_APP_PROTOCOL_VERSION"); ok {
		// Test hook: serve another app protocol version than switchyard.v1.
		version, err := strconv.ParseUint(text, 10, 16)
		if err != nil {
			fmt.Fprintf(os.Stderr, "echo-go: ECHO_GO_APP_PROTOCOL_VERSION=%q is not a version number\n", text)
			os.Exit(1)
		}
		handshake.ProtocolVersion = uint(version)
	}
	switchyard.ServeWithConfig(echo.New(), switchyard.ServeConfig{Handshake: handshake})
}
