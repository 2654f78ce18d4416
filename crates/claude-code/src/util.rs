//! Small helpers shared by the actors.

use std::future::Future;

/// Awaits `future` if there is one, else never completes: an optional branch of a
/// `tokio::select!` (a deadline that may not be set, a stream that may not exist).
pub(crate) async fn or_pending<F: Future>(future: Option<F>) -> F::Output {
    match future {
        Some(f) => f.await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn some_completes_and_none_never_does() {
        assert_eq!(or_pending(Some(async { 7 })).await, 7);
        let none = or_pending(None::<std::future::Ready<u8>>);
        let waited = tokio::time::timeout(std::time::Duration::from_secs(3600), none).await;
        assert!(waited.is_err(), "None never completes");
    }
}
