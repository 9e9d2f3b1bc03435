package switchyard

import (
	"context"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	"google.golang.org/grpc/health/grpc_health_v1"
)

// healthServices are the gRPC health service names a Health answers for:
// go-plugin's ("plugin") and the whole server ("").
var healthServices = []string{"plugin", ""}

// Health is how a plugin tells the hub whether it can do its work. The hub
// asks the plugin's gRPC health service on a schedule; while a plugin says
// NOT_SERVING (for example because its upstream is unreachable) the hub sends
// it no work and does not restart it. Set Plugin.Health to use one, and keep
// the pointer in the role code to flip it. Safe for concurrent use.
//
// go-plugin registers its own health service (always SERVING for "plugin")
// before the plugin's services, and gRPC allows one registration per
// service; so Serve answers the health service's Check and Watch calls from
// this Health with a server interceptor instead.
type Health struct {
	server *health.Server

	mu      sync.Mutex
	serving bool
	reason  string
}

// NewHealth returns a Health that says SERVING.
func NewHealth() *Health {
	h := &Health{server: health.NewServer(), serving: true}
	for _, service := range healthServices {
		h.server.SetServingStatus(service, grpc_health_v1.HealthCheckResponse_SERVING)
	}
	return h
}

// SetServing says the plugin can do its work again.
func (h *Health) SetServing() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.serving {
		return
	}
	h.serving, h.reason = true, ""
	Logger().Info("the plugin is serving again")
	for _, service := range healthServices {
		h.server.SetServingStatus(service, grpc_health_v1.HealthCheckResponse_SERVING)
	}
}

// SetNotServing says the plugin cannot do its work now, and why. The reason
// is logged once per change (gRPC health has no field for it); do not put
// secrets in it.
func (h *Health) SetNotServing(reason string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.serving && h.reason == reason {
		return
	}
	h.serving, h.reason = false, reason
	Logger().Warn("the plugin reports it is not serving", "reason", reason)
	for _, service := range healthServices {
		h.server.SetServingStatus(service, grpc_health_v1.HealthCheckResponse_NOT_SERVING)
	}
}

// Serving says whether the plugin says SERVING now, and if not, why.
func (h *Health) Serving() (bool, string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.serving, h.reason
}

// ServerOptions are the gRPC server options that make the health service
// answer from h: interceptors that take over its Check and Watch calls.
// Serve adds them; tests can pass them to grpc.NewServer.
func (h *Health) ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(h.unaryInterceptor),
		grpc.ChainStreamInterceptor(h.streamInterceptor),
	}
}

func (h *Health) unaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if check, ok := req.(*grpc_health_v1.HealthCheckRequest); ok && info.FullMethod == grpc_health_v1.Health_Check_FullMethodName {
		return h.server.Check(ctx, check)
	}
	return handler(ctx, req)
}

func (h *Health) streamInterceptor(srv any, stream grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if info.FullMethod != grpc_health_v1.Health_Watch_FullMethodName {
		return handler(srv, stream)
	}
	request := new(grpc_health_v1.HealthCheckRequest)
	if err := stream.RecvMsg(request); err != nil {
		return err
	}
	return h.server.Watch(request, watchStream{stream})
}

// watchStream is a raw server stream as the typed stream health.Server.Watch takes.
type watchStream struct{ grpc.ServerStream }

func (w watchStream) Send(response *grpc_health_v1.HealthCheckResponse) error {
	return w.SendMsg(response)
}
