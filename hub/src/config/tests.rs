//! Unit tests for config loading: every error case asserts the exact
//! `file:line:col` and the key named in the message.

use std::os::unix::fs::PermissionsExt as _;

use super::*;

/// A temp directory holding an executable `plugin` and a non-executable `data`.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let plugin = dir.path().join("plugin");
        std::fs::write(&plugin, "#!/bin/sh\nexit 0\n").unwrap();
        std::fs::set_permissions(&plugin, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(dir.path().join("data"), "not a program").unwrap();
        Fixture { dir }
    }

    fn parse(&self, text: &str) -> Result<Config, ConfigErrors> {
        parse(Path::new("plugins.toml"), text, self.dir.path())
    }

    /// Parses text that must fail, and returns the error lines.
    fn errors(&self, text: &str) -> Vec<String> {
        match self.parse(text) {
            Ok(config) => panic!("expected errors, got {config:?}"),
            Err(errors) => errors.0.iter().map(ToString::to_string).collect(),
        }
    }
}

#[test]
fn a_complete_file_loads_with_defaults_applied() {
    let fixture = Fixture::new();
    let config = fixture
        .parse(
            r#"
[hub]
listen = "127.0.0.1:0"
stop_grace = "1s"

[plugins.zeta]
command = "plugin"

[plugins.alpha]
command = "./plugin"
args = ["--fast"]
env = { RUST_LOG = "debug" }
env_passthrough = ["PATH"]
start_timeout = "1m 30s"
stop_grace = "250ms"

[plugins.alpha.config]
text_fields = ["text", "title"]
threshold = 0.5
nested = { on = true, count = 0x10 }
"#,
        )
        .unwrap();
    assert_eq!(config.hub.listen.to_string(), "127.0.0.1:0");
    assert_eq!(config.hub.stop_grace, Duration::from_secs(1));
    assert_eq!(config.hub.kill_grace, DEFAULT_KILL_GRACE);
    assert_eq!(
        config.hub.database,
        Database::Sqlite {
            path: fixture.dir.path().join("switchyard.db"),
            options: String::new()
        }
    );
    // Config order, not alphabetical order.
    let names: Vec<_> = config.plugins.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["zeta", "alpha"]);
    let zeta = &config.plugins[0];
    assert_eq!(zeta.start_timeout, DEFAULT_START_TIMEOUT);
    assert_eq!(zeta.stop_grace, Duration::from_secs(1), "inherits [hub]");
    assert_eq!(zeta.config, serde_json::json!({}));
    assert!(zeta.command.is_absolute());
    let alpha = &config.plugins[1];
    assert_eq!(alpha.command, fixture.dir.path().join("./plugin"));
    assert_eq!(alpha.args, ["--fast"]);
    assert_eq!(alpha.env.get("RUST_LOG").map(String::as_str), Some("debug"));
    assert_eq!(alpha.env_passthrough, ["PATH"]);
    assert_eq!(alpha.start_timeout, Duration::from_secs(90));
    assert_eq!(alpha.stop_grace, Duration::from_millis(250));
    assert_eq!(alpha.working_dir, fixture.dir.path());
    assert_eq!(
        alpha.config,
        serde_json::json!({
            "text_fields": ["text", "title"],
            "threshold": 0.5,
            "nested": {"on": true, "count": 16}
        })
    );
}

#[test]
fn an_empty_file_is_a_hub_without_plugins() {
    let fixture = Fixture::new();
    let config = fixture.parse("").unwrap();
    assert!(config.plugins.is_empty());
    assert_eq!(config.hub, HubConfig::with_defaults(fixture.dir.path()));
    assert_eq!(
        config.hub.database.url(),
        format!(
            "sqlite://{}",
            fixture.dir.path().join("switchyard.db").display()
        )
    );
}

#[test]
fn database_urls_are_resolved_and_never_shown_with_passwords() {
    let fixture = Fixture::new();
    let config = fixture
        .parse("[hub]\ndatabase = \"sqlite://data/sy.db?mode=rwc\"\n")
        .unwrap();
    assert_eq!(
        config.hub.database.url(),
        format!(
            "sqlite://{}?mode=rwc",
            fixture.dir.path().join("data/sy.db").display()
        )
    );
    let config = fixture
        .parse("[hub]\ndatabase = \"sqlite:///var/lib/sy.db\"\n")
        .unwrap();
    assert_eq!(config.hub.database.url(), "sqlite:///var/lib/sy.db");
    let config = fixture
        .parse("[hub]\ndatabase = \"postgres://user:secret@db/sy\"\n")
        .unwrap();
    assert_eq!(config.hub.database.url(), "postgres://user:secret@db/sy");
    assert!(!format!("{config:?}").contains("secret"));
}

