//! Failover of a dead member's sessions.
//!
//! After each turn of a dynamic session the owner stores a [`Checkpoint`] (the CLI's
//! transcript file of the conversation and the session's recipe) in the cluster's object
//! store ([`checkpoint`]). Every host scans the ownership bucket each heartbeat
//! ([`watch`]): a lease that has expired and whose owner is not a live member is claimed
//! by compare-and-set (one winner), and the winner [`adopt`]s the session: it writes the
//! transcript into its own CLI config dir, stores the session and registers it with its
//! supervisor hibernated with `--resume <cli session id>`, and serves it to the cluster.
//! The next message starts its CLI, which resumes the same conversation. The checkpoint
//! carries the session's spend so far (turns and USD, cumulative over its owners); the
//! new owner tops its ledger up to it ([`Store::carry_spend`]) and seeds the session's
//! budget at the credential proxy with it, so a budget holds across a failover.
//!
//! A message for an orphan that reaches a host before any scan does makes that host take
//! the session over at once ([`take_over_orphan`]), so failover does not wait for the
//! next scan. One take-over per session runs at a time on a host ([`Adoptions`]).
//!
//! [`Store::carry_spend`]: crate::store::Store::carry_spend

use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use claude_code::history::History;

use crate::{
    cluster::{Checkpoint, Claim},
    routes::sessions::SessionRecipe,
    state::{session_key, AppState},
    store::{StoredSession, Totals},
};

/// The CLI config dir a session's transcripts live in on this host.
fn config_dir(state: &AppState, tenant: &str, name: &str) -> Option<PathBuf> {
    state
        .confiner
        .config_dir(tenant, name)
        .or_else(|| state.options.cli_config_dir())
}

/// How often a checkpoint that could not be stored (NATS down) is tried again.
const CHECKPOINT_RETRY: std::time::Duration = std::time::Duration::from_millis(500);

/// Stores the session's checkpoint after a turn. When that fails (NATS down, a timeout),
/// it is logged and stored again once this host has re-confirmed its lease (see
/// [`retry_checkpoint`]), so a turn that ran during an outage is not missing from a later
/// failover.
pub(crate) async fn checkpoint(state: &Arc<AppState>, tenant: &str, name: &str) {
    if !store_checkpoint(state, tenant, name).await {
        retry_checkpoint(state, tenant, name);
    }
}

/// Stores the session's checkpoint again, from its state at that time, every
/// [`CHECKPOINT_RETRY`] while this host holds its lease, once the lease is confirmed (a
/// host that could not renew it must not overwrite a checkpoint another member may have
/// stored since). One retry per session at a time.
fn retry_checkpoint(state: &Arc<AppState>, tenant: &str, name: &str) {
    let key = session_key(tenant, name);
    if !state.adoptions.pending(&key, true) {
        return;
    }
    let weak = Arc::downgrade(state);
    let (tenant, name) = (tenant.to_string(), name.to_string());
    tokio::spawn(async move {
        let owner_key = crate::cluster::owner_key(&tenant, &name);
        loop {
            tokio::time::sleep(CHECKPOINT_RETRY).await;
            let Some(state) = weak.upgrade() else { return };
            let Some(cluster) = state.cluster() else {
                return;
            };
            let leases = cluster.leases();
            if !leases.holds(&owner_key) {
                break;
            }
            if leases.unconfirmed(&owner_key) || !cluster.link().connected() {
                continue;
            }
            if store_checkpoint(&state, &tenant, &name).await {
                tracing::info!(tenant = %tenant, session = %name, "stored a session's checkpoint that had failed");
                break;
            }
        }
        if let Some(state) = weak.upgrade() {
            state.adoptions.pending(&key, false);
        }
    });
}

