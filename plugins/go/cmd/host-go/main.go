// Command host-go is a small Switchyard host built on hashicorp/go-plugin's
// own client. It launches the plugin binary given on its command line with
// the Switchyard handshake, checks health, calls GetMetadata and Configure,
// sends a few records through Enrich (and events through HandleEvent) when the
// plugin serves those roles, prints everything as one JSON document on
// stdout, then kills the plugin with client.Kill().
//
// It exits 0 when every step worked and the plugin exited gracefully after
// GRPCController.Shutdown; 1 when anything failed, including when go-plugin
// logged "plugin failed to exit gracefully" and had to SIGKILL the plugin;
// 2 on a usage error. Logs (go-plugin's and the plugin's, with their levels)
// go to stderr.
//
//	host-go [-config JSON] [-records N] [-log-level LEVEL] [-log-json]
//	        [-auto-mtls] [-cookie VALUE] [-versions 1,2] PLUGIN [ARGS...]
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/switchyard/switchyard/plugins/go/internal/host"
)

func main() {
	os.Exit(run())
}

func run() int {
	flags := flag.NewFlagSet("host-go", flag.ContinueOnError)
	flags.Usage = func() {
		fmt.Fprintln(flags.Output(), "usage: host-go [flags] PLUGIN [ARGS...]")
		flags.PrintDefaults()
	}
	config := flags.String("config", "{}", "the plugin's config table as JSON, sent with Configure")
	instance := flags.String("instance", "host-go", "the instance name sent with Configure")
	records := flags.Int("records", 3, "how many records (and output events) to send")
	startTimeout := flags.Duration("start-timeout", 30*time.Second, "how long the plugin has to complete the handshake")
	callTimeout := flags.Duration("call-timeout", 30*time.Second, "the deadline for all calls after the handshake")
	logLevel := flags.String("log-level", "debug", "stderr log level: trace, debug, info, warn or error")
	logJSON := flags.Bool("log-json", false, "log to stderr as hclog JSON lines instead of text")
	autoMTLS := flags.Bool("auto-mtls", false, "turn on go-plugin's AutoMTLS (PLUGIN_CLIENT_CERT, certificates pinned both ways)")
	cookie := flags.String("cookie", "", "send this magic cookie value instead of Switchyard's (for handshake-failure tests)")
	versionList := flags.String("versions", "1", "comma-separated app protocol versions to offer in PLUGIN_PROTOCOL_VERSIONS")
	if err := flags.Parse(os.Args[1:]); err != nil {
		return 2
	}
	if flags.NArg() < 1 || *records < 1 {
		flags.Usage()
		return 2
	}
	versions, err := parseVersions(*versionList)
	if err != nil {
		fmt.Fprintf(os.Stderr, "host-go: -versions: %v\n", err)
		return 2
	}
	level := hclog.LevelFromString(*logLevel)
	if level == hclog.NoLevel {
		fmt.Fprintf(os.Stderr, "host-go: unknown log level %q\n", *logLevel)
		return 2
	}
	logger := hclog.New(&hclog.LoggerOptions{Name: "host-go", Level: level, Output: os.Stderr, JSONFormat: *logJSON})

	report, err := host.Run(host.Options{
		Command:      flags.Arg(0),
		Args:         flags.Args()[1:],
		ConfigJSON:   *config,
		InstanceName: *instance,
		Records:      *records,
		StartTimeout: *startTimeout,
		CallTimeout:  *callTimeout,
		Logger:       logger,
		AutoMTLS:     *autoMTLS,
		CookieValue:  *cookie,
		Versions:     versions,
	})
	encoder := json.NewEncoder(os.Stdout)
	encoder.SetIndent("", "  ")
	if encodeErr := encoder.Encode(report); encodeErr != nil {
		fmt.Fprintf(os.Stderr, "host-go: cannot print the report: %v\n", encodeErr)
		return 1
	}
	if err != nil {
		logger.Error("host-go failed", "error", err)
		return 1
	}
	return 0
}

// parseVersions reads a comma-separated list of positive app protocol versions.
func parseVersions(text string) ([]int, error) {
	var versions []int
	for _, field := range strings.Split(text, ",") {
		version, err := strconv.Atoi(strings.TrimSpace(field))
		if err != nil || version < 1 {
			return nil, fmt.Errorf("%q is not a positive version number", field)
		}
		versions = append(versions, version)
	}
	return versions, nil
}
