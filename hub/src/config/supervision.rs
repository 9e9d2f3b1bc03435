//! The supervision sections of `plugins.toml`: `[defaults.restart]`,
//! `[defaults.health]`, `[defaults.retry]`, `[defaults.limits]` and their
//! per-plugin overrides `[plugins.NAME.restart|health|retry|limits]`.
//!
//! A plugin's table overrides the `[defaults.*]` table key by key; whatever
//! neither sets takes the built-in default documented in
//! `docs/configuration.md`. Everything is validated here, at load.

use std::time::Duration;

use super::reader::{Context, Section};

/// The keys of `[defaults]`.
pub(crate) const DEFAULTS_KEYS: &[&str] = &["restart", "health", "retry", "limits"];
const RESTART_KEYS: &[&str] = &[
    "policy",
    "initial_backoff",
    "max_backoff",
    "multiplier",
    "jitter",
    "reset_after",
    "max_restarts",
    "window",
];
const HEALTH_KEYS: &[&str] = &["interval", "timeout", "failure_threshold"];
const RETRY_KEYS: &[&str] = &[
    "max_attempts",
    "initial_backoff",
    "max_backoff",
    "multiplier",
    "jitter",
    "timeout",
    "retryable_codes",
    "breaker_failures",
    "breaker_cooldown",
];
const LIMITS_KEYS: &[&str] = &["memory", "cpu_time", "open_files", "processes"];

/// When a plugin that stopped on its own is started again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartMode {
    /// After every exit, even a clean one (status 0).
    Always,
    /// After a crash, a failed start or a failed liveness probe; a clean exit
    /// (status 0) leaves it stopped.
    OnFailure,
    /// Never: it stays stopped until an operator starts it.
    Never,
}

impl RestartMode {
    /// The config file's name for the mode.
    pub fn as_str(self) -> &'static str {
        match self {
            RestartMode::Always => "always",
            RestartMode::OnFailure => "on-failure",
            RestartMode::Never => "never",
        }
    }
}

/// An exponential backoff curve: `initial * multiplier^n`, capped at `max`,
/// with optional jitter (see [`crate::backoff`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackoffConfig {
    /// The first delay.
    pub initial: Duration,
    /// The largest delay.
    pub max: Duration,
    /// How much each delay grows over the previous one (at least 1).
    pub multiplier: f64,
    /// Whether delays are randomized (between half and all of the computed delay).
    pub jitter: bool,
}

/// `[plugins.NAME.restart]`: when and how fast a plugin is restarted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RestartConfig {
    /// When to restart.
    pub policy: RestartMode,
    /// The delay before each restart.
    pub backoff: BackoffConfig,
    /// A plugin that ran this long goes back to the initial backoff.
    pub reset_after: Duration,
    /// The most restarts allowed within `window`; one more and the plugin is
    /// `failed`.
    pub max_restarts: u32,
    /// The sliding window `max_restarts` counts in.
    pub window: Duration,
}

impl Default for RestartConfig {
    fn default() -> Self {
        RestartConfig {
            policy: RestartMode::Always,
            backoff: BackoffConfig {
                initial: Duration::from_millis(100),
                max: Duration::from_secs(30),
                multiplier: 2.0,
                jitter: true,
            },
            reset_after: Duration::from_secs(60),
            max_restarts: 10,
            window: Duration::from_secs(300),
        }
    }
}

/// `[plugins.NAME.health]`: the liveness probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthConfig {
    /// How often `grpc.health.v1.Health/Check` is called.
    pub interval: Duration,
    /// How long one check may take.
    pub timeout: Duration,
    /// Consecutive failed checks (or timed-out calls) before the plugin is
    /// killed and restarted.
    pub failure_threshold: u32,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(1),
            failure_threshold: 3,
        }
    }
}

/// `[plugins.NAME.retry]`: how calls to the plugin are retried, and its
/// circuit breaker.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryConfig {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// The delay between attempts.
    pub backoff: BackoffConfig,
    /// The deadline of one attempt (waiting for the plugin included).
    pub timeout: Duration,
    /// The gRPC codes that are retried.
    pub retryable_codes: Vec<tonic::Code>,
    /// Consecutive failed calls that open the circuit breaker.
    pub breaker_failures: u32,
    /// How long an open breaker refuses calls before letting one through.
    pub breaker_cooldown: Duration,
}

/// The gRPC codes retried unless `retryable_codes` says otherwise.
pub const DEFAULT_RETRYABLE_CODES: &[tonic::Code] = &[
    tonic::Code::Unavailable,
    tonic::Code::DeadlineExceeded,
    tonic::Code::ResourceExhausted,
    tonic::Code::Aborted,
    tonic::Code::Cancelled,
    tonic::Code::Unknown,
];

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_attempts: 5,
            backoff: BackoffConfig {
                initial: Duration::from_millis(200),
                max: Duration::from_secs(30),
                multiplier: 2.0,
                jitter: true,
            },
            timeout: Duration::from_secs(30),
            retryable_codes: DEFAULT_RETRYABLE_CODES.to_vec(),
            breaker_failures: 5,
            breaker_cooldown: Duration::from_secs(30),
        }
    }
}

