//! Fuzzes the SigV4 and SigV2 verifiers with untrusted request parts: the Authorization
//! header and the presigned query (the first input line is the query, the second the
//! header, the rest the path). Never panic; random bytes never carry a signature that
//! verifies under a secret they never saw. Seeds: AWS's documented examples.
#![no_main]

use drey_core::sigv2;
use drey_core::sigv4::{self, Request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.splitn(3, '\n');
    let query = lines.next().unwrap_or("");
    let auth = lines.next().unwrap_or("");
    let path = lines.next().unwrap_or("/");
    let mut headers = vec![
        ("host".to_owned(), "example.com".to_owned()),
        ("x-amz-date".to_owned(), "20150830T123600Z".to_owned()),
    ];
    if !auth.is_empty() {
        headers.push(("authorization".to_owned(), auth.to_owned()));
    }
    let req = Request {
        method: "GET",
        path,
        query,
        headers: &headers,
    };
    let _ = sigv4::canonical_query(query);
    let _ = sigv4::canonical_uri(path, "tams");
    if let Ok(Some(s)) = sigv4::parse(&req) {
        let hash = sigv4::declared_payload_hash(&req, &s).unwrap_or_else(|| sigv4::sha256_hex(b""));
        let now = sigv4::unix_time(&s.amz_date).unwrap_or(0);
        // Random bytes cannot carry the signature of a secret they never saw.
        assert!(sigv4::verify(&req, &s, "fuzz-secret-never-in-input", &hash, None, now).is_err());
    }
    if let Ok(Some(s)) = sigv2::parse(&req) {
        let _ = sigv2::string_to_sign(&req, &s);
        let now = s.expires.unwrap_or(0);
        assert!(sigv2::verify(&req, &s, "fuzz-secret-never-in-input", now).is_err());
    }
});
