//! Who may do what: the token check every route but `/healthz` (and the dashboard's static files,
//! which hold no data) goes through, as a middleware.
//!
//! - A request carries its token as `Authorization: Bearer TOKEN`, or as the dashboard's session
//!   cookie (`batch_token`, HttpOnly, SameSite=Strict) set by `POST /api/v1/session`.
//! - Tokens are compared in constant time. The admin token may do everything; the read-only token
//!   may only use safe methods (GET, HEAD): anything else is `403 FORBIDDEN`.
//! - Without a token file the server listens on loopback only and asks for no token; it then checks
//!   that the `Host` is a loopback name, so a web page cannot reach it by DNS rebinding.
//! - Cross-site requests that change state are refused by the CSRF layer (`routes`), whatever they
//!   carry.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq as _;

use crate::config::Tokens;
use crate::error::ServerError;
use crate::state::AppState;

/// The dashboard's session cookie.
pub const COOKIE: &str = "batch_token";

/// What a request may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything.
    Admin,
    /// Reading only.
    Read,
}

/// Whether `method` changes nothing.
fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD)
}

/// Routes anyone may call: the liveness probe, the dashboard's static files, signing in and out.
fn is_public(method: &Method, path: &str) -> bool {
    match path {
        "/healthz" | "/" | "/index.html" => true,
        "/api/v1/session" => matches!(*method, Method::POST | Method::DELETE),
        _ => path.starts_with("/assets/"),
    }
}

/// The role of `token`, compared in constant time against each configured token.
pub(crate) fn role_of(tokens: &Tokens, token: &str) -> Option<Role> {
    let matches = |expected: &Option<String>| {
        expected.as_ref().is_some_and(|expected| bool::from(expected.as_bytes().ct_eq(token.as_bytes())))
    };
    // Both comparisons always run, so the time does not tell which token matched.
    let admin = matches(&tokens.admin);
    let read = matches(&tokens.read);
    if admin {
        Some(Role::Admin)
    } else if read {
        Some(Role::Read)
    } else {
        None
    }
}

/// The token a request carries: its bearer token, else its session cookie.
fn presented(headers: &HeaderMap) -> Result<Option<String>, ServerError> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let text = value.to_str().unwrap_or_default();
        let Some(token) = text.strip_prefix("Bearer ").or_else(|| text.strip_prefix("bearer ")) else {
            return Err(ServerError::Unauthorized {
                reason: "the Authorization header must be `Bearer TOKEN`".to_owned(),
            });
        };
        return Ok(Some(token.trim().to_owned()));
    }
    Ok(session_cookie(headers))
}

/// The value of the session cookie, if the request has one.
pub(crate) fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|text| text.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim().to_owned())
}

/// Whether the `Host` header names this machine's loopback (`localhost`, `127.x.y.z`, `[::1]`), with
/// any port.
fn loopback_host(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|value| value.to_str().ok()) else {
        // HTTP/1.0 without Host: nothing to rebind.
        return true;
    };
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        host.rsplit_once(':').map_or(host, |(name, _port)| name)
    };
    name.eq_ignore_ascii_case("localhost")
        || name.parse::<std::net::IpAddr>().is_ok_and(|address| address.is_loopback())
}

/// Middleware: authenticates the request and refuses what its role may not do.
pub(crate) async fn authenticate(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Result<Response, ServerError> {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let tokens = state.tokens();
    if !tokens.required() && path != "/healthz" && !loopback_host(request.headers()) {
        return Err(ServerError::Forbidden {
            reason: "this server has no token and answers only requests for a loopback host name".to_owned(),
        });
    }
    if is_public(&method, &path) {
        return Ok(next.run(request).await);
    }
    let role = if tokens.required() {
        let Some(token) = presented(request.headers())? else {
            return Err(ServerError::Unauthorized {
                reason: "this route needs a token: send `Authorization: Bearer TOKEN` or sign in".to_owned(),
            });
        };
        role_of(tokens, &token)
            .ok_or_else(|| ServerError::Unauthorized { reason: "the token is not valid".to_owned() })?
    } else {
        Role::Admin
    };
    if role == Role::Read && !is_safe(&method) {
        return Err(ServerError::Forbidden {
            reason: format!("the read-only token may only read; {method} {path} changes state"),
        });
    }
    request.extensions_mut().insert(role);
    Ok(next.run(request).await)
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn tokens() -> Tokens {
        Tokens { admin: Some("admin-token-0123456789".into()), read: Some("read-token-0123456789".into()) }
    }

    #[test]
    fn tokens_give_their_roles() {
        let tokens = tokens();
        assert_eq!(role_of(&tokens, "admin-token-0123456789"), Some(Role::Admin));
        assert_eq!(role_of(&tokens, "read-token-0123456789"), Some(Role::Read));
        assert_eq!(role_of(&tokens, "admin-token-012345678"), None);
        assert_eq!(role_of(&tokens, ""), None);
        assert_eq!(role_of(&Tokens::default(), ""), None);
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_static("a=1; batch_token=xyz; b=2"));
        assert_eq!(session_cookie(&headers).as_deref(), Some("xyz"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert!(presented(&headers).is_err());
    }

    #[test]
    fn only_loopback_hosts_pass_without_a_token() {
        for (host, expected) in [
            ("localhost:8080", true),
            ("127.0.0.1:80", true),
            ("[::1]:8080", true),
            ("127.0.0.1", true),
            ("evil.example:8080", false),
            ("10.0.0.1:8080", false),
        ] {
            let mut headers = HeaderMap::new();
            headers.insert(header::HOST, HeaderValue::from_static(host));
            assert_eq!(loopback_host(&headers), expected, "{host}");
        }
    }
}
