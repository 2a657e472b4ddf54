// The photo page: sign in (Cognito), a gallery of the serving region's `public/`
// photos, uploads, and each photo's comments, following the application's state
// as both regions' state APIs report it.
//
// Which region serves: the state with the higher `version` among the state APIs
// that answer (a missing version counts as 0; on a tie the primary's); `active` and
// `fenced` serve from the primary, `failover` from the secondary; writes are refused
// while `fenced`. The state is read again before every upload and comment, and every
// few seconds for the banner.

import { CognitoError, IdentityPool, UserPool } from "./cognito.js";
import { encodePath, presignUrl, signRequest } from "./sigv4.js";

const ROLES = ["primary", "secondary"];
const STATES = ["active", "fenced", "failover"];
const STATE_TIMEOUT_MS = 4000;
const POLL_MS = 5000;
const SESSION_KEY = "photos.session";
const $ = (id) => document.getElementById(id);

let config;
let userPool;
let identityPool;
let session = null; // {username, tokens, credentials}
let pendingChallenge = null; // {username, session}
let current = null; // the last state read
let lastServing = null; // the serving region at the last read that found one
let selected = null; // the photo whose comments are shown
let gallery = []; // [{id, key, lastModified}]

// --------------------------------------------------------------------------------
// Configuration and endpoints

function cognitoEndpoint(service) {
  return config.cognitoEndpoint || `https://${service}.${config.uiRegion}.amazonaws.com/`;
}

/** The URL of an object (or of the bucket when `key` is null): path-style on an
 * emulator endpoint, virtual-hosted on AWS. */
function s3Url(role, key) {
  const r = config[role];
  const tail = key == null ? "" : "/" + encodePath(key);
  if (r.endpoint) {
    return `${r.endpoint.replace(/\/+$/, "")}/${r.objectStoreBucketName}${tail}`;
  }
  return `https://${r.objectStoreBucketName}.s3.${r.region}.amazonaws.com${tail || "/"}`;
}

function commentsUrl(role, photoId) {
  return `${config[role].photosApi.replace(/\/+$/, "")}/comments/${encodeURIComponent(photoId)}`;
}

// --------------------------------------------------------------------------------
// Session and credentials

function saveSession() {
  if (session) sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
  else sessionStorage.removeItem(SESSION_KEY);
}

function loadSession() {
  try {
    return JSON.parse(sessionStorage.getItem(SESSION_KEY) || "null");
  } catch {
    return null;
  }
}

/** Valid AWS credentials of the signed-in user, refreshed through Cognito when
 * they are about to expire. Cognito lives in the primary region (`uiRegion`): when
 * the refresh fails (the primary is down), the credentials in hand serve until
 * they expire. */
async function credentials() {
  if (!session) throw new Error("not signed in");
  const left = session.credentials.expiration - Date.now();
  if (left > 60_000) return session.credentials;
  try {
    const refreshed = await userPool.refresh(session.tokens.RefreshToken);
    const tokens = { ...refreshed.tokens, RefreshToken: session.tokens.RefreshToken };
    session = { ...session, tokens, credentials: await identityPool.credentials(tokens.IdToken) };
  } catch (e) {
    if (left > 5_000) return session.credentials;
    throw e;
  }
  saveSession();
  return session.credentials;
}

// --------------------------------------------------------------------------------
// The application's state

async function readOne(role) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), STATE_TIMEOUT_MS);
  try {
    const response = await fetch(config[role].stateUrl, { cache: "no-store", signal: controller.signal });
    if (!response.ok) return { role, ok: false, why: `HTTP ${response.status}` };
    const body = await response.json();
    if (!STATES.includes(body.state)) return { role, ok: false, why: "no state in the answer" };
    const version = Number.isFinite(body.version) ? body.version : 0;
    return { role, ok: true, state: body.state, version };
  } catch (e) {
    return { role, ok: false, why: e.name === "AbortError" ? "timed out" : "unreachable" };
  } finally {
    clearTimeout(timer);
  }
}

