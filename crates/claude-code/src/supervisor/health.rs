//! Health of supervised children: a session's own report ([`Session::health`]) plus an
//! optional liveness probe, a cheap control round-trip (`mcp_status`) that must be
//! answered within a timeout. Any answer counts, an error reply included: the point is
//! that the CLI still reads its stdin. Acting on the result (restarting) is the actor's
//! job.

use std::time::Duration;

use crate::error::Error;
use crate::protocol::OutboundRequest;
use crate::session::{Health, Session, UnhealthyReason};

/// The session's health, probed for responsiveness when `probe` is set.
pub(crate) async fn check(session: &Session, probe: Option<Duration>) -> Health {
    let health = session.health().await;
    let (Health::Healthy, Some(limit)) = (&health, probe) else {
        return health;
    };
    match tokio::time::timeout(limit, session.control(OutboundRequest::McpStatus)).await {
        Ok(Ok(_)) | Ok(Err(Error::ControlRequest { .. })) => Health::Healthy,
        Ok(Err(Error::Timeout { .. })) | Err(_) => {
            Health::Unhealthy(UnhealthyReason::Unresponsive(limit))
        }
        // The session ended meanwhile: its own report says how.
        Ok(Err(_)) => session.health().await,
    }
}
