//! The go-plugin handshake, as both sides must agree on it.
//!
//! The host sets a few environment variables on the child (see the `ENV_*`
//! constants), the plugin binds its socket, then prints exactly one line on
//! stdout:
//!
//! ```text
//! CORE|APPVER|NETWORK|ADDR|PROTOCOL|SERVERCERT[|MUXSUPPORTED]
//! 1|1|unix|/tmp/sy-Ab12/plugin123|grpc|
//! ```
//!
//! This module formats and parses that line ([`HandshakeLine`],
//! [`parse_handshake_line`]) and negotiates the app protocol version
//! ([`negotiate_version`]). It does no IO, so every case is unit-tested here.
//!
//! ```
//! use switchyard_wire::handshake::{parse_handshake_line, Network};
//!
//! let line = parse_handshake_line("1|1|unix|/tmp/sy/plugin1|grpc|", &[1]).unwrap();
//! assert_eq!(line.app_version, 1);
//! assert_eq!(line.network, Network::Unix);
//! assert_eq!(line.to_string(), "1|1|unix|/tmp/sy/plugin1|grpc|");
//! ```

use std::fmt;

use base64::Engine as _;

/// The name of Switchyard's magic-cookie environment variable.
///
/// Like go-plugin's, the cookie is a UX guard (it stops a person from running a
/// plugin by hand by mistake), not a security control.
pub const MAGIC_COOKIE_KEY: &str = "SWITCHYARD_PLUGIN_MAGIC_COOKIE";

/// The value the hub sets for [`MAGIC_COOKIE_KEY`].
pub const MAGIC_COOKIE_VALUE: &str = "7f1c9a4e2b5d8e03a6c1f9b27d4e8a15";

/// go-plugin's core protocol version: the first field of the handshake line.
pub const CORE_PROTOCOL_VERSION: u32 = 1;

/// The app protocol versions this build speaks (the `switchyard.vN` packages).
pub const APP_PROTOCOL_VERSIONS: &[u32] = &[1];

/// Comma-separated app protocol versions the host offers, in any order.
pub const ENV_PROTOCOL_VERSIONS: &str = "PLUGIN_PROTOCOL_VERSIONS";
/// The directory in which the plugin must create its Unix socket.
pub const ENV_UNIX_SOCKET_DIR: &str = "PLUGIN_UNIX_SOCKET_DIR";
/// A group name or gid that should own the plugin's socket (go-plugin extension).
pub const ENV_UNIX_SOCKET_GROUP: &str = "PLUGIN_UNIX_SOCKET_GROUP";
/// The lowest TCP port a plugin may use (TCP is only used on Windows).
pub const ENV_MIN_PORT: &str = "PLUGIN_MIN_PORT";
/// The highest TCP port a plugin may use (TCP is only used on Windows).
pub const ENV_MAX_PORT: &str = "PLUGIN_MAX_PORT";
/// The host's PEM certificate when AutoMTLS is on.
pub const ENV_CLIENT_CERT: &str = "PLUGIN_CLIENT_CERT";
/// Set by go-plugin hosts that want yamux multiplexing. The Switchyard hub never sets it.
pub const ENV_MULTIPLEX_GRPC: &str = "PLUGIN_MULTIPLEX_GRPC";

/// The default `PLUGIN_MIN_PORT`, as go-plugin sets it.
pub const DEFAULT_MIN_PORT: u16 = 10000;
/// The default `PLUGIN_MAX_PORT`, as go-plugin sets it.
pub const DEFAULT_MAX_PORT: u16 = 25000;

/// The longest handshake line accepted, in bytes (go-plugin's scanner limit).
pub const MAX_HANDSHAKE_LINE_BYTES: usize = 64 * 1024;

/// The gRPC health service name go-plugin hosts check.
pub const HEALTH_SERVICE_NAME: &str = "plugin";

/// The message a plugin prints to stderr when it is run without the cookie.
pub const NOT_LAUNCHED_BY_HUB_MESSAGE: &str = "This binary is a Switchyard plugin. \
It is not meant to be executed directly: the Switchyard hub launches it as configured \
in plugins.toml (see `switchyard run --config plugins.toml`).";

/// How the plugin's address is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    /// A Unix domain socket path (every platform but Windows).
    Unix,
    /// A TCP `host:port` on loopback (Windows only in go-plugin).
    Tcp,
}

