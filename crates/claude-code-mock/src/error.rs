//! The crate's one error type. Everything that can fail when starting the mock or
//! loading a script lands here; request handling never fails (bad requests get an
//! API-style error reply instead).

use std::{io, net::SocketAddr, path::PathBuf};

/// Errors from starting the mock server or loading a script.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MockError {
    /// The listening socket could not be bound.
    #[error("cannot bind the mock server to {addr}: {source}; pick another port or use port 0")]
    Bind {
        /// Address we tried to bind.
        addr: SocketAddr,
        /// The underlying I/O error.
        #[source]
        source: io::Error,
    },
    /// A script file could not be read.
    #[error("cannot read mock script {}: {source}", path.display())]
    ReadScript {
        /// Path of the script file.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: io::Error,
    },
    /// A script was not valid JSON or did not match the script format.
    #[error("invalid mock script: {0}; expected {{\"replies\": [...], \"fallback\": {{...}}}}")]
    Script(#[from] serde_json::Error),
}