#[test]
fn unknown_key_in_a_plugin_names_the_key_the_table_and_the_choices() {
    let errors = Fixture::new().errors("[plugins.echo]\ncommand = \"plugin\"\nbogus = \"x\"\n");
    assert_eq!(
        errors,
        [
            "plugins.toml:3:1: unknown key `bogus` in [plugins.echo]; expected one of `command`, `args`, `env`, `env_passthrough`, `start_timeout`, `stop_grace`, `tls`, `config`, `webhook`, `poll`, `output`, `restart`, `health`, `retry`, `limits`"
        ]
    );
}

#[test]
fn a_misspelt_key_gets_a_suggestion() {
    let errors = Fixture::new().errors("[plugins.echo]\ncommand = \"plugin\"\ncomand = \"x\"\n");
    assert_eq!(
        errors,
        ["plugins.toml:3:1: unknown key `comand` in [plugins.echo]; did you mean `command`?"]
    );
}

#[test]
fn every_section_that_rejects_unknown_keys_suggests_the_closest_one() {
    let fixture = Fixture::new();
    // One misspelling per section, each on its own line.
    let errors = fixture.errors(
        r#"plugin = 1
[hub]
lisen = "127.0.0.1:1"
[defaults]
helth = {}
[defaults.restart]
polcy = "never"
[defaults.health]
Interval = "1s"
[defaults.retry]
max_atempts = 2
[defaults.limits]
open-files = 64
[plugins.p]
command = "plugin"
start_timout = "1s"
[plugins.p.webhook]
auth = "none"
max-body = 10
[plugins.p.poll]
interval = "1s"
max_record = 5
[plugins.p.output]
oredred = true
[pipeline]
enrcih = []
[pipeline.sources.s]
enrich_ = []
"#,
    );
    let expected = [
        "plugins.toml:1:1: unknown key `plugin` in the top level; did you mean `plugins`?",
        "plugins.toml:3:1: unknown key `lisen` in [hub]; did you mean `listen`?",
        "plugins.toml:5:1: unknown key `helth` in [defaults]; did you mean `health`?",
        "plugins.toml:7:1: unknown key `polcy` in [defaults.restart]; did you mean `policy`?",
        "plugins.toml:9:1: unknown key `Interval` in [defaults.health]; did you mean `interval`?",
        "plugins.toml:11:1: unknown key `max_atempts` in [defaults.retry]; did you mean `max_attempts`?",
        "plugins.toml:13:1: unknown key `open-files` in [defaults.limits]; did you mean `open_files`?",
        "plugins.toml:16:1: unknown key `start_timout` in [plugins.p]; did you mean `start_timeout`?",
        "plugins.toml:19:1: unknown key `max-body` in [plugins.p.webhook]; did you mean `max_body`?",
        "plugins.toml:22:1: unknown key `max_record` in [plugins.p.poll]; did you mean `max_records`?",
        "plugins.toml:24:1: unknown key `oredred` in [plugins.p.output]; did you mean `ordered`?",
        "plugins.toml:26:1: unknown key `enrcih` in [pipeline]; did you mean `enrich`?",
        "plugins.toml:28:1: unknown key `enrich_` in [pipeline.sources.s]; did you mean `enrich`?",
    ];
    assert_eq!(errors, expected);
}

#[test]
fn a_misspelt_plugin_name_in_the_pipeline_gets_a_suggestion() {
    let errors = Fixture::new().errors(
        "[plugins.tagger]\ncommand = \"plugin\"\n[pipeline]\nenrich = [\"taggr\"]\non_error = { tager = \"skip\", zzz = \"skip\" }\n",
    );
    assert_eq!(
        errors,
        [
            "plugins.toml:4:11: `enrich` in [pipeline] names \"taggr\", which is not a configured plugin; did you mean `tagger`?",
            "plugins.toml:5:14: `on_error` in [pipeline] names \"tager\", which is not a configured plugin; did you mean `tagger`?",
            "plugins.toml:5:30: `on_error` in [pipeline] names \"zzz\", which is not a configured plugin",
        ]
    );
}

