//! Outbound webhooks in Herald's own terms: what a tenant's endpoint may be (`WebhookUrl`,
//! `Subscription`), the message types Herald sends, an endpoint's secret, and the
//! signature of the Standard Webhooks specification (v1: HMAC-SHA256 over
//! `{id}.{timestamp}.{body}` with the secret's decoded bytes).

use std::net::IpAddr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use super::{Invalid, ValidationError};

/// The prefix of every endpoint secret, as the specification writes it.
pub const SECRET_PREFIX: &str = "whsec_";
/// Random bytes in a new secret (the specification asks for 24 to 64).
const SECRET_BYTES: usize = 32;
/// The longest endpoint URL.
const MAX_URL_CHARS: usize = 2048;
/// The longest description.
pub const MAX_DESCRIPTION_CHARS: usize = 500;

/// The types of message Herald sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    Test,
    UserOnline,
    UserOffline,
    NotificationUnseen,
}

impl MessageType {
    pub const ALL: [MessageType; 4] = [
        MessageType::Test,
        MessageType::UserOnline,
        MessageType::UserOffline,
        MessageType::NotificationUnseen,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MessageType::Test => "webhook.test",
            MessageType::UserOnline => "user.online",
            MessageType::UserOffline => "user.offline",
            MessageType::NotificationUnseen => "notification.unseen",
        }
    }

    pub fn parse(text: &str) -> Option<MessageType> {
        MessageType::ALL.into_iter().find(|t| t.as_str() == text)
    }
}

/// Which message types an endpoint gets: some, or every one (`["*"]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subscription {
    All,
    Only(Vec<MessageType>),
}

impl Subscription {
    /// Reads an endpoint's `events`: known types, or `"*"` alone.
    pub fn parse(events: &[String]) -> Result<Subscription, ValidationError> {
        let invalid = |message: String| ValidationError::new(Invalid::WebhookEvents, message);
        if events.is_empty() {
            return Err(invalid(
                "`events` names no message type; give some, or [\"*\"] for all".into(),
            ));
        }
        if events.iter().any(|e| e == "*") {
            return match events.len() {
                1 => Ok(Subscription::All),
                _ => Err(invalid("`*` stands alone in `events`".into())),
            };
        }
        let mut types = Vec::with_capacity(events.len());
        for event in events {
            let Some(kind) = MessageType::parse(event) else {
                let known: Vec<&str> = MessageType::ALL.iter().map(|t| t.as_str()).collect();
                return Err(invalid(format!(
                    "`{event}` is no message type Herald sends ({}, or *)",
                    known.join(", ")
                )));
            };
            if !types.contains(&kind) {
                types.push(kind);
            }
        }
        Ok(Subscription::Only(types))
    }

    pub fn includes(&self, kind: MessageType) -> bool {
        match self {
            Subscription::All => true,
            Subscription::Only(types) => types.contains(&kind),
        }
    }

    /// As the API shows it and the store keeps it.
    pub fn names(&self) -> Vec<String> {
        match self {
            Subscription::All => vec!["*".into()],
            Subscription::Only(types) => types.iter().map(|t| t.as_str().to_owned()).collect(),
        }
    }
}

/// Where private targets may be reached: in `local` (and tests) yes, in production no.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Targets {
    PublicOnly,
    AnyAddress,
}

/// An endpoint URL that passed the guard as far as its text can tell: `https` (or `http`
/// where private targets are allowed), a host, and — in production — no host that names a
/// loopback, private, link-local or unspecified address. A name that resolves to one is
/// refused at connect time (`webhooks::sender`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl(url::Url);

impl WebhookUrl {
    pub fn parse(text: &str, targets: Targets) -> Result<WebhookUrl, ValidationError> {
        let invalid = |why: &str| {
            ValidationError::new(
                Invalid::WebhookUrl,
                format!("`url` {why}{}", Self::requirement(targets)),
            )
        };
        if text.chars().count() > MAX_URL_CHARS {
            return Err(invalid(&format!(
                "is longer than {MAX_URL_CHARS} characters"
            )));
        }
        let url = url::Url::parse(text).map_err(|_| invalid("is not an absolute URL"))?;
        match (url.scheme(), targets) {
            ("https", _) | ("http", Targets::AnyAddress) => {}
            _ => return Err(invalid("is not https")),
        }
        let Some(host) = url.host() else {
            return Err(invalid("has no host"));
        };
        if targets == Targets::PublicOnly {
            let refused = match host {
                url::Host::Ipv4(ip) => !is_public(IpAddr::V4(ip)),
                url::Host::Ipv6(ip) => !is_public(IpAddr::V6(ip)),
                url::Host::Domain(name) => {
                    let name = name.trim_end_matches('.').to_ascii_lowercase();
                    name == "localhost" || name.ends_with(".localhost")
                }
            };
            if refused {
                return Err(invalid("names a loopback, private or link-local address"));
            }
        }
        Ok(WebhookUrl(url))
    }

