//! An open-loop HTTP load generator for the webhook measurement: requests are
//! offered at a fixed rate whatever the server does, and each latency is
//! measured from the request's *intended* send time, so a slow server cannot
//! hide its queueing (no coordinated omission). Requests that would exceed
//! the in-flight limit are counted as dropped, not delayed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;
use tokio::sync::Mutex;
use tokio::task::JoinSet;

use crate::stats::{self, Summary};

/// What to offer.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The URL every request POSTs to.
    pub url: String,
    /// Requests offered per second.
    pub rate: u64,
    /// How long to offer them.
    pub duration: Duration,
    /// The body of every request (sent as application/json). Its first
    /// [`SEQUENCE_MARKER`], if any, becomes the request's number (0, 1, 2,
    /// ...), so that each request can carry an id of its own.
    pub body: Vec<u8>,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// The most requests in flight at once.
    pub max_in_flight: usize,
}

/// Replaced, in a plan's body, by each request's number.
pub const SEQUENCE_MARKER: &str = "{seq}";

/// The body of request `index`: `body` with its first [`SEQUENCE_MARKER`]
/// replaced by the number (`body` as it is without one).
fn numbered_body(body: &[u8], index: u64) -> Vec<u8> {
    let marker = SEQUENCE_MARKER.as_bytes();
    match body
        .windows(marker.len())
        .position(|window| window == marker)
    {
        Some(at) => {
            let number = index.to_string();
            let mut numbered = Vec::with_capacity(body.len() + number.len());
            numbered.extend_from_slice(&body[..at]);
            numbered.extend_from_slice(number.as_bytes());
            numbered.extend_from_slice(&body[at + marker.len()..]);
            numbered
        }
        None => body.to_vec(),
    }
}

/// What happened.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// Requests the schedule offered.
    pub offered: u64,
    /// Answered with a 2xx status.
    pub accepted: u64,
    /// Answered with another status.
    pub rejected: u64,
    /// Failed at the transport (connect, reset, timeout).
    pub errors: u64,
    /// Not sent because `max_in_flight` requests were outstanding.
    pub dropped: u64,
    /// Accepted requests per second of wall time (schedule plus drain).
    pub accepted_per_second: f64,
    /// Latency of accepted requests from their intended send time.
    pub latency: Option<Summary>,
}

impl Outcome {
    /// The share of the offered requests accepted, in percent: what "every
    /// offered request accepted" is judged on (accepted/s divides by the
    /// wall time to the last answer, a little over the schedule's).
    pub fn accepted_percent(&self) -> f64 {
        100.0 * self.accepted as f64 / self.offered.max(1) as f64
    }
}

/// Parses `Name: value` header arguments.
pub fn parse_headers(headers: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    headers
        .iter()
        .map(|header| {
            let (name, value) = header
                .split_once(':')
                .with_context(|| format!("header {header:?} is not `Name: value`"))?;
            Ok((name.trim().to_owned(), value.trim().to_owned()))
        })
        .collect()
}

#[derive(Default)]
struct Tally {
    accepted: u64,
    rejected: u64,
    errors: u64,
    latencies: Vec<u64>,
}

/// Offers the plan's load and waits for every request to finish.
pub async fn run(plan: &Plan) -> anyhow::Result<Outcome> {
    if plan.rate == 0 {
        bail!("the rate must be at least 1 request per second");
    }
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(plan.max_in_flight)
        .build()
        .context("cannot build the HTTP client")?;
    let total = (plan.duration.as_secs_f64() * plan.rate as f64).round() as u64;
    let interval = Duration::from_secs_f64(1.0 / plan.rate as f64);
    let tally = Arc::new(Mutex::new(Tally::default()));
    let mut in_flight = JoinSet::new();
    let mut dropped = 0;
    let start = Instant::now();
    for index in 0..total {
        let intended = start + interval.mul_f64(index as f64);
        tokio::time::sleep_until(intended.into()).await;
        while in_flight.try_join_next().is_some() {}
        if in_flight.len() >= plan.max_in_flight {
            dropped += 1;
            continue;
        }
        let mut request = client
            .post(&plan.url)
            .header("content-type", "application/json")
            .body(numbered_body(&plan.body, index));
        for (name, value) in &plan.headers {
            request = request.header(name, value);
        }
        let tally = tally.clone();
        in_flight.spawn(async move {
            let result = request.send().await;
            let latency = intended.elapsed();
            let mut tally = tally.lock().await;
            match result {
                Ok(response) if response.status().is_success() => {
                    tally.accepted += 1;
                    tally
                        .latencies
                        .push(u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX));
                }
                Ok(_) => tally.rejected += 1,
                Err(_) => tally.errors += 1,
            }
        });
    }
    while in_flight.join_next().await.is_some() {}
    let wall = start.elapsed().as_secs_f64();
    let mut tally = tally.lock().await;
    let latency = stats::summarize(&mut tally.latencies);
    Ok(Outcome {
        offered: total,
        accepted: tally.accepted,
        rejected: tally.rejected,
        errors: tally.errors,
        dropped,
        accepted_per_second: tally.accepted as f64 / wall,
        latency,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn offers_the_planned_load_and_counts_answers() {
        let app = axum::Router::new()
            .route(
                "/ok",
                axum::routing::post(|| async { axum::http::StatusCode::ACCEPTED }),
            )
            .route(
                "/bad",
                axum::routing::post(|| async { axum::http::StatusCode::BAD_REQUEST }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        let mut plan = Plan {
            url: format!("http://{address}/ok"),
            rate: 400,
            duration: Duration::from_millis(250),
            body: b"{}".to_vec(),
            headers: parse_headers(&["X-Test: 1".to_owned()]).unwrap(),
            max_in_flight: 64,
        };
        let outcome = run(&plan).await.unwrap();
        assert_eq!(outcome.offered, 100);
        assert_eq!(outcome.accepted + outcome.dropped, 100);
        assert_eq!((outcome.rejected, outcome.errors), (0, 0));
        assert_eq!(outcome.latency.unwrap().count as u64, outcome.accepted);
        plan.url = format!("http://{address}/bad");
        let outcome = run(&plan).await.unwrap();
        assert_eq!(outcome.accepted, 0);
        assert_eq!(outcome.rejected + outcome.dropped, 100);
        assert!(outcome.latency.is_none());
        server.abort();
    }

    #[test]
    fn a_body_s_first_marker_becomes_the_request_s_number() {
        assert_eq!(
            numbered_body(br#"{"id":"o-{seq}","n":"{seq}"}"#, 42),
            br#"{"id":"o-42","n":"{seq}"}"#
        );
        assert_eq!(numbered_body(b"{}", 7), b"{}");
    }

    #[test]
    fn header_arguments_need_a_colon() {
        assert!(parse_headers(&["nocolon".to_owned()]).is_err());
        assert_eq!(
            parse_headers(&["A: b".to_owned()]).unwrap(),
            vec![("A".to_owned(), "b".to_owned())]
        );
    }
}
