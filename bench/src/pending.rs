//! Measurements 4-6, which need hub features that do not exist yet. Each
//! becomes a report row saying "not measured yet" and why, never a number.
//! The webhook measurement's load generator is ready ([`crate::loadgen`]).

use crate::report::{Row, Target, Value};

/// The rows for restart, the durable pipeline and webhooks.
pub fn rows() -> Vec<Row> {
    vec![
        Row::new(
            "restart",
            "Restart: SIGKILL to serving again, zero backoff, p50",
            Value::none(),
            Value::none(),
            Value::none(),
            true,
            Some(Target::AtMost(10.0)),
        )
        .pending("the hub does not restart plugins yet (supervision with backoff is issue 3)"),
        Row::new(
            "pipeline",
            "Durable pipeline generator -> enricher -> store -> jsonl-output, SQLite (records/s)",
            Value::none(),
            Value::none(),
            Value::none(),
            false,
            Some(Target::AtLeast(50_000.0)),
        )
        .pending("the hub has no durable pipeline (store, polling, output delivery) yet"),
        Row::new(
            "pipeline",
            "Durable pipeline, PostgreSQL (records/s)",
            Value::none(),
            Value::none(),
            Value::none(),
            false,
            None,
        )
        .pending("the hub has no durable pipeline (store, polling, output delivery) yet"),
        Row::new(
            "webhooks",
            "Webhooks accepted at a fixed offered rate (webhooks/s)",
            Value::none(),
            Value::none(),
            Value::none(),
            false,
            Some(Target::AtLeast(10_000.0)),
        )
        .pending("the hub does not receive webhooks yet; the open-loop generator is ready (`switchyard-bench loadgen`)"),
        Row::new(
            "webhooks",
            "Webhook latency p99 at 10,000/s offered",
            Value::none(),
            Value::none(),
            Value::none(),
            true,
            Some(Target::AtMost(10.0)),
        )
        .pending("the hub does not receive webhooks yet"),
    ]
}
