//! `switchyard_build_info{version, git_sha, rustc}`: a gauge that is always
//! 1, whose labels say what is running. `version` is the crate's version;
//! `git_sha` and `rustc` come from `build.rs` and are left out when the
//! build could not learn them (no git checkout, for example).

use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

/// The labels of `switchyard_build_info`, in order; only those known.
pub fn labels() -> Vec<(&'static str, &'static str)> {
    let mut labels = vec![("version", env!("CARGO_PKG_VERSION"))];
    if let Some(sha) = option_env!("SWITCHYARD_BUILD_GIT_SHA") {
        labels.push(("git_sha", sha));
    }
    if let Some(rustc) = option_env!("SWITCHYARD_BUILD_RUSTC") {
        labels.push(("rustc", rustc));
    }
    labels
}

/// Registers `switchyard_build_info` (once) with its one series at 1.
pub fn register() {
    static DONE: std::sync::Once = std::sync::Once::new();
    DONE.call_once(|| {
        let family: Family<Vec<(&'static str, &'static str)>, Gauge> = Family::default();
        family.get_or_create(&labels()).set(1);
        crate::metrics::register(|registry| {
            registry.register(
                "switchyard_build_info",
                "What is running: the hub's version, git commit and rustc version (always 1)",
                family,
            );
        });
    });
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_build_info_series_is_one_with_the_version() {
        super::register();
        let text = crate::metrics::global().encode();
        let line = text
            .lines()
            .find(|line| line.starts_with("switchyard_build_info{"))
            .unwrap_or_else(|| panic!("no switchyard_build_info in\n{text}"));
        assert!(
            line.starts_with(&format!(
                "switchyard_build_info{{version=\"{}\"",
                env!("CARGO_PKG_VERSION")
            )),
            "{line}"
        );
        assert!(line.ends_with("} 1"), "{line}");
        assert!(
            text.contains("# TYPE switchyard_build_info gauge"),
            "{text}"
        );
    }
}
