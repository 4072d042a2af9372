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

impl Policies {
    /// Evaluates `request` against the policy set and `entities`.
    pub fn decide(&self, request: &Request, entities: &Entities) -> Decision {
        let response = self.authorizer.is_authorized(request, &self.set, entities);
        let diagnostics = response.diagnostics();
        let errors: Vec<EvaluationError> = diagnostics
            .errors()
            .map(|e| match e {
                cedar_policy::AuthorizationError::PolicyEvaluationError(e) => EvaluationError {
                    policy: e.policy_id().to_string(),
                    message: e.inner().to_string(),
                },
            })
            .collect();
        let mut determining_policies: Vec<DeterminingPolicy> = diagnostics
            .reason()
            .map(|id| DeterminingPolicy {
                id: id.to_string(),
                reason: self.info(id).and_then(|i| i.reason.clone()),
            })
            .collect();
        determining_policies.sort_by(|a, b| a.id.cmp(&b.id));
        let allowed = response.decision() == cedar_policy::Decision::Allow && errors.is_empty();
        Decision {
            effect: if allowed { Effect::Allow } else { Effect::Deny },
            determining_policies,
            errors,
        }
    }
}