    fn requirement(targets: Targets) -> &'static str {
        match targets {
            Targets::PublicOnly => {
                "; an endpoint is an https URL of a public host (webhooks.allow_private_targets is off)"
            }
            Targets::AnyAddress => "; an endpoint is an http or https URL",
        }
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    pub fn url(&self) -> &url::Url {
        &self.0
    }
}

/// Whether a webhook may be sent to `ip` when private targets are refused.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => {
            !(ip.is_loopback()
                || ip.is_private()
                || ip.is_link_local()
                || ip.is_unspecified()
                || ip.is_broadcast()
                || ip.is_multicast()
                // 100.64.0.0/10: carrier-grade NAT, inside someone's network.
                || (ip.octets()[0] == 100 && (ip.octets()[1] & 0xc0) == 64))
        }
        IpAddr::V6(ip) => {
            if let Some(v4) = ip.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = ip.segments()[0];
            !(ip.is_loopback()
                || ip.is_unspecified()
                || ip.is_multicast()
                // fc00::/7 unique local, fe80::/10 link-local.
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80)
        }
    }
}

/// An endpoint's signing secret: `whsec_` and the base64 of random bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(String);

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(…)")
    }
}

impl WebhookSecret {
    pub fn generate() -> WebhookSecret {
        let mut bytes = [0u8; SECRET_BYTES];
        rand::rng().fill_bytes(&mut bytes);
        WebhookSecret(format!("{SECRET_PREFIX}{}", BASE64.encode(bytes)))
    }

    /// A secret as the store keeps it.
    pub fn from_stored(text: String) -> WebhookSecret {
        WebhookSecret(text)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `v1,<base64 signature>` of one message attempt.
    pub fn sign(&self, message_id: &str, timestamp: i64, body: &[u8]) -> String {
        let encoded = self.0.strip_prefix(SECRET_PREFIX).unwrap_or(&self.0);
        let key = BASE64.decode(encoded).unwrap_or_default();
        // HMAC takes a key of any length.
        let mut mac = match Hmac::<Sha256>::new_from_slice(&key) {
            Ok(mac) => mac,
            Err(_) => unreachable!("HMAC accepts keys of every length"),
        };
        mac.update(message_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
    }
}

/// The `webhook-signature` header: one signature per secret in force, space-separated.
pub fn signature_header(
    secrets: &[&WebhookSecret],
    message_id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    let signatures: Vec<String> = secrets
        .iter()
        .map(|secret| secret.sign(message_id, timestamp, body))
        .collect();
    signatures.join(" ")
}

/// A tenant's endpoint, as the store keeps it.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub id: String,
    pub tenant_id: i64,
    pub url: String,
    pub subscription: Subscription,
    pub description: String,
    pub secret: WebhookSecret,
    /// The secret before the last rotation, and until when it signs too.
    pub previous_secret: Option<(WebhookSecret, i64)>,
    pub created_at: i64,
    pub disabled_at: Option<i64>,
    pub disabled_reason: Option<String>,
}

impl Endpoint {
    /// The secrets that sign a message at `now_ms`: the current one, and the one before a
    /// rotation during its overlap.
    pub fn signing_secrets(&self, now_ms: i64) -> Vec<&WebhookSecret> {
        let mut secrets = vec![&self.secret];
        if let Some((previous, until)) = &self.previous_secret
            && *until > now_ms
        {
            secrets.push(previous);
        }
        secrets
    }
}

/// What a tenant may change of an endpoint; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct EndpointPatch {
    pub url: Option<WebhookUrl>,
    pub subscription: Option<Subscription>,
    pub description: Option<String>,
    /// `Some(false)`: enable again.
    pub disabled: Option<bool>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_the_specifications_example() {
        // The example of the Standard Webhooks specification (its README's "Signature
        // scheme", and the test vectors of its reference libraries).
        let secret = WebhookSecret::from_stored("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into());
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            secret.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn private_targets_are_refused_unless_allowed() {
        for url in [
            "http://example.com/hook",
            "https://127.0.0.1/hook",
            "https://10.1.2.3/hook",
            "https://[::1]/hook",
            "https://[fd00::1]/hook",
            "https://169.254.169.254/latest",
            "https://localhost/hook",
            "https://0.0.0.0/",
            "ftp://example.com/",
            "not a url",
        ] {
            assert!(
                WebhookUrl::parse(url, Targets::PublicOnly).is_err(),
                "{url} was accepted"
            );
        }
        assert!(WebhookUrl::parse("https://hooks.example.com/h", Targets::PublicOnly).is_ok());
        assert!(WebhookUrl::parse("http://127.0.0.1:9/h", Targets::AnyAddress).is_ok());
    }

    #[test]
    fn events_name_known_types_or_star_alone() {
        assert_eq!(
            Subscription::parse(&["*".into()]).ok(),
            Some(Subscription::All)
        );
        assert!(Subscription::parse(&["*".into(), "user.online".into()]).is_err());
        assert!(Subscription::parse(&["user.nope".into()]).is_err());
        assert!(Subscription::parse(&[]).is_err());
        let only = Subscription::parse(&["user.online".into()]).ok();
        assert!(only.is_some_and(
            |s| s.includes(MessageType::UserOnline) && !s.includes(MessageType::UserOffline)
        ));
    }
}
