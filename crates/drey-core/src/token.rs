//! Short signed tokens, sans-IO: `KEYID.EXPIRY.SIGNATURE`, where the signature is the first
//! 16 bytes (hex) of HMAC-SHA256 over the token's purpose, its scope and the expiry (Unix
//! seconds) under the access key's secret. About 64 characters: short enough for a stream
//! key or an RTMP tcUrl (ffmpeg caps the URL at 1024), where a full SigV4 query would not
//! fit. Purposes: RTMP publish (scope `app/stream`), HTTP bearer (`Authorization: Bearer`,
//! the key's own grants, no scope) and play (read one flow, scope its id).

use subtle::ConstantTimeEq;

use crate::sigv4::{hex, hmac};

/// Why a token is refused; each names the failed check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("malformed token (expected KEYID.EXPIRY.SIGNATURE)")]
    Malformed,
    #[error("token expired at Unix time {0}")]
    Expired(i64),
    #[error("token signature does not match what it is used for (or the key's secret)")]
    Signature,
}

/// What a token allows; part of what its signature covers, so a token made for one
/// purpose does not verify for another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// An RTMP publish to the scope `app/stream`.
    Publish,
    /// HTTP requests with the key's grants (scope empty).
    Bearer,
    /// Reading (playing, downloading) the flow whose id is the scope.
    Play,
}

impl Purpose {
    fn tag(self) -> &'static str {
        match self {
            Purpose::Publish => "drey-publish",
            Purpose::Bearer => "drey-bearer",
            Purpose::Play => "drey-play",
        }
    }
}

/// A parsed token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub key_id: String,
    pub expires: i64,
    signature: String,
}

fn mac(purpose: Purpose, secret: &str, scope: &str, expires: i64) -> String {
    let full = hmac(
        secret.as_bytes(),
        format!("{}\n{scope}\n{expires}", purpose.tag()).as_bytes(),
    );
    hex(&full[..16])
}

/// A token for `purpose` and `scope`, valid until `expires` (Unix seconds).
pub fn token(purpose: Purpose, key_id: &str, secret: &str, scope: &str, expires: i64) -> String {
    format!(
        "{key_id}.{expires}.{}",
        mac(purpose, secret, scope, expires)
    )
}

/// The token allowing a publish to `stream` (`app/stream_key`) until `expires`.
pub fn publish_token(key_id: &str, secret: &str, stream: &str, expires: i64) -> String {
    token(Purpose::Publish, key_id, secret, stream, expires)
}

impl Token {
    pub fn parse(s: &str) -> Result<Token, TokenError> {
        let mut it = s.split('.');
        let (Some(key), Some(exp), Some(sig), None) = (it.next(), it.next(), it.next(), it.next())
        else {
            return Err(TokenError::Malformed);
        };
        if key.is_empty()
            || key.len() > 64
            || !key.bytes().all(|c| c.is_ascii_alphanumeric())
            || sig.len() != 32
            || !sig.bytes().all(|c| c.is_ascii_hexdigit())
        {
            return Err(TokenError::Malformed);
        }
        let expires = exp.parse().map_err(|_| TokenError::Malformed)?;
        Ok(Token {
            key_id: key.to_owned(),
            expires,
            signature: sig.to_ascii_lowercase(),
        })
    }

    /// Checks expiry and signature of a publish token for `stream` at `now` with the key's
    /// secret.
    pub fn verify(&self, secret: &str, stream: &str, now: i64) -> Result<(), TokenError> {
        self.verify_for(Purpose::Publish, secret, stream, now)
    }

    /// Checks expiry and signature for `purpose` and `scope` at `now`.
    pub fn verify_for(
        &self,
        purpose: Purpose,
        secret: &str,
        scope: &str,
        now: i64,
    ) -> Result<(), TokenError> {
        if now >= self.expires {
            return Err(TokenError::Expired(self.expires));
        }
        let want = mac(purpose, secret, scope, self.expires);
        if bool::from(want.as_bytes().ct_eq(self.signature.as_bytes())) {
            Ok(())
        } else {
            Err(TokenError::Signature)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let t = publish_token("DREYABC", "s3cret", "live/cam1", 2_000_000_000);
        assert!(t.len() < 80, "{t}");
        let p = Token::parse(&t).unwrap();
        assert_eq!(p.key_id, "DREYABC");
        p.verify("s3cret", "live/cam1", 1_999_999_999).unwrap();
        assert_eq!(
            p.verify("s3cret", "live/cam1", 2_000_000_000),
            Err(TokenError::Expired(2_000_000_000))
        );
        assert_eq!(
            p.verify("s3cret", "live/cam2", 0),
            Err(TokenError::Signature)
        );
        assert_eq!(
            p.verify("other", "live/cam1", 0),
            Err(TokenError::Signature)
        );
        // A later expiry with the old signature does not verify.
        let forged = t.replace("2000000000", "2100000000");
        assert_eq!(
            Token::parse(&forged)
                .unwrap()
                .verify("s3cret", "live/cam1", 0),
            Err(TokenError::Signature)
        );
        // A token for one purpose is refused for another.
        let b = token(Purpose::Bearer, "DREYABC", "s3cret", "", 2_000_000_000);
        let b = Token::parse(&b).unwrap();
        b.verify_for(Purpose::Bearer, "s3cret", "", 0).unwrap();
        assert_eq!(b.verify("s3cret", "", 0), Err(TokenError::Signature));
        assert_eq!(
            b.verify_for(Purpose::Play, "s3cret", "", 0),
            Err(TokenError::Signature)
        );
        let f = "7b1f1b5a-0000-4000-8000-000000000001";
        let pl = Token::parse(&token(Purpose::Play, "K", "s", f, 10)).unwrap();
        pl.verify_for(Purpose::Play, "s", f, 9).unwrap();
        assert!(pl.verify_for(Purpose::Play, "s", "other", 9).is_err());
        for bad in [
            "",
            "a.b",
            "a.1.zz",
            "a.1.00.x",
            "a.x.00000000000000000000000000000000",
            "a-b.1.00000000000000000000000000000000",
        ] {
            assert_eq!(Token::parse(bad), Err(TokenError::Malformed), "{bad}");
        }
    }
}