/** Reads both regions' state APIs and follows the higher version. */
async function readState() {
  const results = await Promise.all(ROLES.map(readOne));
  const answered = results.filter((r) => r.ok);
  const unreachable = results.filter((r) => !r.ok);
  if (answered.length === 0) {
    return { state: "unknown", serving: null, unreachable };
  }
  let best = answered[0];
  for (const r of answered) if (r.version > best.version) best = r;
  return {
    state: best.state,
    version: best.version,
    serving: best.state === "failover" ? "secondary" : "primary",
    from: best.role,
    unreachable,
  };
}

function showState(s, before) {
  const banner = $("state-banner");
  banner.dataset.state = s.state;
  banner.dataset.serving = s.serving || "";
  banner.dataset.version = s.version ?? "";
  const down = s.unreachable.map((r) => `the ${r.role} region's state API is ${r.why}`).join("; ");
  if (s.state === "unknown") {
    $("state-text").textContent = `The application's state cannot be read: ${down}.`;
    $("region-notice").textContent = "";
    return;
  }
  const region = config[s.serving].region;
  $("state-text").textContent =
    `State: ${s.state} (version ${s.version}) · serving from the ${s.serving} region (${region})` +
    (down ? ` · ${down}` : "");
  if (s.serving === "secondary") {
    $("region-notice").textContent = `Moved to the secondary region (${region}).`;
  } else if (before === "secondary") {
    $("region-notice").textContent = "Back on the primary region.";
  } else {
    $("region-notice").textContent = "";
  }
}

/** Reads the state, shows it, and, when the serving region changed, clears the
 * notice about the last action (it was about the other region: "Comment added in
 * the primary region.") and reloads what the new region holds. */
async function refreshState() {
  const s = await readState();
  const before = lastServing;
  showState(s, before);
  current = s;
  if (s.serving) lastServing = s.serving;
  if (s.serving && before && s.serving !== before) {
    notice("", "ok");
    if (session && !$("app").hidden) await loadGallery();
  }
  return s;
}

function notice(text, kind = "blocked") {
  const el = $("notice");
  el.textContent = text;
  el.dataset.kind = kind;
}

/** The region a write goes to, or null (with the reason shown) when writes are
 * refused now. */
async function writeTarget() {
  const s = await refreshState();
  if (s.state === "fenced") {
    notice("Writes are blocked while the application is fenced (it is switching regions). Try again in a moment.");
    return null;
  }
  if (!s.serving) {
    notice("Cannot write: the application's state cannot be read from either region.", "error");
    return null;
  }
  return s.serving;
}

// --------------------------------------------------------------------------------
// Photos

async function s3Fetch(role, method, key, { query = "", body = "", headers = {} } = {}) {
  const url = s3Url(role, key) + (query ? `?${query}` : "");
  const signed = await signRequest({
    method, url, headers, body, service: "s3", region: config[role].region, credentials: await credentials(),
  });
  return fetch(url, { method, headers: signed, body: method === "GET" ? undefined : body });
}

async function listPhotos(role) {
  const photos = [];
  let token = null;
  for (let page = 0; page < 20; page++) {
    const params = new URLSearchParams({ "list-type": "2", prefix: "public/" });
    if (token) params.set("continuation-token", token);
    const query = [...params].map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join("&");
    const response = await s3Fetch(role, "GET", null, { query });
    if (!response.ok) throw new Error(`listing the ${role} bucket: HTTP ${response.status}`);
    const xml = new DOMParser().parseFromString(await response.text(), "application/xml");
    for (const c of xml.getElementsByTagName("Contents")) {
      const key = c.getElementsByTagName("Key")[0]?.textContent || "";
      const id = key.slice("public/".length);
      if (id) photos.push({ id, key, lastModified: c.getElementsByTagName("LastModified")[0]?.textContent || "" });
    }
    const truncated = xml.getElementsByTagName("IsTruncated")[0]?.textContent === "true";
    token = xml.getElementsByTagName("NextContinuationToken")[0]?.textContent;
    if (!truncated || !token) break;
  }
  photos.sort((a, b) => (a.lastModified < b.lastModified ? 1 : a.lastModified > b.lastModified ? -1 : 0));
  return photos;
}

async function photoUrl(role, key) {
  return presignUrl({ url: s3Url(role, key), service: "s3", region: config[role].region, credentials: await credentials() });
}

