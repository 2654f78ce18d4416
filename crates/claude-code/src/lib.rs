//! Typed async SDK for Claude Code.