impl Network {
    /// The handshake field's text: `unix` or `tcp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Network::Unix => "unix",
            Network::Tcp => "tcp",
        }
    }
}

/// A handshake line, parsed and validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeLine {
    /// The negotiated app protocol version (one the host offered).
    pub app_version: u32,
    /// How to reach the plugin.
    pub network: Network,
    /// The socket path (for [`Network::Unix`]) or `host:port` (for [`Network::Tcp`]).
    pub address: String,
    /// The plugin's DER certificate when AutoMTLS is on; `None` otherwise.
    pub server_cert_der: Option<Vec<u8>>,
    /// The 7th field: `Some(true)` when the plugin supports yamux multiplexing.
    /// Printed only when the host set [`ENV_MULTIPLEX_GRPC`].
    pub mux_supported: Option<bool>,
}

impl fmt::Display for HandshakeLine {
    /// Formats the line exactly as a Go plugin prints it (without the newline):
    /// the 6th field is always present, empty when there is no certificate,
    /// and its base64 has no padding.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cert = self
            .server_cert_der
            .as_deref()
            .map(|der| base64::engine::general_purpose::STANDARD_NO_PAD.encode(der))
            .unwrap_or_default();
        write!(
            f,
            "{}|{}|{}|{}|grpc|{}",
            CORE_PROTOCOL_VERSION,
            self.app_version,
            self.network.as_str(),
            self.address,
            cert
        )?;
        if let Some(mux) = self.mux_supported {
            write!(f, "|{mux}")?;
        }
        Ok(())
    }
}

/// Why a handshake line was rejected. The texts quote the offending part so an
/// operator can see what the plugin printed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeLineError {
    /// The line was empty (or only white space).
    #[error("the plugin printed an empty handshake line")]
    Empty,
    /// The line exceeded [`MAX_HANDSHAKE_LINE_BYTES`].
    #[error("the handshake line is {len} bytes long, over the limit of {MAX_HANDSHAKE_LINE_BYTES}")]
    TooLong {
        /// The line's length in bytes.
        len: usize,
    },
    /// Fewer than the five fields `CORE|APPVER|NETWORK|ADDR|PROTOCOL`.
    #[error(
        "unrecognized handshake line {line:?}: expected CORE|APPVER|NETWORK|ADDR|grpc, found {fields} field(s) (did the plugin print something else on stdout first?)"
    )]
    TooFewFields {
        /// The line as printed (truncated to 200 characters).
        line: String,
        /// How many `|`-separated fields it had.
        fields: usize,
    },
    /// The core protocol version is not a number or not `1`.
    #[error(
        "incompatible core protocol version {found:?}: this hub speaks core version {CORE_PROTOCOL_VERSION}"
    )]
    WrongCoreVersion {
        /// The first field as printed.
        found: String,
    },
    /// The app protocol version is not a number.
    #[error("the app protocol version {found:?} is not a number")]
    BadAppVersion {
        /// The second field as printed.
        found: String,
    },
    /// The plugin chose a version the host did not offer.
    #[error("incompatible app protocol version {found}: the hub offered {offered:?}")]
    VersionNotOffered {
        /// The version the plugin printed.
        found: u32,
        /// The versions the host offered.
        offered: Vec<u32>,
    },
    /// The network is neither `unix` nor `tcp`.
    #[error("unknown network {found:?}: expected \"unix\" or \"tcp\"")]
    UnknownNetwork {
        /// The third field as printed.
        found: String,
    },
    /// The address field is empty.
    #[error("the plugin printed an empty address")]
    EmptyAddress,
    /// The plugin speaks go-plugin's net/rpc protocol (also the default when the
    /// protocol field is absent), which Switchyard does not.
    #[error("the plugin speaks net/rpc; Switchyard plugins must speak grpc")]
    NetRpc,
    /// Any protocol other than `grpc` or `netrpc`.
    #[error("unknown protocol {found:?}: expected \"grpc\"")]
    UnknownProtocol {
        /// The fifth field as printed.
        found: String,
    },
    /// The certificate field is not valid base64.
    #[error("the server certificate field is not valid base64: {reason}")]
    BadCertificate {
        /// What the decoder said.
        reason: String,
    },
    /// The 7th field is present but not `true` or `false`.
    #[error("the multiplexing field {found:?} is not \"true\" or \"false\"")]
    BadMuxField {
        /// The seventh field as printed.
        found: String,
    },
}