async function loadGallery() {
  const role = current?.serving;
  if (!role) return;
  const bucket = config[role].objectStoreBucketName;
  $("gallery-source").textContent = `(${bucket}, ${config[role].region})`;
  const photos = await listPhotos(role);
  const figures = [];
  for (const p of photos) {
    const figure = document.createElement("figure");
    figure.className = "photo";
    figure.dataset.photoId = p.id;
    figure.tabIndex = 0;
    figure.setAttribute("aria-selected", String(p.id === selected));
    const img = document.createElement("img");
    img.alt = `Photo ${p.id}`;
    img.src = await photoUrl(role, p.key);
    const caption = document.createElement("figcaption");
    caption.textContent = p.id;
    figure.append(img, caption);
    figure.addEventListener("click", () => guarded(selectPhoto(p.id)));
    figure.addEventListener("keydown", (e) => {
      if (e.key === "Enter") guarded(selectPhoto(p.id));
    });
    figures.push(figure);
  }
  gallery = photos;
  $("gallery").replaceChildren(...figures);
  $("gallery-empty").hidden = photos.length > 0;
  if (selected && !photos.some((p) => p.id === selected)) {
    selected = null;
    $("comments").hidden = true;
  } else if (selected) {
    await showComments();
  }
}

async function upload(event) {
  event.preventDefault();
  const file = $("file").files[0];
  if (!file) return;
  const role = await writeTarget();
  if (!role) return;
  const id = crypto.randomUUID();
  const key = `public/${id}`;
  const body = await file.arrayBuffer();
  const response = await s3Fetch(role, "PUT", key, { body, headers: { "Content-Type": file.type || "application/octet-stream" } });
  if (!response.ok) {
    notice(`The upload failed: HTTP ${response.status} from the ${role} region.`, "error");
    return;
  }
  $("upload-form").reset();
  selected = id;
  await loadGallery();
  await selectPhoto(id);
  notice(`Uploaded to ${config[role].objectStoreBucketName} (${role} region).`, "ok");
}

// --------------------------------------------------------------------------------
// Comments

async function selectPhoto(id) {
  selected = id;
  for (const f of $("gallery").children) f.setAttribute("aria-selected", String(f.dataset.photoId === id));
  $("comments").hidden = false;
  $("comments-title").textContent = `Comments on ${id.slice(0, 8)}`;
  const photo = gallery.find((p) => p.id === id);
  const role = current?.serving;
  if (photo && role) $("comments-photo").src = await photoUrl(role, photo.key);
  await showComments();
}

/** Shows the selected photo's comments; returns why it could not, or null. */
async function loadComments() {
  const role = current?.serving;
  if (!selected || !role) return null;
  const response = await fetch(commentsUrl(role, selected), { cache: "no-store" });
  const text = await response.text();
  let comments;
  try {
    comments = JSON.parse(text).comments;
  } catch {
    comments = null;
  }
  if (!response.ok) {
    return `HTTP ${response.status} from the ${role} region's store API`;
  }
  if (!Array.isArray(comments)) {
    return `the ${role} region's store API answered something that is not a comment list`;
  }
  const items = comments.map((c) => {
    const li = document.createElement("li");
    li.className = "comment";
    li.dataset.commentId = c.commentId;
    const who = document.createElement("div");
    who.className = "who";
    who.textContent = c.user;
    const body = document.createElement("div");
    body.className = "text";
    body.textContent = c.message;
    li.append(who, body);
    return li;
  });
  $("comment-list").replaceChildren(...items);
  return null;
}

async function showComments() {
  const why = await loadComments();
  if (why) notice(`Cannot read the comments: ${why}.`, "error");
}

