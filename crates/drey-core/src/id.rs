//! Identifiers: TAMS UUIDs (lowercase, version 1-5, RFC 4122 variant) and object ids.
//!
//! The spec's `uuid.json` pattern is stricter than RFC 9562 parsing in general (no upper
//! case, no braces, no nil UUID), so ids are parsed here rather than by `uuid::Uuid`'s
//! permissive `FromStr`. Object ids are free-form in TAMS; drey restricts them to a
//! character set that is safe as an object-store key and in a URL path.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error(
        "{input:?} is not a lowercase UUID (version 1-5, e.g. 2aa143ac-0ab7-4d75-bc32-5c00c13d186f)"
    )]
    NotUuid { input: String },
    #[error("object id {input:?} is invalid: {reason}")]
    BadObjectId { input: String, reason: &'static str },
}

/// A TAMS id: a UUID in the lowercase hyphenated form the spec's pattern requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Id(uuid::Uuid);

impl Id {
    /// A new random (version 4) id.
    pub fn new_v4() -> Self {
        Id(uuid::Uuid::new_v4())
    }

    /// A name-based (version 5) id in drey's namespace.
    pub fn new_v5(namespace: &Id, name: &[u8]) -> Self {
        Id(uuid::Uuid::new_v5(&namespace.0, name))
    }

    pub fn as_uuid(&self) -> uuid::Uuid {
        self.0
    }

    pub fn from_uuid(u: uuid::Uuid) -> Result<Self, IdError> {
        u.hyphenated().to_string().parse()
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl FromStr for Id {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, IdError> {
        let err = || IdError::NotUuid {
            input: s.to_owned(),
        };
        let b = s.as_bytes();
        if b.len() != 36 {
            return Err(err());
        }
        for (i, &c) in b.iter().enumerate() {
            let ok = match i {
                8 | 13 | 18 | 23 => c == b'-',
                14 => (b'1'..=b'5').contains(&c),
                19 => matches!(c, b'8' | b'9' | b'a' | b'b'),
                _ => c.is_ascii_digit() || (b'a'..=b'f').contains(&c),
            };
            if !ok {
                return Err(err());
            }
        }
        uuid::Uuid::parse_str(s).map(Id).map_err(|_| err())
    }
}

impl Serialize for Id {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Longest object id drey accepts.
pub const MAX_OBJECT_ID_LEN: usize = 256;

/// Checks that an object id is safe as an object-store key and URL path: 1 to 256 of
/// `A-Z a-z 0-9 - _ . ~ /`, no empty, `.` or `..` path segment.
pub fn validate_object_id(s: &str) -> Result<(), IdError> {
    let bad = |reason| IdError::BadObjectId {
        input: s.chars().take(80).collect(),
        reason,
    };
    if s.is_empty() || s.len() > MAX_OBJECT_ID_LEN {
        return Err(bad("must be 1 to 256 characters"));
    }
    if !s
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b'~' | b'/'))
    {
        return Err(bad("only A-Z a-z 0-9 - _ . ~ / are allowed"));
    }
    if s.split('/')
        .any(|seg| seg.is_empty() || seg == "." || seg == "..")
    {
        return Err(bad("empty, '.' or '..' path segments are not allowed"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_pattern() {
        assert!("2aa143ac-0ab7-4d75-bc32-5c00c13d186f".parse::<Id>().is_ok());
        assert!("846023d3-612d-5014-bc47-88f6eb2d04bb".parse::<Id>().is_ok());
        for bad in [
            "2AA143AC-0AB7-4D75-BC32-5C00C13D186F",
            "{2aa143ac-0ab7-4d75-bc32-5c00c13d186f}",
            "2aa143ac0ab74d75bc325c00c13d186f",
            "00000000-0000-0000-0000-000000000000",
            "2aa143ac-0ab7-6d75-bc32-5c00c13d186f",
            "2aa143ac-0ab7-4d75-cc32-5c00c13d186f",
            "",
        ] {
            assert!(bad.parse::<Id>().is_err(), "{bad}");
        }
        let id = Id::new_v4();
        assert_eq!(id.to_string().parse::<Id>().unwrap(), id);
        let v5 = Id::new_v5(&id, b"x");
        assert_eq!(v5.to_string().parse::<Id>().unwrap(), v5);
    }

    #[test]
    fn object_ids() {
        for ok in [
            "a",
            "846023d3-612d-5014-bc47-88f6eb2d04bb",
            "flow/seg.ts",
            "a~b_c",
        ] {
            assert!(validate_object_id(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "/a",
            "a/",
            "a//b",
            "../x",
            "a/./b",
            "a b",
            "a%2f",
            &"x".repeat(257),
        ] {
            assert!(validate_object_id(bad).is_err(), "{bad}");
        }
    }
}
