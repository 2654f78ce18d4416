//! Cost and token accounting: per turn, per session (over all its CLI processes) and per
//! supervisor, with a per-model breakdown and a serialisable [`CostReport`].
//!
//! What the CLI reports, and how [`CostTracker`] reads it: `result.total_cost_usd` and
//! `result.modelUsage` are cumulative over one CLI process, so a turn's cost is the
//! difference to the previous result of the same process; `result.usage` is the turn's
//! own tokens; CLI ≥ 2.1.332 also sends the turn's own per-model usage
//! (`model_usage_since_last_result`), preferred when present, for the turn's cost too: a
//! CLI that resumes a conversation it saved on a clean exit (a graceful restart, a wake
//! from hibernation) starts its cumulative `total_cost_usd` from the saved cost, so a
//! difference would count the earlier turns again. Otherwise a restart is a new process
//! whose counters start from zero: [`CostTracker::new_process`] marks it (a result with
//! `result_index` 0, or a cumulative cost that went down, is detected as one too).
//! Results are counted once (deduplicated by uuid); assistant messages' usage is counted
//! once per API message id, as a live figure for the turn in flight. Enforcing budgets is
//! left to the supervisor; spans and metrics to `telemetry`.

use std::collections::{BTreeMap, HashSet, VecDeque};

use serde::{Deserialize, Serialize};

use crate::protocol::{Message, ModelUsage, ResultMessage, Usage};
use crate::session::stream::TurnSummary;

/// Token counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TokenUsage {
    /// Input tokens not read from or written to the cache.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Input tokens written to the cache.
    pub cache_creation_input_tokens: u64,
    /// Input tokens read from the cache.
    pub cache_read_input_tokens: u64,
}

impl TokenUsage {
    fn add(&mut self, o: &TokenUsage) {
        self.input_tokens = self.input_tokens.saturating_add(o.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(o.output_tokens);
        self.cache_creation_input_tokens = self
            .cache_creation_input_tokens
            .saturating_add(o.cache_creation_input_tokens);
        self.cache_read_input_tokens = self
            .cache_read_input_tokens
            .saturating_add(o.cache_read_input_tokens);
    }

    fn minus(&self, o: &TokenUsage) -> TokenUsage {
        TokenUsage {
            input_tokens: self.input_tokens.saturating_sub(o.input_tokens),
            output_tokens: self.output_tokens.saturating_sub(o.output_tokens),
            cache_creation_input_tokens: self
                .cache_creation_input_tokens
                .saturating_sub(o.cache_creation_input_tokens),
            cache_read_input_tokens: self
                .cache_read_input_tokens
                .saturating_sub(o.cache_read_input_tokens),
        }
    }
}

impl From<&Usage> for TokenUsage {
    fn from(u: &Usage) -> Self {
        TokenUsage {
            input_tokens: u.input_tokens,
            output_tokens: u.output_tokens,
            cache_creation_input_tokens: u.cache_creation_input_tokens.unwrap_or(0),
            cache_read_input_tokens: u.cache_read_input_tokens.unwrap_or(0),
        }
    }
}

/// Tokens and cost of one model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ModelCost {
    /// Tokens used.
    pub usage: TokenUsage,
    /// Cost in USD.
    pub cost_usd: f64,
}

impl ModelCost {
    fn add(&mut self, o: &ModelCost) {
        self.usage.add(&o.usage);
        self.cost_usd += o.cost_usd;
    }
}

impl From<&ModelUsage> for ModelCost {
    fn from(m: &ModelUsage) -> Self {
        ModelCost {
            usage: TokenUsage {
                input_tokens: m.input_tokens,
                output_tokens: m.output_tokens,
                cache_creation_input_tokens: m.cache_creation_input_tokens,
                cache_read_input_tokens: m.cache_read_input_tokens,
            },
            cost_usd: m.cost_usd,
        }
    }
}

/// The cost of one turn.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TurnCost {
    /// Cost in USD of this turn alone.
    pub cost_usd: f64,
    /// The turn's tokens.
    pub usage: TokenUsage,
    /// Per model, this turn alone.
    pub model_usage: BTreeMap<String, ModelCost>,
    /// Wall time in milliseconds, when reported.
    pub duration_ms: Option<u64>,
    /// The conversation id.
    pub session_id: Option<String>,
}

/// Accumulated cost over many turns.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CostTotals {
    /// Cost in USD.
    pub cost_usd: f64,
    /// Tokens.
    pub usage: TokenUsage,
    /// Turns counted.
    pub turns: u64,
    /// Per model.
    pub model_usage: BTreeMap<String, ModelCost>,
}

impl CostTotals {
    /// Adds another total (or one turn) to this one.
    pub fn add(&mut self, o: &CostTotals) {
        self.cost_usd += o.cost_usd;
        self.usage.add(&o.usage);
        self.turns += o.turns;
        for (model, cost) in &o.model_usage {
            self.model_usage.entry(model.clone()).or_default().add(cost);
        }
    }

