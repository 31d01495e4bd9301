//! User JWTs: what a tenant backend mints for its users' browsers.
//!
//! Minting lives here for `herald token` (development and tests); verification arrives
//! with the streaming endpoint and uses the same claims.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};

use crate::store::keys::SigningKey;

/// The claims Herald reads from a user token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserClaims {
    /// The user id: the stream's owner.
    pub sub: String,
    pub exp: i64,
    pub aud: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    /// Topic names or `prefix:*` patterns the user may stream.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topics: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum MintError {
    #[error(
        "only HS256 keys can mint tokens in Herald (the private half of other keys stays with the tenant)"
    )]
    NotHs256,
    #[error("cannot sign: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
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
