//! A program as a tool: run once per call without a shell, the arguments as
//! JSON on its stdin, its result as JSON on its stdout, with a minimal
//! environment, bounded output, and killed when the call's timeout passes.

use std::process::Stdio;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::manifest::{ProgramEntry, minimal_environment};
use crate::pipeline::bounded;
use crate::pipeline::{BoxFuture, DynamicTool, ToolContext, ToolFailure};

/// Bytes of a failed program's stderr quoted in the failure.
const STDERR_BYTES: usize = 4096;

/// A program tool.
pub struct ProgramTool {
    /// The tool's name, for messages.
    pub name: String,
    /// How to run it.
    pub entry: ProgramEntry,
}

impl DynamicTool for ProgramTool {
    fn run(&self, ctx: ToolContext, args: Value) -> BoxFuture<'_, Result<Value, ToolFailure>> {
        Box::pin(async move {
            self.run_program(&ctx, &args)
                .await
                .map_err(|why| ToolFailure(format!("program `{}`: {why}", self.name)))
        })
    }
}

impl ProgramTool {
    async fn run_program(&self, ctx: &ToolContext, args: &Value) -> Result<Value, String> {
        let entry = &self.entry;
        let mut command = tokio::process::Command::new(&entry.command);
        command
            .args(&entry.args)
            .current_dir(&entry.dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // The call's timeout drops this future: the program goes with it.
            .kill_on_drop(true);
        minimal_environment(&mut command, &entry.env);
        // Who it works for, so that it can check or log it itself.
        command
            .env("MANDATE_SESSION_ID", &ctx.session_id)
            .env("MANDATE_CALL_ID", &ctx.call_id)
            .env("MANDATE_USER_ID", &ctx.user_id);
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot start `{}`: {e}", entry.command.display()))?;
        let input = serde_json::to_vec(args).map_err(|e| e.to_string())?;
        let mut stdin = child.stdin.take().ok_or("its stdin is not a pipe")?;
        let mut stdout = child.stdout.take().ok_or("its stdout is not a pipe")?;
        let mut stderr = child.stderr.take().ok_or("its stderr is not a pipe")?;
        let limit = entry.max_output_bytes;
        // Its stderr is read on the side, keeping the first bytes, so that a
        // chatty program never blocks on a full pipe.
        let err_reader = tokio::spawn(async move {
            let mut kept = Vec::new();
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                let room = STDERR_BYTES.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
            kept
        });
        // Read at most one byte past the limit: enough to know it was passed.
        let read_out = async {
            let mut out = Vec::new();
            (&mut stdout)
                .take(limit as u64 + 1)
                .read_to_end(&mut out)
                .await
                .map(|_| out)
        };
        let write_in = async {
            // A program that exits without reading its input is not an error
            // here; its exit status says how it went.
            let _ = stdin.write_all(&input).await;
            drop(stdin);
        };
        let ((), out) = tokio::join!(write_in, read_out);
        let out = out.map_err(|e| format!("cannot read its output: {e}"))?;
        if out.len() > limit {
            // It is still writing; nothing it says now is used.
            let _ = child.start_kill();
            let _ = child.wait().await;
            return Err(format!(
                "its output passed this tool's limit of {limit} bytes (`max_output_bytes` in the manifest)"
            ));
        }
        let status = child
            .wait()
            .await
            .map_err(|e| format!("cannot wait for it: {e}"))?;
        let err = err_reader.await.unwrap_or_default();
        if !status.success() {
            let (said, _) = bounded::text(String::from_utf8_lossy(&err).trim());
            let said = if said.is_empty() {
                String::new()
            } else {
                format!(": {said}")
            };
            return Err(format!("it failed ({status}){said}"));
        }
        serde_json::from_slice(&out).map_err(|e| format!("its output is not JSON: {e}"))
    }
}
