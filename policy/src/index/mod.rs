//! A policy index keyed on the policy scope, so that a request evaluates only
//! the policies whose scope can match it.
//!
//! Cedar evaluates a policy as `principal && action && resource && conditions`
//! with `&&` short-circuiting, and a scope constraint (`==`, `in`, `is`)
//! never errors: a policy whose scope does not match a request is false and
//! silent. So evaluating only the policies whose scope matches gives exactly
//! the response of evaluating them all: the same decision, the same
//! determining policies and the same errors.
//!
//! At load every policy goes into one bucket per distinct scope (principal
//! constraint, action constraint, resource constraint), and each bucket is a
//! Cedar [`PolicySet`] of its own. Every policy of a bucket has the same
//! scope, so for a request a bucket either matches as a whole or not at all.
//! A request finds its buckets through three nested maps: from the principal
//! (`==` itself, `in` itself or an ancestor, `is` its type, `is .. in`, or no
//! constraint), then the action, then the resource, with the ancestors taken
//! from the same [`Entities`] Cedar evaluates against, so `in` through the
//! hierarchy matches exactly when Cedar's `in` does. Each matching bucket is
//! evaluated and the answers merged as Cedar merges policies: any satisfied
//! forbid denies, else any satisfied permit allows, else the default deny.

use std::hash::Hash;
use std::sync::{Arc, RwLock};

use rustc_hash::FxHashMap as HashMap;

use cedar_policy::{
    ActionConstraint, AuthorizationError, Authorizer, Decision, Entities, EntityTypeName,
    EntityUid, Policy, PolicyId, PolicySet, PrincipalConstraint, Request, ResourceConstraint,
};

/// The scope constraint on a principal or a resource.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum EntityScope {
    Any,
    Eq(EntityUid),
    In(EntityUid),
    Is(EntityTypeName),
    IsIn(EntityTypeName, EntityUid),
}

impl From<PrincipalConstraint> for EntityScope {
    fn from(c: PrincipalConstraint) -> Self {
        match c {
            PrincipalConstraint::Any => EntityScope::Any,
            PrincipalConstraint::Eq(e) => EntityScope::Eq(e),
            PrincipalConstraint::In(e) => EntityScope::In(e),
            PrincipalConstraint::Is(t) => EntityScope::Is(t),
            PrincipalConstraint::IsIn(t, e) => EntityScope::IsIn(t, e),
        }
    }
}

impl From<ResourceConstraint> for EntityScope {
    fn from(c: ResourceConstraint) -> Self {
        match c {
            ResourceConstraint::Any => EntityScope::Any,
            ResourceConstraint::Eq(e) => EntityScope::Eq(e),
            ResourceConstraint::In(e) => EntityScope::In(e),
            ResourceConstraint::Is(t) => EntityScope::Is(t),
            ResourceConstraint::IsIn(t, e) => EntityScope::IsIn(t, e),
        }
    }
}

/// The scope constraint on an action. `in [A]` is kept as `in A`; a list of
/// several stays a list, matched by testing its members.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum ActionScope {
    Any,
    Eq(EntityUid),
    In(EntityUid),
    InAny(Vec<EntityUid>),
}

impl From<ActionConstraint> for ActionScope {
    fn from(c: ActionConstraint) -> Self {
        match c {
            ActionConstraint::Any => ActionScope::Any,
            ActionConstraint::Eq(e) => ActionScope::Eq(e),
            ActionConstraint::In(mut list) if list.len() == 1 => match list.pop() {
                Some(e) => ActionScope::In(e),
                None => ActionScope::InAny(list),
            },
            ActionConstraint::In(mut list) => {
                list.sort_by_key(ToString::to_string);
                list.dedup();
                ActionScope::InAny(list)
            }
        }
    }
}

/// Values keyed by a principal or resource scope, looked up without building
/// a key per request.
#[derive(Debug)]
struct EntityScopeMap<T> {
    any: Option<T>,
    eq: HashMap<EntityUid, T>,
    is_in_entity: HashMap<EntityUid, T>,
    is: HashMap<EntityTypeName, T>,
    is_typed_in: HashMap<EntityTypeName, HashMap<EntityUid, T>>,
}

impl<T: Default> EntityScopeMap<T> {
    fn entry(&mut self, scope: EntityScope) -> &mut T {
        match scope {
            EntityScope::Any => self.any.get_or_insert_with(T::default),
            EntityScope::Eq(e) => self.eq.entry(e).or_default(),
            EntityScope::In(e) => self.is_in_entity.entry(e).or_default(),
            EntityScope::Is(t) => self.is.entry(t).or_default(),
            EntityScope::IsIn(t, e) => self.is_typed_in.entry(t).or_default().entry(e).or_default(),
        }
    }
}

