// Package shared holds what host-go needs to speak Switchyard's protocol
// through hashicorp/go-plugin: the handshake configuration (the Go SDK's)
// and a go-plugin GRPCPlugin that hands back the raw connection.
package shared

import (
	"context"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	switchyard "github.com/switchyard/switchyard/sdk/go"
)

// MagicCookieKey is the environment variable the Switchyard hub sets for its plugins.
const MagicCookieKey = switchyard.MagicCookieKey

// MagicCookieValue is the value of MagicCookieKey (a UX guard, not a security control).
const MagicCookieValue = switchyard.MagicCookieValue

// AppProtocolVersion is the switchyard.v1 app protocol version.
const AppProtocolVersion = switchyard.AppProtocolVersion

// PluginName is the key under which the Switchyard services are dispensed.
// go-plugin only uses it inside the process; it never goes on the wire.
const PluginName = switchyard.PluginName

// Handshake is the go-plugin handshake configuration of a Switchyard plugin.
var Handshake = switchyard.Handshake

// ConnPlugin is a go-plugin GRPCPlugin for a Switchyard host: GRPCClient
// hands back the raw *grpc.ClientConn so the caller can build any
// switchyard.v1 client on it. (Plugins use the SDK's switchyard.Serve.)
type ConnPlugin struct {
	plugin.NetRPCUnsupportedPlugin
}

// GRPCServer registers nothing: this side is the host.
func (p *ConnPlugin) GRPCServer(*plugin.GRPCBroker, *grpc.Server) error {
	return nil
}

// GRPCClient returns the connection itself (host side).
func (p *ConnPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, conn *grpc.ClientConn) (interface{}, error) {
	return conn, nil
}

// PluginSet is the go-plugin plugin set of a Switchyard host.
func PluginSet() plugin.PluginSet {
	return plugin.PluginSet{PluginName: &ConnPlugin{}}
}
