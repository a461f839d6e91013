// drey's web UI: request signing with an access key (AWS SigV4 presigned URLs, drey's
// RTMP publish tokens). Pure JavaScript SHA-256/HMAC, synchronous, so it also works where
// WebCrypto does not (pages served over plain HTTP to a non-loopback address).
'use strict';

(function (root) {
  const K = new Uint32Array([
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
  ]);
  const utf8 = (s) => new TextEncoder().encode(s);
  const bytes = (x) => (typeof x === 'string' ? utf8(x) : x);
  const hex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');

  // SHA-256 (FIPS 180-4) of a string (UTF-8) or bytes.
  function sha256(data) {
    const msg = bytes(data);
    const len = msg.length;
    const padded = new Uint8Array(((len + 9 + 63) >> 6) << 6);
    padded.set(msg);
    padded[len] = 0x80;
    const dv = new DataView(padded.buffer);
    dv.setUint32(padded.length - 8, Math.floor(len / 0x20000000));
    dv.setUint32(padded.length - 4, (len << 3) >>> 0);
    const h = new Uint32Array([
      0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
    ]);
    const w = new Uint32Array(64);
    const rotr = (x, n) => (x >>> n) | (x << (32 - n));
    for (let off = 0; off < padded.length; off += 64) {
      for (let i = 0; i < 16; i++) w[i] = dv.getUint32(off + i * 4);
      for (let i = 16; i < 64; i++) {
        const s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >>> 3);
        const s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >>> 10);
        w[i] = (w[i - 16] + s0 + w[i - 7] + s1) | 0;
      }
      let [a, b, c, d, e, f, g, hh] = h;
      for (let i = 0; i < 64; i++) {
        const t1 = (hh + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i]) | 0;
        const t2 = ((rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) | 0;
        hh = g; g = f; f = e; e = (d + t1) | 0;
        d = c; c = b; b = a; a = (t1 + t2) | 0;
      }
      h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
    }
    const out = new Uint8Array(32);
    const ov = new DataView(out.buffer);
    for (let i = 0; i < 8; i++) ov.setUint32(i * 4, h[i]);
    return out;
  }

  // HMAC-SHA256 (RFC 2104).
  function hmac(key, data) {
    let k = bytes(key);
    if (k.length > 64) k = sha256(k);
    const ipad = new Uint8Array(64 + bytes(data).length);
    const opad = new Uint8Array(64 + 32);
    for (let i = 0; i < 64; i++) {
      ipad[i] = (k[i] || 0) ^ 0x36;
      opad[i] = (k[i] || 0) ^ 0x5c;
    }
    ipad.set(bytes(data), 64);
    opad.set(sha256(ipad), 64);
    return sha256(opad);
  }

  // AWS's URI encoding: unreserved characters kept, every other byte %XX.
  const awsEncode = (s) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  const decode = (s) => { try { return decodeURIComponent(s); } catch (e) { return s; } };
  const amzDate = (d) => d.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');

  // A presigned URL (path and query, same origin) for `method` on `url`, valid `ttl`
  // seconds: SigV4 query form, host header signed, UNSIGNED-PAYLOAD. Existing X-Amz-*
  // parameters are dropped first, so a URL can be signed again.
  function presign(key, url, opts = {}) {
    const method = opts.method || 'GET';
    const host = opts.host || root.location.host;
    const region = opts.region || 'us-east-1';
    const service = opts.service || 's3';
    const now = opts.now || new Date();
    const ttl = opts.ttl || 3600;
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    const query = q < 0 ? '' : url.slice(q + 1);
    const date = amzDate(now);
    const scope = `${date.slice(0, 8)}/${region}/${service}/aws4_request`;
    const pairs = query.split('&').filter((p) => p && !/^X-Amz-/.test(p)).map((p) => {
      const eq = p.indexOf('=');
      return eq < 0 ? [decode(p), ''] : [decode(p.slice(0, eq)), decode(p.slice(eq + 1))];
    });
    pairs.push(
      ['X-Amz-Algorithm', 'AWS4-HMAC-SHA256'],
      ['X-Amz-Credential', `${key.id}/${scope}`],
      ['X-Amz-Date', date],
      ['X-Amz-Expires', String(ttl)],
      ['X-Amz-SignedHeaders', 'host'],
    );
    const enc = pairs.map(([k, v]) => [awsEncode(k), awsEncode(v)]);
    enc.sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : x[1] < y[1] ? -1 : x[1] > y[1] ? 1 : 0));
    const cq = enc.map(([k, v]) => `${k}=${v}`).join('&');
    let curi = path.split('/').map((s) => awsEncode(decode(s))).join('/') || '/';
    if (service !== 's3') curi = awsEncode(curi).replace(/%2F/g, '/');
    const canonical = [method, curi, cq, `host:${host}\n`, 'host', 'UNSIGNED-PAYLOAD'].join('\n');
    const sts = ['AWS4-HMAC-SHA256', date, scope, hex(sha256(canonical))].join('\n');
    let k = hmac(`AWS4${key.secret}`, date.slice(0, 8));
    k = hmac(k, region);
    k = hmac(k, service);
    k = hmac(k, 'aws4_request');
    return `${path}?${cq}&X-Amz-Signature=${hex(hmac(k, sts))}`;
  }

  // drey's RTMP publish token for `stream` ("app/stream_key"): KEYID.EXPIRY.SIGNATURE.
  function publishToken(key, stream, expires) {
    const mac = hmac(key.secret, `drey-publish\n${stream}\n${expires}`);
    return `${key.id}.${expires}.${hex(mac.slice(0, 16))}`;
  }

  root.dreySign = { sha256: (d) => hex(sha256(d)), hmac: (k, d) => hex(hmac(k, d)), presign, publishToken };
})(typeof window !== 'undefined' ? window : globalThis);
