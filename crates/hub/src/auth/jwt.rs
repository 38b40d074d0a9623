//! Verification of OIDC bearer tokens: compact JWS (RFC 7515) JWTs
//! (RFC 7519) checked against the identity provider's JSON Web Key Set
//! (RFC 7517).
//!
//! The hub only ever verifies, never issues, so this module owns the narrow
//! part it needs and nothing more: reading a key set, checking an RS256 or
//! ES256 signature with `ring`, and checking the time, issuer and audience
//! claims. The algorithm is fixed by this module, never chosen by the token:
//! anything but RS256 and ES256 is refused before a key is even looked at,
//! which closes the `alg: none` and "HS256 keyed with the public key" holes,
//! and a key is only used with the algorithm its type belongs to. Fetching
//! and refreshing the key set (say on [`JwtError::UnknownKey`], after a key
//! rotation) is left to the caller.

use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use ring::signature::{
    ECDSA_P256_SHA256_FIXED, RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents, UnparsedPublicKey,
};
use serde::Deserialize;
use serde_json::{Map, Value};

/// Largest token accepted, in bytes; real access tokens are a few KiB, and
/// the bound caps the work an unauthenticated request can cause.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Clock skew tolerated by [`Validation::new`], in seconds.
pub const DEFAULT_LEEWAY_SECS: i64 = 60;

/// Key sets in the wild sometimes pad their base64url; token segments get
/// no such tolerance.
const LENIENT_BASE64URL: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    #[error("token algorithm {0:?} is not accepted")]
    UnsupportedAlg(String),
    #[error("token signature does not verify")]
    BadSignature,
    #[error("no key in the key set fits the token")]
    UnknownKey,
    #[error("token has expired")]
    Expired,
    #[error("token is not valid yet")]
    NotYetValid,
    #[error("token comes from another issuer")]
    WrongIssuer,
    #[error("token is meant for another audience")]
    WrongAudience,
    #[error("token lacks the {0} claim")]
    MissingClaim(&'static str),
    #[error("malformed key set: {0}")]
    BadKeySet(String),
}

/// The signature algorithms accepted; the only place that decides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Alg {
    Rs256,
    Es256,
}

impl Alg {
    fn from_name(name: &str) -> Option<Self> {
        match name {
            "RS256" => Some(Self::Rs256),
            "ES256" => Some(Self::Es256),
            _ => None,
        }
    }
}

/// The usable signature keys of a JWKS document.
#[derive(Debug, Clone, Default)]
pub struct Jwks {
    keys: Vec<Jwk>,
}

#[derive(Debug, Clone)]
struct Jwk {
    kid: Option<String>,
    alg: Option<Alg>,
    material: KeyMaterial,
}

#[derive(Debug, Clone)]
enum KeyMaterial {
    /// Big-endian modulus and exponent, without leading zero bytes (which
    /// `ring` refuses).
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// The uncompressed SEC 1 point `04 || x || y`.
    P256 { point: Vec<u8> },
}

#[derive(Deserialize)]
struct RawKeySet {
    keys: Vec<Value>,
}

#[derive(Deserialize)]
struct RawJwk {
    kty: String,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    crv: Option<String>,
    n: Option<String>,
    e: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

impl Jwks {
    /// Reads a JWKS document (`{"keys": [...]}`). Keys this module cannot
    /// use — other types or curves, encryption keys, keys for other
    /// algorithms, or ones whose fields do not decode — are skipped rather
    /// than failing the set, because providers publish such keys beside the
    /// signing ones. Only a document that is not a key set at all is an error.
    pub fn from_json(json: &str) -> Result<Jwks, JwtError> {
        let raw: RawKeySet =
            serde_json::from_str(json).map_err(|err| JwtError::BadKeySet(err.to_string()))?;
        let keys = raw
            .keys
            .into_iter()
            .filter_map(|value| serde_json::from_value::<RawJwk>(value).ok())
            .filter_map(Jwk::from_raw)
            .collect();
        Ok(Jwks { keys })
    }

