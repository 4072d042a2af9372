//! Entity references and datetimes in the two notations the call path
//! needs: Cedar's JSON (for records, and for requests rebuilt from them) and
//! the text Cedar's `datetime` extension parses.

use std::str::FromStr;

use cedar_policy::{EntityId, EntityTypeName, EntityUid};
use jiff::Timestamp;
use serde_json::{Value, json};

use super::RequestError;

/// The entity `ty::"id"`; an error names the type Cedar refused.
pub(crate) fn entity_uid(ty: &str, id: &str) -> Result<EntityUid, RequestError> {
    let parsed = EntityTypeName::from_str(ty).map_err(|cause| RequestError::EntityType {
        ty: ty.to_string(),
        cause: Box::new(cause),
    })?;
    Ok(EntityUid::from_type_name_and_id(parsed, EntityId::new(id)))
}

/// [`entity_uid`] with its error as text, for `audit replay`, whose
/// decisions still report `String` errors (it is being rewritten apart;
/// remove this once it takes [`RequestError`]).
pub(crate) fn uid(ty: &str, id: &str) -> Result<EntityUid, String> {
    entity_uid(ty, id).map_err(|e| e.to_string())
}

/// Cedar's datetime wants exactly millisecond precision in UTC.
pub(crate) fn datetime_text(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// A datetime in Cedar JSON, from [`datetime_text`].
pub(crate) fn datetime_json_text(text: &str) -> Value {
    json!({ "__extn": { "fn": "datetime", "arg": text } })
}

/// A datetime in Cedar JSON.
pub(crate) fn datetime_json(t: Timestamp) -> Value {
    datetime_json_text(&datetime_text(t))
}

/// An entity reference in Cedar JSON.
pub(crate) fn entity_json(ty: &str, id: &str) -> Value {
    json!({ "__entity": { "type": ty, "id": id } })
}
