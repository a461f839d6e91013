//! AWS Signature Version 2 as S3 defines it (legacy S3 clients: `s3cmd` in V2 mode, boto's
//! `s3` signer), server side and sans-IO: the `Authorization: AWS KEY:SIGNATURE` header and
//! the presigned query (`AWSAccessKeyId`, `Expires`, `Signature`). The signature is the
//! base64 of HMAC-SHA1 over the string to sign (verb, Content-MD5, Content-Type, Date or
//! Expires, the `x-amz-*` headers, the resource with S3's sub-resources). V2 does not sign
//! the body: prefer SigV4 wherever the client can.

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use subtle::ConstantTimeEq;

use crate::sigv4::{MAX_EXPIRES_SECS, MAX_SKEW_SECS, Request, SigError, query_pairs};

/// A parsed V2 signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedV2 {
    pub access_key: String,
    /// Base64, as sent.
    pub signature: String,
    /// Presigned: the expiry (Unix seconds); header form: `None`.
    pub expires: Option<i64>,
}

/// S3's sub-resources: the query parameters that are part of the signed resource.
const SUBRESOURCES: &[&str] = &[
    "acl",
    "cors",
    "delete",
    "lifecycle",
    "location",
    "logging",
    "notification",
    "partNumber",
    "policy",
    "requestPayment",
    "response-cache-control",
    "response-content-disposition",
    "response-content-encoding",
    "response-content-language",
    "response-content-type",
    "response-expires",
    "restore",
    "tagging",
    "torrent",
    "uploadId",
    "uploads",
    "versionId",
    "versioning",
    "versions",
    "website",
];

/// Parses a V2 signature: `Ok(None)` when the request carries none.
pub fn parse(req: &Request) -> Result<Option<SignedV2>, SigError> {
    if let Some(auth) = req.header("authorization") {
        let Some(rest) = auth.strip_prefix("AWS ") else {
            return Ok(None);
        };
        let (key, sig) = rest.trim().rsplit_once(':').ok_or(SigError::Malformed(
            "Authorization (expected AWS KEY:SIGNATURE)",
        ))?;
        if key.is_empty() || sig.is_empty() {
            return Err(SigError::Malformed(
                "Authorization (expected AWS KEY:SIGNATURE)",
            ));
        }
        return Ok(Some(SignedV2 {
            access_key: key.to_owned(),
            signature: sig.to_owned(),
            expires: None,
        }));
    }
    let pairs = query_pairs(req.query);
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let Some(key) = get("AWSAccessKeyId") else {
        return Ok(None);
    };
    let sig = get("Signature").ok_or(SigError::Malformed("Signature"))?;
    let expires = get("Expires")
        .ok_or(SigError::Malformed("Expires"))?
        .parse::<i64>()
        .map_err(|_| SigError::Malformed("Expires"))?;
    Ok(Some(SignedV2 {
        access_key: key.to_owned(),
        signature: sig.to_owned(),
        expires: Some(expires),
    }))
}

/// The string to sign.
pub fn string_to_sign(req: &Request, s: &SignedV2) -> String {
    let h = |n: &str| req.header(n).unwrap_or("").trim().to_owned();
    let date = match s.expires {
        Some(e) => e.to_string(),
        // With x-amz-date the Date line is empty (x-amz-date is among the amz headers).
        None if req.header("x-amz-date").is_some() => String::new(),
        None => h("date"),
    };
    let mut amz: Vec<(String, String)> = Vec::new();
    for (n, v) in req.headers {
        let n = n.to_ascii_lowercase();
        if n.starts_with("x-amz-") {
            let v = v.split_whitespace().collect::<Vec<_>>().join(" ");
            match amz.iter_mut().find(|(k, _)| *k == n) {
                Some((_, existing)) => {
                    existing.push(',');
                    existing.push_str(&v);
                }
                None => amz.push((n, v)),
            }
        }
    }
    amz.sort();
    let mut out = format!(
        "{}\n{}\n{}\n{}\n",
        req.method,
        h("content-md5"),
        h("content-type"),
        date
    );
    for (n, v) in amz {
        out.push_str(&format!("{n}:{v}\n"));
    }
    out.push_str(req.path);
    let mut sub: Vec<(String, String)> = query_pairs(req.query)
        .into_iter()
        .filter(|(k, _)| SUBRESOURCES.contains(&k.as_str()))
        .collect();
    sub.sort();
    for (i, (k, v)) in sub.iter().enumerate() {
        out.push(if i == 0 { '?' } else { '&' });
        out.push_str(k);
        if !v.is_empty() {
            out.push('=');
            out.push_str(v);
        }
    }
    out
}

