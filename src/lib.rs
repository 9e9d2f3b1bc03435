//! Switchyard's wire contract, shared by the hub and the plugin SDK.
//!
//! * [`pb`] holds the Rust code generated from `proto/`: Switchyard's own
//!   services (`switchyard.v1`) and go-plugin's internal services (`plugin`),
//!   which Switchyard speaks wire-compatibly.
//! * [`handshake`] holds what both sides of the go-plugin handshake must agree
//!   on: the environment variable names, the magic cookie, the stdout line's
//!   format and parser, and app-protocol version negotiation. It is pure: no IO.
//! * [`Role`] is the four roles a plugin can serve, as both sides name them.
//! * [`messages`] packs a streamed call's items (records, events) into
//!   messages that every gRPC receiver takes: at most 4 MiB less 64 KiB.
//! * [`mtls`] holds go-plugin's AutoMTLS: the throw-away certificates and the
//!   rustls configurations that pin each side to the other's certificate.
//!
//! Architecture invariant: this crate knows nothing about processes, sockets,
//! configuration or storage. It is the contract, not a participant.

pub mod handshake;
pub mod messages;
pub mod mtls;
mod role;

pub use role::{Role, UnknownRole};

/// Code generated from `proto/` by tonic-build.
pub mod pb {
    /// `switchyard.v1`: records, the metadata service and the four roles.
    #[allow(missing_docs, clippy::all, clippy::pedantic, clippy::unwrap_used)]
    pub mod v1 {
        tonic::include_proto!("switchyard.v1");
    }
    /// `plugin`: go-plugin's GRPCController, GRPCStdio and GRPCBroker services.
    #[allow(missing_docs, clippy::all, clippy::pedantic, clippy::unwrap_used)]
    pub mod plugin {
        tonic::include_proto!("plugin");
    }
}
