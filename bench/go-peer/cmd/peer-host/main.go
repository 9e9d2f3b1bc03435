// Command peer-host is the benchmark's go-plugin host. It launches peer-plugin
// with plugin.NewClient (as go-plugin's docs recommend), runs one measurement
// and prints the raw result as one JSON object on stdout, for switchyard-bench
// to compute statistics with the same code it uses for Switchyard:
//
//	peer-host version
//	peer-host -plugin PATH -record FILE latency -n N -warmup W
//	peer-host -plugin PATH -record FILE stream -kind enrich|events -n N -batch B -window W
//	peer-host -plugin PATH -record FILE launch -n N
//
// FILE holds one protobuf-encoded switchyard.v1.Record (written by
// switchyard-bench), so both sides send exactly the same bytes.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/protobuf/proto"

	switchyardv1 "github.com/switchyard/switchyard/bench/go-peer/gen/switchyard/v1"
	"github.com/switchyard/switchyard/bench/go-peer/internal/peer"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "peer-host: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	global := flag.NewFlagSet("peer-host", flag.ContinueOnError)
	pluginPath := global.String("plugin", "", "path of peer-plugin")
	recordPath := global.String("record", "", "file holding one encoded switchyard.v1.Record")
	if err := global.Parse(args); err != nil {
		return err
	}
	rest := global.Args()
	if len(rest) == 0 {
		return errors.New("missing command: version, latency, stream or launch")
	}
	if rest[0] == "version" {
		return emit(versions())
	}
	if *pluginPath == "" || *recordPath == "" {
		return errors.New("-plugin and -record are required")
	}
	raw, err := os.ReadFile(*recordPath)
	if err != nil {
		return err
	}
	record := &switchyardv1.Record{}
	if err := proto.Unmarshal(raw, record); err != nil {
		return fmt.Errorf("cannot decode %s: %w", *recordPath, err)
	}
	sub := flag.NewFlagSet(rest[0], flag.ContinueOnError)
	n := sub.Int("n", 1000, "measured calls, items or launches")
	warmup := sub.Int("warmup", 200, "unmeasured calls first (latency)")
	kind := sub.String("kind", "enrich", "enrich or events (stream)")
	batch := sub.Int("batch", 64, "items per message (stream)")
	window := sub.Int("window", 4096, "items in flight (stream)")
	if err := sub.Parse(rest[1:]); err != nil {
		return err
	}
	switch rest[0] {
	case "latency":
		return withPlugin(*pluginPath, func(c *peer.Clients) error {
			samples, err := latency(c, record, *n, *warmup)
			if err != nil {
				return err
			}
			return emit(map[string]any{"samples_ns": samples})
		})
	case "stream":
		return withPlugin(*pluginPath, func(c *peer.Clients) error {
			elapsed, err := stream(c, record, *kind, *n, *batch, *window)
			if err != nil {
				return err
			}
			return emit(map[string]any{"items": *n, "elapsed_ns": elapsed.Nanoseconds()})
		})
	case "launch":
		samples, err := launch(*pluginPath, record, *n)
		if err != nil {
			return err
		}
		return emit(map[string]any{"samples_ns": samples})
	default:
		return fmt.Errorf("unknown command %q", rest[0])
	}
}

func emit(value any) error {
	return json.NewEncoder(os.Stdout).Encode(value)
}

func versions() map[string]string {
	out := map[string]string{"go": runtime.Version()}
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range info.Deps {
			switch dep.Path {
			case "github.com/hashicorp/go-plugin":
				out["go_plugin"] = dep.Version
			case "google.golang.org/grpc":
				out["grpc_go"] = dep.Version
			}
		}
	}
	return out
}

func newClient(pluginPath string) *plugin.Client {
	return plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  peer.Handshake,
		Plugins:          peer.Plugins,
		Cmd:              exec.Command(pluginPath),
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		Logger: hclog.New(&hclog.LoggerOptions{
			Name:   "peer-host",
			Level:  hclog.Warn,
			Output: os.Stderr,
		}),
	})
}

// dispense runs Client() and Dispense, the documented way to reach a plugin.
func dispense(client *plugin.Client) (*peer.Clients, error) {
	rpcClient, err := client.Client()
	if err != nil {
		return nil, err
	}
	raw, err := rpcClient.Dispense(peer.PluginName)
	if err != nil {
		return nil, err
	}
	clients, ok := raw.(*peer.Clients)
	if !ok {
		return nil, fmt.Errorf("dispensed %T", raw)
	}
	return clients, nil
}

func withPlugin(pluginPath string, body func(*peer.Clients) error) error {
	client := newClient(pluginPath)
	defer client.Kill()
	clients, err := dispense(client)
	if err != nil {
		return err
	}
	return body(clients)
}

