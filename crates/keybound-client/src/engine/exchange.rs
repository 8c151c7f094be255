//! One signed exchange: the proof for each attempt, and what each answer means (with
//! the one retry budget of [`RetryBudget`]).

#[allow(unused_imports)]
use crate::prelude::*;

use keybound_proto::{ProofBuilder, b64};

use super::Engine;
use crate::answer::{Answer, Exchange, RetryBudget, Step, dpop_challenge_error};
use crate::{ClientError, Terminal, epoch_secs};

/// [`Engine::answer`]'s step codes (the low four bits of its result).
pub(crate) mod step {
    pub(crate) const TAKE_TOKENS: u32 = 0;
    pub(crate) const DELIVER: u32 = 1;
    pub(crate) const RETRY: u32 = 2;
    pub(crate) const REFRESH_THEN_RETRY: u32 = 3;
    pub(crate) const ENDED: u32 = 4;
    pub(crate) const FAIL: u32 = 5;
}

/// The number a terminal state travels as (bits 4–7 of [`Engine::answer`]'s result).
pub(crate) fn terminal_index(terminal: Terminal) -> u32 {
    match terminal {
        Terminal::Expired => 1,
        Terminal::Revoked => 2,
        Terminal::Closed => 3,
    }
}

/// The seconds a `Retry-After` value asks to wait at server time `now`: delta-seconds,
/// or an HTTP date (RFC 9110 §10.2.3) as the browser parsed it (`date_ms`, epoch
/// milliseconds or `NaN`); `None` when it is neither.
fn retry_after_secs(value: &str, date_ms: f64, now: i64) -> Option<u64> {
    let mut secs: u64 = 0;
    for b in value.bytes() {
        if !b.is_ascii_digit() || secs > 1 << 40 {
            return epoch_secs(date_ms).map(|at| at.saturating_sub(now).max(0) as u64);
        }
        secs = secs * 10 + u64::from(b - b'0');
    }
    (!value.is_empty()).then_some(secs)
}

impl Engine {
    /// The signing input (`header.payload`) of a DPoP proof for `method` and `htu` by
    /// the device key, at the server's time, with the access token's hash `ath` (base64url
    /// SHA-256, made by WebCrypto in the driver), the given
    /// `nonce` or else the last one `htu`'s origin gave, and `jti` from 16 random bytes.
    /// `htu` is the URL as the browser's parser writes it without query and fragment
    /// (`protocol + "//" + host + pathname`), exactly what `fetch` sends. `None` (and
    /// an error) without a key, for an empty method, or for an origin not allowed
    /// (`origin_not_allowed`: no proof leaves for it).
    pub fn proof_input(
        &mut self,
        method: &str,
        htu: &str,
        ath: Option<String>,
        nonce: Option<&str>,
        jti: &[u8],
        now: f64,
    ) -> Option<String> {
        let Some(key) = &self.key else {
            self.fail(ClientError::NotLoggedIn);
            return None;
        };
        if !self.allows(htu) {
            self.fail(ClientError::OriginNotAllowed);
            return None;
        }
        if method.is_empty() {
            self.fail(ClientError::InvalidInput {
                detail: "the method is empty".into(),
            });
            return None;
        }
        let Ok(jti) = <[u8; 16]>::try_from(jti) else {
            self.fail(ClientError::Crypto { op: "random" });
            return None;
        };
        let iat = self.clock.server_now_secs(now);
        let mut builder = ProofBuilder::for_htu(key.jwk, method, htu.to_owned(), iat, jti);
        if let Some(ath) = ath {
            builder = builder.ath(ath);
        }
        let nonce = nonce.or_else(|| self.nonces.get(htu));
        if let Some(nonce) = nonce {
            builder = builder.nonce(nonce);
        }
        Some(builder.signing_input())
    }

    /// The compact proof: `input` and its 64-byte signature (Ed25519, or ECDSA P-256's
    /// `r || s` as WebCrypto makes it).
    pub fn proof_finish(input: &str, signature: &[u8]) -> String {
        let mut proof = String::with_capacity(input.len() + 87);
        proof.push_str(input);
        proof.push('.');
        proof.push_str(&b64::encode(signature));
        proof
    }

