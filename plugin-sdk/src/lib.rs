//! The Switchyard plugin SDK.