async function addComment(event) {
  event.preventDefault();
  const message = $("comment-text").value;
  if (!selected || !message) return;
  const role = await writeTarget();
  if (!role) return;
  const url = commentsUrl(role, selected);
  const body = JSON.stringify({ commentId: crypto.randomUUID(), message, photoId: selected, user: session.username });
  const headers = await signRequest({
    method: "POST", url, headers: { "Content-Type": "application/json" }, body,
    service: "execute-api", region: config[role].region, credentials: await credentials(),
  });
  const response = await fetch(url, { method: "POST", headers, body });
  if (!response.ok) {
    notice(`The comment was refused: HTTP ${response.status} from the ${role} region's store API.`, "error");
    return;
  }
  $("comment-text").value = "";
  const why = await loadComments();
  if (why) notice(`Comment added in the ${role} region, but the comments cannot be read: ${why}.`, "error");
  else notice(`Comment added in the ${role} region.`, "ok");
}

// --------------------------------------------------------------------------------
// Sign-in

function showAuth() {
  $("auth").hidden = false;
  $("app").hidden = true;
  $("signout").hidden = true;
  $("signin-form").hidden = false;
  $("newpass-form").hidden = true;
}

async function showApp() {
  $("auth").hidden = true;
  $("app").hidden = false;
  $("signout").hidden = false;
  if (!current?.serving) await refreshState();
  await loadGallery();
}

function authError(e) {
  $("auth-error").textContent = e instanceof CognitoError ? e.message : `Sign-in failed: ${e.message}`;
}

async function finishSignIn(username, tokens) {
  const creds = await identityPool.credentials(tokens.IdToken);
  session = { username, tokens, credentials: creds };
  saveSession();
  $("auth-error").textContent = "";
  $("signin-form").reset();
  await showApp();
}

async function signIn(event) {
  event.preventDefault();
  const username = $("username").value.trim();
  try {
    const out = await userPool.signIn(username, $("password").value);
    if (out.challenge === "NEW_PASSWORD_REQUIRED") {
      pendingChallenge = { username, session: out.session };
      $("signin-form").hidden = true;
      $("newpass-form").hidden = false;
      $("auth-error").textContent = "";
      $("new-password").focus();
    } else if (out.tokens) {
      await finishSignIn(username, out.tokens);
    } else {
      $("auth-error").textContent = `Cognito asked for ${out.challenge}, which this page does not handle.`;
    }
  } catch (e) {
    authError(e);
  }
}

async function setNewPassword(event) {
  event.preventDefault();
  try {
    const out = await userPool.setNewPassword(pendingChallenge.username, $("new-password").value, pendingChallenge.session);
    if (!out.tokens) throw new Error(`Cognito asked for ${out.challenge}`);
    const { username } = pendingChallenge;
    pendingChallenge = null;
    $("newpass-form").reset();
    await finishSignIn(username, out.tokens);
  } catch (e) {
    authError(e);
  }
}

function signOut() {
  session = null;
  selected = null;
  saveSession();
  $("gallery").replaceChildren();
  $("comment-list").replaceChildren();
  $("comments").hidden = true;
  notice("", "ok");
  showAuth();
}

// --------------------------------------------------------------------------------

/** Runs an async handler, showing (not throwing) what goes wrong. */
function guarded(promise) {
  promise.catch((e) => notice(`Something went wrong: ${e.message}`, "error"));
}

async function main() {
  const response = await fetch("uiConfig.json", { cache: "no-store" });
  config = await response.json();
  userPool = new UserPool({ endpoint: cognitoEndpoint("cognito-idp"), clientId: config.userPoolClientId });
  identityPool = new IdentityPool({
    endpoint: cognitoEndpoint("cognito-identity"),
    identityPoolId: config.identityPoolId,
    region: config.uiRegion,
    userPoolId: config.userPoolId,
  });
  $("signin-form").addEventListener("submit", (e) => guarded(signIn(e)));
  $("newpass-form").addEventListener("submit", (e) => guarded(setNewPassword(e)));
  $("upload-form").addEventListener("submit", (e) => guarded(upload(e)));
  $("comment-form").addEventListener("submit", (e) => guarded(addComment(e)));
  $("signout").addEventListener("click", signOut);
  await refreshState();
  setInterval(() => guarded(refreshState()), POLL_MS);
  session = loadSession();
  if (session) await showApp();
  else showAuth();
  document.body.dataset.ready = "true";
}

main().catch((e) => {
  $("state-text").textContent = `The page could not start: ${e.message}`;
  $("state-banner").dataset.state = "unknown";
});
