//! `agora agent run`: connects a local command to Agora as a worker agent (SPEC §11), over
//! the same plain-HTTP protocol any agent uses (SPEC §3). No public URL is needed.
//!
//! It sends a heartbeat every 45 s and long-polls the inbox. For each task it runs the
//! command with the task (the API's JSON, including `input`) on standard input:
//! - exit 0: standard output is delivered. A JSON object with any of `text`, `output`,
//!   `ui_blocks`, `files` is delivered as those fields; anything else as `text`.
//! - any other exit: the task is failed with the end of standard error as its log.
//!
//! While the command runs, progress reports keep the task's lease alive.

use std::{process::Stdio, time::Duration};

use agora_client::{
    Client,
    types::{DeliverRequest, ProgressRequest, Task},
};
use anyhow::{Context, bail};
use tokio::io::AsyncWriteExt;

/// How the runner is set up.
#[derive(Debug)]
pub struct Runner {
    pub client: Client,
    /// The command and its arguments.
    pub command: Vec<String>,
    /// Seconds each inbox poll waits.
    pub wait: u64,
    /// Stop after this many tasks (for scripts and tests).
    pub max_tasks: Option<u64>,
}

/// Longest standard error kept as a failure log.
const MAX_LOG: usize = 8000;
/// How often a running command's task gets a progress report (leases are minutes long).
const KEEPALIVE: Duration = Duration::from_secs(60);

impl Runner {
    /// Runs until `stop` resolves (finishing the task in hand) or `max_tasks` are done.
    pub async fn run(self, stop: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
        let Some(program) = self.command.first() else { bail!("no command to run") };
        let me = self.client.me().await.context("the agent key was not accepted")?;
        println!("agora agent run: {} ({}) runs `{program}` for each task", me.name, me.id);
        let heartbeat = {
            let client = self.client.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(45));
                loop {
                    tick.tick().await;
                    if let Err(e) = client.heartbeat(false).await {
                        eprintln!("heartbeat failed: {e}");
                    }
                }
            })
        };
        tokio::pin!(stop);
        let mut done = 0u64;
        let result = loop {
            if self.max_tasks.is_some_and(|max| done >= max) {
                break Ok(());
            }
            let task = tokio::select! {
                () = &mut stop => break Ok(()),
                polled = self.client.inbox(self.wait) => match polled {
                    Ok(Some(task)) => task,
                    Ok(None) => continue,
                    Err(e) => {
                        eprintln!("inbox poll failed: {e}; retrying in 5 s");
                        tokio::time::sleep(Duration::from_secs(5)).await;
                        continue;
                    }
                },
            };
            if let Err(e) = self.handle(&task).await {
                eprintln!("task {}: {e:#}", task.id);
            }
            done += 1;
        };
        heartbeat.abort();
        result
    }

    /// Runs the command for one task and reports the outcome.
    async fn handle(&self, task: &Task) -> anyhow::Result<()> {
        println!("task {} ({}): running", task.id, task.kind);
        let outcome = tokio::select! {
            out = self.execute(task) => out,
            out = self.keep_alive(&task.id) => out,
        };
        match outcome {
            Ok(stdout) => {
                let delivered = self.client.deliver(&task.id, &delivery(&stdout)).await?;
                println!("task {}: delivered ({})", task.id, delivered.task.status);
            }
            Err(log) => {
                self.client.fail(&task.id, &log).await?;
                println!("task {}: failed", task.id);
            }
        }
        Ok(())
    }

    /// The command's standard output on success; its error log otherwise.
    async fn execute(&self, task: &Task) -> Result<String, String> {
        let input = serde_json::to_vec(task).map_err(|e| format!("could not encode the task: {e}"))?;
        let mut child = tokio::process::Command::new(&self.command[0])
            .args(&self.command[1..])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("could not start `{}`: {e}", self.command[0]))?;
        if let Some(mut stdin) = child.stdin.take() {
            // A command that does not read its input closes the pipe; that is its business.
            let _ = stdin.write_all(&input).await;
        }
        let out = child.wait_with_output().await.map_err(|e| format!("the command failed to run: {e}"))?;
        if out.status.success() {
            return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
        }
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: String = err.chars().rev().take(MAX_LOG).collect::<Vec<_>>().into_iter().rev().collect();
        let log = format!("{} exited with {}\n{}", self.command[0], out.status, tail.trim());
        Err(log.trim().to_owned())
    }

    /// Reports progress now and then so a long-running command keeps its lease; never ends
    /// (its type is whatever the `select!` beside it wants).
    async fn keep_alive(&self, task_id: &str) -> Result<String, String> {
        let mut tick = tokio::time::interval(KEEPALIVE);
        tick.tick().await;
        loop {
            tick.tick().await;
            let report =
                ProgressRequest { percent: 0, eta_seconds: None, current_step: Some("running".into()) };
            if let Err(e) = self.client.progress(task_id, &report).await {
                eprintln!("task {task_id}: progress report failed: {e}");
            }
        }
    }
}

/// What to deliver for a command's standard output.
fn delivery(stdout: &str) -> DeliverRequest {
    if let Ok(serde_json::Value::Object(fields)) = serde_json::from_str::<serde_json::Value>(stdout)
        && fields.keys().all(|k| matches!(k.as_str(), "text" | "output" | "ui_blocks" | "files"))
        && let Ok(req) = serde_json::from_value::<DeliverRequest>(serde_json::Value::Object(fields))
    {
        return req;
    }
    DeliverRequest { text: Some(stdout.trim().to_owned()), ..Default::default() }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn structured_output_is_delivered_as_fields_and_anything_else_as_text() {
        let d = delivery(r#"{"output": {"haiku": "x"}, "text": "done"}"#);
        assert_eq!((d.text.as_deref(), d.output.unwrap()["haiku"].as_str()), (Some("done"), Some("x")));
        let d = delivery("  plain answer\n");
        assert_eq!(d.text.as_deref(), Some("plain answer"));
        // JSON that is not a delivery is text, as it came.
        let d = delivery(r#"{"answer": 42}"#);
        assert_eq!(d.text.as_deref(), Some(r#"{"answer": 42}"#));
    }
}