#[test]
fn suggestions_are_only_for_near_misses() {
    use super::reader::did_you_mean;
    let keys = ["command", "args", "env", "env_passthrough", "stop_grace"];
    assert_eq!(did_you_mean("comand", keys), Some("command"));
    assert_eq!(
        did_you_mean("cmomand", keys),
        Some("command"),
        "a swap is one edit"
    );
    assert_eq!(did_you_mean("ENV", keys), Some("env"), "case is ignored");
    assert_eq!(did_you_mean("en", keys), Some("env"));
    assert_eq!(did_you_mean("arg", keys), Some("args"));
    assert_eq!(did_you_mean("stop-grace", keys), Some("stop_grace"));
    assert_eq!(did_you_mean("cmd", keys), None);
    assert_eq!(did_you_mean("x", keys), None);
    assert_eq!(did_you_mean("timeout", keys), None);
    assert_eq!(did_you_mean("anything", []), None);
}

#[test]
fn unknown_keys_in_hub_and_at_the_top_level_are_errors() {
    let errors = Fixture::new().errors("[hub]\nlisten = \"127.0.0.1:1\"\nport = 3\n\n[server]\n");
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors[0]
            .starts_with("plugins.toml:3:1: unknown key `port` in [hub]; expected one of `listen`"),
        "{errors:?}"
    );
    assert_eq!(
        errors[1],
        "plugins.toml:5:2: unknown key `server` in the top level; expected one of `hub`, `defaults`, `plugins`, `pipeline`"
    );
}

#[test]
fn unknown_keys_inside_config_belong_to_the_plugin() {
    let fixture = Fixture::new();
    let config = fixture
        .parse("[plugins.echo]\ncommand = \"plugin\"\nconfig = { anything = 1, goes = \"x\" }\n")
        .unwrap();
    assert_eq!(
        config.plugins[0].config,
        serde_json::json!({"anything": 1, "goes": "x"})
    );
}

#[test]
fn missing_command_points_at_the_table_header() {
    let errors = Fixture::new().errors("[hub]\n\n\n\n[plugins.echo]\nargs = []\n");
    assert_eq!(
        errors,
        ["plugins.toml:5:1: [plugins.echo] is missing the required key `command`"]
    );
}

#[test]
fn empty_command_is_an_error() {
    let errors = Fixture::new().errors("[plugins.echo]\ncommand = \"  \"\n");
    assert_eq!(
        errors,
        ["plugins.toml:2:11: `command` in [plugins.echo] must not be empty"]
    );
}

#[test]
fn a_command_of_the_wrong_type_is_an_error() {
    let errors = Fixture::new().errors("[plugins.echo]\ncommand = 42\n");
    assert_eq!(
        errors,
        ["plugins.toml:2:11: `command` in [plugins.echo] must be a string, found integer"]
    );
}

#[test]
fn a_missing_command_file_names_the_plugin_and_the_resolved_path() {
    let fixture = Fixture::new();
    let errors = fixture.errors("[plugins.echo]\ncommand = \"bin/nope\"\n");
    let resolved = fixture.dir.path().join("bin/nope");
    assert_eq!(
        errors,
        [format!(
            "plugins.toml:2:11: the command of plugin `echo` (\"bin/nope\", resolved to {}) does not exist",
            resolved.display()
        )]
    );
}

#[test]
fn a_non_executable_command_is_an_error() {
    let fixture = Fixture::new();
    let errors = fixture.errors("[plugins.echo]\ncommand = \"data\"\n");
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0]
            .starts_with("plugins.toml:2:11: the command of plugin `echo` (\"data\", resolved to "),
        "{errors:?}"
    );
    assert!(
        errors[0].ends_with("/data) is not executable"),
        "{errors:?}"
    );
}

#[test]
fn a_bad_duration_names_the_key_and_the_unit() {
    let errors = Fixture::new()
        .errors("[plugins.echo]\ncommand = \"plugin\"\nstart_timeout = \"5 parsecs\"\n");
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].starts_with(
            "plugins.toml:3:17: invalid duration \"5 parsecs\" for `start_timeout` in [plugins.echo]: unknown time unit \"parsecs\""
        ),
        "{errors:?}"
    );
}

#[test]
fn a_zero_duration_is_an_error() {
    let errors = Fixture::new().errors("[hub]\nkill_grace = \"0s\"\n");
    assert_eq!(
        errors,
        [
            "plugins.toml:2:14: invalid duration \"0s\" for `kill_grace` in [hub]: it must be greater than zero"
        ]
    );
}

