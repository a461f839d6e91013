//! Short signed publish tokens for RTMP, sans-IO: `KEYID.EXPIRY.SIGNATURE`, where the
//! signature is the first 16 bytes (hex) of HMAC-SHA256 over the stream (`app/stream`) and
//! the expiry (Unix seconds) under the access key's secret. About 64 characters: short
//! enough for a stream key or an RTMP tcUrl (ffmpeg caps the URL at 1024), where a full
//! SigV4 query would not fit.

use subtle::ConstantTimeEq;

use crate::sigv4::{hex, hmac};

/// Why a token is refused; each names the failed check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("malformed publish token (expected KEYID.EXPIRY.SIGNATURE)")]
    Malformed,
    #[error("publish token expired at Unix time {0}")]
    Expired(i64),
    #[error("publish token signature does not match this stream (or the key's secret)")]
    Signature,
}

/// A parsed token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub key_id: String,
    pub expires: i64,
    signature: String,
}

fn mac(secret: &str, stream: &str, expires: i64) -> String {
    let full = hmac(
        secret.as_bytes(),
        format!("drey-publish\n{stream}\n{expires}").as_bytes(),
    );
    hex(&full[..16])
}

/// The token allowing a publish to `stream` (`app/stream_key`) until `expires`.
pub fn publish_token(key_id: &str, secret: &str, stream: &str, expires: i64) -> String {
    format!("{key_id}.{expires}.{}", mac(secret, stream, expires))
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

    /// Checks expiry and signature for `stream` at `now` with the key's secret.
    pub fn verify(&self, secret: &str, stream: &str, now: i64) -> Result<(), TokenError> {
        if now >= self.expires {
            return Err(TokenError::Expired(self.expires));
        }
        let want = mac(secret, stream, self.expires);
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
