//! Step 1: the tool the agent named. An unknown name is refused and
//! recorded in its bounded, escaped form only.

use std::sync::Arc;

use serde_json::Value;

use super::admit::{Refusal, arguments_too_large};
use crate::pipeline::SessionGuard;
use crate::pipeline::bounded;
use crate::pipeline::call_error::ToolCallError;
use crate::pipeline::record::{ActionKind, ActionRecord, DecidedBy};
use crate::pipeline::screening::Refused;
use crate::pipeline::tools::{Door, RegisteredTool};

impl SessionGuard {
    /// The registered tool `tool_name`, or the refusal to record: the
    /// action record of an unknown tool, with its arguments as given (or
    /// their size and digest when too large to record).
    pub(super) fn look_up(
        &self,
        tool_name: &str,
        arguments: &str,
    ) -> Result<Arc<RegisteredTool>, Box<Refusal>> {
        // A name outside the registered-name alphabet is no tool's: only
        // its bounded, escaped form is recorded or told back.
        // The HTTP door's action is no tool: `tools.call` cannot reach it.
        let tool = match bounded::is_tool_name(tool_name) {
            true => self
                .inner
                .tools
                .get(tool_name)
                .filter(|t| t.door() == Door::Tool)
                .cloned(),
            false => None,
        };
        if let Some(tool) = tool {
            return Ok(tool);
        }
        let (shown, tool_truncated) = bounded::tool_name(tool_name);
        let mut action = ActionRecord {
            kind: ActionKind::ToolCall,
            tool: shown.clone(),
            tool_truncated,
            scope: None,
            arguments: serde_json::from_str(arguments)
                .unwrap_or_else(|_| Value::String(arguments.to_string())),
            resource: None,
        };
        let err = match arguments_too_large(&mut action, arguments) {
            Some(err) => err,
            None => ToolCallError::UnknownTool(shown),
        };
        let refused = Refused {
            decided_by: DecidedBy::UnknownTool,
            err,
            resource: None,
        };
        Err(Box::new(Refusal { action, refused }))
    }
}
