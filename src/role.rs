//! The four roles a plugin can serve, as both sides name them: the hub's
//! API, logs and config, the SDK's metadata, and `switchyard new`. One
//! binary may serve several.

use std::fmt;
use std::str::FromStr;

use crate::pb::v1 as pb;

/// A role a plugin serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// The hub polls it on a schedule, with checkpoints (`PollingInput`).
    PollingInput,
    /// The hub hands it HTTP webhook deliveries (`WebhookInput`).
    WebhookInput,
    /// Records pass through it before they are stored (`Enricher`).
    Enrichment,
    /// It receives record events and acknowledges each (`Output`).
    Output,
}

impl Role {
    /// Every role, in the order they are documented.
    pub const ALL: [Role; 4] = [
        Role::PollingInput,
        Role::WebhookInput,
        Role::Enrichment,
        Role::Output,
    ];

    /// The name used in the API, logs, config and on the command line:
    /// `polling-input`, `webhook-input`, `enrichment`, `output`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::PollingInput => "polling-input",
            Role::WebhookInput => "webhook-input",
            Role::Enrichment => "enrichment",
            Role::Output => "output",
        }
    }

    /// The role's value on the wire (`switchyard.v1.Role`).
    pub fn to_pb(self) -> pb::Role {
        match self {
            Role::PollingInput => pb::Role::PollingInput,
            Role::WebhookInput => pb::Role::WebhookInput,
            Role::Enrichment => pb::Role::Enrichment,
            Role::Output => pb::Role::Output,
        }
    }

    /// The role a wire value names; `None` for `ROLE_UNSPECIFIED` and for
    /// values this version does not know.
    pub fn from_pb(value: i32) -> Option<Role> {
        match pb::Role::try_from(value).ok()? {
            pb::Role::PollingInput => Some(Role::PollingInput),
            pb::Role::WebhookInput => Some(Role::WebhookInput),
            pb::Role::Enrichment => Some(Role::Enrichment),
            pb::Role::Output => Some(Role::Output),
            pb::Role::Unspecified => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role name that is not one of [`Role::as_str`]'s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role `{0}` (expected polling-input, webhook-input, enrichment or output)")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;

    /// Parses `polling-input` (also `polling_input`, any case).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let wanted = text.trim().to_ascii_lowercase().replace('_', "-");
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == wanted)
            .ok_or_else(|| UnknownRole(text.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_wire_values_round_trip() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
            assert_eq!(Role::from_pb(role.to_pb() as i32), Some(role));
        }
        assert_eq!("Polling_Input".parse::<Role>(), Ok(Role::PollingInput));
        assert!("poller".parse::<Role>().is_err());
        assert_eq!(Role::from_pb(pb::Role::Unspecified as i32), None);
        assert_eq!(Role::from_pb(99), None);
    }
}
