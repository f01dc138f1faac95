//! Stored passwords: plain text, argon2 PHC strings and bcrypt hashes.

use std::fmt;
use std::str::FromStr;

use argon2::password_hash::phc::PasswordHash;
use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier};
use subtle::ConstantTimeEq;

use crate::Error;

/// A password as stored in the ledger.
///
/// A string that starts with `$argon2i$`, `$argon2d$` or `$argon2id$` is an argon2 PHC
/// string; one that starts with `$2a$`, `$2b$`, `$2x$` or `$2y$` is a bcrypt hash. Anything
/// else is a plain-text password. A string that looks like a hash but does not parse as one
/// is refused when the ledger is loaded, so a typo never turns a hash into a plain password.
///
/// Plain passwords are compared in constant time (only their length can be learnt from
/// timing); argon2 and bcrypt compare their outputs in constant time too.
/// `Debug` never shows the password or the hash.
#[derive(Clone)]
pub struct Password(Secret);

#[derive(Clone)]
enum Secret {
    Plain(Box<[u8]>),
    Argon2(Box<PasswordHash>),
    Bcrypt(Box<str>),
}

/// Which kind of stored password a [`Password`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PasswordKind {
    /// Plain text.
    Plain,
    /// An argon2 (i, d or id) PHC string.
    Argon2,
    /// A bcrypt hash.
    Bcrypt,
}

/// The algorithm [`hash_password`] uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HashAlgorithm {
    /// Argon2id with the argon2 crate's default (OWASP-recommended) parameters.
    Argon2id,
    /// Bcrypt with the given cost (4 to 31; 12 is a sound choice).
    Bcrypt {
        /// Log2 of the number of rounds.
        cost: u32,
    },
}

impl Password {
    /// Parses a stored password (see the type's docs for how a hash is recognised).
    pub fn parse(stored: &str) -> Result<Self, String> {
        const ARGON2: [&str; 3] = ["$argon2i$", "$argon2d$", "$argon2id$"];
        const BCRYPT: [&str; 4] = ["$2a$", "$2b$", "$2x$", "$2y$"];
        if ARGON2.iter().any(|p| stored.starts_with(p)) {
            let hash =
                PasswordHash::new(stored).map_err(|e| format!("bad argon2 PHC string: {e}"))?;
            Algorithm::try_from(hash.algorithm.as_str())
                .map_err(|e| format!("bad argon2 PHC string: {e}"))?;
            Params::try_from(&hash).map_err(|e| format!("bad argon2 parameters: {e}"))?;
            if hash.salt.is_none() || hash.hash.is_none() {
                return Err("bad argon2 PHC string: it needs a salt and a hash".into());
            }
            Ok(Self(Secret::Argon2(Box::new(hash))))
        } else if BCRYPT.iter().any(|p| stored.starts_with(p)) {
            bcrypt::HashParts::from_str(stored).map_err(|e| format!("bad bcrypt hash: {e}"))?;
            Ok(Self(Secret::Bcrypt(stored.into())))
        } else {
            Ok(Self::plain(stored.as_bytes()))
        }
    }

    /// A plain-text password.
    pub fn plain(password: &[u8]) -> Self {
        Self(Secret::Plain(password.into()))
    }

    /// Which kind of stored password this is.
    pub fn kind(&self) -> PasswordKind {
        match self.0 {
            Secret::Plain(_) => PasswordKind::Plain,
            Secret::Argon2(_) => PasswordKind::Argon2,
            Secret::Bcrypt(_) => PasswordKind::Bcrypt,
        }
    }

    /// Whether `given` (the CONNECT password) is this password. Hashes are slow on purpose
    /// (milliseconds); the ledger checks every cheaper criterion of a rule first.
    pub fn verify(&self, given: &[u8]) -> bool {
        match &self.0 {
            Secret::Plain(stored) => bool::from(stored.ct_eq(given)),
            Secret::Argon2(hash) => Argon2::default().verify_password(given, &**hash).is_ok(),
            Secret::Bcrypt(hash) => bcrypt::verify(given, hash).unwrap_or(false),
        }
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Password({:?}, <redacted>)", self.kind())
    }
}

impl FromStr for Password {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Hashes `password` into a string the ledger accepts in a `password` field: an argon2id
/// PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`) or a bcrypt hash (`$2b$12$…`), each with
/// a fresh random salt.
pub fn hash_password(password: &[u8], algorithm: HashAlgorithm) -> Result<String, Error> {
    match algorithm {
        HashAlgorithm::Argon2id => Argon2::default()
            .hash_password(password)
            .map(|h| h.to_string())
            .map_err(|e| Error::Hash(e.to_string())),
        HashAlgorithm::Bcrypt { cost } => {
            bcrypt::hash(password, cost).map_err(|e| Error::Hash(e.to_string()))
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use argon2::Version;
    use std::sync::LazyLock;

    /// Argon2id of "secret" with the cheapest parameters, hashed once for all tests.
    pub(crate) static ARGON2_SECRET: LazyLock<String> = LazyLock::new(|| {
        let params = Params::new(8, 1, 1, None).unwrap();
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password(b"secret")
            .unwrap()
            .to_string()
    });

    /// Bcrypt of "secret" at the lowest cost, hashed once for all tests.
    pub(crate) static BCRYPT_SECRET: LazyLock<String> =
        LazyLock::new(|| bcrypt::hash("secret", 4).unwrap());

    #[test]
    fn plain_passwords_compare_exactly() {
        let p = Password::parse("secret").unwrap();
        assert_eq!(p.kind(), PasswordKind::Plain);
        assert!(p.verify(b"secret"));
        assert!(!p.verify(b"secreT"));
        assert!(!p.verify(b"secret "));
        assert!(!p.verify(b""));
        assert!(Password::plain(&[0xff, 0]).verify(&[0xff, 0]));
    }

    #[test]
    fn argon2_hashes_verify() {
        let p = Password::parse(&ARGON2_SECRET).unwrap();
        assert_eq!(p.kind(), PasswordKind::Argon2);
        assert!(p.verify(b"secret"));
        assert!(!p.verify(b"Secret"));
        assert!(
            !p.verify(ARGON2_SECRET.as_bytes()),
            "the hash is not the password"
        );
    }

    #[test]
    fn bcrypt_hashes_verify() {
        let p = Password::parse(&BCRYPT_SECRET).unwrap();
        assert_eq!(p.kind(), PasswordKind::Bcrypt);
        assert!(p.verify(b"secret"));
        assert!(!p.verify(b"secret2"));
    }

    #[test]
    fn hash_password_produces_loadable_hashes() {
        let h = hash_password(b"pw", HashAlgorithm::Bcrypt { cost: 4 }).unwrap();
        assert!(h.starts_with("$2b$04$"));
        assert!(Password::parse(&h).unwrap().verify(b"pw"));
        assert!(hash_password(b"pw", HashAlgorithm::Bcrypt { cost: 2 }).is_err());
    }

    #[test]
    fn malformed_hashes_are_refused() {
        for bad in [
            "$argon2id$",
            "$argon2id$v=19$m=8,t=1,p=1$c2FsdA",
            "$argon2id$v=19$m=1,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo",
            "$2b$04$short",
            "$2y$",
        ] {
            assert!(Password::parse(bad).is_err(), "{bad:?} should be refused");
        }
        assert_eq!(
            Password::parse("$ecret").unwrap().kind(),
            PasswordKind::Plain
        );
    }

    #[test]
    fn debug_redacts() {
        let s = format!("{:?}", Password::parse("hunter2").unwrap());
        assert!(!s.contains("hunter2"), "{s}");
    }
}
