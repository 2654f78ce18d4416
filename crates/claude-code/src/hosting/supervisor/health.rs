//! Health of supervised children: a session's own report ([`Session::health`]) plus an
//! optional liveness probe ([`Session::probe`]), a cheap control round-trip that must be
//! answered within a timeout. Acting on the result (restarting) is the actor's job.

use std::time::Duration;

use crate::session::{Health, Session};

/// The session's health, probed for responsiveness when `probe` is set.
pub(crate) async fn check(session: &Session, probe: Option<Duration>) -> Health {
    match probe {
        Some(limit) => session.probe(limit).await,
        None => session.health().await,
    }
}