/// Parses and validates a handshake line as printed by a plugin.
///
/// `offered` is the list of app protocol versions the host put in
/// [`ENV_PROTOCOL_VERSIONS`]. Leading and trailing white space (including the
/// newline) is ignored, as Go hosts do. Five fields are enough (the certificate
/// field may be absent); fields past the seventh are ignored.
pub fn parse_handshake_line(
    line: &str,
    offered: &[u32],
) -> Result<HandshakeLine, HandshakeLineError> {
    if line.len() > MAX_HANDSHAKE_LINE_BYTES {
        return Err(HandshakeLineError::TooLong { len: line.len() });
    }
    let line = line.trim();
    if line.is_empty() {
        return Err(HandshakeLineError::Empty);
    }
    let fields: Vec<&str> = line.split('|').collect();
    if fields.len() < 4 {
        return Err(HandshakeLineError::TooFewFields {
            line: truncate_for_display(line),
            fields: fields.len(),
        });
    }
    let core = fields[0];
    if core.parse::<u32>() != Ok(CORE_PROTOCOL_VERSION) {
        return Err(HandshakeLineError::WrongCoreVersion {
            found: core.to_owned(),
        });
    }
    let app_version: u32 = fields[1]
        .parse()
        .map_err(|_| HandshakeLineError::BadAppVersion {
            found: fields[1].to_owned(),
        })?;
    if !offered.contains(&app_version) {
        return Err(HandshakeLineError::VersionNotOffered {
            found: app_version,
            offered: offered.to_vec(),
        });
    }
    let network = match fields[2] {
        "unix" => Network::Unix,
        "tcp" => Network::Tcp,
        other => {
            return Err(HandshakeLineError::UnknownNetwork {
                found: other.to_owned(),
            });
        }
    };
    let address = fields[3];
    if address.is_empty() {
        return Err(HandshakeLineError::EmptyAddress);
    }
    // go-plugin treats a missing protocol field as net/rpc.
    match fields.get(4).copied().unwrap_or("netrpc") {
        "grpc" => {}
        "netrpc" => return Err(HandshakeLineError::NetRpc),
        other => {
            return Err(HandshakeLineError::UnknownProtocol {
                found: other.to_owned(),
            });
        }
    }
    let server_cert_der = match fields.get(5).copied().unwrap_or("") {
        "" => None,
        encoded => Some(decode_certificate(encoded)?),
    };
    let mux_supported = match fields.get(6) {
        None => None,
        Some(&"true") => Some(true),
        Some(&"false") => Some(false),
        Some(other) => {
            return Err(HandshakeLineError::BadMuxField {
                found: (*other).to_owned(),
            });
        }
    };
    Ok(HandshakeLine {
        app_version,
        network,
        address: address.to_owned(),
        server_cert_der,
        mux_supported,
    })
}

/// Decodes the certificate field: go-plugin prints base64 without padding; padded
/// base64 is accepted too, to be lenient with other implementations.
fn decode_certificate(encoded: &str) -> Result<Vec<u8>, HandshakeLineError> {
    let unpadded = encoded.trim_end_matches('=');
    base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(unpadded)
        .map_err(|err| HandshakeLineError::BadCertificate {
            reason: err.to_string(),
        })
}

fn truncate_for_display(line: &str) -> String {
    const LIMIT: usize = 200;
    if line.len() <= LIMIT {
        return line.to_owned();
    }
    let mut end = LIMIT;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &line[..end])
}

/// Why no app protocol version could be agreed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NegotiationError {
    /// The host offered versions, but none the plugin supports.
    #[error(
        "no common app protocol version: the hub offered {offered:?}, this plugin supports {supported:?}"
    )]
    NoCommonVersion {
        /// What the host offered, sorted ascending (unparsable entries skipped).
        offered: Vec<u32>,
        /// What the plugin supports.
        supported: Vec<u32>,
    },
}

/// Parses the comma-separated [`ENV_PROTOCOL_VERSIONS`] value. Entries that are
/// not numbers are skipped, as go-plugin does.
pub fn parse_version_list(value: &str) -> Vec<u32> {
    value
        .split(',')
        .filter_map(|entry| entry.trim().parse().ok())
        .collect()
}

