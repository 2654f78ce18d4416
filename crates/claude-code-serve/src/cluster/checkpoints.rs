//! Session checkpoints for failover: after each turn the owner stores the session's
//! transcript (the CLI's JSONL file of that conversation) and its recipe in the JetStream
//! object store [`TRANSCRIPTS_BUCKET`] under `<tenant>.<session>`, so that the host that
//! claims the session after its owner died can make it again and resume it, with the
//! spend it had so far.

use async_nats::jetstream::{self, object_store};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;

use super::{leases::bytes_value, owner_key, ClusterError};

/// The object store bucket of session checkpoints.
pub const TRANSCRIPTS_BUCKET: &str = "claude_transcripts";

/// How long reading one checkpoint may take.
const READ_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// What another host needs to carry a session on: how to make it and its conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Checkpoint {
    /// The owning tenant.
    pub tenant: String,
    /// The session's name.
    pub session: String,
    /// The session's recipe as the state store keeps it (template, options, budget; JSON).
    pub recipe: String,
    /// The CLI's conversation id (what `--resume` takes), once it ran a turn.
    pub cli_session_id: Option<String>,
    /// Where the transcript lives under the CLI's config dir
    /// (`projects/<project key>/<id>.jsonl`).
    pub transcript_path: Option<String>,
    /// The transcript file's bytes (JSONL).
    pub transcript: Option<String>,
    /// USD the session has spent so far, on every owner it had (its owner's ledger, with
    /// what it carried from earlier owners; at least what the credential proxy's grant
    /// counted). The host that takes it over starts its ledger and budget from here.
    /// Absent in checkpoints of older versions: 0.
    #[serde(default)]
    pub spent_usd: f64,
    /// Turns the session has finished so far, on every owner it had (0 when absent).
    #[serde(default)]
    pub turns: u64,
    /// The member that stored the checkpoint, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

impl Checkpoint {
    /// A checkpoint of the tenant's session made from `recipe`, before any turn.
    pub fn new(tenant: impl Into<String>, session: impl Into<String>, recipe: String) -> Self {
        Checkpoint {
            tenant: tenant.into(),
            session: session.into(),
            recipe,
            cli_session_id: None,
            transcript_path: None,
            transcript: None,
            spent_usd: 0.0,
            turns: 0,
            node: None,
        }
    }
}

/// The checkpoint bucket.
#[derive(Clone)]
pub(super) struct Checkpoints {
    store: object_store::ObjectStore,
}

impl std::fmt::Debug for Checkpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpoints")
            .field("bucket", &TRANSCRIPTS_BUCKET)
            .finish()
    }
}

impl Checkpoints {
    /// Opens the bucket, creating it when absent.
    pub(super) async fn open(js: &jetstream::Context) -> Result<Checkpoints, ClusterError> {
        let fail = |e: &dyn std::fmt::Display| ClusterError::Bucket {
            bucket: TRANSCRIPTS_BUCKET,
            detail: e.to_string(),
        };
        let store = match js.get_object_store(TRANSCRIPTS_BUCKET).await {
            Ok(store) => store,
            Err(_) => {
                let config = object_store::Config {
                    bucket: TRANSCRIPTS_BUCKET.to_string(),
                    description: Some("claude-code cluster: session checkpoints".into()),
                    ..Default::default()
                };
                match js.create_object_store(config).await {
                    Ok(store) => store,
                    // Another host made it meanwhile.
                    Err(create) => js
                        .get_object_store(TRANSCRIPTS_BUCKET)
                        .await
                        .map_err(|_| fail(&create))?,
                }
            }
        };
        Ok(Checkpoints { store })
    }

    pub(super) async fn save(&self, checkpoint: &Checkpoint) -> Result<(), ClusterError> {
        let key = owner_key(&checkpoint.tenant, &checkpoint.session);
        let bytes = bytes_value::encode(checkpoint)?;
        let mut reader: &[u8] = &bytes;
        self.store
            .put(key.as_str(), &mut reader)
            .await
            .map_err(ClusterError::kv)?;
        Ok(())
    }

    /// Reads the session's last checkpoint.
    pub(super) async fn load(
        &self,
        tenant: &str,
        session: &str,
    ) -> Result<Option<Checkpoint>, ClusterError> {
        let key = owner_key(tenant, session);
        let mut object = match self.store.get(key.as_str()).await {
            Ok(o) => o,
            Err(e) if e.kind() == object_store::GetErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(ClusterError::kv(e)),
        };
        // Bounded: an object whose chunks a killed server lost would keep the read (and
        // the take-over waiting on it) waiting for ever.
        let mut bytes = Vec::new();
        match tokio::time::timeout(READ_WAIT, object.read_to_end(&mut bytes)).await {
            Ok(read) => read.map_err(ClusterError::kv)?,
            Err(_) => {
                return Err(ClusterError::Kv(format!(
                    "reading the checkpoint of {key} took over {READ_WAIT:?}: its object may be incomplete"
                )))
            }
        };
        bytes_value::decode(&bytes).map(Some)
    }

    pub(super) async fn delete(&self, tenant: &str, session: &str) -> Result<(), ClusterError> {
        match self.store.delete(owner_key(tenant, session).as_str()).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == object_store::DeleteErrorKind::NotFound => Ok(()),
            Err(e) => Err(ClusterError::kv(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_of_an_older_version_reads_with_no_spend() {
        let old = r#"{"tenant":"t","session":"s","recipe":"{}","cli_session_id":"c",
            "transcript_path":"projects/p/c.jsonl","transcript":"{}\n"}"#;
        let cp: Checkpoint = serde_json::from_str(old).expect("an old checkpoint reads");
        assert_eq!((cp.spent_usd, cp.turns, cp.node), (0.0, 0, None));
        let mut cp = Checkpoint::new("t", "s", "{}".into());
        cp.spent_usd = 0.25;
        cp.turns = 2;
        cp.node = Some("a".into());
        let back: Checkpoint =
            serde_json::from_slice(&bytes_value::encode(&cp).expect("encode")).expect("decode");
        assert_eq!(back, cp);
    }
}
