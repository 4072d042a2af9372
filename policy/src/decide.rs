//! One Cedar evaluation and what Mandate keeps of it.

use cedar_policy::{Entities, Request};
use serde::{Deserialize, Serialize};

use super::load::Policies;

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    /// The call may proceed.
    Allow,
    /// The call must not run.
    Deny,
}

/// A policy that determined a decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeterminingPolicy {
    /// The policy's id (`@id`, else `file.cedar:line`).
    pub id: String,
    /// Its `@reason` annotation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// An error Cedar met while evaluating a policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EvaluationError {
    /// The policy that failed to evaluate.
    pub policy: String,
    /// What went wrong.
    pub message: String,
}

/// The outcome of one evaluation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// Allow only when Cedar allows and no policy failed to evaluate.
    pub effect: Effect,
    /// The permits that allowed, or the forbids that denied; empty for a
    /// default deny.
    pub determining_policies: Vec<DeterminingPolicy>,
    /// Evaluation errors. Cedar skips a policy that errors, which could turn a
    /// forbid that failed into an allow; Mandate denies instead (fail closed).
    pub errors: Vec<EvaluationError>,
}

/// Shapes remembered as checked, per policy set; past this, requests of
/// new shapes are checked every time.
const VALIDATED_SHAPES: usize = 4096;

impl Policies {
    /// Checks `request` against the schema: principal and resource types for
    /// the action, and the context's type. What that check sees depends only
    /// on `shape` (the action, the entity types, the context's attribute
    /// names and value types), so each shape is checked by Cedar once and
    /// remembered. The error names attributes and types, never a value
    /// (see [`super::mismatch`]).
    #[doc(hidden)]
    pub fn check_request(
        &self,
        request: &cedar_policy_core::ast::Request,
        shape: String,
    ) -> Result<(), String> {
        if self
            .validated
            .read()
            .is_ok_and(|seen| seen.contains(&shape))
        {
            return Ok(());
        }
        cedar_policy_core::ast::RequestSchema::validate_request(
            self.schema.as_ref(),
            request,
            cedar_policy_core::extensions::Extensions::all_available(),
        )
        // Cedar's message quotes the context, secrets and all.
        .map_err(|e| super::mismatch::describe(&e, self.schema.as_ref(), request))?;
        if let Ok(mut seen) = self.validated.write()
            && seen.len() < VALIDATED_SHAPES
        {
            seen.insert(shape);
        }
        Ok(())
    }

    /// What the agent is told of `decision`, a denial: the policy ids and
    /// their `@reason`s. Only forbids are named: those that applied and
    /// those that failed to evaluate, which deny as if they had applied
    /// (fail closed) and are told the same way, with their own `@reason`,
    /// never Cedar's message. That message names what is missing (`entity
    /// Document::"doc_x" does not exist`), so a document that does not exist
    /// and one the agent may not touch would read differently, and the
    /// agent could probe what exists. The record keeps the message for the
    /// auditor (`decision.errors`). Permits that Cedar found (an allow
    /// overruled by an error) did not deny and are not named; with no forbid
    /// left the denial is the default one.
    pub fn told_to_agent(&self, decision: &Decision) -> (Vec<String>, Vec<String>) {
        let mut policies: Vec<String> = Vec::new();
        let mut reasons: Vec<String> = Vec::new();
        let determined = decision.determining_policies.iter().map(|p| p.id.as_str());
        let failed = decision.errors.iter().map(|e| e.policy.as_str());
        for id in determined.chain(failed) {
            let policy_id = cedar_policy::PolicyId::new(id);
            let forbids = self
                .set
                .policy(&policy_id)
                .is_some_and(|p| p.effect() == cedar_policy::Effect::Forbid);
            if !forbids || policies.iter().any(|p| p == id) {
                continue;
            }
            policies.push(id.to_string());
            reasons.push(
                self.info(&policy_id)
                    .and_then(|i| i.reason.clone())
                    .unwrap_or_default(),
            );
        }
        (policies, reasons)
    }

    /// Evaluates `request` against the policy set and `entities`: only the
    /// policies whose scope matches the request, through the index, which
    /// answers exactly as evaluating them all would.
    pub fn decide(&self, request: &Request, entities: &Entities) -> Decision {
        let response = self.index.is_authorized(request, entities);
        let errors: Vec<EvaluationError> = response
            .errors
            .iter()
            .map(|e| match e {
                cedar_policy::AuthorizationError::PolicyEvaluationError(e) => EvaluationError {
                    policy: e.policy_id().to_string(),
                    message: e.inner().to_string(),
                },
            })
            .collect();
        // The index sorts the determining policies by id.
        let determining_policies: Vec<DeterminingPolicy> = response
            .reasons
            .iter()
            .map(|id| DeterminingPolicy {
                id: AsRef::<str>::as_ref(id).to_owned(),
                reason: self.info(id).and_then(|i| i.reason.clone()),
            })
            .collect();
        let allowed = response.decision == cedar_policy::Decision::Allow && errors.is_empty();
        Decision {
            effect: if allowed { Effect::Allow } else { Effect::Deny },
            determining_policies,
            errors,
        }
    }
}
