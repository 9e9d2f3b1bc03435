//! Exact statistics from raw samples: nearest-rank percentiles over the
//! sorted samples (no histogram bucketing), and medians of per-round rates.

use serde::Serialize;

/// Percentiles of a set of durations, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    /// How many samples.
    pub count: usize,
    /// The smallest sample.
    pub min_ns: u64,
    /// The median (nearest rank).
    pub p50_ns: u64,
    /// The 99th percentile (nearest rank).
    pub p99_ns: u64,
    /// The 99.9th percentile (nearest rank).
    pub p999_ns: u64,
    /// The largest sample.
    pub max_ns: u64,
    /// The arithmetic mean.
    pub mean_ns: u64,
}

/// Summarizes `samples` (sorted in place); `None` when there are none.
pub fn summarize(samples: &mut [u64]) -> Option<Summary> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_unstable();
    let total: u128 = samples.iter().map(|&sample| u128::from(sample)).sum();
    let mean = u64::try_from(total / samples.len() as u128).unwrap_or(u64::MAX);
    Some(Summary {
        count: samples.len(),
        min_ns: samples[0],
        p50_ns: percentile(samples, 0.50),
        p99_ns: percentile(samples, 0.99),
        p999_ns: percentile(samples, 0.999),
        max_ns: samples[samples.len() - 1],
        mean_ns: mean,
    })
}

/// The nearest-rank percentile `q` (0 < q <= 1) of sorted, non-empty samples:
/// the smallest sample such that at least `q` of all samples are <= it.
pub fn percentile(sorted: &[u64], q: f64) -> u64 {
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The median of per-round values (the mean of the middle two for an even
/// count); `None` when there are none.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    Some(if sorted.len().is_multiple_of(2) {
        (sorted[middle - 1] + sorted[middle]) / 2.0
    } else {
        sorted[middle]
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut samples: Vec<u64> = (1..=1000).rev().collect();
        let summary = summarize(&mut samples).unwrap();
        assert_eq!(summary.count, 1000);
        assert_eq!(summary.min_ns, 1);
        assert_eq!(summary.p50_ns, 500);
        assert_eq!(summary.p99_ns, 990);
        assert_eq!(summary.p999_ns, 999);
        assert_eq!(summary.max_ns, 1000);
        assert_eq!(summary.mean_ns, 500);
    }

    #[test]
    fn one_sample_is_every_percentile() {
        let summary = summarize(&mut [7]).unwrap();
        assert_eq!((summary.p50_ns, summary.p999_ns, summary.max_ns), (7, 7, 7));
    }

    #[test]
    fn no_samples_no_summary() {
        assert!(summarize(&mut []).is_none());
        assert!(median(&[]).is_none());
    }

    #[test]
    fn median_of_even_and_odd_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
    }
}