/// `[plugins.NAME.limits]`: resource limits applied with `setrlimit` before
/// exec. `None` leaves the hub's own limit in place.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LimitsConfig {
    /// `RLIMIT_AS`, in bytes.
    pub memory: Option<u64>,
    /// `RLIMIT_CPU`, in whole seconds (rounded up).
    pub cpu_time: Option<u64>,
    /// `RLIMIT_NOFILE`.
    pub open_files: Option<u64>,
    /// `RLIMIT_NPROC` (counts every process of the hub's user).
    pub processes: Option<u64>,
}

/// Everything the supervisor needs to know about one plugin.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SupervisionConfig {
    /// The restart policy.
    pub restart: RestartConfig,
    /// The liveness probe.
    pub health: HealthConfig,
    /// The call retry policy and circuit breaker.
    pub retry: RetryConfig,
    /// The resource limits.
    pub limits: LimitsConfig,
}

/// Reads `[defaults]` (absent: the built-in defaults).
pub(crate) fn read_defaults(
    context: &mut Context<'_>,
    section: Option<&Section<'_, '_>>,
) -> SupervisionConfig {
    let mut defaults = SupervisionConfig::default();
    if let Some(section) = section {
        section.deny_unknown_keys(context, DEFAULTS_KEYS);
        defaults = read_sections(context, section, &defaults);
    }
    defaults
}

/// Reads a plugin's `restart`, `health`, `retry` and `limits` sub-tables over
/// `defaults`.
pub(crate) fn read_plugin(
    context: &mut Context<'_>,
    plugin: &Section<'_, '_>,
    defaults: &SupervisionConfig,
) -> SupervisionConfig {
    read_sections(context, plugin, defaults)
}

fn read_sections(
    context: &mut Context<'_>,
    parent: &Section<'_, '_>,
    base: &SupervisionConfig,
) -> SupervisionConfig {
    let mut config = base.clone();
    if let Some(section) = parent.table(context, "restart") {
        config.restart = read_restart(context, &section, &base.restart);
    }
    if let Some(section) = parent.table(context, "health") {
        config.health = read_health(context, &section, &base.health);
    }
    if let Some(section) = parent.table(context, "retry") {
        config.retry = read_retry(context, &section, &base.retry);
    }
    if let Some(section) = parent.table(context, "limits") {
        config.limits = read_limits(context, &section, &base.limits);
    }
    config
}

fn read_backoff(context: &mut Context<'_>, section: &Section<'_, '_>, backoff: &mut BackoffConfig) {
    if let Some(duration) = section.duration_or_zero(context, "initial_backoff") {
        backoff.initial = duration;
    }
    if let Some(duration) = section.duration_or_zero(context, "max_backoff") {
        backoff.max = duration;
    }
    if let Some((multiplier, span)) = section.float(context, "multiplier") {
        if multiplier.is_finite() && (1.0..=100.0).contains(&multiplier) {
            backoff.multiplier = multiplier;
        } else {
            context.error(
                span,
                format!(
                    "`multiplier` in {} must be between 1 and 100, found {multiplier}",
                    section.label
                ),
            );
        }
    }
    if let Some(jitter) = section.boolean(context, "jitter") {
        backoff.jitter = jitter;
    }
    if backoff.max < backoff.initial {
        context.error(
            section.span.clone(),
            format!(
                "`max_backoff` ({}) in {} is shorter than `initial_backoff` ({})",
                humantime::format_duration(backoff.max),
                section.label,
                humantime::format_duration(backoff.initial)
            ),
        );
    }
}

fn read_restart(
    context: &mut Context<'_>,
    section: &Section<'_, '_>,
    base: &RestartConfig,
) -> RestartConfig {
    section.deny_unknown_keys(context, RESTART_KEYS);
    let mut restart = *base;
    if let Some((text, span)) = section.string(context, "policy") {
        match text.as_str() {
            "always" => restart.policy = RestartMode::Always,
            "on-failure" => restart.policy = RestartMode::OnFailure,
            "never" => restart.policy = RestartMode::Never,
            _ => context.error(
                span,
                format!(
                    "invalid `policy` {text:?} in {}: expected \"always\", \"on-failure\" or \"never\"",
                    section.label
                ),
            ),
        }
    }
    read_backoff(context, section, &mut restart.backoff);
    if let Some(duration) = section.duration(context, "reset_after") {
        restart.reset_after = duration;
    }
    if let Some(count) = section.integer_u32(context, "max_restarts", 1, u32::MAX) {
        restart.max_restarts = count;
    }
    if let Some(duration) = section.duration(context, "window") {
        restart.window = duration;
    }
    restart
}

