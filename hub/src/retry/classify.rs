//! Which failures are retried: by gRPC status code (the plugin's
//! `retryable_codes`), by the plugin's own retryable/permanent flag on an
//! item failure, and with the plugin's retry-after hint.

use std::time::Duration;

use crate::domain::Failure;
use crate::rpc::CallError;

/// Whether to try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Try again, not before `after` if the plugin gave a hint.
    Retry {
        /// The plugin's retry-after hint.
        after: Option<Duration>,
    },
    /// Trying again will not help.
    Permanent,
}

/// Classifies a failed call: retried when its code is in `retryable`
/// (with the plugin's retry-after hint); INVALID_ARGUMENT and protocol
/// violations (the plugin broke the contract; it will again) never are
/// unless listed.
pub fn call_error(error: &CallError, retryable: &[tonic::Code]) -> Verdict {
    match error.code() {
        Some(code) if retryable.contains(&code) => Verdict::Retry {
            after: error.retry_after(),
        },
        _ => Verdict::Permanent,
    }
}

/// Classifies an item-level failure by the plugin's own flag and hint.
pub fn failure(failure: &Failure) -> Verdict {
    if failure.retryable {
        Verdict::Retry {
            after: failure.retry_after,
        }
    } else {
        Verdict::Permanent
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::supervision::DEFAULT_RETRYABLE_CODES;

    fn failed(code: tonic::Code, retry_after: Option<Duration>) -> CallError {
        let mut status = tonic::Status::new(code, "boom");
        if let Some(after) = retry_after {
            status.metadata_mut().insert(
                "switchyard-retry-after-ms",
                after
                    .as_millis()
                    .to_string()
                    .parse()
                    .unwrap_or_else(|_| tonic::metadata::MetadataValue::from_static("0")),
            );
        }
        CallError::from(status)
    }

    #[test]
    fn the_default_codes_split_transient_from_permanent() {
        let defaults = DEFAULT_RETRYABLE_CODES;
        for code in [
            tonic::Code::Unavailable,
            tonic::Code::DeadlineExceeded,
            tonic::Code::ResourceExhausted,
            tonic::Code::Aborted,
        ] {
            assert_eq!(
                call_error(&failed(code, None), defaults),
                Verdict::Retry { after: None },
                "{code:?}"
            );
        }
        for code in [
            tonic::Code::InvalidArgument,
            tonic::Code::PermissionDenied,
            tonic::Code::Unauthenticated,
            tonic::Code::FailedPrecondition,
            tonic::Code::NotFound,
        ] {
            assert_eq!(
                call_error(&failed(code, None), defaults),
                Verdict::Permanent,
                "{code:?}"
            );
        }
        assert_eq!(
            call_error(&CallError::Protocol("bad".into()), defaults),
            Verdict::Permanent
        );
    }

    #[test]
    fn the_retry_after_hint_travels_with_the_verdict() {
        let error = failed(
            tonic::Code::ResourceExhausted,
            Some(Duration::from_millis(1500)),
        );
        assert_eq!(
            call_error(&error, DEFAULT_RETRYABLE_CODES),
            Verdict::Retry {
                after: Some(Duration::from_millis(1500))
            }
        );
    }

    #[test]
    fn the_code_list_can_be_overridden() {
        let only_aborted = [tonic::Code::Aborted];
        assert_eq!(
            call_error(&failed(tonic::Code::Unavailable, None), &only_aborted),
            Verdict::Permanent
        );
        let invalid_too = [tonic::Code::InvalidArgument];
        assert_eq!(
            call_error(&CallError::Rejected("x".into()), &invalid_too),
            Verdict::Retry { after: None }
        );
    }

    #[test]
    fn item_failures_follow_the_plugins_flag() {
        let mut item = Failure {
            message: "busy".into(),
            retryable: true,
            retry_after: Some(Duration::from_secs(2)),
            code: String::new(),
        };
        assert_eq!(
            failure(&item),
            Verdict::Retry {
                after: Some(Duration::from_secs(2))
            }
        );
        item.retryable = false;
        assert_eq!(failure(&item), Verdict::Permanent);
    }
}
