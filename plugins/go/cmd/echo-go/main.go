// Command echo-go is a Switchyard plugin written with hashicorp/go-plugin's own
// plugin.Serve: an enricher that appends its tag ("go" by default) to each
// record's metadata["chain"], and an output that acknowledges every event.
// It logs through hclog at trace, debug, info, warn and error, as JSON on
// stderr, so the hub shows each line at its level.
//
// It is launched by the Switchyard hub (or any go-plugin host using the
// Switchyard handshake); run by hand it explains that and exits 1.
package main

import (
	"fmt"
	"os"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"github.com/switchyard/switchyard/plugins/go/internal/echo"
	"github.com/switchyard/switchyard/plugins/go/internal/shared"
)

// notLaunchedByHub is the Switchyard wording of go-plugin's "not meant to be executed directly".
const notLaunchedByHub = "This binary is a Switchyard plugin. It is not meant to be executed directly: " +
	"the Switchyard hub launches it as configured in plugins.toml (see `switchyard run --config plugins.toml`)."

func main() {
	// plugin.Serve makes the same check with go-plugin's generic text; say it in Switchyard's words first.
	if os.Getenv(shared.MagicCookieKey) != shared.MagicCookieValue {
		fmt.Fprintln(os.Stderr, notLaunchedByHub)
		os.Exit(1)
	}
	logger := hclog.New(&hclog.LoggerOptions{
		Name:       echo.Name,
		Level:      hclog.Trace, // the host filters by level
		Output:     os.Stderr,
		JSONFormat: true,
	})
	server := echo.New(logger)
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: shared.Handshake,
		Plugins:         shared.PluginSet(server.Register),
		GRPCServer:      plugin.DefaultGRPCServer,
		Logger:          logger,
	})
	logger.Info("echo-go stopped")
}