    fn add_turn(&mut self, t: &TurnCost) {
        self.cost_usd += t.cost_usd;
        self.usage.add(&t.usage);
        self.turns += 1;
        for (model, cost) in &t.model_usage {
            self.model_usage.entry(model.clone()).or_default().add(cost);
        }
    }
}

/// A serialisable cost report: totals, and per session.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CostReport {
    /// Everything, including sessions no longer running.
    pub total: CostTotals,
    /// Per session name (current children).
    pub sessions: BTreeMap<String, CostTotals>,
}

/// How many recent result ids are remembered for deduplication.
const SEEN_RESULTS: usize = 256;

/// Accumulates the cost of one session over its turns and processes. Feed it every
/// message ([`record`](Self::record)) or each turn's summary
/// ([`record_summary`](Self::record_summary)); call [`new_process`](Self::new_process)
/// when the session's CLI is replaced.
///
/// ```
/// use claude_code::CostTracker;
/// let mut costs = CostTracker::new();
/// // for message in turn { costs.record(&message); }
/// assert_eq!(costs.totals().turns, 0);
/// ```
#[derive(Debug, Clone, Default)]
pub struct CostTracker {
    totals: CostTotals,
    last_turn: Option<TurnCost>,
    /// Cumulative cost and per-model usage of the current process at its last result.
    process_cost: f64,
    process_models: BTreeMap<String, ModelCost>,
    process_results: u64,
    seen_results: VecDeque<String>,
    /// The turn in flight: API message ids seen and their usage.
    live_ids: HashSet<String>,
    live: TokenUsage,
}

impl CostTracker {
    /// An empty tracker.
    pub fn new() -> Self {
        Self::default()
    }

    /// The session's CLI was replaced: its cumulative counters start from zero again.
    pub fn new_process(&mut self) {
        self.process_cost = 0.0;
        self.process_models.clear();
        self.process_results = 0;
        self.live_ids.clear();
        self.live = TokenUsage::default();
    }

    /// Records one message of a turn; returns the turn's cost when it is a `result`
    /// seen for the first time.
    pub fn record(&mut self, message: &Message) -> Option<TurnCost> {
        match message {
            Message::Assistant(a) => {
                if let (Some(id), Some(usage)) = (&a.message.id, &a.message.usage) {
                    if self.live_ids.insert(id.clone()) {
                        self.live.add(&TokenUsage::from(usage));
                    }
                }
                None
            }
            Message::Result(r) => self.record_result(r),
            _ => None,
        }
    }

    /// Records every message of a collected turn.
    pub fn record_summary(&mut self, summary: &TurnSummary) -> Option<TurnCost> {
        summary
            .messages
            .iter()
            .filter_map(|m| self.record(m))
            .last()
    }

    /// Records a turn's `result`; `None` if this result was already counted.
    pub fn record_result(&mut self, r: &ResultMessage) -> Option<TurnCost> {
        if let Some(uuid) = &r.uuid {
            if self.seen_results.contains(uuid) {
                return None;
            }
            if self.seen_results.len() == SEEN_RESULTS {
                self.seen_results.pop_front();
            }
            self.seen_results.push_back(uuid.clone());
        }
        let cumulative = r.total_cost_usd.unwrap_or(self.process_cost);
        let restarted = (r.result_index == Some(0) && self.process_results > 0)
            || cumulative + 1e-12 < self.process_cost;
        if restarted {
            self.new_process();
        }
        self.process_results += 1;
        let cost_usd = match &r.model_usage_since_last_result {
            // The turn's own figures, whatever the cumulative counter started from.
            Some(per_turn) => per_turn.values().map(|m| m.cost_usd).sum::<f64>().max(0.0),
            None => (cumulative - self.process_cost).max(0.0),
        };
        self.process_cost = cumulative;

        let cumulative_models: BTreeMap<String, ModelCost> = r
            .model_usage
            .iter()
            .map(|(k, v)| (k.clone(), ModelCost::from(v)))
            .collect();
        let model_usage = match &r.model_usage_since_last_result {
            Some(per_turn) => per_turn
                .iter()
                .map(|(k, v)| (k.clone(), ModelCost::from(v)))
                .collect(),
            None => cumulative_models
                .iter()
                .map(|(model, now)| {
                    let before = self.process_models.get(model).copied().unwrap_or_default();
                    let diff = ModelCost {
                        usage: now.usage.minus(&before.usage),
                        cost_usd: (now.cost_usd - before.cost_usd).max(0.0),
                    };
                    (model.clone(), diff)
                })
                .filter(|(_, c)| *c != ModelCost::default())
                .collect(),
        };
        if !cumulative_models.is_empty() {
            self.process_models = cumulative_models;
        }
        let usage = r.usage.as_ref().map(TokenUsage::from).unwrap_or(self.live);
        let turn = TurnCost {
            cost_usd,
            usage,
            model_usage,
            duration_ms: r.duration_ms,
            session_id: r.session_id.clone(),
        };
        self.totals.add_turn(&turn);
        self.last_turn = Some(turn.clone());
        self.live_ids.clear();
        self.live = TokenUsage::default();
        Some(turn)
    }