    /// Number of usable keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key was usable, which the caller will want to log: every
    /// token would then fail with [`JwtError::UnknownKey`].
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The keys that may have signed a token with this algorithm and `kid`.
    /// A token that names a key gets that key only.
    fn candidates(&self, alg: Alg, kid: Option<&str>) -> impl Iterator<Item = &Jwk> {
        self.keys.iter().filter(move |key| {
            key.suits(alg) && kid.is_none_or(|kid| key.kid.as_deref() == Some(kid))
        })
    }
}

impl Jwk {
    fn from_raw(raw: RawJwk) -> Option<Jwk> {
        if raw.use_.as_deref().is_some_and(|use_| use_ != "sig") {
            return None;
        }
        let alg = match raw.alg.as_deref() {
            None => None,
            Some(name) => Some(Alg::from_name(name)?),
        };
        let material = match raw.kty.as_str() {
            "RSA" => {
                let n = strip_leading_zeros(decode_key_field(raw.n.as_deref()?)?);
                let e = strip_leading_zeros(decode_key_field(raw.e.as_deref()?)?);
                if n.is_empty() || e.is_empty() {
                    return None;
                }
                KeyMaterial::Rsa { n, e }
            }
            "EC" if raw.crv.as_deref() == Some("P-256") => {
                let x = decode_key_field(raw.x.as_deref()?)?;
                let y = decode_key_field(raw.y.as_deref()?)?;
                if x.len() != 32 || y.len() != 32 {
                    return None;
                }
                let mut point = Vec::with_capacity(65);
                point.push(0x04);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                KeyMaterial::P256 { point }
            }
            _ => return None,
        };
        let jwk = Jwk {
            kid: raw.kid,
            alg,
            material,
        };
        // An RSA key labelled ES256 (or the reverse) is a broken entry.
        let consistent = alg.is_none_or(|alg| jwk.suits(alg));
        consistent.then_some(jwk)
    }

    fn suits(&self, alg: Alg) -> bool {
        let type_fits = matches!(
            (alg, &self.material),
            (Alg::Rs256, KeyMaterial::Rsa { .. }) | (Alg::Es256, KeyMaterial::P256 { .. })
        );
        type_fits && self.alg.is_none_or(|own| own == alg)
    }

    fn verifies(&self, alg: Alg, message: &[u8], signature: &[u8]) -> bool {
        match (alg, &self.material) {
            (Alg::Rs256, KeyMaterial::Rsa { n, e }) => RsaPublicKeyComponents { n, e }
                .verify(&RSA_PKCS1_2048_8192_SHA256, message, signature)
                .is_ok(),
            (Alg::Es256, KeyMaterial::P256 { point }) => {
                UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
                    .verify(message, signature)
                    .is_ok()
            }
            _ => false,
        }
    }
}

fn decode_key_field(text: &str) -> Option<Vec<u8>> {
    LENIENT_BASE64URL.decode(text).ok()
}

fn strip_leading_zeros(mut bytes: Vec<u8>) -> Vec<u8> {
    let zeros = bytes.iter().take_while(|&&b| b == 0).count();
    bytes.drain(..zeros);
    bytes
}

/// What a token must satisfy besides its signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validation {
    /// The `iss` the token must carry, exactly.
    pub issuer: String,
    /// The token's `aud` must contain at least one of these; an empty list
    /// accepts nothing.
    pub audiences: Vec<String>,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds (negative counts
    /// as zero).
    pub leeway_secs: i64,
}

impl Validation {
    pub fn new(issuer: impl Into<String>, audiences: Vec<String>) -> Self {
        Validation {
            issuer: issuer.into(),
            audiences,
            leeway_secs: DEFAULT_LEEWAY_SECS,
        }
    }
}

/// The claims of a verified token.
#[derive(Debug, Clone, PartialEq)]
pub struct Claims {
    pub sub: String,
    pub iss: String,
    /// Expiry, in seconds since the Unix epoch.
    pub exp: i64,
    /// Every claim as sent, for roles, scopes and the like.
    pub raw: Map<String, Value>,
}

impl Claims {
    /// The expiry as a timestamp, if it is within chrono's range.
    pub fn expires_at(&self) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp(self.exp, 0)
    }
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
    crit: Option<Value>,
}

/// Verifies `token` against `jwks` and `validation` at `now_unix`, and
/// returns its claims.
///
/// Checks run cheapest and most basic first: size and shape, algorithm, key,
/// signature, then the claims, so no claim is believed before its signature
/// has been checked.
pub fn verify(
    token: &str,
    jwks: &Jwks,
    validation: &Validation,
    now_unix: i64,
) -> Result<Claims, JwtError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(JwtError::Malformed("token too large"));
    }
    let mut segments = token.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) = (
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
    ) else {
        return Err(JwtError::Malformed("not three dot-separated segments"));
    };

    let header: Header = serde_json::from_slice(&decode_segment(header_b64)?)
        .map_err(|_| JwtError::Malformed("header is not a JSON object with an alg"))?;
    let Some(alg) = Alg::from_name(&header.alg) else {
        return Err(JwtError::UnsupportedAlg(
            header.alg.chars().take(32).collect(),
        ));
    };
    // RFC 7515 section 4.1.11: extensions marked critical must be understood,
    // and this module understands none.
    if header.crit.is_some() {
        return Err(JwtError::Malformed("critical header extensions"));
    }
    let payload = decode_segment(payload_b64)?;
    let signature = decode_segment(signature_b64)?;

    // The signature covers the two segments exactly as sent.
    let signing_input = &token.as_bytes()[..header_b64.len() + 1 + payload_b64.len()];
    let mut keys = jwks.candidates(alg, header.kid.as_deref()).peekable();
    if keys.peek().is_none() {
        return Err(JwtError::UnknownKey);
    }
    if !keys.any(|key| key.verifies(alg, signing_input, &signature)) {
        return Err(JwtError::BadSignature);
    }

    let raw: Map<String, Value> = serde_json::from_slice(&payload)
        .map_err(|_| JwtError::Malformed("payload is not a JSON object"))?;
    check_claims(raw, validation, now_unix)
}

