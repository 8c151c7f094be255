//! Internal parts exposed for keybound's fuzz targets (`fuzz/` in the repository),
//! behind the `fuzzing` feature. Not a stable API: it follows the internals and changes
//! with them.
//!
//! Refresh tokens are parsed and authenticated inside
//! [`SessionService::refresh`](crate::SessionService::refresh); these functions run the
//! same code on its own.

use zeroize::Zeroizing;

use crate::lifecycle::{RefreshSecret, RefreshToken, SessionId};

/// A refresh token as the parser reads it, before its tag is checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedRefreshToken {
    /// The session the token names.
    pub session_id: SessionId,
    /// The generation it claims.
    pub generation: u64,
    /// The token's 32-byte secret.
    pub secret: Zeroizing<[u8; 32]>,
    /// The 16-byte authentication tag.
    pub tag: [u8; 16],
}

/// Parses refresh-token text as [`SessionService::refresh`](crate::SessionService::refresh)
/// does first; `None` when it is not a well-formed keybound refresh token.
pub fn parse_refresh_token(text: &str) -> Option<ParsedRefreshToken> {
    RefreshToken::parse(text).map(|token| ParsedRefreshToken {
        session_id: token.session_id,
        generation: token.generation,
        tag: token.tag,
        secret: token.secret,
    })
}

/// Whether `text` parses and its tag was made with `secret`, the service's check
/// before it looks at the store.
pub fn authenticates(secret: &RefreshSecret, text: &str) -> bool {
    RefreshToken::parse(text).is_some_and(|token| secret.authenticates(&token))
}

/// The refresh-token text the service issues for a session, generation and token
/// secret.
pub fn issue_refresh_token(
    secret: &RefreshSecret,
    session_id: &SessionId,
    generation: u64,
    token_secret: &[u8; 32],
) -> String {
    secret.issue(session_id, generation, token_secret)
}

/// The token secret of generation `generation + 1` following `token_secret`.
pub fn successor_secret(
    secret: &RefreshSecret,
    session_id: &SessionId,
    generation: u64,
    token_secret: &[u8; 32],
) -> Zeroizing<[u8; 32]> {
    secret.successor(session_id, generation, token_secret)
}
