//! Outgoing HTTP for agents, the guard's second door: where requests may go
//! and how the host sends them once the guard has decided and recorded
//! them.
//!
//! - **Keys stay with the host.** An operator declares destinations; one
//!   with a credential gets it added by the host to every request sent to
//!   it. The key is read once, when the host starts, and never reaches the
//!   agent, a record or an error.
//! - **No way around the policy.** Redirects are not followed (the agent
//!   gets the 3xx; following it is a new request and a new decision), names
//!   are resolved by the host and the connection goes to the addresses it
//!   checked ([`address`]), and no proxy from the environment is used.
//! - **Bounded.** Request and response sizes, the time to the first byte
//!   and the whole exchange ([`HttpLimits`]).

mod address;
mod send;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use http::{HeaderName, HeaderValue};

pub(crate) use address::{non_public, refusal};
pub(crate) use send::Outgoing;
pub use send::{Exchange, SendFailure};

use crate::limits::HttpLimits;
use crate::tools::Credential;

/// A destination the operator declares: the host adds its credential to
/// every request sent to it, and may let it be a private address.
#[derive(Debug, Clone)]
pub struct Destination {
    /// The host name or address requests go to, as the URL names it
    /// (compared without case).
    pub host: String,
    /// The credential the host adds to its requests.
    pub credential: Option<DestinationCredential>,
    /// Whether it may resolve to a loopback, private or link-local address.
    pub allow_private: bool,
}

/// A credential the host adds to a destination's requests.
#[derive(Debug, Clone)]
pub struct DestinationCredential {
    /// The header it goes in: `authorization` (sent as `Bearer <key>`) or
    /// another (`x-api-key`, sent as the key itself).
    pub header: HeaderName,
    /// Where the host reads the key, once, at start.
    pub source: Credential,
}

/// Why the HTTP door cannot be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EgressError {
    /// A destination is declared twice.
    #[error("egress destination `{0}` is declared twice")]
    Duplicate(String),
    /// A destination's credential cannot be read.
    #[error("egress destination `{host}`: {why}")]
    Credential {
        /// The destination.
        host: String,
        /// Why (never the key itself).
        why: String,
    },
    /// The HTTP client cannot be built (its TLS set-up failed).
    #[error("cannot build the http client: {0}")]
    Client(String),
}

/// A destination with its key read.
#[derive(Debug)]
struct Prepared {
    /// The header and its value, marked sensitive so that no debug output
    /// shows it.
    credential: Option<(HeaderName, HeaderValue)>,
    allow_private: bool,
}

/// The HTTP door's destinations, limits and client, prepared once per host.
#[derive(Debug)]
pub struct Egress {
    destinations: HashMap<String, Prepared>,
    limits: HttpLimits,
    client: reqwest::Client,
}

impl Egress {
    /// Reads each destination's key and builds the client.
    pub fn new(destinations: Vec<Destination>, limits: HttpLimits) -> Result<Egress, EgressError> {
        let mut prepared = HashMap::new();
        for destination in destinations {
            let host = destination.host.to_ascii_lowercase();
            let credential = match &destination.credential {
                None => None,
                Some(credential) => {
                    let key = credential
                        .source
                        .read()
                        .map_err(|why| EgressError::Credential {
                            host: host.clone(),
                            why,
                        })?;
                    let text = if credential.header == http::header::AUTHORIZATION {
                        format!("Bearer {key}")
                    } else {
                        key
                    };
                    let mut value =
                        HeaderValue::from_str(&text).map_err(|_| EgressError::Credential {
                            host: host.clone(),
                            why: "its credential is not a valid header value (a control character or a line break?)".into(),
                        })?;
                    value.set_sensitive(true);
                    Some((credential.header.clone(), value))
                }
            };
            let entry = Prepared {
                credential,
                allow_private: destination.allow_private,
            };
            if prepared.insert(host.clone(), entry).is_some() {
                return Err(EgressError::Duplicate(host));
            }
        }
        let allow_private: HashSet<String> = prepared
            .iter()
            .filter(|(_, d)| d.allow_private)
            .map(|(host, _)| host.clone())
            .collect();
        let client = reqwest::Client::builder()
            // The guard decides every hop itself.
            .redirect(reqwest::redirect::Policy::none())
            // A proxy from the environment would be a way around the
            // address check.
            .no_proxy()
            .dns_resolver(address::CheckedResolver {
                allow_private: Arc::new(allow_private),
            })
            .connect_timeout(limits.first_byte)
            .build()
            .map_err(|e| EgressError::Client(e.to_string()))?;
        Ok(Egress {
            destinations: prepared,
            limits,
            client,
        })
    }

    /// No destinations: every request is decided by policy, sent without a
    /// credential, and only to public addresses.
    pub fn closed() -> Result<Egress, EgressError> {
        Egress::new(Vec::new(), HttpLimits::default())
    }

    /// The limits of every request and session.
    pub fn limits(&self) -> &HttpLimits {
        &self.limits
    }

    /// The header the host adds for `host`, if it holds a key for it: the
    /// agent may not set that header itself.
    pub fn credential_header(&self, host: &str) -> Option<&HeaderName> {
        self.destinations
            .get(host)
            .and_then(|d| d.credential.as_ref())
            .map(|(name, _)| name)
    }

    /// Whether requests to `host` may go to private addresses.
    pub(crate) fn allows_private(&self, host: &str) -> bool {
        self.destinations.get(host).is_some_and(|d| d.allow_private)
    }

    /// The credential the host adds for `host`.
    pub(crate) fn credential(&self, host: &str) -> Option<&(HeaderName, HeaderValue)> {
        self.destinations
            .get(host)
            .and_then(|d| d.credential.as_ref())
    }
}
