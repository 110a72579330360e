//! Retry delays: exponential backoff with jitter, capped.

use crate::config::RetryPolicy;
use rand::Rng;
use std::time::Duration;

/// The delay before attempt `failed_attempts + 1`, after `failed_attempts` failures (≥ 1).
pub fn delay(policy: &RetryPolicy, failed_attempts: u32) -> Duration {
    let exponent = failed_attempts.saturating_sub(1).min(64) as i32;
    let base = policy.initial_delay_ms as f64 * policy.multiplier.max(1.0).powi(exponent);
    let capped = base.min(policy.max_delay_ms as f64);
    let jitter = policy.jitter.clamp(0.0, 1.0);
    let factor = if jitter > 0.0 {
        rand::rng().random_range((1.0 - jitter)..=(1.0 + jitter))
    } else {
        1.0
    };
    Duration::from_millis((capped * factor).max(0.0) as u64)
}

/// Whether another attempt is allowed after `failed_attempts` failures.
pub fn may_retry(policy: &RetryPolicy, failed_attempts: u32) -> bool {
    failed_attempts < policy.max_attempts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(jitter: f64) -> RetryPolicy {
        RetryPolicy {
            initial_delay_ms: 100,
            multiplier: 2.0,
            max_delay_ms: 1_000,
            jitter,
            max_attempts: 3,
            max_age_secs: None,
        }
    }

    #[test]
    fn grows_exponentially_then_caps() {
        let p = policy(0.0);
        let delays: Vec<u64> = (1..=6).map(|n| delay(&p, n).as_millis() as u64).collect();
        assert_eq!(delays, vec![100, 200, 400, 800, 1000, 1000]);
    }

    #[test]
    fn jitter_stays_within_bounds_and_varies() {
        let p = policy(0.5);
        let samples: Vec<u128> = (0..200).map(|_| delay(&p, 2).as_millis()).collect();
        assert!(samples.iter().all(|&d| (100..=300).contains(&d)));
        assert!(samples.iter().any(|&d| d != samples[0]));
    }

    #[test]
    fn attempt_limit() {
        let p = policy(0.0);
        assert!(may_retry(&p, 2));
        assert!(!may_retry(&p, 3));
    }
}
