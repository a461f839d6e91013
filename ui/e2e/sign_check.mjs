// Checks ui/src/sign.js: known answers (FIPS 180-2 SHA-256, RFC 4231 HMAC, the AWS S3
// presigned-URL example), then signs the cases given as JSON on stdin and prints the
// results as JSON, for crates/drey/tests/ui.rs to verify with drey's own SigV4 and token
// code. Usage: node e2e/sign_check.mjs < cases.json
import { readFileSync } from 'node:fs';
import '../src/sign.js';

const s = globalThis.dreySign;
const expect = (what, got, want) => {
  if (got !== want) throw new Error(`${what}: got ${got}, want ${want}`);
};
expect('sha256("")', s.sha256(''), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
expect('sha256("abc")', s.sha256('abc'), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
expect('sha256(448 bits)', s.sha256('abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq'),
  '248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1');
expect('sha256(a x 1e6)', s.sha256('a'.repeat(1000000)), 'cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0');
expect('hmac(RFC 4231 case 2)', s.hmac('Jefe', 'what do ya want for nothing?'),
  '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843');
expect('hmac(RFC 4231 case 6, 131-byte key)', s.hmac(new Uint8Array(131).fill(0xaa), 'Test Using Larger Than Block-Size Key - Hash Key First'),
  '60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54');
const aws = s.presign({ id: 'AKIAIOSFODNN7EXAMPLE', secret: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY' }, '/test.txt', {
  host: 'examplebucket.s3.amazonaws.com', now: new Date(Date.UTC(2013, 4, 24)), ttl: 86400,
});
expect('AWS S3 presigned example', aws.split('X-Amz-Signature=')[1], 'aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404');

const cases = JSON.parse(readFileSync(0, 'utf8'));
const out = {
  urls: cases.urls.map((c) => s.presign(c.key, c.url, { host: c.host, now: new Date(c.now * 1000), ttl: c.ttl, region: c.region, service: c.service })),
  tokens: cases.tokens.map((c) => s.publishToken(c.key, c.stream, c.expires)),
};
console.log(JSON.stringify(out));