/// [`verify`] at the current time.
pub fn verify_now(token: &str, jwks: &Jwks, validation: &Validation) -> Result<Claims, JwtError> {
    verify(token, jwks, validation, Utc::now().timestamp())
}

fn decode_segment(segment: &str) -> Result<Vec<u8>, JwtError> {
    URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| JwtError::Malformed("segment is not unpadded base64url"))
}

fn check_claims(
    raw: Map<String, Value>,
    validation: &Validation,
    now_unix: i64,
) -> Result<Claims, JwtError> {
    let leeway = validation.leeway_secs.max(0);

    let exp = time_claim(&raw, "exp")?.ok_or(JwtError::MissingClaim("exp"))?;
    // RFC 7519 section 4.1.4: valid only strictly before exp.
    if now_unix >= exp.saturating_add(leeway) {
        return Err(JwtError::Expired);
    }
    if let Some(nbf) = time_claim(&raw, "nbf")?
        && now_unix.saturating_add(leeway) < nbf
    {
        return Err(JwtError::NotYetValid);
    }

    let iss = match raw.get("iss") {
        None => return Err(JwtError::MissingClaim("iss")),
        Some(Value::String(iss)) if *iss == validation.issuer => iss.clone(),
        Some(_) => return Err(JwtError::WrongIssuer),
    };

    let audience_fits = |aud: &Value| {
        aud.as_str()
            .is_some_and(|aud| validation.audiences.iter().any(|want| want == aud))
    };
    let audience_ok = match raw.get("aud") {
        None => return Err(JwtError::MissingClaim("aud")),
        Some(Value::Array(auds)) => auds.iter().any(audience_fits),
        Some(aud) => audience_fits(aud),
    };
    if !audience_ok {
        return Err(JwtError::WrongAudience);
    }

    let sub = match raw.get("sub") {
        Some(Value::String(sub)) => sub.clone(),
        Some(_) => return Err(JwtError::Malformed("sub is not a string")),
        None => return Err(JwtError::MissingClaim("sub")),
    };

    Ok(Claims { sub, iss, exp, raw })
}

/// A NumericDate claim (RFC 7519 section 2), which may have a fraction;
/// the fraction is dropped.
fn time_claim(raw: &Map<String, Value>, name: &'static str) -> Result<Option<i64>, JwtError> {
    let Some(value) = raw.get(name) else {
        return Ok(None);
    };
    let Value::Number(number) = value else {
        return Err(JwtError::Malformed("time claim is not a number"));
    };
    if let Some(whole) = number.as_i64() {
        return Ok(Some(whole));
    }
    match number.as_f64() {
        // Within ±2^62 the cast is exact enough and cannot saturate.
        Some(float) if float.is_finite() && float.abs() < 4.6e18 => Ok(Some(float.floor() as i64)),
        _ => Err(JwtError::Malformed("time claim is out of range")),
    }
}

/// Signing helpers for tests, here and in crates that depend on this one
/// (through the `test-support` feature). They panic on failure, which is
/// what a test wants.
#[cfg(any(test, feature = "test-support"))]
pub mod testing {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use ring::rand::SystemRandom;
    use ring::signature::{
        ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _, RSA_PKCS1_SHA256, RsaKeyPair,
        RsaPublicKeyComponents,
    };

    /// A 2048-bit RSA key made once with `openssl genpkey` for tests only,
    /// as PKCS#8 DER. It signs nothing outside tests.
    const RSA_TEST_KEY: &[u8] = include_bytes!("testdata/rsa2048-test-key.pk8");

    /// A private key that can sign test tokens.
    pub enum Signer {
        Es256(EcdsaKeyPair),
        Rs256(RsaKeyPair),
    }

    /// A fresh P-256 key, and its public half as a JWK with this `kid`.
    pub fn es256_key(kid: &str) -> (Signer, String) {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .expect("P-256 key generation");
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .expect("P-256 key from its own PKCS#8");
        // ring gives the public key as the uncompressed point 04 || x || y.
        let point = pair.public_key().as_ref();
        let jwk = serde_json::json!({
            "kty": "EC",
            "crv": "P-256",
            "use": "sig",
            "alg": "ES256",
            "kid": kid,
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        });
        (Signer::Es256(pair), jwk.to_string())
    }

