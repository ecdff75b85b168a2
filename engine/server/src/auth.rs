//! Authentication: HS256 JWTs carrying tenant, user and roles, turned into a
//! [`Principal`] by an extractor. Every route but health, readiness, the OpenAPI
//! document and the docs page takes a `Principal`, so a missing or bad token is a 401.

use crate::app::App;
use crate::error::ApiError;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use uuid::Uuid;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    pub tenant: Uuid,
    #[serde(default)]
    pub roles: Vec<String>,
    pub exp: i64,
    #[serde(default)]
    pub iat: i64,
}

/// Who is calling: the tenant whose data every query is confined to, the user, roles.
#[derive(Debug, Clone)]
pub struct Principal {
    pub tenant: Uuid,
    pub user: String,
    pub roles: Vec<String>,
}

impl Principal {
    /// Ok when the caller has one of `roles`; otherwise a 403 saying that `doing` needs
    /// one of them.
    pub fn require_any(&self, roles: &[&str], doing: &str) -> Result<(), ApiError> {
        if self.roles.iter().any(|r| roles.contains(&r.as_str())) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "{doing} needs one of the roles {}",
                roles.join(", ")
            )))
        }
    }
}

/// The signing secret, wrapped so it never prints.
#[derive(Clone)]
pub struct JwtKeys {
    enc: EncodingKey,
    dec: DecodingKey,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwtKeys(***)")
    }
}

impl JwtKeys {
    pub fn new(secret: &str) -> Self {
        JwtKeys {
            enc: EncodingKey::from_secret(secret.as_bytes()),
            dec: DecodingKey::from_secret(secret.as_bytes()),
        }
    }

    pub fn issue(
        &self,
        tenant: Uuid,
        user: &str,
        roles: &[String],
        ttl: chrono::Duration,
    ) -> String {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: user.to_string(),
            tenant,
            roles: roles.to_vec(),
            iat: now,
            exp: now + ttl.num_seconds(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.enc).unwrap_or_default()
    }

    pub fn verify(&self, token: &str) -> Result<Principal, String> {
        let mut v = Validation::new(Algorithm::HS256);
        v.leeway = 30;
        let data =
            jsonwebtoken::decode::<Claims>(token, &self.dec, &v).map_err(|e| e.to_string())?;
        let c = data.claims;
        if c.sub.is_empty() {
            return Err("the token names no user".into());
        }
        Ok(Principal {
            tenant: c.tenant,
            user: c.sub,
            roles: c.roles,
        })
    }
}

impl FromRequestParts<Arc<App>> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &Arc<App>,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| ApiError::unauthorized("missing Authorization: Bearer <token>"))?;
        let token = header.strip_prefix("Bearer ").ok_or_else(|| {
            ApiError::unauthorized("the Authorization header must be `Bearer <token>`")
        })?;
        app.jwt
            .verify(token.trim())
            .map_err(|e| ApiError::unauthorized(format!("invalid token: {e}")))
    }
}
