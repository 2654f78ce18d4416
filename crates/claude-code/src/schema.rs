//! JSON schemas derived from Rust types, for structured output and MCP tool inputs.

use serde_json::Value;

/// The JSON schema of `T`, in the draft-07 dialect the CLI's validator accepts (the
/// schemars default, 2020-12, is refused by `--json-schema`).
pub(crate) fn schema_for<T: schemars::JsonSchema>() -> Value {
    let schema = schemars::generate::SchemaSettings::draft07()
        .into_generator()
        .into_root_schema_for::<T>();
    serde_json::to_value(schema).unwrap_or_else(|_| serde_json::json!({"type": "object"}))
}
