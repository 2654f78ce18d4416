//! Scripted mock Anthropic Messages API.
