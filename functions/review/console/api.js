// The console's calls to the review API, and its sign-in.
//
// Cognito (ConsoleSignIn=cognito): the authorization code flow with PKCE against the user pool's hosted
// sign-in page; the ID token goes in each request's Authorization header (the JWT authorizer checks it,
// the review function checks its moderators group). Tokens live in sessionStorage: gone with the tab.
// Local (make console): no token; the local adapter signs every request in as its local user.

const TOKENS = "ia-console-tokens";
const VERIFIER = "ia-console-pkce";

let config = null;

export class ApiError extends Error {
  constructor(status, body) {
    super((body && (body.error || body.message)) || `HTTP ${status}`);
    this.status = status;
    this.body = body || {};
  }
}

function redirectUri() {
  return `${location.origin}/`;
}

function base64url(bytes) {
  let text = "";
  for (const b of new Uint8Array(bytes)) text += String.fromCharCode(b);
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function tokens() {
  try {
    return JSON.parse(sessionStorage.getItem(TOKENS) || "null");
  } catch {
    return null;
  }
}

async function tokenRequest(fields) {
  const response = await fetch(`${config.auth_domain}/oauth2/token`, {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ client_id: config.client_id, ...fields }),
  });
  if (!response.ok) throw new ApiError(response.status, { error: "sign-in failed" });
  const answer = await response.json();
  const kept = tokens() || {};
  const next = { id_token: answer.id_token, refresh_token: answer.refresh_token || kept.refresh_token };
  sessionStorage.setItem(TOKENS, JSON.stringify(next));
  return next;
}

async function signIn() {
  const verifier = base64url(crypto.getRandomValues(new Uint8Array(32)));
  const challenge = base64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
  const state = base64url(crypto.getRandomValues(new Uint8Array(16)));
  sessionStorage.setItem(VERIFIER, JSON.stringify({ verifier, state, hash: location.hash }));
  const query = new URLSearchParams({
    response_type: "code",
    client_id: config.client_id,
    redirect_uri: redirectUri(),
    scope: "openid email profile",
    code_challenge_method: "S256",
    code_challenge: challenge,
    state,
  });
  location.assign(`${config.auth_domain}/oauth2/authorize?${query}`);
  return new Promise(() => {}); // the page is leaving
}

export function signOut() {
  sessionStorage.removeItem(TOKENS);
  if (config && config.sign_in === "cognito") {
    const query = new URLSearchParams({ client_id: config.client_id, logout_uri: redirectUri() });
    location.assign(`${config.auth_domain}/logout?${query}`);
  }
}

// Loads the console's settings and, with Cognito, finishes or starts the sign-in.
export async function start() {
  const response = await fetch("/console/config.json");
  config = await response.json();
  if (config.sign_in !== "cognito") return config;
  const params = new URLSearchParams(location.search);
  if (params.get("code")) {
    const pending = JSON.parse(sessionStorage.getItem(VERIFIER) || "{}");
    sessionStorage.removeItem(VERIFIER);
    if (!pending.verifier || pending.state !== params.get("state")) return signIn();
    await tokenRequest({
      grant_type: "authorization_code",
      code: params.get("code"),
      redirect_uri: redirectUri(),
      code_verifier: pending.verifier,
    });
    history.replaceState(null, "", `/${pending.hash || ""}`);
  } else if (!tokens()) {
    return signIn();
  }
  return config;
}

export function settings() {
  return config;
}

async function send(method, path, body, retried = false) {
  const headers = { Accept: "application/json" };
  if (config.sign_in === "cognito") headers.Authorization = `Bearer ${(tokens() || {}).id_token || ""}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(`/console/api${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401 && config.sign_in === "cognito") {
    const kept = tokens();
    if (!retried && kept && kept.refresh_token) {
      try {
        await tokenRequest({ grant_type: "refresh_token", refresh_token: kept.refresh_token });
        return send(method, path, body, true);
      } catch {
        // the refresh token expired too: sign in again
      }
    }
    sessionStorage.removeItem(TOKENS);
    return signIn();
  }
  let answer = null;
  try {
    answer = await response.json();
  } catch {
    answer = null;
  }
  if (!response.ok) throw new ApiError(response.status, answer);
  return answer;
}

// A review id is base64url: safe in a path as it is, without its padding (the API accepts either).
const bare = (id) => String(id).replace(/=+$/, "");

export const api = {
  me: () => send("GET", "/me"),
  counts: () => send("GET", "/counts"),
  stats: (days) => send("GET", `/stats?days=${days}`),
  list: (query) => send("GET", `/reviews?${new URLSearchParams(query)}`),
  show: (id) => send("GET", `/reviews/${bare(id)}`),
  decide: (id, decision, fromStatus, reason, etag) =>
    send("POST", `/reviews/${bare(id)}/decision`, {
      decision,
      from_status: fromStatus,
      reason: reason || null,
      etag: etag || null,
    }),
};
