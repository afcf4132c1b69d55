// The management HTTP API from the browser: HTTP basic auth on every request, as RabbitMQ's UI.

const KEY = "warren-auth";
let credentials = sessionStorage.getItem(KEY);
let onLoggedOut = () => {};

export class ApiError extends Error {
  constructor(status, reason) {
    super(reason);
    this.status = status;
  }
}

export function loggedIn() {
  return credentials != null;
}

export function setCredentials(user, password) {
  credentials = btoa(unescape(encodeURIComponent(user + ":" + password)));
  sessionStorage.setItem(KEY, credentials);
}

export function forget() {
  credentials = null;
  sessionStorage.removeItem(KEY);
}

export function whenLoggedOut(callback) {
  onLoggedOut = callback;
}

// api("/api/queues", {method, body}) -> parsed JSON (null for an empty answer)
export async function api(path, { method = "GET", body, headers = {} } = {}) {
  const all = { Authorization: "Basic " + credentials, ...headers };
  let payload = body;
  if (body !== undefined && !(body instanceof FormData)) {
    all["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  // credentials "omit": a 401 with a challenge comes back to the script instead of a browser prompt
  const response = await fetch(path, { method, headers: all, body: payload, cache: "no-store", credentials: "omit" });
  const text = await response.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch (e) { data = text; }
  }
  if (!response.ok) {
    const reason = (data && data.reason) || response.statusText || `HTTP ${response.status}`;
    // A failed login (not a refused action) ends the session.
    if (response.status === 401 && (!data || data.error === "not_authorized")) {
      forget();
      onLoggedOut();
    }
    throw new ApiError(response.status, typeof reason === "string" ? reason : JSON.stringify(reason));
  }
  return data;
}

// One URL path segment each: path("queues", "/", "q 1") -> /api/queues/%2F/q%201
export function path(...segments) {
  return "/api/" + segments.map((s) => encodeURIComponent(s)).join("/");
}

export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v != null && v !== "") q.set(k, v);
  const s = q.toString();
  return s ? "?" + s : "";
}

// The default exchange is "amq.default" in URLs.
export function exchangeSegment(name) {
  return name === "" ? "amq.default" : name;
}
