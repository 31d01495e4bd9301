//! User JWTs: how a tenant's backend vouches for its users' browsers.
//!
//! The header's `kid` picks one of the tenant's live signing keys, and that key alone
//! decides the algorithm: a token whose header names another algorithm is refused, as is
//! `none`. So a token "signed" with HS256 over an RSA or EC public key (algorithm
//! confusion) can never verify, and a key of one tenant can never vouch for another.
//! Minting (`herald token`) signs with a tenant's HS256 key.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::AuthError;
use crate::config::JwtSettings;
use crate::domain::identity::UserIdentity;
use crate::domain::keys::SigningAlgorithm;
use crate::domain::keys::SigningKey;
use crate::domain::names::UserId;
use crate::domain::tenant::Tenant;
use crate::error::ApiError;
use crate::store::credentials::Credentials;
use crate::store::{Store, StoreError};

/// The claims Herald reads from a user token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserClaims {
    /// The user id: the stream's owner.
    pub sub: String,
    pub exp: i64,
    pub aud: Audience,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    /// Topic names or `prefix:*` patterns the user may stream.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topics: Vec<String>,
}

/// `aud`: one audience or several (RFC 7519, 4.1.3); the token must name Herald's.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<VerifyError> for ApiError {
    fn from(error: VerifyError) -> Self {
        match error {
            VerifyError::Auth(error) => ApiError::from(error),
            VerifyError::Store(error) => ApiError::from(error),
        }
    }
}

/// Verifies `token` for `tenant`.
pub async fn verify(
    credentials: &Credentials,
    tenant: &Tenant,
    token: &str,
    settings: &JwtSettings,
) -> Result<UserIdentity, VerifyError> {
    let invalid = |reason| VerifyError::Auth(AuthError::InvalidToken(reason));
    let header = jsonwebtoken::decode_header(token).map_err(|_| invalid("malformed token"))?;
    let kid = header
        .kid
        .as_deref()
        .ok_or_else(|| invalid("no `kid` in the header"))?;
    let key = credentials
        .signing_key(tenant.id, kid)
        .await?
        .ok_or_else(|| invalid("unknown or revoked signing key"))?;
    let algorithm = algorithm_of(key.alg);
    if header.alg != algorithm {
        return Err(invalid(
            "the header's `alg` is not the signing key's algorithm",
        ));
    }
    let decoding_key = decoding_key(&key).ok_or_else(|| invalid("unusable signing key"))?;
    let mut validation = Validation::new(algorithm);
    validation.set_required_spec_claims(&["exp", "aud", "sub"]);
    validation.set_audience(&[settings.audience.as_str()]);
    validation.validate_nbf = true;
    validation.leeway = settings.leeway_secs;
    let claims = jsonwebtoken::decode::<UserClaims>(token, &decoding_key, &validation)
        .map_err(|error| {
            use jsonwebtoken::errors::ErrorKind;
            invalid(match error.kind() {
                ErrorKind::ExpiredSignature => "expired",
                ErrorKind::ImmatureSignature => "not valid yet (nbf)",
                ErrorKind::InvalidAudience => "wrong audience",
                ErrorKind::InvalidSignature => "bad signature",
                ErrorKind::MissingRequiredClaim(_) => "a required claim (sub, exp, aud) is missing",
                _ => "does not verify",
            })
        })?
        .claims;
    let user = UserId::parse(claims.sub).map_err(|_| invalid("bad `sub`"))?;
    let longest = crate::domain::now_ms() / 1000
        + i64::try_from(settings.max_session_secs).unwrap_or(i64::MAX / 2);
    Ok(UserIdentity {
        user,
        expires_at: claims.exp.min(longest),
        topic_patterns: claims.topics,
        key_id: kid.to_owned(),
    })
}

fn algorithm_of(alg: SigningAlgorithm) -> Algorithm {
    match alg {
        SigningAlgorithm::Hs256 => Algorithm::HS256,
        SigningAlgorithm::Es256 => Algorithm::ES256,
        SigningAlgorithm::EdDsa => Algorithm::EdDSA,
        SigningAlgorithm::Rs256 => Algorithm::RS256,
    }
}

fn decoding_key(key: &SigningKey) -> Option<DecodingKey> {
    match key.alg {
        SigningAlgorithm::Hs256 => key
            .secret
            .as_deref()
            .map(|secret| DecodingKey::from_secret(secret.as_bytes())),
        SigningAlgorithm::Es256 => {
            DecodingKey::from_ec_pem(key.public_key_pem.as_deref()?.as_bytes()).ok()
        }
        SigningAlgorithm::EdDsa => {
            DecodingKey::from_ed_pem(key.public_key_pem.as_deref()?.as_bytes()).ok()
        }
        SigningAlgorithm::Rs256 => {
            DecodingKey::from_rsa_pem(key.public_key_pem.as_deref()?.as_bytes()).ok()
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MintError {
    #[error(
        "only HS256 keys can mint tokens in Herald (the private half of other keys stays with the tenant)"
    )]
    NotHs256,
    #[error("cannot sign: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
    #[error("the tenant has no live HS256 signing key")]
    NoHs256Key,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A user token Herald minted, with the key that signed it.
#[derive(Debug, Clone)]
pub struct MintedToken {
    pub token: String,
    pub kid: String,
    /// Unix seconds.
    pub expires_at: i64,
}

/// A token for `user`, signed with the tenant's newest HS256 key and valid for `ttl_secs`
/// — what a tenant's backend does for its users, for `herald token` and the demo page.
pub async fn mint_user_token(
    store: &Store,
    tenant_id: i64,
    user: &UserId,
    topics: Vec<String>,
    ttl_secs: i64,
    audience: &str,
) -> Result<MintedToken, MintError> {
    let key = store
        .newest_hs256_key(tenant_id)
        .await?
        .ok_or(MintError::NoHs256Key)?;
    let now = crate::domain::now_ms() / 1000;
    let claims = UserClaims {
        sub: user.to_string(),
        exp: now + ttl_secs,
        aud: Audience::One(audience.to_owned()),
        nbf: None,
        iat: Some(now),
        topics,
    };
    Ok(MintedToken {
        token: mint_hs256(&key, &claims)?,
        kid: key.kid,
        expires_at: claims.exp,
    })
}

/// Signs `claims` with an HS256 key, naming it in the header's `kid`.
pub fn mint_hs256(key: &SigningKey, claims: &UserClaims) -> Result<String, MintError> {
    let secret = key.secret.as_deref().ok_or(MintError::NotHs256)?;
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(key.kid.clone());
    Ok(jsonwebtoken::encode(
        &header,
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )?)
}
