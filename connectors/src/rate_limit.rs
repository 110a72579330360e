//! `KeyedRateLimiter`: a per-client request budget for listening sources (MLLP peers by IP,
//! HTTP clients by API key or IP).
//!
//! GCRA from the `governor` crate: `burst` requests at once, then `per_second` on average. A
//! client over its budget is told how long to wait (HTTP `Retry-After`, an MLLP AR saying so);
//! nothing is stored for it, so nothing is lost: the sender still holds the message. Keys of
//! clients that went quiet are trimmed every minute so the table cannot grow without bound.

use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::HashMapStateStore;
use governor::{Quota, RateLimiter};
use medway_engine::config::SettingsError;
use serde::Deserialize;
use std::hash::Hash;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// `rate_limit = { per_second = 50, burst = 100 }` on a listening source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSettings {
    /// Sustained requests per second per client once the burst is spent.
    pub per_second: u32,
    /// Requests a client may make at once.
    pub burst: u32,
}

/// Largest `per_second` accepted: one request per microsecond is already more than any
/// listener here can serve.
const MAX_PER_SECOND: u32 = 1_000_000;

/// How often idle keys are dropped.
const TRIM_EVERY: Duration = Duration::from_secs(60);

impl RateLimitSettings {
    pub fn validate(&self) -> Result<(), SettingsError> {
        if self.per_second == 0 || self.per_second > MAX_PER_SECOND {
            return Err(SettingsError::new(format!(
                "rate_limit.per_second must be between 1 and {MAX_PER_SECOND}, got {}",
                self.per_second
            ))
            .key("rate_limit")
            .hint("leave `rate_limit` out for no limit"));
        }
        if self.burst == 0 {
            return Err(SettingsError::new("rate_limit.burst must be at least 1")
                .key("rate_limit")
                .hint("e.g. rate_limit = { per_second = 50, burst = 100 }"));
        }
        Ok(())
    }

    fn quota(&self) -> Result<Quota, SettingsError> {
        self.validate()?;
        let per_second = NonZeroU32::new(self.per_second)
            .ok_or_else(|| SettingsError::new("rate_limit.per_second must be positive"))?;
        let burst = NonZeroU32::new(self.burst)
            .ok_or_else(|| SettingsError::new("rate_limit.burst must be positive"))?;
        Ok(Quota::per_second(per_second).allow_burst(burst))
    }
}

/// One budget per key (client). Cheap to share: wrap in an `Arc`.
pub struct KeyedRateLimiter<K: Hash + Eq + Clone> {
    limiter: RateLimiter<K, HashMapStateStore<K>, DefaultClock>,
    clock: DefaultClock,
}

impl<K> KeyedRateLimiter<K>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
{
    pub fn new(settings: RateLimitSettings) -> Result<Arc<Self>, SettingsError> {
        let clock = DefaultClock::default();
        let limiter = RateLimiter::new(settings.quota()?, HashMapStateStore::default(), clock);
        Ok(Arc::new(Self {
            limiter,
            clock: DefaultClock::default(),
        }))
    }

    /// `Ok(())`: go ahead. `Err(wait)`: over the limit; the client may retry after `wait`.
    pub fn check(&self, key: &K) -> Result<(), Duration> {
        self.limiter
            .check_key(key)
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// Keys currently remembered (for tests and metrics).
    pub fn len(&self) -> usize {
        self.limiter.len()
    }

    pub fn is_empty(&self) -> bool {
        self.limiter.is_empty()
    }

    /// Forgets clients whose budget is full again (they are indistinguishable from new ones).
    pub fn trim(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    /// Trims idle keys every minute until `shutdown` fires.
    pub fn spawn_trimmer(self: &Arc<Self>, shutdown: CancellationToken) {
        let limiter = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(TRIM_EVERY);
            every.tick().await;
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = every.tick() => {}
                }
                match limiter.upgrade() {
                    Some(limiter) => limiter.trim(),
                    None => break,
                }
            }
        });
    }
}

/// Whole seconds to put in an HTTP `Retry-After` header (rounded up, at least 1).
pub fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    fn settings(per_second: u32, burst: u32) -> RateLimitSettings {
        RateLimitSettings { per_second, burst }
    }

    #[test]
    fn burst_then_refusal_with_a_wait() {
        let limiter = KeyedRateLimiter::new(settings(1, 3)).expect("valid");
        let peer = IpAddr::V4(Ipv4Addr::LOCALHOST);
        for _ in 0..3 {
            assert_eq!(limiter.check(&peer), Ok(()));
        }
        let wait = limiter
            .check(&peer)
            .expect_err("fourth request is over the burst");
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
    }

    #[test]
    fn each_key_has_its_own_budget() {
        let limiter = KeyedRateLimiter::new(settings(1, 1)).expect("valid");
        assert_eq!(limiter.check(&"a".to_string()), Ok(()));
        assert!(limiter.check(&"a".to_string()).is_err());
        assert_eq!(limiter.check(&"b".to_string()), Ok(()));
        assert_eq!(limiter.len(), 2);
    }

    #[test]
    fn budget_refills_over_time() {
        let limiter = KeyedRateLimiter::new(settings(50, 1)).expect("valid");
        let key = 7u32;
        assert_eq!(limiter.check(&key), Ok(()));
        let wait = limiter.check(&key).expect_err("over");
        std::thread::sleep(wait + Duration::from_millis(5));
        assert_eq!(limiter.check(&key), Ok(()));
    }

    #[test]
    fn trim_forgets_refilled_keys() {
        let limiter = KeyedRateLimiter::new(settings(1000, 1)).expect("valid");
        assert_eq!(limiter.check(&1u32), Ok(()));
        std::thread::sleep(Duration::from_millis(20));
        limiter.trim();
        assert_eq!(limiter.len(), 0);
    }

    #[test]
    fn zero_values_are_refused() {
        assert!(KeyedRateLimiter::<u32>::new(settings(0, 1)).is_err());
        assert!(KeyedRateLimiter::<u32>::new(settings(1, 0)).is_err());
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1500)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(3)), 3);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
    }
}