    /// The fixed RSA test key, and its public half as a JWK with this `kid`.
    pub fn rs256_key(kid: &str) -> (Signer, String) {
        let pair = RsaKeyPair::from_pkcs8(RSA_TEST_KEY).expect("RSA test key");
        let public: RsaPublicKeyComponents<Vec<u8>> = pair.public().into();
        let jwk = serde_json::json!({
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": kid,
            "n": URL_SAFE_NO_PAD.encode(&public.n),
            "e": URL_SAFE_NO_PAD.encode(&public.e),
        });
        (Signer::Rs256(pair), jwk.to_string())
    }

    /// A JWKS document holding these JWKs.
    pub fn jwks(jwks: &[&str]) -> String {
        format!(r#"{{"keys":[{}]}}"#, jwks.join(","))
    }

    /// A compact JWS of these header and claims, signed by `signer`. The
    /// header is taken as given, so tests can lie in it.
    pub fn sign(header_json: &str, claims_json: &str, signer: &Signer) -> String {
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header_json),
            URL_SAFE_NO_PAD.encode(claims_json)
        );
        let rng = SystemRandom::new();
        let signature = match signer {
            Signer::Es256(pair) => pair
                .sign(&rng, signing_input.as_bytes())
                .expect("ES256 signing")
                .as_ref()
                .to_vec(),
            Signer::Rs256(pair) => {
                let mut signature = vec![0; pair.public().modulus_len()];
                pair.sign(
                    &RSA_PKCS1_SHA256,
                    &rng,
                    signing_input.as_bytes(),
                    &mut signature,
                )
                .expect("RS256 signing");
                signature
            }
        };
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::testing::{Signer, es256_key, jwks, rs256_key, sign};
    use super::*;
    use serde_json::json;

    const ISSUER: &str = "https://id.dothi.example/realms/city";
    const AUDIENCE: &str = "dothi-hub";
    const NOW: i64 = 1_750_000_000;

    fn validation() -> Validation {
        Validation::new(ISSUER, vec![AUDIENCE.to_owned()])
    }

    /// `verify` with the tests' validation, at `NOW`.
    fn check(token: &str, keys: &Jwks) -> Result<Claims, JwtError> {
        verify(token, keys, &validation(), NOW)
    }

    /// Asserts that `check` refuses `token` as malformed, for `reason`.
    fn assert_malformed(token: &str, keys: &Jwks, reason: &'static str) {
        assert_eq!(check(token, keys), Err(JwtError::Malformed(reason)));
    }

    fn claims() -> Value {
        json!({
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": "user-42",
            "exp": NOW + 300,
            "iat": NOW - 10,
            "scope": "entities:read",
        })
    }

    fn with(mut claims: Value, name: &str, value: Value) -> Value {
        claims[name] = value;
        claims
    }

    fn without(mut claims: Value, name: &str) -> Value {
        claims.as_object_mut().unwrap().remove(name);
        claims
    }

    fn b64(bytes: impl AsRef<[u8]>) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// An ES256 key "ec1", the RSA test key "rsa1", and the set of both.
    fn setup() -> (Signer, Signer, Jwks) {
        let (ec, ec_jwk) = es256_key("ec1");
        let (rsa, rsa_jwk) = rs256_key("rsa1");
        let set = Jwks::from_json(&jwks(&[&ec_jwk, &rsa_jwk])).unwrap();
        (ec, rsa, set)
    }

    fn es256(kid: &str, claims: &Value, signer: &Signer) -> String {
        let header = json!({"alg": "ES256", "typ": "JWT", "kid": kid});
        sign(&header.to_string(), &claims.to_string(), signer)
    }

    fn rs256(kid: &str, claims: &Value, signer: &Signer) -> String {
        let header = json!({"alg": "RS256", "typ": "JWT", "kid": kid});
        sign(&header.to_string(), &claims.to_string(), signer)
    }

    #[test]
    fn es256_and_rs256_tokens_verify() {
        let (ec, rsa, set) = setup();
        for token in [es256("ec1", &claims(), &ec), rs256("rsa1", &claims(), &rsa)] {
            let verified = check(&token, &set).unwrap();
            assert_eq!(verified.sub, "user-42");
            assert_eq!(verified.iss, ISSUER);
            assert_eq!(verified.exp, NOW + 300);
            assert_eq!(verified.raw["scope"], "entities:read");
            assert_eq!(verified.expires_at().unwrap().timestamp(), verified.exp);
        }
    }

