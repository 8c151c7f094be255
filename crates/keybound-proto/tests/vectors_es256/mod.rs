//! The ES256 (ECDSA P-256) part of the vectors: a fixed P-256 device key, valid proofs
//! signed with it (RFC 6979 deterministic nonces, so the files are byte-for-byte
//! stable), and one invalid case per ES256 rule.

use p256::ecdsa::signature::Signer as _;

use super::*;

/// The order n of the P-256 group, big-endian.
const ORDER_N: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];

/// The field prime p of P-256, big-endian: no coordinate may reach it.
const PRIME_P: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
];

/// A P-256 device key that signs deterministically (RFC 6979).
pub(crate) struct P256Device(p256::ecdsa::SigningKey);

impl P256Device {
    /// A fixed key derived from a label, like the Ed25519 ones.
    pub(crate) fn new(label: &str) -> Self {
        let seed = Sha256::digest(format!("keybound/vectors/{label}"));
        Self(p256::ecdsa::SigningKey::from_slice(&seed).unwrap())
    }

    fn coordinates(&self) -> ([u8; 32], [u8; 32]) {
        let point = self.0.verifying_key().to_sec1_point(false);
        let bytes = point.as_bytes();
        (
            bytes[1..33].try_into().unwrap(),
            bytes[33..65].try_into().unwrap(),
        )
    }

    pub(crate) fn jwk(&self) -> PublicJwk {
        let (x, y) = self.coordinates();
        PublicJwk::from_p256_coordinates(x, y)
    }

    pub(crate) fn public(&self) -> Value {
        self.jwk().to_json()
    }

    pub(crate) fn jkt(&self) -> String {
        self.jwk().thumbprint()
    }

    pub(crate) fn private(&self, kid: &str) -> Value {
        let mut jwk = self.public();
        jwk["d"] = json!(b64::encode(self.0.to_bytes()));
        jwk["kid"] = json!(kid);
        jwk
    }

    /// `r || s` over `message`.
    pub(crate) fn sign_bytes(&self, message: &[u8]) -> [u8; 64] {
        let signature: p256::ecdsa::Signature = self.0.sign(message);
        signature.to_bytes().as_slice().try_into().unwrap()
    }
}

impl keybound_proto::Signer for P256Device {
    fn public_jwk(&self) -> PublicJwk {
        self.jwk()
    }

    fn sign(&self, message: &[u8]) -> Result<[u8; 64], ProtoError> {
        Ok(self.sign_bytes(message))
    }
}

fn sign_raw_es256(header: &str, payload: &str, key: &P256Device) -> String {
    let input = input(header, payload);
    format!("{input}.{}", b64::encode(key.sign_bytes(input.as_bytes())))
}

fn sign_json_es256(header: &Value, payload: &Value, key: &P256Device) -> String {
    sign_raw_es256(&header.to_string(), &payload.to_string(), key)
}

/// `a - b` for big-endian 256-bit numbers with `a >= b`.
fn sub_be(a: &[u8; 32], b: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let mut d = i16::from(a[i]) - i16::from(b[i]) - borrow;
        borrow = i16::from(d < 0);
        if d < 0 {
            d += 256;
        }
        out[i] = d as u8;
    }
    assert_eq!(borrow, 0);
    out
}

/// The DER form `SEQUENCE { INTEGER r, INTEGER s }` of an `r || s` signature.
fn der(signature: &[u8; 64]) -> Vec<u8> {
    let integer = |bytes: &[u8]| {
        let mut v: Vec<u8> = bytes.iter().copied().skip_while(|b| *b == 0).collect();
        if v.first().is_none_or(|b| *b >= 0x80) {
            v.insert(0, 0);
        }
        let mut out = vec![0x02, v.len() as u8];
        out.extend(v);
        out
    };
    let mut body = integer(&signature[..32]);
    body.extend(integer(&signature[32..]));
    let mut out = vec![0x30, body.len() as u8];
    out.extend(body);
    out
}

/// The ES256 key entry of `keys.json`.
pub(crate) fn keys_entry(g: &Gen) -> Value {
    json!({
        "private_jwk": g.p256.private(&g.p256.jkt()),
        "public_jwk": g.p256.public(),
        "jkt": g.p256.jkt(),
    })
}

impl Gen {
    pub(crate) fn es256_header(&self) -> Value {
        json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": self.p256.public()})
    }

    /// An ES256 proof through the public builder.
    pub(crate) fn es256_proof(&self, access_token: Option<&str>) -> String {
        let mut b = ProofBuilder::new(self.p256.jwk(), METHOD, URL, NOW, JTI).unwrap();
        if let Some(at) = access_token {
            b = b.access_token(at);
        }
        b.sign(&self.p256).unwrap()
    }