    /// The access token to send, for exchanges that carry it. `None` (and the error:
    /// `not_logged_in`, `session_revoked`, …) without a live session.
    pub fn access_token(&mut self) -> Option<String> {
        if !self.require_active() {
            return None;
        }
        let token = self
            .live
            .as_ref()
            .map(|l| l.tokens.access_token().to_owned());
        if token.is_none() {
            self.fail(ClientError::NotLoggedIn);
        }
        token
    }

    /// Reads an answer to an exchange of kind `exchange` (see
    /// [`Exchange::from_index`]) that came from `url` (where a redirect ended):
    /// remembers its nonce, corrects the clock on a refused `iat` (from its `Date`, as
    /// the browser parsed it: `date_ms`), notes a `429`'s `Retry-After` (the text, and
    /// `retry_after_ms`, the browser's parse of it as a date), and decides the next step with the exchange's retry `budget`.
    /// An answer from an origin that is not allowed changes nothing: `kb.fetch` gets
    /// it as it is, every other exchange fails with `origin_not_allowed`.
    /// The result is `step | terminal << 4 | budget << 8` (steps: 0 take tokens, 1
    /// deliver, 2 retry, 3 refresh then retry, 4 ended, 5 fail); failures leave their
    /// error for [`take_error`](Self::take_error).
    #[allow(clippy::too_many_arguments)]
    pub fn answer(
        &mut self,
        exchange: u32,
        budget: u32,
        url: &str,
        status: u16,
        www_authenticate: Option<&str>,
        error: Option<&str>,
        error_code: Option<&str>,
        description: Option<&str>,
        nonce: Option<&str>,
        date_ms: f64,
        retry_after: Option<&str>,
        retry_after_ms: f64,
        sent: f64,
        received: f64,
    ) -> u32 {
        let exchange = Exchange::from_index(exchange).unwrap_or(Exchange::Resource);
        let mut budget = RetryBudget::from_bits(budget);
        self.last_answer = None;
        if !self.allows(url) {
            if exchange == Exchange::Resource {
                return step::DELIVER | budget.to_bits() << 8;
            }
            self.fail(ClientError::OriginNotAllowed);
            return step::FAIL | budget.to_bits() << 8;
        }
        if let Some(nonce) = &nonce {
            self.nonces.remember(url, nonce);
        }
        let challenge_error = www_authenticate.and_then(dpop_challenge_error);
        let answer = Answer {
            status,
            challenge_error: challenge_error.as_deref(),
            error,
            error_code,
            has_nonce: nonce.is_some(),
        };
        let step = budget.step(exchange, &answer);
        let mut failure =
            ClientError::from_server(status, answer.error_name(), answer.error_code, description);
        self.retry_not_before = None;
        if status == 429 {
            let now = self.clock.server_now_secs(received);
            let wait = retry_after.and_then(|v| retry_after_secs(v, retry_after_ms, now));
            if let ClientError::Server { retry_after, .. } = &mut failure {
                *retry_after = wait;
            }
            self.retry_not_before =
                wait.map(|secs| (now.saturating_add_unsigned(secs)).saturating_mul(1000));
        }
        let code = match step {
            Step::TakeTokens => step::TAKE_TOKENS,
            Step::Deliver => {
                self.last_answer = Some(failure);
                step::DELIVER
            }
            Step::Retry => {
                if answer.verdict() == crate::answer::Verdict::ClockSkew {
                    if let Some(secs) = epoch_secs(date_ms) {
                        self.clock = self.clock.learn(secs, sent, received);
                    }
                }
                step::RETRY
            }
            Step::RefreshThenRetry => step::REFRESH_THEN_RETRY,
            Step::Ended(terminal) => {
                self.fail(ClientError::SessionEnded(terminal));
                step::ENDED | terminal_index(terminal) << 4
            }
            Step::Fail => {
                self.fail(failure);
                step::FAIL
            }
        };
        code | budget.to_bits() << 8
    }

    /// Leaves the error the last delivered answer stands for (for a caller that got
    /// the answer but needed a success).
    pub fn answer_error(&mut self) {
        if let Some(error) = self.last_answer.take() {
            self.fail(error);
        }
    }

    /// Whether an error with `code` (and HTTP `status`, 0 if none) may pass if retried
    /// later (network trouble, 5xx, 408, 429): such failures keep the session.
    pub fn is_transient(code: &str, status: u16) -> bool {
        code == keybound_proto::wire::code::NETWORK_ERROR
            || status >= 500
            || status == 408
            || status == 429
    }
}