    #[test]
    fn token_without_kid_is_tried_against_keys_of_its_type() {
        let (other, other_jwk) = es256_key("other");
        let (ec, ec_jwk) = es256_key("ec1");
        let (_, rsa_jwk) = rs256_key("rsa1");
        let set = Jwks::from_json(&jwks(&[&other_jwk, &rsa_jwk, &ec_jwk])).unwrap();
        let header = r#"{"alg":"ES256"}"#;
        for signer in [&ec, &other] {
            let token = sign(header, &claims().to_string(), signer);
            assert!(check(&token, &set).is_ok());
        }
        let (stranger, _) = es256_key("stranger");
        let token = sign(header, &claims().to_string(), &stranger);
        assert_eq!(check(&token, &set), Err(JwtError::BadSignature));
    }

    #[test]
    fn alg_none_is_refused() {
        let (_, _, set) = setup();
        let payload = b64(claims().to_string());
        for alg in ["none", "None", "NONE", "nOnE", ""] {
            let header = b64(json!({"alg": alg, "kid": "ec1"}).to_string());
            for token in [
                format!("{header}.{payload}."),
                format!("{header}.{payload}.{}", b64("x")),
            ] {
                assert_eq!(
                    check(&token, &set),
                    Err(JwtError::UnsupportedAlg(alg.to_owned())),
                    "{alg:?}"
                );
            }
        }
    }

