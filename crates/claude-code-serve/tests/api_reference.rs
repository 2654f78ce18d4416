//! `docs/reference/http-api.md` is generated from the OpenAPI document, and this test keeps
//! it current: it fails when the file differs from what the handlers say. Regenerate with
//! `UPDATE_DOCS=1 cargo test -p claude-code-host-serve --test api_reference`.

use std::fmt::Write as _;

use serde_json::Value;

#[test]
fn the_http_api_reference_is_generated_from_the_openapi_document() {
    let doc = serde_json::to_value(claude_code_serve::openapi()).expect("serialisable");
    let text = render(&doc);
    let path = claude_code_tests::workspace_root().join("docs/reference/http-api.md");
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(&path, &text).expect("write the reference");
        return;
    }
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        current == text,
        "{} is out of date; regenerate it with \
         `UPDATE_DOCS=1 cargo test -p claude-code-host-serve --test api_reference`",
        path.display()
    );
}

fn render(doc: &Value) -> String {
    let mut out = String::new();
    let info = &doc["info"];
    let _ = writeln!(
        out,
        "# HTTP API reference\n\n<!-- Generated from the OpenAPI document (`GET /openapi.json`) by \
         crates/claude-code-serve/tests/api_reference.rs; do not edit by hand. -->\n"
    );
    let _ = writeln!(out, "{}\n", text(&info["description"]));
    let _ = writeln!(out, "## Routes\n");
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for (method, op) in item.as_object().into_iter().flatten() {
            ops.push((path.clone(), method.clone(), op.clone()));
        }
    }
    for (path, method, op) in &ops {
        let _ = writeln!(out, "### `{} {}`\n", method.to_uppercase(), path);
        let summary = [text(&op["summary"]), text(&op["description"])]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("\n\n");
        if !summary.is_empty() {
            let _ = writeln!(out, "{summary}\n");
        }
        if let Some(params) = op["parameters"].as_array() {
            for p in params {
                let _ = writeln!(
                    out,
                    "- {} parameter `{}`: {}",
                    text(&p["in"]),
                    text(&p["name"]),
                    text(&p["description"])
                );
            }
            let _ = writeln!(out);
        }
        if let Some(content) = op["requestBody"]["content"].as_object() {
            for (mime, c) in content {
                let _ = writeln!(
                    out,
                    "Request body (`{mime}`): {}\n",
                    schema_name(&c["schema"])
                );
            }
        }
        let _ = writeln!(out, "| status | meaning | body |\n|---|---|---|");
        for (status, r) in op["responses"].as_object().into_iter().flatten() {
            let bodies: Vec<String> = r["content"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(mime, c)| format!("`{mime}` {}", schema_name(&c["schema"])))
                .collect();
            let _ = writeln!(
                out,
                "| {status} | {} | {} |",
                text(&r["description"])
                    .replace('|', "\\|")
                    .replace('\n', " "),
                bodies.join(", ")
            );
        }
        let _ = writeln!(out);
    }
    let _ = writeln!(out, "## Bodies\n");
    for (name, schema) in doc["components"]["schemas"]
        .as_object()
        .into_iter()
        .flatten()
    {
        let _ = writeln!(out, "### {name}\n");
        let description = text(&schema["description"]);
        if !description.is_empty() {
            let _ = writeln!(out, "{description}\n");
        }
        let required: Vec<&str> = schema["required"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let _ = writeln!(
            out,
            "| field | type | required | meaning |\n|---|---|---|---|"
        );
        for (field, f) in schema["properties"].as_object().into_iter().flatten() {
            let _ = writeln!(
                out,
                "| `{field}` | {} | {} | {} |",
                schema_name(f),
                if required.contains(&field.as_str()) {
                    "yes"
                } else {
                    "no"
                },
                text(&f["description"])
                    .replace('|', "\\|")
                    .replace('\n', " ")
            );
        }
        let _ = writeln!(out);
    }
    out
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().trim().to_string()
}

/// A schema as a short type: a `$ref`'s name, `array of X`, or its `type`.
fn schema_name(s: &Value) -> String {
    if let Some(r) = s["$ref"].as_str() {
        return format!(
            "[{0}](#{1})",
            r.rsplit('/').next().unwrap_or(r),
            r.rsplit('/').next().unwrap_or(r).to_lowercase()
        );
    }
    if let Some(all) = s["oneOf"].as_array().or_else(|| s["anyOf"].as_array()) {
        return all.iter().map(schema_name).collect::<Vec<_>>().join(" or ");
    }
    match &s["type"] {
        Value::String(t) if t == "array" => format!("array of {}", schema_name(&s["items"])),
        Value::String(t) => t.clone(),
        Value::Array(ts) => ts
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" or "),
        _ => "any".to_string(),
    }
}