    /// Everything counted so far.
    pub fn totals(&self) -> &CostTotals {
        &self.totals
    }

    /// Total cost in USD so far.
    pub fn total_usd(&self) -> f64 {
        self.totals.cost_usd
    }

    /// The last completed turn's cost.
    pub fn last_turn(&self) -> Option<&TurnCost> {
        self.last_turn.as_ref()
    }

    /// Tokens of the turn in flight so far (from assistant messages, once per message id).
    pub fn in_flight(&self) -> TokenUsage {
        self.live
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(json: serde_json::Value) -> ResultMessage {
        serde_json::from_value(json).expect("result")
    }

    fn r(uuid: &str, total: f64, index: Option<u64>, out: u64) -> ResultMessage {
        let mut v = serde_json::json!({
            "type": "result", "subtype": "success", "is_error": false, "uuid": uuid,
            "total_cost_usd": total, "usage": {"input_tokens": 10, "output_tokens": out},
            "modelUsage": {"m": {"inputTokens": 10, "outputTokens": out, "costUSD": total}},
        });
        if let Some(i) = index {
            v["result_index"] = i.into();
        }
        result(v)
    }

    #[test]
    fn turn_cost_is_the_difference_of_cumulative_totals() {
        let mut t = CostTracker::new();
        assert_eq!(
            t.record_result(&r("a", 0.5, None, 5)).map(|c| c.cost_usd),
            Some(0.5)
        );
        let second = t.record_result(&r("b", 0.75, None, 5)).expect("new");
        assert!((second.cost_usd - 0.25).abs() < 1e-9);
        assert!((t.total_usd() - 0.75).abs() < 1e-9);
        assert_eq!(t.totals().turns, 2);
        assert_eq!(t.totals().usage.input_tokens, 20);
    }

    #[test]
    fn a_result_seen_twice_is_counted_once() {
        let mut t = CostTracker::new();
        let res = r("a", 0.5, None, 5);
        assert!(t.record_result(&res).is_some());
        assert!(t.record_result(&res).is_none());
        assert_eq!(t.totals().turns, 1);
    }

    #[test]
    fn a_new_process_starts_its_cumulative_counter_from_zero() {
        let mut t = CostTracker::new();
        t.record_result(&r("a", 0.5, Some(0), 5));
        t.new_process();
        let after = t.record_result(&r("b", 0.25, Some(0), 5)).expect("new");
        assert!((after.cost_usd - 0.25).abs() < 1e-9);
        assert!((t.total_usd() - 0.75).abs() < 1e-9);
        // Detected without the explicit call too.
        t.record_result(&r("c", 0.1, None, 5));
        assert!((t.total_usd() - 0.85).abs() < 1e-9);
        t.record_result(&r("d", 0.3, Some(0), 5));
        assert!((t.total_usd() - 1.15).abs() < 1e-9);
    }

    #[test]
    fn model_usage_per_turn_is_derived_from_cumulative_or_taken_as_sent() {
        let mut t = CostTracker::new();
        t.record_result(&r("a", 0.5, None, 5));
        let turn = t.record_result(&r("b", 0.75, None, 8)).expect("new");
        let m = turn.model_usage.get("m").expect("m");
        assert_eq!(m.usage.output_tokens, 3);
        assert!((m.cost_usd - 0.25).abs() < 1e-9);

        let mut v = serde_json::to_value(r("c", 1.0, None, 9)).expect("json");
        v["model_usage_since_last_result"] =
            serde_json::json!({"m": {"inputTokens": 1, "outputTokens": 2, "costUSD": 0.25}});
        let turn = t.record_result(&result(v)).expect("new");
        assert_eq!(turn.model_usage["m"].usage.output_tokens, 2);
        assert_eq!(t.totals().model_usage["m"].usage.output_tokens, 8 + 2);
    }

    #[test]
    fn assistant_usage_is_counted_once_per_message_id() {
        let mut t = CostTracker::new();
        let a: Message = serde_json::from_value(serde_json::json!({
            "type": "assistant", "message": {"id": "msg_1", "role": "assistant",
            "content": [], "usage": {"input_tokens": 3, "output_tokens": 4}}
        }))
        .expect("assistant");
        t.record(&a);
        t.record(&a);
        assert_eq!(t.in_flight().output_tokens, 4);
    }

    #[test]
    fn the_report_serialises() {
        let mut t = CostTracker::new();
        t.record_result(&r("a", 0.5, None, 5));
        let mut report = CostReport::default();
        report.total.add(t.totals());
        report.sessions.insert("s".into(), t.totals().clone());
        let json = serde_json::to_string(&report).expect("serialise");
        let back: CostReport = serde_json::from_str(&json).expect("deserialise");
        assert_eq!(back, report);
    }
}
