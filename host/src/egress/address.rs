//! Where a request may connect: the host resolves names itself and refuses
//! any address that is not on the public internet (loopback, private,
//! link-local with the cloud metadata service at 169.254.169.254, and the
//! like) unless the operator allowed that destination. The connection goes
//! to the addresses checked here, so a name cannot resolve one way for the
//! check and another for the connection.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// What kind of address `ip` is, when it is not a public one: the words an
/// error says it with.
pub(crate) fn non_public(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => non_public_v4(v4),
        IpAddr::V6(v6) => {
            // An IPv4 address written as IPv6 is that IPv4 address.
            if let Some(v4) = v6.to_ipv4_mapped() {
                return non_public_v4(v4);
            }
            non_public_v6(v6)
        }
    }
}

fn non_public_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    if ip.is_loopback() {
        Some("a loopback address")
    } else if ip.is_private() {
        Some("a private address")
    } else if ip.is_link_local() {
        Some("a link-local address (cloud metadata lives there)")
    } else if ip.is_unspecified() || a == 0 {
        Some("an unspecified address")
    } else if ip.is_broadcast() || ip.is_multicast() {
        Some("a broadcast or multicast address")
    } else if a == 100 && (64..128).contains(&b) {
        Some("a shared (carrier-grade NAT) address")
    } else if a == 192 && b == 0 && ip.octets()[2] == 0 {
        Some("an IETF protocol address")
    } else if a >= 240 {
        Some("a reserved address")
    } else if ip.is_documentation() || (a == 198 && (b == 18 || b == 19)) {
        Some("a documentation or benchmarking address")
    } else {
        None
    }
}

fn non_public_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let first = ip.segments()[0];
    if ip.is_loopback() {
        Some("a loopback address")
    } else if ip.is_unspecified() {
        Some("an unspecified address")
    } else if first & 0xfe00 == 0xfc00 {
        Some("a private (unique local) address")
    } else if first & 0xffc0 == 0xfe80 {
        Some("a link-local address")
    } else if ip.is_multicast() {
        Some("a multicast address")
    } else if first == 0x2001 && ip.segments()[1] == 0x0db8 {
        Some("a documentation address")
    } else if first == 0x0064 && ip.segments()[1] == 0xff9b {
        // NAT64 can reach any IPv4 address, private ones included.
        Some("a NAT64 address")
    } else {
        None
    }
}

/// Why a destination cannot be connected to.
pub(crate) fn refusal(host: &str, ip: IpAddr, what: &str) -> String {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if bare.parse::<IpAddr>().is_ok() {
        format!(
            "destination refused: {ip} is {what}; allow it with `allow_private = true` on its egress destination"
        )
    } else {
        format!(
            "destination refused: `{host}` resolves to {ip}, {what}; allow it with `allow_private = true` on its egress destination"
        )
    }
}

/// reqwest's resolver for the HTTP door: names resolve through the system
/// resolver, and a name with any non-public address is refused unless its
/// destination allows private addresses.
#[derive(Debug, Clone)]
pub(crate) struct CheckedResolver {
    /// Host names (lowercase) whose destination allows private addresses.
    pub(crate) allow_private: Arc<HashSet<String>>,
}

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_ascii_lowercase();
        let allowed = self.allow_private.contains(&host);
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|e| format!("cannot resolve `{host}`: {e}"))?
                .collect();
            if addrs.is_empty() {
                return Err(format!("`{host}` has no address").into());
            }
            if !allowed {
                // One private address refuses the name: trying only its
                // public addresses would still let the name's owner pick.
                for addr in &addrs {
                    if let Some(what) = non_public(addr.ip()) {
                        return Err(refusal(&host, addr.ip(), what).into());
                    }
                }
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(text: &str) -> Option<&'static str> {
        non_public(text.parse().unwrap())
    }

    #[test]
    fn metadata_loopback_and_private_addresses_are_not_public() {
        for ip in [
            "169.254.169.254",
            "127.0.0.1",
            "127.8.9.10",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "0.0.0.0",
            "100.64.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:169.254.169.254",
            "::ffff:127.0.0.1",
            "64:ff9b::a9fe:a9fe",
        ] {
            assert!(kind(ip).is_some(), "{ip} passed as public");
        }
        assert_eq!(
            kind("169.254.169.254"),
            Some("a link-local address (cloud metadata lives there)")
        );
    }

    #[test]
    fn public_addresses_pass() {
        for ip in [
            "1.1.1.1",
            "93.184.216.34",
            "2606:4700:4700::1111",
            "172.32.0.1",
        ] {
            assert_eq!(kind(ip), None, "{ip} refused");
        }
    }

    #[tokio::test]
    async fn a_name_that_resolves_to_loopback_is_refused_unless_allowed() {
        let refusing = CheckedResolver {
            allow_private: Arc::new(HashSet::new()),
        };
        let name: Name = "localhost".parse().unwrap();
        let err = refusing.resolve(name).await.err().unwrap().to_string();
        assert!(
            err.starts_with("destination refused: `localhost` resolves to"),
            "{err}"
        );
        assert!(err.contains("a loopback address"), "{err}");

        let allowing = CheckedResolver {
            allow_private: Arc::new(HashSet::from(["localhost".to_string()])),
        };
        let name: Name = "localhost".parse().unwrap();
        let addrs: Vec<_> = allowing.resolve(name).await.unwrap().collect();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
    }
}
