//! The outcome of a conformance run: one [`CheckResult`] per check, printed
//! as a table for people or as JSON for scripts and tests.

use std::fmt::Write as _;

use serde::Serialize;

/// How one check went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    /// The plugin did what the protocol asks.
    Pass,
    /// It did not; the detail says what it did instead.
    Fail,
    /// The check was not run: skipped with `--skip`, a role the plugin does
    /// not declare, or an earlier step it needs failed.
    Skip,
}

impl Status {
    /// The word printed in the table.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::Skip => "SKIP",
        }
    }
}

/// One row of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckResult {
    /// The check's name (`cookie`, `handshake`, ...).
    pub check: &'static str,
    /// How it went.
    pub status: Status,
    /// One line saying what was seen.
    pub detail: String,
}

impl CheckResult {
    /// A passed check.
    pub fn pass(check: &'static str, detail: impl Into<String>) -> Self {
        Self::new(check, Status::Pass, detail)
    }

    /// A failed check.
    pub fn fail(check: &'static str, detail: impl Into<String>) -> Self {
        Self::new(check, Status::Fail, detail)
    }

    /// A check that was not run.
    pub fn skip(check: &'static str, detail: impl Into<String>) -> Self {
        Self::new(check, Status::Skip, detail)
    }

    fn new(check: &'static str, status: Status, detail: impl Into<String>) -> Self {
        // One line, whatever the plugin put in its messages.
        let detail: String = detail.into();
        CheckResult {
            check,
            status,
            detail: detail.split_whitespace().collect::<Vec<_>>().join(" "),
        }
    }
}

/// Every check's result, in the order of [`super::CHECKS`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The plugin command that was checked.
    pub command: String,
    /// The results.
    pub checks: Vec<CheckResult>,
}

impl Report {
    /// Whether any check failed (the command then exits non-zero).
    pub fn failed(&self) -> bool {
        self.checks.iter().any(|check| check.status == Status::Fail)
    }

    /// The result of `check`, if it is in the report.
    pub fn get(&self, check: &str) -> Option<&CheckResult> {
        self.checks.iter().find(|result| result.check == check)
    }

    /// The report as a table: check, status, detail, then a summary line.
    pub fn table(&self) -> String {
        let width = self
            .checks
            .iter()
            .map(|result| result.check.len())
            .chain(["CHECK".len()])
            .max()
            .unwrap_or(0);
        let mut out = String::new();
        let _ = writeln!(out, "{:width$}  {:<7}DETAIL", "CHECK", "STATUS");
        for result in &self.checks {
            let _ = writeln!(
                out,
                "{:width$}  {:<7}{}",
                result.check,
                result.status.as_str(),
                result.detail
            );
        }
        let count = |status| {
            self.checks
                .iter()
                .filter(|result| result.status == status)
                .count()
        };
        let _ = writeln!(
            out,
            "\n{}: {} passed, {} failed, {} skipped",
            if self.failed() { "FAILED" } else { "OK" },
            count(Status::Pass),
            count(Status::Fail),
            count(Status::Skip)
        );
        out
    }

    /// The report as one JSON document:
    /// `{"command": "...", "checks": [{"check", "status", "detail"}, ...]}`.
    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self)
            .unwrap_or_else(|err| format!("{{\"error\": \"cannot serialize the report: {err}\"}}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Report {
        Report {
            command: "plugin".to_owned(),
            checks: vec![
                CheckResult::pass("cookie", "exited with status 1"),
                CheckResult::fail("handshake", "bad\nline"),
                CheckResult::skip("health", "needs a handshake"),
            ],
        }
    }

    #[test]
    fn a_failure_fails_the_report() {
        assert!(sample().failed());
        let mut passing = sample();
        passing.checks.retain(|check| check.status != Status::Fail);
        assert!(!passing.failed());
    }

    #[test]
    fn details_are_one_line() {
        assert_eq!(
            sample().get("handshake").map(|c| c.detail.as_str()),
            Some("bad line")
        );
    }

    #[test]
    fn the_table_aligns_columns_and_sums_up() {
        let table = sample().table();
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines[0], "CHECK      STATUS DETAIL");
        assert_eq!(lines[1], "cookie     PASS   exited with status 1");
        assert_eq!(lines[2], "handshake  FAIL   bad line");
        assert_eq!(lines[5], "FAILED: 1 passed, 1 failed, 1 skipped");
    }

    #[test]
    fn the_json_names_every_check() {
        let json: serde_json::Value = serde_json::from_str(&sample().json()).unwrap_or_default();
        assert_eq!(json["checks"][1]["check"], "handshake");
        assert_eq!(json["checks"][1]["status"], "FAIL");
        assert_eq!(json["checks"][2]["status"], "SKIP");
    }
}