impl<T> Default for EntityScopeMap<T> {
    fn default() -> Self {
        EntityScopeMap {
            any: None,
            eq: HashMap::default(),
            is_in_entity: HashMap::default(),
            is: HashMap::default(),
            is_typed_in: HashMap::default(),
        }
    }
}

impl<T> EntityScopeMap<T> {
    /// Every value whose scope `uid` (with `ancestors`, all of them) matches.
    fn matching<'a>(
        &'a self,
        uid: &EntityUid,
        ancestors: &[&EntityUid],
        mut found: impl FnMut(&'a T),
    ) {
        if let Some(t) = &self.any {
            found(t);
        }
        if let Some(t) = self.eq.get(uid) {
            found(t);
        }
        if !self.is_in_entity.is_empty() {
            in_hierarchy(&self.is_in_entity, uid, ancestors, &mut found);
        }
        if let Some(t) = self.is.get(uid.type_name()) {
            found(t);
        }
        if let Some(by_entity) = self.is_typed_in.get(uid.type_name()) {
            in_hierarchy(by_entity, uid, ancestors, &mut found);
        }
    }

    #[cfg(test)]
    fn values(&self) -> impl Iterator<Item = &T> {
        self.any
            .iter()
            .chain(self.eq.values())
            .chain(self.is_in_entity.values())
            .chain(self.is.values())
            .chain(self.is_typed_in.values().flat_map(HashMap::values))
    }
}

/// The values keyed by `uid` itself or one of its ancestors: what `uid in E`
/// is true for.
fn in_hierarchy<'a, T>(
    by_entity: &'a HashMap<EntityUid, T>,
    uid: &EntityUid,
    ancestors: &[&EntityUid],
    found: &mut impl FnMut(&'a T),
) {
    if let Some(t) = by_entity.get(uid) {
        found(t);
    }
    for a in ancestors {
        // An entity is never its own ancestor in a valid hierarchy; were it
        // listed, the `uid` lookup above already found its bucket.
        if *a != uid
            && let Some(t) = by_entity.get(*a)
        {
            found(t);
        }
    }
}

/// Values keyed by an action scope.
#[derive(Debug)]
struct ActionScopeMap<T> {
    any: Option<T>,
    eq: HashMap<EntityUid, T>,
    is_in: HashMap<EntityUid, T>,
    in_any: Vec<(Vec<EntityUid>, T)>,
    /// For each action named in a list of `in_any`, the lists naming it.
    in_any_by_member: HashMap<EntityUid, Vec<usize>>,
}

impl<T> Default for ActionScopeMap<T> {
    fn default() -> Self {
        ActionScopeMap {
            any: None,
            eq: HashMap::default(),
            is_in: HashMap::default(),
            in_any: Vec::new(),
            in_any_by_member: HashMap::default(),
        }
    }
}

impl<T: Default> ActionScopeMap<T> {
    fn entry(&mut self, scope: ActionScope) -> &mut T {
        match scope {
            ActionScope::Any => self.any.get_or_insert_with(T::default),
            ActionScope::Eq(e) => self.eq.entry(e).or_default(),
            ActionScope::In(e) => self.is_in.entry(e).or_default(),
            ActionScope::InAny(list) => {
                let at = match self.in_any.iter().position(|(l, _)| *l == list) {
                    Some(at) => at,
                    None => {
                        let at = self.in_any.len();
                        for member in &list {
                            self.in_any_by_member
                                .entry(member.clone())
                                .or_default()
                                .push(at);
                        }
                        self.in_any.push((list, T::default()));
                        at
                    }
                };
                &mut self.in_any[at].1
            }
        }
    }
}

impl<T> ActionScopeMap<T> {
    fn matching<'a>(
        &'a self,
        uid: &EntityUid,
        ancestors: &[&EntityUid],
        mut found: impl FnMut(&'a T),
    ) {
        if let Some(t) = &self.any {
            found(t);
        }
        if let Some(t) = self.eq.get(uid) {
            found(t);
        }
        if !self.is_in.is_empty() {
            in_hierarchy(&self.is_in, uid, ancestors, &mut found);
        }
        if !self.in_any.is_empty() {
            // A list matches once, however many of its members do.
            let mut lists: Vec<usize> = std::iter::once(uid)
                .chain(ancestors.iter().copied())
                .filter_map(|member| self.in_any_by_member.get(member))
                .flatten()
                .copied()
                .collect();
            lists.sort_unstable();
            lists.dedup();
            for at in lists {
                if let Some((_, t)) = self.in_any.get(at) {
                    found(t);
                }
            }
        }
    }