    fn es256_token(&self) -> String {
        let mut claims = self.token_claims();
        claims.jkt = self.p256.jkt();
        sign_access_token(&claims, SERVER_KID, &self.server).unwrap()
    }
}

/// The valid ES256 cases.
pub(crate) fn valid_cases(g: &Gen, jwks: &Value) -> Vec<Map<String, Value>> {
    let token = g.es256_token();
    let proof = g.es256_proof(None);
    // (r, n - s) verifies as well as (r, s); RFC 7518 does not ask for low S and
    // WebCrypto returns either.
    let mut high_s = signature_bytes(&proof);
    let s = sub_be(&ORDER_N, &high_s[32..]);
    high_s[32..].copy_from_slice(&s);
    let mut with_nonce = ProofBuilder::new(g.p256.jwk(), METHOD, URL, NOW, JTI)
        .unwrap()
        .nonce("eyJ7S_zG.eyJH0-Z.HX4w-7v");
    with_nonce = with_nonce.access_token(&token);
    vec![
        case(
            "es256_proof_only",
            "An ES256 proof (P-256 key, 64-byte r || s signature) without an access token.",
            proof.clone(),
        ),
        with_token(
            case(
                "es256_proof_with_access_token",
                "An ES256 proof with ath; the access token is bound to the P-256 key's thumbprint.",
                g.es256_proof(Some(&token)),
            ),
            &token,
            jwks,
        ),
        with_token(
            case(
                "es256_proof_with_nonce",
                "An ES256 proof with a nonce and an access token.",
                with_nonce.sign(&g.p256).unwrap(),
            ),
            &token,
            jwks,
        ),
        case(
            "es256_signature_high_s",
            "The same proof with s replaced by n - s: also a valid ECDSA signature.",
            with_signature(&proof, &b64::encode(high_s)),
        ),
    ]
}