func latency(c *peer.Clients, record *switchyardv1.Record, n, warmup int) ([]int64, error) {
	ctx := context.Background()
	samples := make([]int64, 0, n)
	for i := 0; i < warmup+n; i++ {
		start := time.Now()
		answer, err := c.Echo.Echo(ctx, record)
		elapsed := time.Since(start)
		if err != nil {
			return nil, err
		}
		if answer.Id != record.Id {
			return nil, fmt.Errorf("echo answered id %q, sent %q", answer.Id, record.Id)
		}
		if i >= warmup {
			samples = append(samples, elapsed.Nanoseconds())
		}
	}
	return samples, nil
}

// stream pushes n items through Enrich or HandleEvent with at most window
// items in flight, batch items per message, and checks every item is
// answered exactly once.
func stream(c *peer.Clients, record *switchyardv1.Record, kind string, n, batch, window int) (time.Duration, error) {
	if batch <= 0 || window < batch || n%batch != 0 {
		return 0, fmt.Errorf("need batch > 0, window >= batch and n a multiple of batch (n=%d batch=%d window=%d)", n, batch, window)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	credits := make(chan struct{}, window/batch)
	for i := 0; i < window/batch; i++ {
		credits <- struct{}{}
	}
	seen := make([]bool, n)
	var send func(first int) error
	var recv func() ([]uint64, error)
	var closeSend func() error
	switch kind {
	case "enrich":
		s, err := c.Enricher.Enrich(ctx)
		if err != nil {
			return 0, err
		}
		items := make([]*switchyardv1.EnrichItem, batch)
		for i := range items {
			items[i] = &switchyardv1.EnrichItem{Record: record}
		}
		send = func(first int) error {
			for i, item := range items {
				item.Sequence = uint64(first + i)
			}
			return s.Send(&switchyardv1.EnrichRequest{Items: items})
		}
		recv = func() ([]uint64, error) {
			response, err := s.Recv()
			if err != nil {
				return nil, err
			}
			ids := make([]uint64, 0, len(response.Results))
			for _, result := range response.Results {
				if result.GetRecord() == nil {
					return nil, fmt.Errorf("sequence %d has no record", result.Sequence)
				}
				ids = append(ids, result.Sequence)
			}
			return ids, nil
		}
		closeSend = s.CloseSend
	case "events":
		s, err := c.Output.HandleEvent(ctx)
		if err != nil {
			return 0, err
		}
		events := make([]*switchyardv1.RecordEvent, batch)
		for i := range events {
			events[i] = &switchyardv1.RecordEvent{Kind: switchyardv1.EventKind_EVENT_KIND_CREATED, Record: record, Attempt: 1}
		}
		send = func(first int) error {
			for i, event := range events {
				event.DeliveryId = uint64(first + i)
			}
			return s.Send(&switchyardv1.EventRequest{Events: events})
		}
		recv = func() ([]uint64, error) {
			response, err := s.Recv()
			if err != nil {
				return nil, err
			}
			ids := make([]uint64, 0, len(response.Acks))
			for _, ack := range response.Acks {
				if ack.Failure != nil {
					return nil, fmt.Errorf("delivery %d was nacked: %s", ack.DeliveryId, ack.Failure.Message)
				}
				ids = append(ids, ack.DeliveryId)
			}
			return ids, nil
		}
		closeSend = s.CloseSend
	default:
		return 0, fmt.Errorf("unknown stream kind %q", kind)
	}
	start := time.Now()
	sendErr := make(chan error, 1)
	go func() {
		for first := 0; first < n; first += batch {
			select {
			case <-credits:
			case <-ctx.Done():
				sendErr <- ctx.Err()
				return
			}
			if err := send(first); err != nil {
				sendErr <- err
				return
			}
		}
		sendErr <- closeSend()
	}()
	answered, pending := 0, 0
	for answered < n {
		ids, err := recv()
		if errors.Is(err, io.EOF) {
			return 0, fmt.Errorf("stream ended with %d of %d answered", answered, n)
		}
		if err != nil {
			return 0, err
		}
		for _, id := range ids {
			if id >= uint64(n) || seen[id] {
				return 0, fmt.Errorf("unknown or repeated id %d", id)
			}
			seen[id] = true
		}
		answered += len(ids)
		pending += len(ids)
		for pending >= batch {
			pending -= batch
			credits <- struct{}{}
		}
	}
	elapsed := time.Since(start)
	if err := <-sendErr; err != nil {
		return 0, err
	}
	return elapsed, nil
}

// launch measures NewClient -> Client() -> Dispense -> first successful call,
// n times; each plugin is killed (untimed) before the next launch.
func launch(pluginPath string, record *switchyardv1.Record, n int) ([]int64, error) {
	samples := make([]int64, 0, n)
	for i := 0; i < n; i++ {
		start := time.Now()
		client := newClient(pluginPath)
		clients, err := dispense(client)
		if err == nil {
			_, err = clients.Echo.Echo(context.Background(), record)
		}
		elapsed := time.Since(start)
		client.Kill()
		if err != nil {
			return nil, err
		}
		samples = append(samples, elapsed.Nanoseconds())
	}
	return samples, nil
}