    #[cfg(test)]
    fn values(&self) -> impl Iterator<Item = &T> {
        self.any
            .iter()
            .chain(self.eq.values())
            .chain(self.is_in.values())
            .chain(self.in_any.iter().map(|(_, t)| t))
    }
}

/// Principal, then action, then resource, then the bucket.
type Scopes = EntityScopeMap<ActionScopeMap<EntityScopeMap<Option<usize>>>>;

/// Merged sets remembered, at most; requests matching other combinations of
/// buckets evaluate bucket by bucket.
const MERGED_SETS: usize = 1024;

/// The policy set split into buckets by scope, built once per policy set.
#[derive(Debug)]
pub struct PolicyIndex {
    scopes: Scopes,
    buckets: Vec<PolicySet>,
    /// For a combination of buckets that requests keep matching together,
    /// their policies in one set: one Cedar evaluation instead of one per
    /// bucket. Built on first use, as requests show which combinations occur.
    merged: RwLock<HashMap<Box<[usize]>, Arc<PolicySet>>>,
    authorizer: Authorizer,
}

/// Cedar's answer for one request, as full evaluation gives it.
#[derive(Debug, Clone)]
pub struct IndexedResponse {
    /// Allow or deny.
    pub decision: Decision,
    /// The satisfied forbids for a deny, the satisfied permits for an allow;
    /// empty for a default deny. Sorted by id.
    pub reasons: Vec<PolicyId>,
    /// The policies that failed to evaluate, in bucket order.
    pub errors: Vec<AuthorizationError>,
}

/// A policy set the index cannot split.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot index policy `{policy}`: {reason}")]
pub struct IndexError {
    /// The policy.
    pub policy: String,
    /// Why.
    pub reason: String,
}

impl PolicyIndex {
    /// Splits `set` into buckets by scope. Template-linked policies cannot be
    /// moved into a set without their template, so a set with templates is an
    /// error; [`PolicyIndex::whole`] evaluates such a set in one piece.
    pub fn new(set: &PolicySet) -> Result<PolicyIndex, IndexError> {
        if let Some(t) = set.templates().next() {
            return Err(IndexError {
                policy: t.id().to_string(),
                reason: "templates are not indexed".into(),
            });
        }
        let mut scopes = Scopes::default();
        let mut buckets: Vec<PolicySet> = Vec::new();
        for policy in set.policies() {
            let slot = scopes
                .entry(policy.principal_constraint().into())
                .entry(policy.action_constraint().into())
                .entry(policy.resource_constraint().into());
            let at = *slot.get_or_insert_with(|| {
                buckets.push(PolicySet::new());
                buckets.len() - 1
            });
            add(&mut buckets[at], policy)?;
        }
        Ok(PolicyIndex {
            scopes,
            buckets,
            merged: RwLock::new(HashMap::default()),
            authorizer: Authorizer::new(),
        })
    }

    /// No index: one bucket that every request evaluates in full.
    pub fn whole(set: &PolicySet) -> PolicyIndex {
        let mut scopes = Scopes::default();
        *scopes
            .entry(EntityScope::Any)
            .entry(ActionScope::Any)
            .entry(EntityScope::Any) = Some(0);
        PolicyIndex {
            scopes,
            buckets: vec![set.clone()],
            merged: RwLock::new(HashMap::default()),
            authorizer: Authorizer::new(),
        }
    }

    /// How many buckets the policies fall into.
    pub fn buckets(&self) -> usize {
        self.buckets.len()
    }

    /// The buckets whose scope `request` matches, in a stable order.
    fn candidates(&self, request: &Request, entities: &Entities, out: &mut Vec<usize>) {
        let (Some(principal), Some(action), Some(resource)) =
            (request.principal(), request.action(), request.resource())
        else {
            // A request with an unknown part is partial evaluation, which the
            // index does not serve: evaluate everything.
            out.extend(0..self.buckets.len());
            return;
        };
        let ancestors_of = |uid: &EntityUid| -> Vec<&EntityUid> {
            entities
                .ancestors(uid)
                .map(Iterator::collect)
                .unwrap_or_default()
        };
        let principal_up = ancestors_of(principal);
        let action_up = ancestors_of(action);
        let resource_up = ancestors_of(resource);
        self.scopes.matching(principal, &principal_up, |actions| {
            actions.matching(action, &action_up, |resources| {
                resources.matching(resource, &resource_up, |bucket| {
                    if let Some(at) = bucket {
                        out.push(*at);
                    }
                });
            });
        });
    }