/// Stores the session's checkpoint now; false when that failed (logged).
async fn store_checkpoint(state: &Arc<AppState>, tenant: &str, name: &str) -> bool {
    let Some(cluster) = state.cluster() else {
        return true;
    };
    let (t, n) = (tenant.to_string(), name.to_string());
    let stored = match state.store.run(move |s| s.sessions()).await {
        Ok(all) => all.into_iter().find(|s| s.tenant == t && s.name == n),
        Err(e) => {
            tracing::warn!(tenant, session = name, error = %e, "cannot read a session for its checkpoint");
            return true;
        }
    };
    // Named sessions are per host: nothing to carry over.
    let Some(stored) = stored else { return true };
    let mut cp = Checkpoint::new(tenant, name, stored.spec);
    cp.node = Some(cluster.node().to_string());
    // Its spend so far goes with it: the ledger's (carried spend included), and at least
    // what its grant at the credential proxy counted.
    let t = tenant.to_string();
    match state.store.run(move |s| s.session_totals(&t)).await {
        Ok(totals) => {
            let own = totals.get(name).copied().unwrap_or_default();
            cp.turns = own.turns;
            cp.spent_usd = own.cost_usd;
        }
        Err(e) => {
            tracing::warn!(tenant, session = name, error = %e, "cannot read a session's spend for its checkpoint; it carries the proxy's figure only");
        }
    }
    if let Some(granted) = state.proxies.spent(&session_key(tenant, name)) {
        cp.spent_usd = cp.spent_usd.max(granted);
    }
    if let (Some(id), Some(dir)) = (stored.session_id, config_dir(state, tenant, name)) {
        let read = {
            let id = id.clone();
            tokio::task::spawn_blocking(move || {
                let found = History::new(&dir).session(&id).ok()?;
                let rel = found.path.strip_prefix(&dir).ok()?.to_str()?.to_string();
                let text = std::fs::read_to_string(&found.path).ok()?;
                Some((rel, text))
            })
            .await
            .ok()
            .flatten()
        };
        cp.cli_session_id = Some(id);
        if let Some((rel, text)) = read {
            cp.transcript_path = Some(rel);
            cp.transcript = Some(text);
        }
    }
    match cluster.save_checkpoint(&cp).await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(tenant, session = name, error = %e, "cannot store a session's checkpoint; it is stored again once the cluster is reachable");
            false
        }
    }
}

/// Scans for orphaned sessions every heartbeat while the host is in its cluster.
pub(crate) fn watch(state: &Arc<AppState>) {
    let Some(cluster) = state.cluster() else {
        return;
    };
    let every = cluster.heartbeat();
    let weak = Arc::downgrade(state);
    let task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(every.max(Duration::from_millis(100)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(state) = weak.upgrade() else { return };
            if state.draining.load(std::sync::atomic::Ordering::Relaxed) {
                return;
            }
            let Some(cluster) = state.cluster() else {
                return;
            };
            // Bounded: a key listing that stalls must not stop the scans.
            let limit = (every * 4).max(Duration::from_secs(2));
            let orphans = match tokio::time::timeout(limit, cluster.orphans()).await {
                Ok(Ok(o)) => o,
                Err(_) => {
                    cluster.link().note_failure();
                    tracing::warn!("scanning the cluster for orphaned sessions timed out");
                    continue;
                }
                Ok(Err(e)) => {
                    // NATS down: not settled again until the grace period has passed.
                    cluster.link().note_failure();
                    tracing::debug!(error = %e, "cannot scan the cluster for orphaned sessions");
                    continue;
                }
            };
            for (tenant, name) in orphans {
                take_over(&state, &tenant, &name).await;
            }
        }
    });
    state.serving.put(".failover".to_string(), task);
}

/// The take-overs in progress on this host: one lock per session; and the sessions whose
/// checkpoint is waiting to be stored again.
#[derive(Debug, Default)]
pub(crate) struct Adoptions(
    Mutex<BTreeMap<String, Arc<tokio::sync::Mutex<()>>>>,
    Mutex<std::collections::BTreeSet<String>>,
);

impl Adoptions {
    /// Marks (`true`) or unmarks the session `key` as having a checkpoint retry; true
    /// when the mark changed (a retry for it was not running yet, when marking).
    fn pending(&self, key: &str, on: bool) -> bool {
        let Ok(mut pending) = self.1.lock() else {
            return false;
        };
        if on {
            pending.insert(key.to_string())
        } else {
            pending.remove(key)
        }
    }

    fn lock_for(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let Ok(mut locks) = self.0.lock() else {
            return Arc::default();
        };
        // Locks nobody waits on any more go (each holder keeps its own Arc).
        locks.retain(|_, l| Arc::strong_count(l) > 1);
        locks.entry(key.to_string()).or_default().clone()
    }
}

/// A message for a session this host does not have: when its owner is gone (lease
/// expired, heartbeat expired), takes it over now instead of at the next scan. True when
/// this host then has the session.
pub(crate) async fn take_over_orphan(state: &Arc<AppState>, tenant: &str, name: &str) -> bool {
    let Some(cluster) = state.cluster() else {
        return false;
    };
    let Ok(Some(lease)) = cluster.leases().owner(tenant, name).await else {
        return false;
    };
    let key = session_key(tenant, name);
    if lease.owner == cluster.node() {
        // Ours but not here: the scan may be adopting it right now (wait for that), or it
        // is being deleted (never take it back then).
        let lock = state.adoptions.lock_for(&key);
        let _wait = lock.lock().await;
        return state.serving.has(&key);
    }
    if !lease.expired_at(crate::cluster::now_ms())
        || !matches!(cluster.is_member(&lease.owner).await, Ok(false))
    {
        return false;
    }
    take_over(state, tenant, name).await
}

