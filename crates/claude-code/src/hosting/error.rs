//! The hosting layer's request error, shared by pools and warm spares (one place, so the
//! two modules do not import each other).

use std::time::Duration;

use crate::error::Error;
use crate::hosting::admission::{AdmissionError, AdmittedError};
use crate::hosting::supervisor::SupervisorError;

/// Errors of pools and warm spares.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PoolError {
    /// Every member is busy and the wait queue is full: back-pressure, retry later.
    #[error(
        "the pool's wait queue is full ({capacity} requests waiting); retry later, or raise \
         the pool's size or max_queue"
    )]
    QueueFull {
        /// The queue's capacity.
        capacity: usize,
    },
    /// No member (or spare) became free within the queue timeout.
    #[error("no pool session became free within {waited:?}; retry later or grow the pool")]
    QueueTimeout {
        /// The timeout that fired.
        waited: Duration,
    },
    /// The pool is draining and accepts no new requests.
    #[error("the pool is draining and accepts no new requests")]
    Draining,
    /// Draining gave up on turns still running after the timeout (they were stopped).
    #[error(
        "drain timed out after {after:?} with {inflight} turns still running; they were stopped"
    )]
    DrainTimeout {
        /// The drain timeout.
        after: Duration,
        /// Turns that were still running.
        inflight: usize,
    },
    /// The pool (or spare set) was stopped.
    #[error("the pool is stopped")]
    Stopped,
    /// Admission control refused a new CLI.
    #[error(transparent)]
    Admission(#[from] AdmissionError),
    /// The members' supervisor reported an error.
    #[error(transparent)]
    Supervisor(#[from] SupervisorError),
    /// A session reported an error.
    #[error(transparent)]
    Session(#[from] Error),
}

impl From<AdmittedError> for PoolError {
    fn from(e: AdmittedError) -> Self {
        match e {
            AdmittedError::Admission(e) => PoolError::Admission(e),
            AdmittedError::Session(e) => PoolError::Session(e),
        }
    }
}

impl PoolError {
    /// The session error underneath, however it is wrapped (directly, or in the
    /// supervisor's start failure).
    pub fn session_error(&self) -> Option<&Error> {
        match self {
            PoolError::Session(e) => Some(e),
            PoolError::Supervisor(e) => e.session_error(),
            _ => None,
        }
    }

    /// True when the pool, its supervisor or the session can take no more work.
    pub fn is_closed(&self) -> bool {
        match self {
            PoolError::Stopped | PoolError::Draining => true,
            PoolError::Supervisor(e) => e.is_closed(),
            _ => self.session_error().is_some_and(Error::is_closed),
        }
    }

    /// True when a wait timed out (the queue, a drain, the supervisor or the session).
    pub fn is_timeout(&self) -> bool {
        match self {
            PoolError::QueueTimeout { .. } | PoolError::DrainTimeout { .. } => true,
            PoolError::Supervisor(e) => e.is_timeout(),
            _ => self.session_error().is_some_and(Error::is_timeout),
        }
    }

    /// True for back-pressure: the queue is full or no member became free in time.
    pub fn is_overloaded(&self) -> bool {
        matches!(
            self,
            PoolError::QueueFull { .. } | PoolError::QueueTimeout { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predicates_see_through_the_wrapping() {
        let inner = Error::Timeout {
            what: "x",
            after: Duration::from_secs(1),
        };
        assert!(PoolError::Session(inner).is_timeout());
        let wrapped = PoolError::Supervisor(SupervisorError::StartFailed {
            child: "a".into(),
            source: Error::closed("stopped"),
        });
        assert!(wrapped.is_closed());
        assert!(wrapped.session_error().is_some());
        let nested = PoolError::Supervisor(SupervisorError::Session(Error::Timeout {
            what: "x",
            after: Duration::from_secs(1),
        }));
        assert!(
            nested.is_timeout(),
            "PoolError::Supervisor(Session(..)) reads the same"
        );
        assert!(PoolError::QueueFull { capacity: 1 }.is_overloaded());
        assert!(!PoolError::QueueFull { capacity: 1 }.is_closed());
    }
}
