// Command peer-plugin is the benchmark's go-plugin plugin: plugin.Serve with
// the echo, Enricher and Output services of package peer. peer-host launches it.
package main

import (
	"os"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"github.com/switchyard/switchyard/bench/go-peer/internal/peer"
)

func main() {
	logger := hclog.New(&hclog.LoggerOptions{
		Name:       "peer-plugin",
		Level:      hclog.Info,
		Output:     os.Stderr,
		JSONFormat: true,
	})
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: peer.Handshake,
		Plugins:         peer.Plugins,
		GRPCServer:      plugin.DefaultGRPCServer,
		Logger:          logger,
	})
}