fn read_health(
    context: &mut Context<'_>,
    section: &Section<'_, '_>,
    base: &HealthConfig,
) -> HealthConfig {
    section.deny_unknown_keys(context, HEALTH_KEYS);
    let mut health = *base;
    if let Some(duration) = section.duration(context, "interval") {
        health.interval = duration;
    }
    if let Some(duration) = section.duration(context, "timeout") {
        health.timeout = duration;
    }
    if let Some(count) = section.integer_u32(context, "failure_threshold", 1, 1000) {
        health.failure_threshold = count;
    }
    health
}

fn read_retry(
    context: &mut Context<'_>,
    section: &Section<'_, '_>,
    base: &RetryConfig,
) -> RetryConfig {
    section.deny_unknown_keys(context, RETRY_KEYS);
    let mut retry = base.clone();
    if let Some(count) = section.integer_u32(context, "max_attempts", 1, 1000) {
        retry.max_attempts = count;
    }
    read_backoff(context, section, &mut retry.backoff);
    if let Some(duration) = section.duration(context, "timeout") {
        retry.timeout = duration;
    }
    if let Some(names) = section.string_array(context, "retryable_codes") {
        let mut codes = Vec::with_capacity(names.len());
        for (name, span) in names {
            match code_from_name(&name) {
                Some(code) => codes.push(code),
                None => context.error(
                    span,
                    format!(
                        "unknown gRPC status code {name:?} in `retryable_codes` of {}; expected names such as \"UNAVAILABLE\" or \"DEADLINE_EXCEEDED\"",
                        section.label
                    ),
                ),
            }
        }
        retry.retryable_codes = codes;
    }
    if let Some(count) = section.integer_u32(context, "breaker_failures", 1, 1_000_000) {
        retry.breaker_failures = count;
    }
    if let Some(duration) = section.duration(context, "breaker_cooldown") {
        retry.breaker_cooldown = duration;
    }
    retry
}

fn read_limits(
    context: &mut Context<'_>,
    section: &Section<'_, '_>,
    base: &LimitsConfig,
) -> LimitsConfig {
    section.deny_unknown_keys(context, LIMITS_KEYS);
    let mut limits = *base;
    if let Some((text, span)) = section.string(context, "memory") {
        match text.trim().parse::<bytesize::ByteSize>() {
            Ok(size) if size.as_u64() >= MIN_MEMORY_BYTES => limits.memory = Some(size.as_u64()),
            Ok(_) => context.error(
                span,
                format!(
                    "`memory` {text:?} in {} is too small: no plugin can even start under 16MiB of address space",
                    section.label
                ),
            ),
            Err(err) => context.error(
                span,
                format!(
                    "invalid size {text:?} for `memory` in {}: {err} (write it like \"512MiB\" or \"2GB\")",
                    section.label
                ),
            ),
        }
    }
    if let Some(duration) = section.duration(context, "cpu_time") {
        let seconds = duration.as_secs() + u64::from(duration.subsec_nanos() > 0);
        limits.cpu_time = Some(seconds);
    }
    if let Some(count) = section.integer(context, "open_files", 8, 1 << 30) {
        limits.open_files = Some(count);
    }
    if let Some(count) = section.integer(context, "processes", 1, 1 << 30) {
        limits.processes = Some(count);
    }
    limits
}

/// The smallest `memory` limit accepted.
const MIN_MEMORY_BYTES: u64 = 16 * 1024 * 1024;

/// A gRPC status code by its canonical name (`UNAVAILABLE`), any case.
pub fn code_from_name(name: &str) -> Option<tonic::Code> {
    let wanted = name.trim().replace(['-', ' '], "_").to_ascii_uppercase();
    (0..=16)
        .map(tonic::Code::from_i32)
        .find(|code| code_name(*code) == wanted)
}

/// The canonical name of a gRPC status code (`DEADLINE_EXCEEDED`).
pub fn code_name(code: tonic::Code) -> String {
    let debug = format!("{code:?}");
    let mut name = String::with_capacity(debug.len() + 4);
    for (index, character) in debug.chars().enumerate() {
        if character.is_ascii_uppercase() && index > 0 {
            name.push('_');
        }
        name.push(character.to_ascii_uppercase());
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_names_round_trip() {
        assert_eq!(
            code_name(tonic::Code::DeadlineExceeded),
            "DEADLINE_EXCEEDED"
        );
        assert_eq!(code_name(tonic::Code::Ok), "OK");
        for number in 0..=16 {
            let code = tonic::Code::from_i32(number);
            assert_eq!(code_from_name(&code_name(code)), Some(code));
        }
        assert_eq!(
            code_from_name("unavailable"),
            Some(tonic::Code::Unavailable)
        );
        assert_eq!(code_from_name("NOPE"), None);
    }
}
