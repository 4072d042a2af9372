//! Where the entities a decision needs come from: the policy directory's
//! `entities.json` by default, or an embedding host's own directory service.

use std::sync::Arc;

use cedar_policy::{Entities, EntityUid};

use super::session::Session;

/// Entities could not be looked up; the call is denied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot look up entities for `{resource}`: {message}")]
pub struct EntityError {
    /// The resource of the call.
    pub resource: String,
    /// Why.
    pub message: String,
}

/// Supplies the entities (users, agents, documents, groups) Cedar evaluates
/// a call against. Implement it to look entities up in the host's own store;
/// an error denies the call.
pub trait EntityProvider: Send + Sync + 'static {
    /// The entities for a call of `session` on `resource`. Called once per
    /// call, so answer from memory or a cache.
    fn entities_for(
        &self,
        session: &Session,
        resource: &EntityUid,
    ) -> Result<Arc<Entities>, EntityError>;
}

/// A fixed set of entities, loaded and validated once.
#[derive(Debug, Clone)]
pub struct StaticEntities(Arc<Entities>);

impl StaticEntities {
    /// Serves `entities` for every call.
    pub fn new(entities: Entities) -> Self {
        StaticEntities(Arc::new(entities))
    }
}

impl EntityProvider for StaticEntities {
    fn entities_for(
        &self,
        _session: &Session,
        _resource: &EntityUid,
    ) -> Result<Arc<Entities>, EntityError> {
        Ok(Arc::clone(&self.0))
    }
}
