// AWS Signature Version 4 with WebCrypto (HMAC-SHA256, SHA-256): signed requests
// (Authorization header) and presigned URLs (query string), as AWS documents them in
// "Create a signed AWS API request". No dependency; runs in browsers and Node >= 20.

const encoder = new TextEncoder();

function hex(buffer) {
  return [...new Uint8Array(buffer)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

async function sha256(data) {
  const bytes = typeof data === "string" ? encoder.encode(data) : data;
  return hex(await crypto.subtle.digest("SHA-256", bytes));
}

async function hmac(key, text) {
  const raw = typeof key === "string" ? encoder.encode(key) : key;
  const k = await crypto.subtle.importKey("raw", raw, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return crypto.subtle.sign("HMAC", k, encoder.encode(text));
}

/** RFC 3986 encoding: everything but A-Z a-z 0-9 - _ . ~ as %XX of its UTF-8 bytes. */
export function uriEncode(text) {
  return encodeURIComponent(text).replace(/[!'()*]/g, (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase());
}

/** Each segment of a path encoded, slashes kept (an S3 key into a URL path). */
export function encodePath(path) {
  return path.split("/").map(uriEncode).join("/");
}

function amzDate(now) {
  return now.toISOString().replace(/[-:]/g, "").replace(/\.\d{3}/, "");
}

function canonicalQuery(url) {
  const pairs = [];
  for (const [k, v] of url.searchParams) pairs.push([uriEncode(k), uriEncode(v)]);
  pairs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
  return pairs.map(([k, v]) => `${k}=${v}`).join("&");
}

function canonicalUri(url, service) {
  // S3 signs the path as sent; every other service signs it encoded once more.
  const path = url.pathname || "/";
  return service === "s3" ? path : path.split("/").map(uriEncode).join("/");
}

async function signingKey(secret, day, region, service) {
  const kDate = await hmac("AWS4" + secret, day);
  const kRegion = await hmac(kDate, region);
  const kService = await hmac(kRegion, service);
  return hmac(kService, "aws4_request");
}

async function signature({ method, url, headers, payloadHash, service, region, credentials, time }) {
  const names = Object.keys(headers).map((h) => h.toLowerCase()).sort();
  const lower = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]));
  const canonicalHeaders = names.map((n) => `${n}:${String(lower[n]).trim().replace(/\s+/g, " ")}\n`).join("");
  const signedHeaders = names.join(";");
  const request = [method, canonicalUri(url, service), canonicalQuery(url), canonicalHeaders, signedHeaders, payloadHash].join("\n");
  const day = time.slice(0, 8);
  const scope = `${day}/${region}/${service}/aws4_request`;
  const toSign = ["AWS4-HMAC-SHA256", time, scope, await sha256(request)].join("\n");
  const key = await signingKey(credentials.secretAccessKey, day, region, service);
  return { signature: hex(await hmac(key, toSign)), scope, signedHeaders };
}

/**
 * Signs a request. Returns the headers to send (the given ones plus X-Amz-Date,
 * X-Amz-Security-Token when the credentials have one, x-amz-content-sha256 for S3,
 * and Authorization). `body` is a string, an ArrayBuffer or a typed array.
 */
export async function signRequest({ method, url, headers = {}, body = "", service, region, credentials, now = new Date() }) {
  const u = new URL(url);
  const time = amzDate(now);
  const bytes = typeof body === "string" ? encoder.encode(body)
    : ArrayBuffer.isView(body) ? new Uint8Array(body.buffer, body.byteOffset, body.byteLength)
    : new Uint8Array(body);
  const payloadHash = await sha256(bytes);
  const out = { ...headers, "X-Amz-Date": time };
  if (credentials.sessionToken) out["X-Amz-Security-Token"] = credentials.sessionToken;
  if (service === "s3") out["x-amz-content-sha256"] = payloadHash;
  const { signature: sig, scope, signedHeaders } = await signature({
    method, url: u, headers: { ...out, host: u.host }, payloadHash, service, region, credentials, time,
  });
  out.Authorization = `AWS4-HMAC-SHA256 Credential=${credentials.accessKeyId}/${scope}, SignedHeaders=${signedHeaders}, Signature=${sig}`;
  return out;
}

/** A presigned URL (GET by default) valid for `expires` seconds, signing the host only. */
export async function presignUrl({ method = "GET", url, service, region, credentials, expires = 900, now = new Date() }) {
  const u = new URL(url);
  const time = amzDate(now);
  const scope = `${time.slice(0, 8)}/${region}/${service}/aws4_request`;
  u.searchParams.set("X-Amz-Algorithm", "AWS4-HMAC-SHA256");
  u.searchParams.set("X-Amz-Credential", `${credentials.accessKeyId}/${scope}`);
  u.searchParams.set("X-Amz-Date", time);
  u.searchParams.set("X-Amz-Expires", String(expires));
  u.searchParams.set("X-Amz-SignedHeaders", "host");
  if (credentials.sessionToken) u.searchParams.set("X-Amz-Security-Token", credentials.sessionToken);
  const payloadHash = service === "s3" ? "UNSIGNED-PAYLOAD" : await sha256("");
  const { signature: sig } = await signature({
    method, url: u, headers: { host: u.host }, payloadHash, service, region, credentials, time,
  });
  // Rebuild the query with RFC 3986 encoding, as signed (URLSearchParams writes
  // spaces as "+").
  return `${u.origin}${u.pathname}?${canonicalQuery(u)}&X-Amz-Signature=${sig}`;
}