#[test]
fn a_zero_backoff_is_allowed_and_means_at_once() {
    let config = Fixture::new()
        .parse(
            "[plugins.a]\ncommand = \"plugin\"\n[plugins.a.restart]\ninitial_backoff = \"0s\"\nmax_backoff = \"0s\"\n",
        )
        .unwrap();
    let backoff = &config.plugins[0].supervision.restart.backoff;
    assert_eq!(backoff.initial, Duration::ZERO);
    assert_eq!(backoff.max, Duration::ZERO);
}

#[test]
fn a_bad_listen_address_is_an_error() {
    let errors = Fixture::new().errors("[hub]\nlisten = \"localhost:http\"\n");
    assert_eq!(
        errors,
        [
            "plugins.toml:2:10: invalid listen address \"localhost:http\" for `listen` in [hub]: expected IP:PORT, for example \"127.0.0.1:7300\""
        ]
    );
}

#[test]
fn a_bad_plugin_name_is_an_error() {
    let errors = Fixture::new().errors("[plugins.\"my plugin\"]\ncommand = \"plugin\"\n");
    assert_eq!(
        errors,
        [
            "plugins.toml:1:10: invalid plugin name \"my plugin\": ' ' is not allowed; use letters, digits, `-` and `_`"
        ]
    );
}

#[test]
fn a_bad_database_url_is_an_error() {
    let errors = Fixture::new().errors("[hub]\ndatabase = \"mysql://x\"\n");
    assert_eq!(
        errors,
        [
            "plugins.toml:2:12: invalid database URL \"mysql://x\" for `database` in [hub]: expected sqlite://PATH or postgres://…"
        ]
    );
}

#[test]
fn bad_env_entries_are_errors() {
    let errors = Fixture::new().errors(
        "[plugins.echo]\ncommand = \"plugin\"\nenv = { A = 1 }\nenv_passthrough = [\"A=B\"]\n",
    );
    assert_eq!(
        errors,
        [
            "plugins.toml:3:13: `A` in [plugins.echo.env] must be a string, found integer",
            "plugins.toml:4:20: invalid environment variable name \"A=B\" in `env_passthrough` of [plugins.echo]: it must not contain `=` or a NUL byte",
        ]
    );
}

#[test]
fn a_toml_syntax_error_has_a_position() {
    let errors = Fixture::new().errors("[plugins.echo]\ncommand = \"plugin\n");
    assert_eq!(errors.len(), 1);
    assert!(errors[0].starts_with("plugins.toml:2:"), "{errors:?}");
}

#[test]
fn every_error_is_reported_at_once() {
    let errors = Fixture::new().errors(
        "[plugins.a]\nstart_timeout = \"x\"\n[plugins.b]\ncommand = \"plugin\"\nbogus = 1\n",
    );
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(errors[0].starts_with("plugins.toml:1:1: [plugins.a] is missing"));
    assert!(errors[1].starts_with("plugins.toml:2:17: invalid duration \"x\""));
    assert!(errors[2].starts_with("plugins.toml:5:1: unknown key `bogus` in [plugins.b]"));
}

#[test]
fn a_missing_file_is_an_error_naming_it() {
    let errors = load(Path::new("/nonexistent/plugins.toml")).unwrap_err();
    assert_eq!(errors.0.len(), 1);
    assert!(
        errors.0[0]
            .to_string()
            .starts_with("/nonexistent/plugins.toml: cannot read the config file: "),
        "{errors}"
    );
}

#[test]
fn plugin_names_are_validated() {
    assert!(validate_plugin_name("echo-1_b").is_ok());
    assert!(validate_plugin_name("").is_err());
    assert!(validate_plugin_name("a.b").is_err());
    assert!(validate_plugin_name("é").is_err());
}

