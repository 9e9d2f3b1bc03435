// Package shared holds what a Go host and a Go plugin must agree on to speak
// Switchyard's protocol through hashicorp/go-plugin: the handshake
// configuration and the go-plugin GRPCPlugin that carries the switchyard.v1
// services.
package shared

import (
	"context"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
)

// MagicCookieKey is the environment variable the Switchyard hub sets for its plugins.
const MagicCookieKey = "SWITCHYARD_PLUGIN_MAGIC_COOKIE"

// MagicCookieValue is the value of MagicCookieKey (a UX guard, not a security control).
const MagicCookieValue = "7f1c9a4e2b5d8e03a6c1f9b27d4e8a15"

// AppProtocolVersion is the switchyard.v1 app protocol version.
const AppProtocolVersion = 1

// PluginName is the key under which the Switchyard services are dispensed.
// go-plugin only uses it inside the process; it never goes on the wire.
const PluginName = "switchyard"

// Handshake is the go-plugin handshake configuration of a Switchyard plugin.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  AppProtocolVersion,
	MagicCookieKey:   MagicCookieKey,
	MagicCookieValue: MagicCookieValue,
}

// ConnPlugin is a go-plugin GRPCPlugin for Switchyard. On the plugin side,
// Register adds the switchyard.v1 services to go-plugin's gRPC server. On the
// host side, GRPCClient hands back the raw *grpc.ClientConn so the caller can
// build any switchyard.v1 client on it.
type ConnPlugin struct {
	plugin.NetRPCUnsupportedPlugin

	// Register adds the plugin's services to the server (plugin side only).
	Register func(*grpc.Server)
}

// GRPCServer registers the Switchyard services (plugin side).
func (p *ConnPlugin) GRPCServer(_ *plugin.GRPCBroker, server *grpc.Server) error {
	if p.Register != nil {
		p.Register(server)
	}
	return nil
}

// GRPCClient returns the connection itself (host side).
func (p *ConnPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, conn *grpc.ClientConn) (interface{}, error) {
	return conn, nil
}

// PluginSet is the go-plugin plugin set for a Switchyard plugin or host.
func PluginSet(register func(*grpc.Server)) plugin.PluginSet {
	return plugin.PluginSet{PluginName: &ConnPlugin{Register: register}}
}
