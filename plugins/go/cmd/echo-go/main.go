// Command echo-go is a Switchyard plugin written with hashicorp/go-plugin's own
// plugin.Serve: an enricher that appends its tag ("go" by default) to each
// record's metadata["chain"], and an output that acknowledges every event.
// It logs through hclog at trace, debug, info, warn and error, as JSON on
// stderr, so the hub shows each line at its level.
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

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"github.com/switchyard/switchyard/plugins/go/internal/echo"
	"github.com/switchyard/switchyard/plugins/go/internal/shared"
)

// notLaunchedByHub is the Switchyard wording of go-plugin's "not meant to be executed directly".
const notLaunchedByHub = "This binary is a Switchyard plugin. It is not meant to be executed directly: " +
	"the Switchyard hub launches it as configured in plugins.toml (see `switchyard run --config plugins.toml`)."

func main() {
	handshake := shared.Handshake
	if cookie, ok := os.LookupEnv("ECHO_GO_MAGIC_COOKIE_VALUE"); ok {
		// Test hook: expect another cookie; plugin.Serve checks it with go-plugin's own text.
		handshake.MagicCookieValue = cookie
	} else if os.Getenv(shared.MagicCookieKey) != shared.MagicCookieValue {
		// plugin.Serve makes the same check with go-plugin's generic text; say it in Switchyard's words first.
		fmt.Fprintln(os.Stderr, notLaunchedByHub)
		os.Exit(1)
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
	logger := hclog.New(&hclog.LoggerOptions{
		Name:       echo.Name,
		Level:      hclog.Trace, // the host filters by level
		Output:     os.Stderr,
		JSONFormat: true,
	})
	server := echo.New(logger)
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: handshake,
		Plugins:         shared.PluginSet(server.Register),
		GRPCServer:      plugin.DefaultGRPCServer,
		Logger:          logger,
	})
	logger.Info("echo-go stopped")
}