#[test]
fn supervision_sections_override_defaults_key_by_key() {
    let fixture = Fixture::new();
    let config = fixture
        .parse(
            r#"
[defaults.restart]
policy = "on-failure"
max_restarts = 3
initial_backoff = "50ms"

[defaults.retry]
max_attempts = 2

[plugins.a]
command = "plugin"

[plugins.b]
command = "plugin"
[plugins.b.restart]
max_restarts = 7
jitter = false
multiplier = 1.5
[plugins.b.health]
interval = "200ms"
failure_threshold = 2
[plugins.b.retry]
retryable_codes = ["UNAVAILABLE", "aborted"]
breaker_failures = 9
[plugins.b.limits]
memory = "512MiB"
cpu_time = "1500ms"
open_files = 256
processes = 64
"#,
        )
        .unwrap();
    let a = &config.plugins[0].supervision;
    assert_eq!(a.restart.policy, RestartMode::OnFailure);
    assert_eq!(a.restart.max_restarts, 3);
    assert_eq!(a.restart.backoff.initial, Duration::from_millis(50));
    assert_eq!(a.restart.backoff.max, Duration::from_secs(30));
    assert_eq!(a.restart.window, Duration::from_secs(300));
    assert_eq!(a.health, HealthConfig::default());
    assert_eq!(a.retry.max_attempts, 2);
    assert_eq!(a.retry.timeout, Duration::from_secs(30));
    assert_eq!(a.limits, LimitsConfig::default());
    let b = &config.plugins[1].supervision;
    assert_eq!(b.restart.policy, RestartMode::OnFailure, "inherited");
    assert_eq!(b.restart.max_restarts, 7);
    assert!(!b.restart.backoff.jitter);
    assert_eq!(b.restart.backoff.multiplier, 1.5);
    assert_eq!(b.health.interval, Duration::from_millis(200));
    assert_eq!(b.health.timeout, Duration::from_secs(1));
    assert_eq!(b.health.failure_threshold, 2);
    assert_eq!(
        b.retry.retryable_codes,
        [tonic::Code::Unavailable, tonic::Code::Aborted]
    );
    assert_eq!(b.retry.breaker_failures, 9);
    assert_eq!(b.retry.max_attempts, 2, "inherited");
    assert_eq!(
        b.limits,
        LimitsConfig {
            memory: Some(512 * 1024 * 1024),
            cpu_time: Some(2),
            open_files: Some(256),
            processes: Some(64),
        }
    );
}

#[test]
fn bad_supervision_values_name_the_key_and_the_table() {
    let fixture = Fixture::new();
    let errors = fixture.errors(
        r#"
[defaults]
restrat = {}

[plugins.p]
command = "plugin"
[plugins.p.restart]
policy = "sometimes"
max_restarts = 0
initial_backoff = "10s"
max_backoff = "1s"
multiplier = 0.5
[plugins.p.health]
failure_threshold = "3"
[plugins.p.retry]
retryable_codes = ["UNAVAILABLE", "SOON"]
[plugins.p.limits]
memory = "lots"
open_files = 2
"#,
    );
    let expected = [
        "plugins.toml:3:1: unknown key `restrat` in [defaults]; did you mean `restart`?",
        "plugins.toml:7:1: `max_backoff` (1s) in [plugins.p.restart] is shorter than `initial_backoff` (10s)",
        "plugins.toml:8:10: invalid `policy` \"sometimes\" in [plugins.p.restart]: expected \"always\", \"on-failure\" or \"never\"",
        "plugins.toml:9:16: `max_restarts` in [plugins.p.restart] must be between 1 and 4294967295, found 0",
        "plugins.toml:12:14: `multiplier` in [plugins.p.restart] must be between 1 and 100, found 0.5",
        "plugins.toml:14:21: `failure_threshold` in [plugins.p.health] must be an integer, found string",
        "plugins.toml:16:35: unknown gRPC status code \"SOON\" in `retryable_codes` of [plugins.p.retry]; expected names such as \"UNAVAILABLE\" or \"DEADLINE_EXCEEDED\"",
    ];
    for line in expected {
        assert!(
            errors.iter().any(|error| error == line),
            "missing {line:?} in {errors:#?}"
        );
    }
    assert!(
        errors.iter().any(|error| error.starts_with(
            "plugins.toml:18:10: invalid size \"lots\" for `memory` in [plugins.p.limits]"
        )),
        "{errors:#?}"
    );
    assert!(
        errors.iter().any(|error| error
            == "plugins.toml:19:14: `open_files` in [plugins.p.limits] must be between 8 and 1073741824, found 2"),
        "{errors:#?}"
    );
}

#[test]
fn tls_is_off_unless_set_to_auto() {
    let fixture = Fixture::new();
    let config = fixture
        .parse(
            "[plugins.a]\ncommand = \"plugin\"\n[plugins.b]\ncommand = \"plugin\"\ntls = \"auto\"\n[plugins.c]\ncommand = \"plugin\"\ntls = \"off\"\n",
        )
        .unwrap();
    let modes: Vec<_> = config.plugins.iter().map(|plugin| plugin.tls).collect();
    assert_eq!(modes, [TlsMode::Off, TlsMode::Auto, TlsMode::Off]);
}

