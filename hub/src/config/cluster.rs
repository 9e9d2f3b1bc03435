//! The `[hub]` keys of a hub that shares its PostgreSQL database with other
//! hubs: `id` and `lease_ttl` (see `docs/scaling.md`).

use std::time::Duration;

use super::reader::{Context, Section};

/// The default `lease_ttl`: how long after its owner dies (or loses the
/// database) a piece of work is taken over by another hub.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(10);
/// The shortest `lease_ttl` accepted: a lease is renewed every quarter of
/// it, and a renewal is a database round trip.
pub const MIN_LEASE_TTL: Duration = Duration::from_secs(1);
/// The longest `lease_ttl` accepted.
pub const MAX_LEASE_TTL: Duration = Duration::from_secs(600);
/// The longest hub id accepted, in bytes.
pub const MAX_HUB_ID_BYTES: usize = 64;

/// What `[hub] id` and `[hub] lease_ttl` configure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// `id`: the hub's name among the hubs sharing its database, or `None`
    /// for the default, the host name and the process id.
    pub id: Option<String>,
    /// `lease_ttl`: see [`DEFAULT_LEASE_TTL`].
    pub lease_ttl: Duration,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            id: None,
            lease_ttl: DEFAULT_LEASE_TTL,
        }
    }
}

impl ClusterConfig {
    /// The hub's id: `id` when set, else `HOSTNAME-PID`.
    pub fn hub_id(&self) -> String {
        match &self.id {
            Some(id) => id.clone(),
            None => {
                let host = nix::unistd::gethostname()
                    .ok()
                    .and_then(|name| name.into_string().ok())
                    .filter(|name| !name.is_empty())
                    .unwrap_or_else(|| "hub".to_owned());
                format!("{host}-{}", std::process::id())
            }
        }
    }
}

/// Reads `id` and `lease_ttl` from `[hub]`.
pub(crate) fn read(context: &mut Context<'_>, section: &Section<'_, '_>) -> ClusterConfig {
    let mut cluster = ClusterConfig::default();
    if let Some((text, span)) = section.string(context, "id") {
        if let Some(problem) = id_problem(&text) {
            context.error(
                span,
                format!("invalid hub id {text:?} for `id` in [hub]: {problem}"),
            );
        } else {
            cluster.id = Some(text);
        }
    }
    if let Some((ttl, span)) = section.duration_with_span(context, "lease_ttl") {
        if !(MIN_LEASE_TTL..=MAX_LEASE_TTL).contains(&ttl) {
            context.error(
                span,
                format!(
                    "`lease_ttl` in [hub] must be between {} and {}",
                    humantime::format_duration(MIN_LEASE_TTL),
                    humantime::format_duration(MAX_LEASE_TTL)
                ),
            );
        } else {
            cluster.lease_ttl = ttl;
        }
    }
    cluster
}

/// Why `id` cannot be a hub id, if it cannot.
fn id_problem(id: &str) -> Option<String> {
    if id.is_empty() {
        return Some("it must not be empty".to_owned());
    }
    if id.len() > MAX_HUB_ID_BYTES {
        return Some(format!("it is longer than {MAX_HUB_ID_BYTES} bytes"));
    }
    if let Some(bad) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':')))
    {
        return Some(format!(
            "{bad:?} is not allowed (use letters, digits, `-`, `_`, `.` and `:`)"
        ));
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_short_and_plain() {
        assert_eq!(id_problem("hub-1.eu:a_b"), None);
        assert!(id_problem("").is_some());
        assert!(id_problem("a b").unwrap().contains("' '"));
        assert!(id_problem(&"x".repeat(65)).is_some());
    }

    #[test]
    fn the_default_id_is_host_and_pid() {
        let id = ClusterConfig::default().hub_id();
        assert!(id.ends_with(&format!("-{}", std::process::id())), "{id}");
    }
}
