//! Per-tenant limits: requests per minute (a token bucket), concurrent turns (a
//! semaphore), sessions and spend (checked against the live count and the ledger). Each
//! refusal is a 429 with `Retry-After`.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex, PoisonError},
    time::Instant,
};

use axum::http::StatusCode;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::{config::TenantLimits, error::ApiError};

/// The limits of every tenant, and their running counters.
#[derive(Debug)]
pub(crate) struct Limits {
    default: TenantLimits,
    tenants: BTreeMap<String, TenantLimits>,
    buckets: Mutex<HashMap<String, Bucket>>,
    turns: Mutex<HashMap<String, Arc<Semaphore>>>,
}

/// A token bucket refilled at `rpm / 60` per second, holding at most `rpm`.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Limits {
    pub(crate) fn new(default: TenantLimits, tenants: BTreeMap<String, TenantLimits>) -> Self {
        Limits {
            default,
            tenants,
            buckets: Mutex::default(),
            turns: Mutex::default(),
        }
    }

    pub(crate) fn of(&self, tenant: &str) -> &TenantLimits {
        self.tenants.get(tenant).unwrap_or(&self.default)
    }

    /// Takes one request from the tenant's bucket, or a 429.
    pub(crate) fn check_rate(&self, tenant: &str) -> Result<(), ApiError> {
        let Some(rpm) = self.of(tenant).requests_per_minute else {
            return Ok(());
        };
        let rate = f64::from(rpm.max(1)) / 60.0;
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        let bucket = buckets.entry(tenant.to_string()).or_insert(Bucket {
            tokens: f64::from(rpm),
            at: now,
        });
        let refill = now.duration_since(bucket.at).as_secs_f64() * rate;
        bucket.tokens = (bucket.tokens + refill).min(f64::from(rpm));
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        let wait = ((1.0 - bucket.tokens) / rate).ceil().max(1.0) as u64;
        Err(too_many(
            "rate_limited",
            format!("tenant `{tenant}` is over its {rpm} requests per minute"),
            wait,
        ))
    }

    /// A permit for one running turn, or a 429 when the tenant runs its most already.
    pub(crate) fn turn_permit(
        &self,
        tenant: &str,
    ) -> Result<Option<OwnedSemaphorePermit>, ApiError> {
        let Some(max) = self.of(tenant).max_concurrent_turns else {
            return Ok(None);
        };
        let semaphore = self
            .turns
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(tenant.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(max)))
            .clone();
        semaphore.try_acquire_owned().map(Some).map_err(|_| {
            too_many(
                "too_many_turns",
                format!("tenant `{tenant}` already runs its {max} concurrent turns"),
                1,
            )
        })
    }

    /// A 429 when the tenant already has its most sessions.
    pub(crate) fn check_sessions(&self, tenant: &str, current: usize) -> Result<(), ApiError> {
        match self.of(tenant).max_sessions {
            Some(max) if current >= max => Err(too_many(
                "session_limit",
                format!("tenant `{tenant}` already has its {max} sessions; delete one first"),
                60,
            )),
            _ => Ok(()),
        }
    }

    /// A 429 when the tenant spent its budget.
    pub(crate) fn check_spend(&self, tenant: &str, spent: f64) -> Result<(), ApiError> {
        match self.of(tenant).max_spend_usd {
            Some(max) if spent >= max => Err(too_many(
                "spend_limit",
                format!("tenant `{tenant}` spent ${spent:.4} of its ${max:.2} budget"),
                3600,
            )),
            _ => Ok(()),
        }
    }
}

fn too_many(code: &'static str, message: String, retry_after: u64) -> ApiError {
    ApiError::new(StatusCode::TOO_MANY_REQUESTS, code, message).retry_after(retry_after)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(l: TenantLimits) -> Limits {
        Limits::new(
            TenantLimits::default(),
            BTreeMap::from([("t".to_string(), l)]),
        )
    }

    #[test]
    fn the_rate_limit_allows_a_minutes_worth_then_says_when_to_retry() {
        let l = limits(TenantLimits {
            requests_per_minute: Some(3),
            ..TenantLimits::default()
        });
        for _ in 0..3 {
            l.check_rate("t").expect("within the limit");
        }
        let e = l.check_rate("t").expect_err("over the limit");
        assert_eq!(e.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(e.retry_after_secs().is_some_and(|s| (1..=20).contains(&s)));
        // Other tenants are not limited.
        for _ in 0..10 {
            l.check_rate("other").expect("unlimited");
        }
    }

    #[test]
    fn turn_permits_are_returned_when_dropped() {
        let l = limits(TenantLimits {
            max_concurrent_turns: Some(1),
            ..TenantLimits::default()
        });
        let p = l.turn_permit("t").expect("first");
        assert!(l.turn_permit("t").is_err());
        drop(p);
        assert!(l.turn_permit("t").is_ok());
    }

    #[test]
    fn sessions_and_spend_are_capped() {
        let l = limits(TenantLimits {
            max_sessions: Some(2),
            max_spend_usd: Some(1.0),
            ..TenantLimits::default()
        });
        assert!(l.check_sessions("t", 1).is_ok());
        assert!(l.check_sessions("t", 2).is_err());
        assert!(l.check_spend("t", 0.5).is_ok());
        assert!(l.check_spend("t", 1.0).is_err());
        assert!(l.check_sessions("other", 1000).is_ok());
    }
}
