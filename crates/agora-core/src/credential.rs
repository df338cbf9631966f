//! Bearer secrets: API keys, access and refresh tokens, webhook signing secrets.
//!
//! A secret is a type prefix plus 32 random bytes (base64url). Only its SHA-256 is stored
//! for keys and tokens: the secrets are 256-bit random, so a fast hash is as strong as a slow
//! one and keeps every authenticated request cheap. Randomness comes from the caller, which
//! keeps this module pure.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};

/// What a bearer secret is, told by its prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretKind {
    ApiKey,
    AccessToken,
    RefreshToken,
}

impl SecretKind {
    pub const fn prefix(self) -> &'static str {
        match self {
            Self::ApiKey => "ak_live_",
            Self::AccessToken => "at_",
            Self::RefreshToken => "rt_",
        }
    }

    /// Tells a presented secret's kind by its prefix.
    pub fn of(secret: &str) -> Option<Self> {
        [Self::ApiKey, Self::AccessToken, Self::RefreshToken]
            .into_iter()
            .find(|k| secret.starts_with(k.prefix()))
    }
}

/// A freshly minted secret: the plaintext (shown once), its hash (stored) and a display prefix.
#[derive(Clone)]
pub struct Minted {
    pub plaintext: String,
    pub hash: String,
    /// Enough of the plaintext to recognise a key in a list, never enough to use it.
    pub display_prefix: String,
}

impl std::fmt::Debug for Minted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Minted").field("display_prefix", &self.display_prefix).finish_non_exhaustive()
    }
}

pub fn mint(kind: SecretKind, random: [u8; 32]) -> Minted {
    let plaintext = format!("{}{}", kind.prefix(), URL_SAFE_NO_PAD.encode(random));
    let display_prefix = plaintext.chars().take(kind.prefix().len() + 6).collect();
    Minted { hash: hash_secret(&plaintext), plaintext, display_prefix }
}

/// Hex SHA-256 of a presented secret: the form in which keys and tokens are stored and looked up.
pub fn hash_secret(secret: &str) -> String {
    sha256_hex(&[secret.as_bytes()])
}

/// Hex SHA-256 of the concatenation of `parts`.
pub fn sha256_hex(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    let digest = h.finalize();
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// A webhook signing secret in the Standard Webhooks form: `whsec_` + base64 of the key bytes.
/// Unlike keys it is stored as is, because the server needs it to sign deliveries.
pub fn webhook_secret(random: [u8; 32]) -> String {
    format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode(random))
}

/// A random password of 32 URL-safe characters (192 bits), for credentials printed once.
pub fn one_time_password(random: [u8; 32]) -> String {
    URL_SAFE_NO_PAD.encode(&random[..24])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_secret_hashes_to_its_stored_hash() {
        let m = mint(SecretKind::ApiKey, [7; 32]);
        assert!(m.plaintext.starts_with("ak_live_"));
        assert_eq!(hash_secret(&m.plaintext), m.hash);
        assert_eq!(m.hash.len(), 64);
        assert!(!m.hash.contains(&m.plaintext));
        assert_eq!(m.display_prefix.len(), "ak_live_".len() + 6);
        assert!(m.plaintext.starts_with(&m.display_prefix));
        assert!(!format!("{m:?}").contains(&m.plaintext));
        assert_eq!(SecretKind::of(&m.plaintext), Some(SecretKind::ApiKey));
        assert_eq!(SecretKind::of("at_x"), Some(SecretKind::AccessToken));
        assert_eq!(SecretKind::of("nope"), None);
    }

    #[test]
    fn sha256_matches_a_known_vector() {
        assert_eq!(hash_secret("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn webhook_secret_is_standard_webhooks_shaped() {
        let s = webhook_secret([1; 32]);
        let b64 = s.strip_prefix("whsec_").unwrap_or_default();
        assert_eq!(base64::engine::general_purpose::STANDARD.decode(b64).map(|v| v.len()), Ok(32));
    }
}
