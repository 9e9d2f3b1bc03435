package switchyard

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
)

// notLaunchedByHub is the Switchyard wording of go-plugin's "not meant to be executed directly".
const notLaunchedByHub = "This binary is a Switchyard plugin. It is not meant to be executed directly: " +
	"the Switchyard hub launches it as configured in plugins.toml (see `switchyard run --config plugins.toml`)."

// logger is what Logger returns; Serve names it after the plugin.
var logger atomic.Pointer[hclog.Logger]

func init() {
	setLogger(newLogger(""))
}

// newLogger is an hclog logger writing JSON lines on stderr at every level:
// the hub turns each line into a log event at its level, and filters.
func newLogger(name string) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:       name,
		Level:      hclog.Trace,
		Output:     os.Stderr,
		JSONFormat: true,
	})
}

func setLogger(l hclog.Logger) { logger.Store(&l) }

// Logger is the plugin's logger: hclog JSON lines on stderr, which the hub
// shows at their level. Use it from the role code (never log secrets).
func Logger() hclog.Logger { return *logger.Load() }

// Serve runs p as a Switchyard plugin and returns when the hub stops it.
// Started by hand (without the hub's magic cookie) it explains that the
// binary is a plugin and exits 1; a Plugin without a Name or a role is
// reported on stderr, exit 1.
func Serve(p *Plugin) {
	ServeWithConfig(p, ServeConfig{Handshake: Handshake})
}

// MaxMessageBytes is the largest gRPC message the plugin receives or sends:
// 65 MiB, as in the Rust and Python SDKs. gRPC's own default for a received
// message is 4 MiB; the hub keeps its batches below that, but a single
// record, or a webhook body (`max_body` allows up to 64 MiB), may be larger,
// and a 64 MiB body comes with the rest of its request, as the record made
// of it does.
const MaxMessageBytes = 65 << 20

// serverOptions are the gRPC server options Serve adds to go-plugin's: the
// message size limits, and p.Health's interceptors when it is set.
func (p *Plugin) serverOptions() []grpc.ServerOption {
	opts := []grpc.ServerOption{grpc.MaxRecvMsgSize(MaxMessageBytes), grpc.MaxSendMsgSize(MaxMessageBytes)}
	if p.Health != nil {
		opts = append(opts, p.Health.ServerOptions()...)
	}
	return opts
}

// ServeConfig is Serve's escape hatch, for tests of the handshake itself.
type ServeConfig struct {
	// Handshake replaces the Switchyard handshake (Serve uses Handshake).
	// With another magic cookie, Serve leaves the cookie check and its
	// message to go-plugin.
	Handshake plugin.HandshakeConfig
}

// ServeWithConfig is Serve with another handshake; plugins use Serve.
func ServeWithConfig(p *Plugin, config ServeConfig) {
	handshake := config.Handshake
	switchyardCookie := handshake.MagicCookieKey == MagicCookieKey && handshake.MagicCookieValue == MagicCookieValue
	if switchyardCookie && os.Getenv(MagicCookieKey) != MagicCookieValue {
		// plugin.Serve makes the same check with go-plugin's generic text; say it in Switchyard's words first.
		fmt.Fprintln(os.Stderr, notLaunchedByHub)
		os.Exit(1)
	}
	setLogger(newLogger(p.Name))
	// Checked before the handshake line, so the hub shows the message.
	if err := p.validate(); err != nil {
		fmt.Fprintf(os.Stderr, "switchyard: cannot serve %q: %v\n", p.Name, err)
		os.Exit(1)
	}
	newServer := func(opts []grpc.ServerOption) *grpc.Server {
		return grpc.NewServer(append(opts, p.serverOptions()...)...)
	}
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: handshake,
		Plugins:         plugin.PluginSet{PluginName: &grpcPlugin{plugin: p}},
		GRPCServer:      newServer,
		Logger:          Logger(),
	})
	Logger().Info("stopped")
}

// grpcPlugin is the go-plugin GRPCPlugin that registers a Plugin's services.
type grpcPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	plugin *Plugin
}

// GRPCServer registers the switchyard.v1 services (plugin side).
func (g *grpcPlugin) GRPCServer(_ *plugin.GRPCBroker, server *grpc.Server) error {
	return g.plugin.Register(server)
}

// GRPCClient is never called: the SDK is only ever the plugin side.
func (g *grpcPlugin) GRPCClient(context.Context, *plugin.GRPCBroker, *grpc.ClientConn) (any, error) {
	return nil, errors.New("the Switchyard Go SDK serves plugins; it is not a host")
}
