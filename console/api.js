// The console's client of keygate's HTTP API (docs/api.md), same origin, nothing more.
// The signed-in key lives in sessionStorage only: never a cookie (so no request carries it
// by itself, and CSRF has nothing to ride on), never a URL, never localStorage; closing
// the tab or signing out forgets it.

const STORE = 'keygate.console.key';
export const TIMEOUT_MS = 10000;

export const session = {
  get key() { return sessionStorage.getItem(STORE); },
  set key(value) { sessionStorage.setItem(STORE, value); },
  clear() { sessionStorage.removeItem(STORE); },
};

export class ApiError extends Error {
  constructor(status, code, message, requestId) {
    super(message || `The server answered ${status}.`);
    this.status = status;
    this.code = code;
    this.requestId = requestId;
  }
}

// One request. `org`: the organization for the OpenAI-shaped families, sent in
// OpenAI-Organization (the root key must name it; a tenant key's own is implied).
// `key`: a credential other than the signed-in one ("test a key"). `raw`: answer the
// Response itself, whatever its status.
export async function call(method, path, { body, query, org, key, raw, headers } = {}) {
  const url = new URL(path, location.origin);
  for (const [name, value] of Object.entries(query || {})) {
    if (value === undefined || value === null || value === '') continue;
    if (Array.isArray(value)) value.forEach((v) => url.searchParams.append(`${name}[]`, v));
    else url.searchParams.set(name, value);
  }
  const h = new Headers(headers || {});
  const credential = key ?? session.key;
  if (credential) h.set('Authorization', `Bearer ${credential}`);
  if (org) h.set('OpenAI-Organization', org);
  if (body !== undefined) h.set('Content-Type', 'application/json');
  let res;
  try {
    res = await fetch(url, {
      method, headers: h, body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'omit', cache: 'no-store', redirect: 'error',
      // A server that hangs gets an answer to the admin too, not a page that waits forever.
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
  } catch (e) {
    if (e.name === 'TimeoutError') {
      throw new ApiError(0, 'timeout', `keygate did not answer within ${TIMEOUT_MS / 1000} s: it may be overloaded or unreachable. Nothing is retried; check, then try again.`);
    }
    throw new ApiError(0, 'network', `keygate could not be reached (${e.message}).`);
  }
  if (raw) return res;
  const text = await res.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { json = null; }
  if (!res.ok) {
    const e = json && json.error;
    throw new ApiError(res.status, e && e.code, e && e.message, res.headers.get('X-Request-Id'));
  }
  return json;
}
