//! The hosting layer: many sessions kept alive and shared. Built on the SDK (`Session`,
//! `Options`, telemetry) and never used by it.
//!
//! - [`supervisor`]: OTP-style supervision of named and dynamic sessions, restarts that
//!   resume the conversation, health monitoring, hibernation;
//! - [`pool`]: requests spread over supervised sessions with back-pressure;
//! - [`spares`]: pre-initialised sessions for one request each;
//! - [`admission`]: host-wide limits on live CLIs, spawns and memory;
//! - [`cost`]: cost per turn, session and supervisor, with budgets.

pub mod admission;
pub mod cost;
mod error;
pub mod pool;
pub mod spares;
pub mod supervisor;
