//! [`Script`]: the FIFO of replies for main agent-loop turns plus the fallback used when
//! it runs dry, and its JSON file form. The server owns the queue once started.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::{error::MockError, reply::Reply};

/// Text of the default fallback reply.
pub(crate) const EXHAUSTED: &str = "mock: script exhausted";

/// Replies for main agent-loop turns, served in order; then the fallback, forever.
///
/// JSON form (for `claude-code-mock --script FILE`):
/// `{"replies": [<reply>, ...], "fallback": <reply>}`, both optional; see [`Reply`] for
/// the reply form.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[must_use]
pub struct Script {
    #[serde(default)]
    replies: VecDeque<Reply>,
    #[serde(default = "default_fallback")]
    fallback: Reply,
}

fn default_fallback() -> Reply {
    Reply::text(EXHAUSTED)
}

impl Default for Script {
    /// No replies; fallback `Reply::text("mock: script exhausted")`.
    fn default() -> Self {
        Script {
            replies: VecDeque::new(),
            fallback: default_fallback(),
        }
    }
}

impl Script {
    /// An empty script (see [`Script::default`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends one reply.
    pub fn reply(mut self, r: Reply) -> Self {
        self.replies.push_back(r);
        self
    }

    /// Appends several replies.
    pub fn replies(mut self, rs: impl IntoIterator<Item = Reply>) -> Self {
        self.replies.extend(rs);
        self
    }

    /// The reply used for every turn once the queue is empty.
    pub fn fallback(mut self, r: Reply) -> Self {
        self.fallback = r;
        self
    }

    /// Parses the JSON form.
    pub fn from_json(s: &str) -> Result<Script, MockError> {
        Ok(serde_json::from_str(s)?)
    }

    pub(crate) fn into_parts(self) -> (VecDeque<Reply>, Reply) {
        (self.replies, self.fallback)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_form_round_trips_and_defaults_fallback() {
        let s = Script::from_json(
            r#"{"replies":[{"type":"message","blocks":[{"type":"text","text":"hi"}]},{"type":"echo"}]}"#,
        )
        .expect("parse");
        assert_eq!(
            s,
            Script::new().reply(Reply::text("hi")).reply(Reply::echo())
        );
        let back = Script::from_json(&serde_json::to_string(&s).expect("ser")).expect("parse");
        assert_eq!(back, s);
        assert!(Script::from_json(r#"{"replys":[]}"#).is_err());
    }
}
