//! The HTTP behaviour suite: every test runs against a real server on 127.0.0.1:0, once on
//! SQLite and once on PostgreSQL (a fresh schema per test; see `helpers`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[macro_use]
mod helpers;

mod accounts;
mod agentflow;
mod authz;
mod bounties;
mod chat;
mod conventions;
mod dispatch;
mod hardening;
mod jobs;
mod keys;
mod live;
mod money;
mod ops;
mod rules;
mod services;
mod webhooks;
