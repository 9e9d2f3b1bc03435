// Command stubborn is a test plugin that completes the Switchyard handshake and
// serves health and switchyard.v1.Plugin, but not go-plugin's GRPCController,
// so it never exits when asked to: a host has to SIGKILL it. It exists to
// prove that host-go notices and fails.
package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/switchyard/switchyard/plugins/go/internal/shared"
	pb "github.com/switchyard/switchyard/sdk/go/switchyardv1"
)

type metadataServer struct {
	pb.UnimplementedPluginServer
}

func (metadataServer) GetMetadata(context.Context, *pb.GetMetadataRequest) (*pb.PluginMetadata, error) {
	return &pb.PluginMetadata{Name: "stubborn", Version: "0.0.1"}, nil
}

func (metadataServer) Configure(context.Context, *pb.ConfigureRequest) (*pb.ConfigureResponse, error) {
	return &pb.ConfigureResponse{}, nil
}

func main() {
	if os.Getenv(shared.MagicCookieKey) != shared.MagicCookieValue {
		fmt.Fprintln(os.Stderr, "stubborn: not launched by a host")
		os.Exit(1)
	}
	signal.Ignore(syscall.SIGINT, syscall.SIGTERM)
	dir, err := os.MkdirTemp("", "stubborn")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	path := filepath.Join(dir, "plugin")
	listener, err := net.Listen("unix", path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	server := grpc.NewServer()
	healthServer := health.NewServer()
	healthServer.SetServingStatus("plugin", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(server, healthServer)
	pb.RegisterPluginServer(server, metadataServer{})
	fmt.Printf("1|1|unix|%s|grpc|\n", path)
	_ = server.Serve(listener)
	select {} // keep running even if the listener is closed
}