/// Picks the app protocol version a plugin should serve: the highest version
/// both sides support.
///
/// `host_offer` is the raw [`ENV_PROTOCOL_VERSIONS`] value, or `None` when the
/// host did not set it (a very old go-plugin host), in which case the plugin's
/// lowest version is chosen, as go-plugin does.
pub fn negotiate_version(
    host_offer: Option<&str>,
    supported: &[u32],
) -> Result<u32, NegotiationError> {
    let Some(host_offer) = host_offer else {
        return supported
            .iter()
            .copied()
            .min()
            .ok_or(NegotiationError::NoCommonVersion {
                offered: Vec::new(),
                supported: Vec::new(),
            });
    };
    let mut offered = parse_version_list(host_offer);
    supported
        .iter()
        .copied()
        .filter(|version| offered.contains(version))
        .max()
        .ok_or_else(|| {
            // go-plugin builds the offer from a Go map, so its order is random:
            // report it sorted so the message is the same on every run.
            offered.sort_unstable();
            offered.dedup();
            NegotiationError::NoCommonVersion {
                offered,
                supported: supported.to_vec(),
            }
        })
}

/// Formats a list of versions as the host puts it in [`ENV_PROTOCOL_VERSIONS`].
pub fn format_version_list(versions: &[u32]) -> String {
    versions
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const OFFERED: &[u32] = &[1];

    #[test]
    fn parses_a_go_plugin_line_with_trailing_empty_cert_field() {
        let line = parse_handshake_line("1|1|unix|/tmp/plugin2908212597|grpc|\n", OFFERED).unwrap();
        assert_eq!(
            line,
            HandshakeLine {
                app_version: 1,
                network: Network::Unix,
                address: "/tmp/plugin2908212597".into(),
                server_cert_der: None,
                mux_supported: None,
            }
        );
    }

    #[test]
    fn parses_a_five_field_line() {
        let line = parse_handshake_line("1|1|tcp|127.0.0.1:1234|grpc", OFFERED).unwrap();
        assert_eq!(line.network, Network::Tcp);
        assert_eq!(line.address, "127.0.0.1:1234");
    }

    #[test]
    fn round_trips_through_display() {
        let line = HandshakeLine {
            app_version: 1,
            network: Network::Unix,
            address: "/tmp/sy/p".into(),
            server_cert_der: Some(vec![0x30, 0x82, 0x01, 0xff, 0x42]),
            mux_supported: Some(false),
        };
        let text = line.to_string();
        assert_eq!(text, "1|1|unix|/tmp/sy/p|grpc|MIIB/0I|false");
        assert_eq!(parse_handshake_line(&text, OFFERED).unwrap(), line);
    }

    #[test]
    fn accepts_padded_certificate_base64() {
        let line = parse_handshake_line("1|1|unix|/s|grpc|MIIB/0I=", OFFERED).unwrap();
        assert_eq!(
            line.server_cert_der,
            Some(vec![0x30, 0x82, 0x01, 0xff, 0x42])
        );
    }

    #[test]
    fn rejects_garbage_certificate() {
        let err = parse_handshake_line("1|1|unix|/s|grpc|not base64!", OFFERED).unwrap_err();
        assert!(
            matches!(err, HandshakeLineError::BadCertificate { .. }),
            "{err}"
        );
    }

    #[test]
    fn rejects_too_few_fields() {
        let err = parse_handshake_line("1|1|unix", OFFERED).unwrap_err();
        assert_eq!(
            err,
            HandshakeLineError::TooFewFields {
                line: "1|1|unix".into(),
                fields: 3
            }
        );
    }

    #[test]
    fn rejects_garbage() {
        let err = parse_handshake_line("hello, I am a plugin", OFFERED).unwrap_err();
        assert!(
            matches!(err, HandshakeLineError::TooFewFields { fields: 1, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("hello, I am a plugin"));
    }

    #[test]
    fn rejects_empty_lines() {
        assert_eq!(
            parse_handshake_line("", OFFERED),
            Err(HandshakeLineError::Empty)
        );
        assert_eq!(
            parse_handshake_line("  \n", OFFERED),
            Err(HandshakeLineError::Empty)
        );
    }

    #[test]
    fn rejects_wrong_core_version() {
        let err = parse_handshake_line("2|1|unix|/s|grpc|", OFFERED).unwrap_err();
        assert_eq!(
            err,
            HandshakeLineError::WrongCoreVersion { found: "2".into() }
        );
        let err = parse_handshake_line("x|1|unix|/s|grpc|", OFFERED).unwrap_err();
        assert_eq!(
            err,
            HandshakeLineError::WrongCoreVersion { found: "x".into() }
        );
    }

    #[test]
    fn rejects_a_version_the_hub_did_not_offer() {
        let err = parse_handshake_line("1|7|unix|/s|grpc|", &[1, 2]).unwrap_err();
        assert_eq!(
            err,
            HandshakeLineError::VersionNotOffered {
                found: 7,
                offered: vec![1, 2]
            }
        );
        assert!(
            err.to_string()
                .contains("incompatible app protocol version 7")
        );
    }

    #[test]
    fn rejects_non_numeric_app_version() {
        let err = parse_handshake_line("1|one|unix|/s|grpc|", OFFERED).unwrap_err();
        assert_eq!(
            err,
            HandshakeLineError::BadAppVersion {
                found: "one".into()
            }
        );
    }

    #[test]
    fn rejects_unknown_network() {
        let err = parse_handshake_line("1|1|udp|/s|grpc|", OFFERED).unwrap_err();
        assert_eq!(
            err,
            HandshakeLineError::UnknownNetwork {
                found: "udp".into()
            }
        );
    }

    #[test]
    fn rejects_empty_address() {
        let err = parse_handshake_line("1|1|unix||grpc|", OFFERED).unwrap_err();
        assert_eq!(err, HandshakeLineError::EmptyAddress);
    }

    #[test]
    fn rejects_netrpc_explicit_and_implied() {
        assert_eq!(
            parse_handshake_line("1|1|unix|/s|netrpc", OFFERED),
            Err(HandshakeLineError::NetRpc)
        );
        assert_eq!(
            parse_handshake_line("1|1|unix|/s", OFFERED),
            Err(HandshakeLineError::NetRpc)
        );
    }

    #[test]
    fn rejects_unknown_protocol() {
        let err = parse_handshake_line("1|1|unix|/s|http|", OFFERED).unwrap_err();
        assert_eq!(
            err,
            HandshakeLineError::UnknownProtocol {
                found: "http".into()
            }
        );
    }

    #[test]
    fn rejects_bad_mux_field() {
        let err = parse_handshake_line("1|1|unix|/s|grpc||maybe", OFFERED).unwrap_err();
        assert_eq!(
            err,
            HandshakeLineError::BadMuxField {
                found: "maybe".into()
            }
        );
    }

    #[test]
    fn ignores_fields_past_the_seventh() {
        let line = parse_handshake_line("1|1|unix|/s|grpc||true|extra|more", OFFERED).unwrap();
        assert_eq!(line.mux_supported, Some(true));
    }

    #[test]
    fn rejects_an_over_long_line() {
        let long = format!("1|1|unix|/{}|grpc|", "a".repeat(MAX_HANDSHAKE_LINE_BYTES));
        let err = parse_handshake_line(&long, OFFERED).unwrap_err();
        assert!(matches!(err, HandshakeLineError::TooLong { .. }), "{err}");
    }

    #[test]
    fn truncates_long_garbage_in_the_error() {
        let garbage = "é".repeat(500);
        let err = parse_handshake_line(&garbage, OFFERED).unwrap_err();
        let HandshakeLineError::TooFewFields { line, .. } = err else {
            panic!("unexpected error");
        };
        assert!(line.len() < 220);
        assert!(line.ends_with('…'));
    }

    #[test]
    fn negotiates_the_highest_common_version_in_any_order() {
        assert_eq!(negotiate_version(Some("3,1,2"), &[1, 2]), Ok(2));
        assert_eq!(negotiate_version(Some("1"), &[1, 2]), Ok(1));
        assert_eq!(negotiate_version(Some(" 2 , x, 1"), &[1, 2]), Ok(2));
    }

    #[test]
    fn negotiation_fails_without_a_common_version() {
        assert_eq!(
            negotiate_version(Some("6,5,6"), &[1]),
            Err(NegotiationError::NoCommonVersion {
                offered: vec![5, 6],
                supported: vec![1]
            })
        );
        assert!(negotiate_version(Some(""), &[1]).is_err());
    }

    #[test]
    fn an_old_host_without_the_variable_gets_the_lowest_version() {
        assert_eq!(negotiate_version(None, &[2, 1, 3]), Ok(1));
    }

    #[test]
    fn formats_version_lists() {
        assert_eq!(format_version_list(&[1, 2]), "1,2");
        assert_eq!(
            parse_version_list(&format_version_list(&[3, 1])),
            vec![3, 1]
        );
    }
}