/// Claims an orphaned session and adopts it, unless this host already took it over
/// (another take-over of the same session finished first). True when this host has it.
async fn take_over(state: &Arc<AppState>, tenant: &str, name: &str) -> bool {
    let Some(cluster) = state.cluster() else {
        return false;
    };
    let key = session_key(tenant, name);
    let owner_key = crate::cluster::owner_key(tenant, name);
    let lock = state.adoptions.lock_for(&key);
    let _one_at_a_time = lock.lock().await;
    let leases = cluster.leases();
    if state.serving.has(&key) && leases.holds(&owner_key) && !leases.unconfirmed(&owner_key) {
        return true;
    }
    match leases.claim(tenant, name).await {
        Ok(Claim::Won) => adopt(state, tenant, name).await,
        Ok(Claim::Held(_)) => false,
        Err(e) => {
            tracing::debug!(tenant, session = name, error = %e, "claiming an orphaned session failed");
            false
        }
    }
}

/// Takes over a session whose lease this host just won from a dead member: restores its
/// checkpoint and registers it hibernated (resuming its conversation on the next
/// message). Without a checkpoint the lease is released again (false).
pub(crate) async fn adopt(state: &Arc<AppState>, tenant: &str, name: &str) -> bool {
    let Some(cluster) = state.cluster() else {
        return false;
    };
    let started = std::time::Instant::now();
    let give_up = |why: String| async move {
        tracing::error!(tenant, session = name, reason = %why, "cannot take over an orphaned session");
        let _ = cluster.leases().release(tenant, name).await;
        false
    };
    let cp = match cluster.checkpoint(tenant, name).await {
        Ok(Some(cp)) => cp,
        Ok(None) => return give_up("no checkpoint in the cluster".into()).await,
        Err(e) => return give_up(e.to_string()).await,
    };
    let recipe: SessionRecipe = match serde_json::from_str(&cp.recipe) {
        Ok(r) => r,
        Err(e) => return give_up(format!("unreadable recipe: {e}")).await,
    };
    // The conversation goes where this host's CLI for the session reads it.
    if let (Some(rel), Some(text), Some(dir)) = (
        cp.transcript_path.clone(),
        cp.transcript.clone(),
        config_dir(state, tenant, name),
    ) {
        let rel = PathBuf::from(rel);
        let safe = rel
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
        if !safe {
            return give_up(format!("checkpoint path {rel:?} leaves the config dir")).await;
        }
        let path = dir.join(rel);
        let wrote = tokio::task::spawn_blocking(move || {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&path, text)
        })
        .await;
        match wrote {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return give_up(format!("cannot write the transcript: {e}")).await,
            Err(e) => return give_up(e.to_string()).await,
        }
    }
    let restored = std::time::Instant::now();
    // A stale copy of this host's own (it owned the session once) gives way.
    let key = session_key(tenant, name);
    let _ = state.sup.terminate_session(&key).await;
    let (t, n) = (tenant.to_string(), name.to_string());
    if let Err(e) = state.store.run(move |s| s.delete_session(&t, &n)).await {
        return give_up(e.to_string()).await;
    }
    let stored = StoredSession {
        tenant: tenant.to_string(),
        name: name.to_string(),
        spec: cp.recipe.clone(),
        session_id: cp.cli_session_id.clone(),
    };
    if let Err(e) = state.store.run(move |s| s.insert_session(&stored)).await {
        return give_up(e.to_string()).await;
    }
    // Its spend so far comes with it: the ledger (and so its totals and the tenant's
    // spend) and its budget count what it spent on its earlier owners.
    let carried = Totals {
        turns: cp.turns,
        cost_usd: cp.spent_usd,
    };
    let (t, n, from) = (tenant.to_string(), name.to_string(), cp.node.clone());
    let spent = match state
        .store
        .run(move |s| s.carry_spend(&t, &n, from.as_deref(), carried))
        .await
    {
        Ok(totals) => totals,
        Err(e) => return give_up(format!("cannot carry its spend over: {e}")).await,
    };
    let spec = match recipe.spec(state, tenant, name).await {
        Ok(spec) => spec,
        Err(e) => return give_up(format!("{:?}", e.body())).await,
    };
    state.proxies.record_spend(&key, spent.cost_usd);
    let spec = match &cp.cli_session_id {
        Some(id) => spec.with_options(|o| o.resume(id.clone())),
        None => spec,
    };
    if let Err(e) = state.sup.start_session(spec.start_hibernated()).await {
        state.proxies.revoke(&session_key(tenant, name));
        return give_up(e.to_string()).await;
    }
    crate::routes::remote::serve(state, tenant, name).await;
    crate::metrics::cluster::failover(cluster.node());
    tracing::info!(
        tenant,
        session = name,
        spent_usd = spent.cost_usd,
        turns = spent.turns,
        restore_ms = restored.duration_since(started).as_millis() as u64,
        register_ms = restored.elapsed().as_millis() as u64,
        "took over an orphaned session from a dead member; it resumes on its next message"
    );
    true
}