    /// Evaluates `request` against the policies whose scope matches it.
    pub fn is_authorized(&self, request: &Request, entities: &Entities) -> IndexedResponse {
        let mut candidates = Vec::with_capacity(8);
        self.candidates(request, entities, &mut candidates);
        candidates.sort_unstable();
        candidates.dedup();
        let merged;
        let single: Option<&PolicySet> = match candidates.as_slice() {
            [] => None,
            [one] => self.buckets.get(*one),
            several => {
                merged = self.merged(several);
                merged.as_deref()
            }
        };
        if let Some(set) = single {
            return response(self.authorizer.is_authorized(request, set, entities));
        }
        let mut forbids: Vec<PolicyId> = Vec::new();
        let mut permits: Vec<PolicyId> = Vec::new();
        let mut errors: Vec<AuthorizationError> = Vec::new();
        for at in candidates {
            let Some(bucket) = self.buckets.get(at) else {
                continue;
            };
            let response = self.authorizer.is_authorized(request, bucket, entities);
            let diagnostics = response.diagnostics();
            errors.extend(diagnostics.errors().cloned());
            // A bucket that denies with reasons names its satisfied forbids;
            // one that allows names its satisfied permits (and has no
            // satisfied forbid). Its satisfied permits next to a forbid are
            // not reported, and need not be: the forbid decides.
            match response.decision() {
                Decision::Deny => forbids.extend(diagnostics.reason().cloned()),
                Decision::Allow => permits.extend(diagnostics.reason().cloned()),
            }
        }
        let (decision, mut reasons) = if !forbids.is_empty() {
            (Decision::Deny, forbids)
        } else if !permits.is_empty() {
            (Decision::Allow, permits)
        } else {
            (Decision::Deny, Vec::new())
        };
        sort(&mut reasons);
        IndexedResponse {
            decision,
            reasons,
            errors,
        }
    }

    /// The policies of `buckets` in one set, remembered; `None` once
    /// [`MERGED_SETS`] combinations are remembered and this is not one.
    fn merged(&self, buckets: &[usize]) -> Option<Arc<PolicySet>> {
        if let Some(set) = self.merged.read().ok()?.get(buckets) {
            return Some(Arc::clone(set));
        }
        let mut merged = self.merged.write().ok()?;
        if merged.len() >= MERGED_SETS {
            return None;
        }
        let mut set = PolicySet::new();
        for at in buckets {
            for policy in self.buckets.get(*at)?.policies() {
                set.add(policy.clone()).ok()?;
            }
        }
        let set = Arc::new(set);
        merged.insert(buckets.into(), Arc::clone(&set));
        Some(set)
    }

    /// Every bucket, for tests: each policy is in exactly one.
    #[cfg(test)]
    fn bucket_count_by_scope(&self) -> usize {
        self.scopes
            .values()
            .flat_map(ActionScopeMap::values)
            .flat_map(EntityScopeMap::values)
            .filter(|b| b.is_some())
            .count()
    }
}

fn add(bucket: &mut PolicySet, policy: &Policy) -> Result<(), IndexError> {
    bucket.add(policy.clone()).map_err(|e| IndexError {
        policy: policy.id().to_string(),
        reason: e.to_string(),
    })
}

/// Evaluates `request` against the whole set, as Cedar does, in the shape of
/// [`IndexedResponse`]: what the index must give.
pub fn evaluate_whole(set: &PolicySet, request: &Request, entities: &Entities) -> IndexedResponse {
    response(Authorizer::new().is_authorized(request, set, entities))
}

fn response(response: cedar_policy::Response) -> IndexedResponse {
    let mut reasons: Vec<PolicyId> = response.diagnostics().reason().cloned().collect();
    sort(&mut reasons);
    IndexedResponse {
        decision: response.decision(),
        reasons,
        errors: response.diagnostics().errors().cloned().collect(),
    }
}

fn sort(ids: &mut [PolicyId]) {
    ids.sort_unstable_by(|a, b| AsRef::<str>::as_ref(a).cmp(b.as_ref()));
}

#[cfg(test)]
mod tests;