#[test]
fn a_bad_tls_value_names_the_key_and_the_choices() {
    let errors = Fixture::new().errors("[plugins.echo]\ncommand = \"plugin\"\ntls = \"on\"\n");
    assert_eq!(
        errors,
        [
            "plugins.toml:3:7: invalid value \"on\" for `tls` in [plugins.echo]: expected \"auto\" (go-plugin's AutoMTLS) or \"off\""
        ]
    );
    let errors = Fixture::new().errors("[plugins.echo]\ncommand = \"plugin\"\ntls = true\n");
    assert_eq!(
        errors,
        ["plugins.toml:3:7: `tls` in [plugins.echo] must be a string, found boolean"]
    );
}

#[test]
fn a_plugin_knows_where_its_config_table_is() {
    let config = Fixture::new()
        .parse(
            "[plugins.inline]\ncommand = \"plugin\"\n\nconfig = { a = 1 }\n\n\
             [plugins.none]\ncommand = \"plugin\"\n\n\
             [plugins.header]\ncommand = \"plugin\"\n[plugins.header.config]\na = 1\n\n\
             [plugins.dotted]\ncommand = \"plugin\"\nconfig.a = 1\n",
        )
        .unwrap();
    let places: Vec<String> = config
        .plugins
        .iter()
        .map(|plugin| format!("{} {}", plugin.name, plugin.config_at))
        .collect();
    assert_eq!(
        places,
        [
            "inline plugins.toml:4",
            "none plugins.toml:6",
            "header plugins.toml:11",
            "dotted plugins.toml:16",
        ]
    );
}

#[test]
fn a_non_loopback_listen_without_a_token_is_refused_at_its_line() {
    let errors = Fixture::new().errors("[hub]\nstop_grace = \"1s\"\nlisten = \"[::]:7300\"\n");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with(
            "plugins.toml:3:10: `listen` in [hub] is [::]:7300, which is not a loopback address, and no `admin_token_env` is set"
        ),
        "{errors:?}"
    );
    let config = Fixture::new()
        .parse("[hub]\nlisten = \"[::1]:7300\"\nwebhook_listen = \"0.0.0.0:8080\"\n")
        .unwrap();
    assert_eq!(
        config.hub.access.webhook_listen,
        Some("0.0.0.0:8080".parse().unwrap())
    );
    assert_eq!(config.hub.access.admin_token, None);
}

#[test]
fn lag_alert_is_a_duration_greater_than_zero() {
    let fixture = Fixture::new();
    let config = fixture
        .parse("[plugins.out]\ncommand = \"plugin\"\n[plugins.out.output]\nlag_alert = \"5m\"\n")
        .unwrap();
    let output = config.plugins[0].output.as_ref().unwrap();
    assert_eq!(output.lag_alert, Some(Duration::from_secs(300)));
    let errors = fixture
        .errors("[plugins.out]\ncommand = \"plugin\"\n[plugins.out.output]\nlag_alert = \"0s\"\n");
    assert_eq!(
        errors,
        vec![
            "plugins.toml:4:13: invalid duration \"0s\" for `lag_alert` in [plugins.out.output]: it must be greater than zero"
        ]
    );
}

#[test]
fn the_hub_id_and_lease_ttl_are_read_and_checked_at_their_line() {
    let fixture = Fixture::new();
    let config = fixture
        .parse("[hub]\nid = \"hub-a\"\nlease_ttl = \"3s\"\n")
        .unwrap();
    assert_eq!(config.hub.cluster.id.as_deref(), Some("hub-a"));
    assert_eq!(config.hub.cluster.hub_id(), "hub-a");
    assert_eq!(config.hub.cluster.lease_ttl, Duration::from_secs(3));
    let defaults = fixture.parse("").unwrap();
    assert_eq!(defaults.hub.cluster.id, None);
    assert_eq!(defaults.hub.cluster.lease_ttl, Duration::from_secs(10));

    let errors = fixture.errors("[hub]\nid = \"hub a\"\nlease_ttl = \"500ms\"\n");
    assert_eq!(
        errors,
        [
            "plugins.toml:2:6: invalid hub id \"hub a\" for `id` in [hub]: ' ' is not allowed (use letters, digits, `-`, `_`, `.` and `:`)",
            "plugins.toml:3:13: `lease_ttl` in [hub] must be between 1s and 10m",
        ]
    );
}