/// The base64 signature of a string to sign.
pub fn signature(secret: &str, string_to_sign: &str) -> String {
    let mut mac = <Hmac<sha1::Sha1> as KeyInit>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes any key length");
    mac.update(string_to_sign.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Parses an HTTP date (`Tue, 27 Mar 2007 19:36:42 +0000` or `... GMT`).
fn http_date(s: &str) -> Option<i64> {
    let s = s.trim();
    let s = s
        .strip_suffix(" GMT")
        .or_else(|| s.strip_suffix(" UTC"))
        .map_or_else(|| s.to_owned(), |d| format!("{d} +0000"));
    time::OffsetDateTime::parse(&s, &time::format_description::well_known::Rfc2822)
        .ok()
        .map(|t| t.unix_timestamp())
}

/// Verifies a V2 signature at `now` (Unix seconds): the request time within 15 minutes
/// (header form: `x-amz-date` or `Date`), or the presigned expiry not passed and at most 7
/// days ahead.
pub fn verify(req: &Request, s: &SignedV2, secret: &str, now: i64) -> Result<(), SigError> {
    match s.expires {
        Some(e) => {
            if now > e {
                return Err(SigError::Expired(format!("Unix time {e}")));
            }
            if e - now > MAX_EXPIRES_SECS + MAX_SKEW_SECS {
                return Err(SigError::BadExpiry);
            }
        }
        None => {
            let raw = req
                .header("x-amz-date")
                .or_else(|| req.header("date"))
                .ok_or(SigError::MissingHeader("date".into()))?;
            let t = http_date(raw).ok_or(SigError::Malformed("Date (an HTTP date)"))?;
            if (now - t).abs() > MAX_SKEW_SECS {
                return Err(SigError::ClockSkew(raw.to_owned()));
            }
        }
    }
    let want = signature(secret, &string_to_sign(req, s));
    if bool::from(want.as_bytes().ct_eq(s.signature.as_bytes())) {
        Ok(())
    } else {
        Err(SigError::Signature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    /// The S3 documentation's examples (REST authentication, "Object GET" and query
    /// string request authentication).
    #[test]
    fn known_answers_from_the_s3_documentation() {
        let headers = h(&[
            ("host", "johnsmith.s3.amazonaws.com"),
            ("date", "Tue, 27 Mar 2007 19:36:42 +0000"),
            (
                "authorization",
                "AWS AKIAIOSFODNN7EXAMPLE:bWq2s1WEIj+Ydj0vQ697zp+IXMU=",
            ),
        ]);
        // Virtual-hosted: the bucket is part of the signed resource.
        let req = Request {
            method: "GET",
            path: "/johnsmith/photos/puppy.jpg",
            query: "",
            headers: &headers,
        };
        let s = parse(&req).unwrap().unwrap();
        assert_eq!(s.access_key, "AKIAIOSFODNN7EXAMPLE");
        assert_eq!(
            string_to_sign(&req, &s),
            "GET\n\n\nTue, 27 Mar 2007 19:36:42 +0000\n/johnsmith/photos/puppy.jpg"
        );
        let then = 1_175_024_202; // 2007-03-27T19:36:42Z
        assert_eq!(verify(&req, &s, SECRET, then + 60), Ok(()));
        assert_eq!(
            verify(&req, &s, SECRET, then + 3600),
            Err(SigError::ClockSkew(
                "Tue, 27 Mar 2007 19:36:42 +0000".into()
            ))
        );
        assert_eq!(verify(&req, &s, "wrong", then), Err(SigError::Signature));

        let headers = h(&[("host", "johnsmith.s3.amazonaws.com")]);
        let req = Request {
            method: "GET",
            path: "/johnsmith/photos/puppy.jpg",
            query: "AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Expires=1175139620&Signature=NpgCjnDzrM%2BWFzoENXmpNDUsSn8%3D",
            headers: &headers,
        };
        let s = parse(&req).unwrap().unwrap();
        assert_eq!(s.expires, Some(1_175_139_620));
        assert_eq!(verify(&req, &s, SECRET, 1_175_139_000), Ok(()));
        assert!(matches!(
            verify(&req, &s, SECRET, 1_175_139_621),
            Err(SigError::Expired(_))
        ));
    }

    #[test]
    fn amz_headers_and_subresources_are_signed() {
        let headers = h(&[
            ("x-amz-date", "Tue, 27 Mar 2007 21:15:45 +0000"),
            ("X-Amz-Meta-B", "two"),
            ("x-amz-meta-a", "one"),
            ("x-amz-meta-a", "again"),
            ("content-type", "application/json"),
        ]);
        let req = Request {
            method: "PUT",
            path: "/flows/x",
            query: "uploads&zzz=1&acl",
            headers: &headers,
        };
        let s = SignedV2 {
            access_key: "K".into(),
            signature: String::new(),
            expires: None,
        };
        assert_eq!(
            string_to_sign(&req, &s),
            "PUT\n\napplication/json\n\nx-amz-date:Tue, 27 Mar 2007 21:15:45 +0000\n\
             x-amz-meta-a:one,again\nx-amz-meta-b:two\n/flows/x?acl&uploads"
        );
    }

    #[test]
    fn parse_refusals() {
        for auth in ["AWS nocolon", "AWS :sig", "AWS key:"] {
            let headers = h(&[("authorization", auth)]);
            let req = Request {
                method: "GET",
                path: "/",
                query: "",
                headers: &headers,
            };
            assert!(parse(&req).is_err(), "{auth}");
        }
        let req = Request {
            method: "GET",
            path: "/",
            query: "AWSAccessKeyId=K&Signature=x",
            headers: &[],
        };
        assert_eq!(parse(&req), Err(SigError::Malformed("Expires")));
        let req = Request {
            method: "GET",
            path: "/",
            query: "",
            headers: &[],
        };
        assert_eq!(parse(&req), Ok(None));
    }
}