/// The invalid ES256 cases.
#[allow(clippy::too_many_lines)]
pub(crate) fn invalid_cases(g: &Gen, jwks: &Value) -> Vec<Value> {
    let p = "invalid_dpop_proof";
    let dev = &g.p256;
    let hdr = g.es256_header();
    let claims = g.proof_claims();
    let proof = g.es256_proof(None);
    let sig = signature_bytes(&proof);
    let mut out = Vec::new();
    let mut add = |name: &str, description: &str, proof: String, code: &str| {
        out.push(invalid(case(name, description, proof), p, code));
    };
    let with_jwk = |jwk: Value| {
        let mut h = hdr.clone();
        h["jwk"] = jwk;
        sign_json_es256(&h, &claims, dev)
    };
    let (x, y) = dev.coordinates();

    // --- the signature's form (RFC 7518 §3.4)
    add(
        "proof_es256_signature_der",
        "The signature is DER-encoded (SEQUENCE of two INTEGERs), not the 64-byte r || s.",
        with_signature(&proof, &b64::encode(der(&sig))),
        "malformed_signature",
    );
    add(
        "proof_es256_signature_63_bytes",
        "The signature is 63 bytes (s without its leading byte).",
        with_signature(&proof, &b64::encode(&sig[..63])),
        "malformed_signature",
    );
    let mut long = sig.to_vec();
    long.push(0);
    add(
        "proof_es256_signature_65_bytes",
        "The signature is 65 bytes.",
        with_signature(&proof, &b64::encode(&long)),
        "malformed_signature",
    );
    let mut bad = sig;
    bad[..32].fill(0);
    add(
        "proof_es256_r_zero",
        "r is zero.",
        with_signature(&proof, &b64::encode(bad)),
        "signature_out_of_range",
    );
    let mut bad = sig;
    bad[32..].fill(0);
    add(
        "proof_es256_s_zero",
        "s is zero.",
        with_signature(&proof, &b64::encode(bad)),
        "signature_out_of_range",
    );
    let mut bad = sig;
    bad[..32].copy_from_slice(&ORDER_N);
    add(
        "proof_es256_r_equals_n",
        "r equals the group order n.",
        with_signature(&proof, &b64::encode(bad)),
        "signature_out_of_range",
    );
    let mut bad = sig;
    bad[32..].fill(0xff);
    add(
        "proof_es256_s_above_n",
        "s is 2^256 - 1, above the group order n.",
        with_signature(&proof, &b64::encode(bad)),
        "signature_out_of_range",
    );
    let mut flipped = sig;
    flipped[40] ^= 0x01;
    add(
        "proof_es256_signature_bit_flip",
        "One bit of s flipped.",
        with_signature(&proof, &b64::encode(flipped)),
        "invalid_signature",
    );
    let other = P256Device::new("other-device-p256");
    add(
        "proof_es256_signed_by_another_key",
        "Signed by another P-256 key than the jwk in its header.",
        sign_json_es256(&hdr, &claims, &other),
        "invalid_signature",
    );

    // --- the key
    let mut off_curve = y;
    off_curve[31] ^= 0x01;
    add(
        "proof_es256_jwk_not_on_curve",
        "jwk (x, y) with y changed by one bit: not a point on P-256 (invalid-curve attack).",
        with_jwk(json!({"kty":"EC","crv":"P-256","x":b64::encode(x),"y":b64::encode(off_curve)})),
        "invalid_jwk",
    );
    add(
        "proof_es256_jwk_coordinate_not_below_p",
        "jwk x is the field prime p (a coordinate must be below p).",
        with_jwk(json!({"kty":"EC","crv":"P-256","x":b64::encode(PRIME_P),"y":b64::encode(y)})),
        "invalid_jwk",
    );
    add(
        "proof_es256_jwk_identity",
        "jwk (0, 0): the point at infinity (the identity) as some encoders write it.",
        with_jwk(
            json!({"kty":"EC","crv":"P-256","x":b64::encode([0u8; 32]),"y":b64::encode([0u8; 32])}),
        ),
        "weak_key",
    );
    add(
        "proof_es256_jwk_x_31_bytes",
        "jwk x is 31 bytes (its leading byte dropped; RFC 7518 asks for the full length).",
        with_jwk(json!({"kty":"EC","crv":"P-256","x":b64::encode(&x[1..]),"y":b64::encode(y)})),
        "invalid_jwk",
    );
    let mut y33 = vec![0u8];
    y33.extend_from_slice(&y);
    add(
        "proof_es256_jwk_y_33_bytes",
        "jwk y is 33 bytes (a leading zero added).",
        with_jwk(json!({"kty":"EC","crv":"P-256","x":b64::encode(x),"y":b64::encode(&y33)})),
        "invalid_jwk",
    );
    add(
        "proof_es256_jwk_y_missing",
        "jwk without y.",
        with_jwk(json!({"kty":"EC","crv":"P-256","x":b64::encode(x)})),
        "invalid_jwk",
    );
    add(
        "proof_es256_jwk_crv_p384",
        "jwk crv P-384.",
        with_jwk(json!({"kty":"EC","crv":"P-384","x":b64::encode(x),"y":b64::encode(y)})),
        "invalid_jwk",
    );
    add(
        "proof_es256_jwk_crv_secp256k1",
        "jwk crv secp256k1 (same coordinate size, another curve).",
        with_jwk(json!({"kty":"EC","crv":"secp256k1","x":b64::encode(x),"y":b64::encode(y)})),
        "invalid_jwk",
    );
    add(
        "proof_es256_jwk_with_d",
        "The jwk header carries the private key d.",
        with_jwk(dev.private(&dev.jkt())),
        "private_key_in_jwk",
    );

    // --- alg and key kind must agree
    let mut h = g.proof_header();
    h["alg"] = json!("ES256");
    add(
        "proof_alg_es256_okp_key",
        "alg ES256 with an Ed25519 (OKP) jwk, signed by the P-256 key.",
        sign_json_es256(&h, &claims, dev),
        "alg_key_mismatch",
    );
    let mut h = hdr.clone();
    h["alg"] = json!("EdDSA");
    add(
        "proof_alg_eddsa_ec_key",
        "alg EdDSA with a P-256 (EC) jwk, signed by the Ed25519 device key.",
        sign_json(&h, &claims, &g.device),
        "alg_key_mismatch",
    );
    let mut h = hdr.clone();
    h["alg"] = json!("ES384");
    add(
        "proof_alg_es384",
        "alg ES384 with a P-256 key.",
        sign_json_es256(&h, &claims, dev),
        "unsupported_alg",
    );
    let mut h = hdr.clone();
    h["alg"] = json!("es256");
    add(
        "proof_alg_es256_lowercase",
        "alg es256: algorithm names are case-sensitive.",
        sign_json_es256(&h, &claims, dev),
        "unsupported_alg",
    );

    // --- the access token stays EdDSA: the server signs its tokens with Ed25519
    let mut th = g.token_header();
    th["alg"] = json!("ES256");
    let mut tp = g.token_payload();
    tp["cnf"]["jkt"] = json!(dev.jkt());
    let es_token = sign_json_es256(&th, &tp, dev);
    out.push(invalid(
        with_token(
            case(
                "token_alg_es256",
                "An access token signed with ES256: keybound's access tokens are EdDSA.",
                g.es256_proof(Some(&es_token)),
            ),
            &es_token,
            jwks,
        ),
        "invalid_token",
        "unsupported_alg",
    ));
    let bound_to_ed = g.token();
    out.push(invalid(
        with_token(
            case(
                "token_es256_proof_jkt_mismatch",
                "An ES256 proof with a token bound to the Ed25519 device key.",
                g.es256_proof(Some(&bound_to_ed)),
            ),
            &bound_to_ed,
            jwks,
        ),
        "invalid_token",
        "jkt_mismatch",
    ));
    out
}
