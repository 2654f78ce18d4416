//! Did the CLI take every in-process MCP tool? The CLI silently drops a tool whose
//! input schema it does not accept, and the model's call then gets "No such tool
//! available". The CLI connects in-process servers only when the first user message
//! arrives (`mcp_status` is empty before), so the session checks once, at the first
//! turn's `system/init`, with an `mcp_status` round-trip, and fails that turn with
//! [`Error::McpNotRegistered`] if something is missing.

use std::collections::BTreeMap;

use serde_json::Value;

use super::Callbacks;
use crate::error::Error;

/// Each in-process server's tool names, when there are any to check.
pub(crate) fn expected(callbacks: &Callbacks) -> Option<BTreeMap<String, Vec<String>>> {
    let expected: BTreeMap<String, Vec<String>> = callbacks
        .mcp_servers
        .iter()
        .map(|s| (s.name.clone(), s.tool_names().map(str::to_string).collect()))
        .collect();
    (!expected.is_empty()).then_some(expected)
}

/// What an `mcp_status` payload says about the registered servers.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Every server connected with every tool.
    Registered,
    /// A server is not connected yet (not listed, or `pending`): check again later.
    NotYet,
    /// Something is missing or failed.
    Missing(Error),
}

/// Compares an `mcp_status` payload with what was registered.
pub(crate) fn check(expected: &BTreeMap<String, Vec<String>>, status: &Value) -> Outcome {
    match check_inner(expected, status) {
        Ok(true) => Outcome::Registered,
        Ok(false) => Outcome::NotYet,
        Err(e) => Outcome::Missing(e),
    }
}

fn check_inner(expected: &BTreeMap<String, Vec<String>>, status: &Value) -> Result<bool, Error> {
    let servers = status
        .get("mcpServers")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for (name, tools) in expected {
        let Some(server) = servers
            .iter()
            .find(|s| s.get("name").and_then(Value::as_str) == Some(name))
        else {
            return Ok(false);
        };
        let state = server.get("status").and_then(Value::as_str).unwrap_or("");
        if state == "pending" {
            return Ok(false);
        }
        if state != "connected" {
            let why = server
                .get("error")
                .and_then(Value::as_str)
                .map(|e| format!(": {e}"))
                .unwrap_or_default();
            return Err(Error::McpNotRegistered {
                server: name.clone(),
                problem: format!("the server is {state}{why}"),
            });
        }
        let listed: Vec<&str> = server
            .get("tools")
            .and_then(Value::as_array)
            .map(|t| {
                t.iter()
                    .filter_map(|t| t.get("name").and_then(Value::as_str))
                    .collect()
            })
            .unwrap_or_default();
        let missing: Vec<&str> = tools
            .iter()
            .map(String::as_str)
            .filter(|t| !listed.contains(t))
            .collect();
        if !missing.is_empty() {
            return Err(Error::McpNotRegistered {
                server: name.clone(),
                problem: format!(
                    "the CLI did not register the tool(s) {}; check their input schemas \
                     (the CLI drops a tool whose schema it rejects)",
                    missing.join(", ")
                ),
            });
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn expected() -> BTreeMap<String, Vec<String>> {
        BTreeMap::from([(
            "calc".to_string(),
            vec!["add".to_string(), "sub".to_string()],
        )])
    }

    #[test]
    fn all_tools_listed_is_ok_and_a_missing_one_is_named() {
        let ok = json!({"mcpServers": [{"name": "calc", "status": "connected",
            "tools": [{"name": "add"}, {"name": "sub"}]}]});
        assert!(matches!(check(&expected(), &ok), Outcome::Registered));
        let missing = json!({"mcpServers": [{"name": "calc", "status": "connected",
            "tools": [{"name": "add"}]}]});
        match check(&expected(), &missing) {
            Outcome::Missing(e) => assert!(e.to_string().contains("tool(s) sub"), "{e}"),
            other => panic!("{other:?}"),
        }
        let failed = json!({"mcpServers": [{"name": "calc", "status": "failed", "error": "boom"}]});
        match check(&expected(), &failed) {
            Outcome::Missing(e) => assert!(e.to_string().contains("failed: boom"), "{e}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(check(&expected(), &json!({})), Outcome::NotYet));
        let pending = json!({"mcpServers": [{"name": "calc", "status": "pending"}]});
        assert!(matches!(check(&expected(), &pending), Outcome::NotYet));
    }
}