    #[test]
    fn hs256_keyed_with_the_rsa_public_key_is_refused() {
        use ring::signature::KeyPair as _;
        let (_, rsa, set) = setup();
        let Signer::Rs256(pair) = &rsa else {
            unreachable!()
        };
        let components: RsaPublicKeyComponents<Vec<u8>> = pair.public().into();
        let rsa_jwk = rs256_key("rsa1").1;
        // Every form of "the public key" an attacker might feed to HMAC.
        let public_forms: [Vec<u8>; 3] = [
            pair.public_key().as_ref().to_vec(),
            components.n.clone(),
            rsa_jwk.into_bytes(),
        ];
        for alg in ["HS256", "HS384", "HS512"] {
            for key_bytes in &public_forms {
                let header = b64(json!({"alg": alg, "kid": "rsa1", "typ": "JWT"}).to_string());
                let payload = b64(claims().to_string());
                let signing_input = format!("{header}.{payload}");
                let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key_bytes);
                let tag = ring::hmac::sign(&key, signing_input.as_bytes());
                let token = format!("{signing_input}.{}", b64(tag));
                assert_eq!(
                    check(&token, &set),
                    Err(JwtError::UnsupportedAlg(alg.to_owned()))
                );
            }
        }
    }

    #[test]
    fn other_algorithms_are_refused_before_keys_are_consulted() {
        let empty = Jwks::default();
        let payload = b64(claims().to_string());
        for alg in [
            "RS384", "RS512", "PS256", "ES384", "ES512", "EdDSA", "rs256", "ES256 ",
        ] {
            let header = b64(json!({"alg": alg}).to_string());
            let token = format!("{header}.{payload}.{}", b64("sig"));
            assert_eq!(
                check(&token, &empty),
                Err(JwtError::UnsupportedAlg(alg.to_owned())),
                "{alg:?}"
            );
        }
        let long = "A".repeat(100);
        let header = b64(json!({"alg": long}).to_string());
        let token = format!("{header}.{payload}.{}", b64("sig"));
        assert_eq!(
            check(&token, &empty),
            Err(JwtError::UnsupportedAlg("A".repeat(32)))
        );
    }

    #[test]
    fn token_signed_by_another_key_is_refused() {
        let (_, _, set) = setup();
        let (impostor, _) = es256_key("ec1");
        let token = es256("ec1", &claims(), &impostor);
        assert_eq!(check(&token, &set), Err(JwtError::BadSignature));
    }

    #[test]
    fn tampered_payload_is_refused() {
        let (ec, rsa, set) = setup();
        for token in [es256("ec1", &claims(), &ec), rs256("rsa1", &claims(), &rsa)] {
            let parts: Vec<&str> = token.split('.').collect();
            let forged = b64(with(claims(), "sub", json!("admin")).to_string());
            let tampered = format!("{}.{forged}.{}", parts[0], parts[2]);
            assert_eq!(check(&tampered, &set), Err(JwtError::BadSignature));
            // A swapped header is caught too: the signature covers it.
            let header = b64(json!({"alg": parts_alg(&token), "kid": "ec1"}).to_string());
            let swapped = format!("{header}.{}.{}", parts[1], parts[2]);
            assert!(check(&swapped, &set).is_err());
        }
    }

    fn parts_alg(token: &str) -> String {
        let header = token.split('.').next().unwrap();
        let header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
        header["alg"].as_str().unwrap().to_owned()
    }

    #[test]
    fn der_encoded_ecdsa_signature_is_refused() {
        use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair};
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let asn1 = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let fixed = EcdsaKeyPair::from_pkcs8(
            &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            pkcs8.as_ref(),
            &rng,
        )
        .unwrap();
        let good = es256("k", &claims(), &Signer::Es256(fixed));
        let (signing_input, _) = good.rsplit_once('.').unwrap();
        let der = asn1.sign(&rng, signing_input.as_bytes()).unwrap();
        let bad = format!("{signing_input}.{}", b64(der));
        // Build a set holding the key both tokens were made with.
        let point = {
            use ring::signature::KeyPair as _;
            asn1.public_key().as_ref().to_vec()
        };
        let jwk = json!({
            "kty": "EC", "crv": "P-256", "kid": "k",
            "x": b64(&point[1..33]), "y": b64(&point[33..65]),
        });
        let set = Jwks::from_json(&jwks(&[&jwk.to_string()])).unwrap();
        assert!(check(&good, &set).is_ok());
        assert_eq!(check(&bad, &set), Err(JwtError::BadSignature));
    }

    #[test]
    fn unknown_or_mismatched_keys_are_reported_as_unknown() {
        let (ec, rsa, set) = setup();
        // No key has this kid.
        let token = es256("rotated-away", &claims(), &ec);
        assert_eq!(check(&token, &set), Err(JwtError::UnknownKey));
        // ES256 naming the RSA key, and RS256 naming the EC key.
        let token = es256("rsa1", &claims(), &ec);
        assert_eq!(check(&token, &set), Err(JwtError::UnknownKey));
        let token = rs256("ec1", &claims(), &rsa);
        assert_eq!(check(&token, &set), Err(JwtError::UnknownKey));
        // RS256 without kid against a set with no RSA key.
        let (_, ec_only) = es256_key("ec1");
        let ec_only = Jwks::from_json(&jwks(&[&ec_only])).unwrap();
        let token = sign(r#"{"alg":"RS256"}"#, &claims().to_string(), &rsa);
        assert_eq!(check(&token, &ec_only), Err(JwtError::UnknownKey));
    }

    #[test]
    fn expiry_is_required_and_checked_with_leeway() {
        let (ec, _, set) = setup();
        let mut strict = validation();
        strict.leeway_secs = 0;
        let token = es256("ec1", &with(claims(), "exp", json!(NOW)), &ec);
        assert_eq!(verify(&token, &set, &strict, NOW), Err(JwtError::Expired));
        assert!(verify(&token, &set, &strict, NOW - 1).is_ok());
        // Default leeway of 60 s.
        assert!(verify(&token, &set, &validation(), NOW + 59).is_ok());
        assert_eq!(
            verify(&token, &set, &validation(), NOW + 60),
            Err(JwtError::Expired)
        );
        // Negative leeway counts as none, not as a stricter clock.
        strict.leeway_secs = -100;
        assert!(verify(&token, &set, &strict, NOW - 1).is_ok());

        let token = es256("ec1", &without(claims(), "exp"), &ec);
        assert_eq!(check(&token, &set), Err(JwtError::MissingClaim("exp")));
        let token = es256("ec1", &with(claims(), "exp", json!("tomorrow")), &ec);
        assert!(matches!(check(&token, &set), Err(JwtError::Malformed(_))));
        let token = es256("ec1", &with(claims(), "exp", json!(1e300)), &ec);
        assert!(matches!(check(&token, &set), Err(JwtError::Malformed(_))));
        // Fractional NumericDates are allowed.
        let token = es256("ec1", &with(claims(), "exp", json!(NOW as f64 + 0.5)), &ec);
        assert_eq!(verify(&token, &set, &strict, NOW - 1).unwrap().exp, NOW);
        // An exp near i64::MAX must not overflow with the leeway.
        let token = es256("ec1", &with(claims(), "exp", json!(i64::MAX)), &ec);
        assert!(check(&token, &set).is_ok());
    }

    #[test]
    fn not_before_is_checked_when_present() {
        let (ec, _, set) = setup();
        let token = es256("ec1", &with(claims(), "nbf", json!(NOW + 120)), &ec);
        assert_eq!(check(&token, &set), Err(JwtError::NotYetValid));
        assert!(verify(&token, &set, &validation(), NOW + 60).is_ok());
        let token = es256("ec1", &with(claims(), "nbf", json!(NOW)), &ec);
        assert!(check(&token, &set).is_ok());
    }

    #[test]
    fn issuer_must_match_exactly() {
        let (ec, _, set) = setup();
        for iss in [
            json!("https://evil.example/realms/city"),
            json!(format!("{ISSUER}/")),
            json!([ISSUER]),
            json!(null),
        ] {
            let token = es256("ec1", &with(claims(), "iss", iss.clone()), &ec);
            assert_eq!(check(&token, &set), Err(JwtError::WrongIssuer), "{iss}");
        }
        let token = es256("ec1", &without(claims(), "iss"), &ec);
        assert_eq!(check(&token, &set), Err(JwtError::MissingClaim("iss")));
    }

    #[test]
    fn audience_may_be_a_string_or_an_array() {
        let (ec, _, set) = setup();
        let token = es256(
            "ec1",
            &with(claims(), "aud", json!(["account", AUDIENCE])),
            &ec,
        );
        assert!(check(&token, &set).is_ok());
        let mut several = validation();
        several.audiences = vec!["other".into(), "account".into()];
        assert!(verify(&token, &set, &several, NOW).is_ok());
    }

    #[test]
    fn wrong_audience_is_refused() {
        let (ec, _, set) = setup();
        for aud in [
            json!("account"),
            json!(["account", "web"]),
            json!([]),
            json!(7),
        ] {
            let token = es256("ec1", &with(claims(), "aud", aud.clone()), &ec);
            assert_eq!(check(&token, &set), Err(JwtError::WrongAudience), "{aud}");
        }
        let token = es256("ec1", &without(claims(), "aud"), &ec);
        assert_eq!(check(&token, &set), Err(JwtError::MissingClaim("aud")));
        // No configured audience accepts nothing.
        let token = es256("ec1", &claims(), &ec);
        let nobody = Validation::new(ISSUER, vec![]);
        assert_eq!(
            verify(&token, &set, &nobody, NOW),
            Err(JwtError::WrongAudience)
        );
    }

    #[test]
    fn subject_is_required() {
        let (ec, _, set) = setup();
        let token = es256("ec1", &without(claims(), "sub"), &ec);
        assert_eq!(check(&token, &set), Err(JwtError::MissingClaim("sub")));
    }

    #[test]
    fn garbage_segments_are_malformed() {
        let (ec, _, set) = setup();
        let good = es256("ec1", &claims(), &ec);
        let parts: Vec<&str> = good.split('.').collect();
        let (h, p, s) = (parts[0], parts[1], parts[2]);
        let padded_header = format!("{}=", b64(r#"{"alg":"ES256","kid":"ec1"}"#));
        let not_json = b64("not json");
        let array = b64("[1,2]");
        let numeric_alg = b64(r#"{"alg":256}"#);
        let no_alg = b64(r#"{"kid":"ec1"}"#);
        let cases = [
            String::new(),
            ".".into(),
            "..".into(),
            format!("{h}.{p}"),
            format!("{h}.{p}.{s}.{s}"),
            format!("{h}.{p}.{s}."),
            format!("!!.{p}.{s}"),
            format!("{h}.{p}.{s}!"),
            format!("{h}.{p}*.{s}"),
            format!("{h}+/.{p}.{s}"),
            format!("{padded_header}.{p}.{s}"),
            format!("{not_json}.{p}.{s}"),
            format!("{array}.{p}.{s}"),
            format!("{numeric_alg}.{p}.{s}"),
            format!("{no_alg}.{p}.{s}"),
            format!("{h}.{p}.{s}=="),
            format!(" {h}.{p}.{s}"),
        ];
        for token in cases {
            assert!(
                matches!(check(&token, &set), Err(JwtError::Malformed(_))),
                "{token:?}: {:?}",
                check(&token, &set)
            );
        }
        // A correctly signed payload that is not a JSON object.
        let header = r#"{"alg":"ES256","kid":"ec1"}"#;
        for payload in ["[]", "\"text\"", "{"] {
            let token = sign(header, payload, &ec);
            assert_malformed(&token, &set, "payload is not a JSON object");
        }
    }

    #[test]
    fn critical_header_extensions_are_refused() {
        let (ec, _, set) = setup();
        let header = r#"{"alg":"ES256","kid":"ec1","crit":["exp"],"exp":1}"#;
        let token = sign(header, &claims().to_string(), &ec);
        assert_malformed(&token, &set, "critical header extensions");
    }

    #[test]
    fn oversized_token_is_refused_even_if_well_signed() {
        let (ec, _, set) = setup();
        let padding = "x".repeat(MAX_TOKEN_BYTES);
        let big = es256("ec1", &with(claims(), "padding", json!(padding)), &ec);
        assert_malformed(&big, &set, "token too large");
        let junk = "a".repeat(MAX_TOKEN_BYTES + 1);
        assert_malformed(&junk, &set, "token too large");
        // Just under the bound is fine.
        let room = MAX_TOKEN_BYTES - es256("ec1", &claims(), &ec).len();
        let fill = "x".repeat(room * 3 / 4 - 20);
        let near = es256("ec1", &with(claims(), "fill", json!(fill)), &ec);
        assert!(near.len() <= MAX_TOKEN_BYTES && near.len() > MAX_TOKEN_BYTES - 100);
        assert!(check(&near, &set).is_ok());
    }

    #[test]
    fn key_set_skips_keys_it_cannot_use() {
        let (ec, ec_jwk) = es256_key("ec1");
        let (rsa, rsa_jwk) = rs256_key("rsa1");
        let odd_keys = [
            r#"{"kty":"oct","k":"c2VjcmV0","kid":"hmac"}"#.to_owned(),
            r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#
                .to_owned(),
            json!({"kty":"EC","crv":"P-384","x":b64([1u8; 48]),"y":b64([2u8; 48]),"kid":"p384"})
                .to_string(),
            json!({"kty":"EC","crv":"P-256","x":b64([1u8; 31]),"y":b64([2u8; 32])}).to_string(),
            r#"{"kty":"RSA","n":"!!!","e":"AQAB","kid":"broken"}"#.to_owned(),
            r#"{"kty":"RSA","e":"AQAB","kid":"no-modulus"}"#.to_owned(),
            r#"{"kty":"RSA","n":"AAAA","e":"AQAB","kid":"zero-modulus"}"#.to_owned(),
            r#"{"kty":"RSA","n":42,"e":"AQAB"}"#.to_owned(),
            r#"{"no":"kty"}"#.to_owned(),
            "17".to_owned(),
            // Usable material, but for encryption, or another algorithm, or
            // labelled with the algorithm of the other key type.
            rsa_jwk.replace(r#""use":"sig""#, r#""use":"enc""#),
            rsa_jwk.replace("RS256", "RS512"),
            ec_jwk.replace(r#""ES256""#, r#""RS256""#),
        ];
        let mut all: Vec<&str> = odd_keys.iter().map(String::as_str).collect();
        all.push(&ec_jwk);
        all.push(&rsa_jwk);
        let set = Jwks::from_json(&jwks(&all)).unwrap();
        assert_eq!(set.len(), 2);
        assert!(verify(&es256("ec1", &claims(), &ec), &set, &validation(), NOW).is_ok());
        assert!(verify(&rs256("rsa1", &claims(), &rsa), &set, &validation(), NOW).is_ok());

        let only_odd: Vec<&str> = odd_keys.iter().map(String::as_str).collect();
        let set = Jwks::from_json(&jwks(&only_odd)).unwrap();
        assert!(set.is_empty());
    }

    #[test]
    fn key_set_tolerates_padding_and_leading_zeros_in_key_fields() {
        let (rsa, _) = rs256_key("rsa1");
        let Signer::Rs256(pair) = &rsa else {
            unreachable!()
        };
        let public: RsaPublicKeyComponents<Vec<u8>> = pair.public().into();
        let mut n = vec![0u8];
        n.extend_from_slice(&public.n);
        let padded = base64::engine::general_purpose::URL_SAFE;
        let jwk = json!({
            "kty": "RSA",
            "kid": "rsa1",
            "n": padded.encode(&n),
            "e": padded.encode(&public.e),
        });
        let set = Jwks::from_json(&jwks(&[&jwk.to_string()])).unwrap();
        assert_eq!(set.len(), 1);
        assert!(verify(&rs256("rsa1", &claims(), &rsa), &set, &validation(), NOW).is_ok());
    }

    #[test]
    fn key_set_that_is_not_a_key_set_is_an_error() {
        for json in ["", "[]", "{}", r#"{"keys":{}}"#, r#"{"keys":[1,2"#] {
            assert!(
                matches!(Jwks::from_json(json), Err(JwtError::BadKeySet(_))),
                "{json:?}"
            );
        }
        assert!(Jwks::from_json(r#"{"keys":[]}"#).unwrap().is_empty());
    }

    #[test]
    fn error_messages_have_no_trailing_period() {
        let errors = [
            JwtError::Malformed("x"),
            JwtError::UnsupportedAlg("HS256".into()),
            JwtError::BadSignature,
            JwtError::UnknownKey,
            JwtError::Expired,
            JwtError::NotYetValid,
            JwtError::WrongIssuer,
            JwtError::WrongAudience,
            JwtError::MissingClaim("exp"),
            JwtError::BadKeySet("x".into()),
        ];
        for error in errors {
            assert!(!error.to_string().ends_with('.'), "{error}");
        }
        assert_eq!(
            JwtError::UnsupportedAlg("HS256".into()).to_string(),
            r#"token algorithm "HS256" is not accepted"#
        );
    }

    #[test]
    fn verify_now_uses_the_clock() {
        let (ec, _, set) = setup();
        let now = Utc::now().timestamp();
        let fresh = es256("ec1", &with(claims(), "exp", json!(now + 600)), &ec);
        assert!(verify_now(&fresh, &set, &validation()).is_ok());
        let stale = es256("ec1", &with(claims(), "exp", json!(now - 600)), &ec);
        assert_eq!(
            verify_now(&stale, &set, &validation()),
            Err(JwtError::Expired)
        );
    }
}
