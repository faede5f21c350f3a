// Thin client for the erp-bridge HTTP API. Errors carry the server's `{"error": {"code", "message"}}`.

export class ApiError extends Error {
  constructor(status, code, message, body) {
    super(message);
    this.status = status;
    this.code = code;
    this.body = body;
  }
}

const TOKEN_KEY = 'erp-bridge.token';

export function token() {
  try { return localStorage.getItem(TOKEN_KEY) || ''; } catch { return ''; }
}

export function signOut() {
  try { localStorage.removeItem(TOKEN_KEY); } catch { /* private mode */ }
}

// One sign-in dialog at a time; every request that got 401 waits for it.
let signingIn = null;

function askForToken(message) {
  if (signingIn) return signingIn;
  signingIn = new Promise((resolve) => {
    const dlg = document.createElement('dialog');
    dlg.id = 'signin';
    dlg.className = 'signin';
    const form = document.createElement('form');
    form.method = 'dialog';
    const h = document.createElement('h2');
    h.textContent = 'Sign in to erp-bridge';
    const p = document.createElement('p');
    p.className = 'muted';
    p.textContent = message || 'Paste an API token. The admin token is printed once when erp-bridge starts for the first time.';
    const input = document.createElement('input');
    input.type = 'password';
    input.name = 'token';
    input.autocomplete = 'off';
    input.placeholder = 'ebt_…';
    input.required = true;
    input.id = 'signin-token';
    const label = document.createElement('label');
    label.htmlFor = input.id;
    label.textContent = 'API token';
    const btn = document.createElement('button');
    btn.className = 'primary';
    btn.textContent = 'Sign in';
    form.append(h, p, label, input, btn);
    dlg.append(form);
    document.body.append(dlg);
    form.addEventListener('submit', () => {
      try { localStorage.setItem(TOKEN_KEY, input.value.trim()); } catch { /* private mode */ }
    });
    dlg.addEventListener('close', () => {
      dlg.remove();
      signingIn = null;
      resolve();
    });
    dlg.addEventListener('cancel', (e) => e.preventDefault());
    // A token shown once (just created) stays readable and copyable: the box then docks at the
    // bottom instead of covering the page.
    if (document.getElementById('new-token')) {
      dlg.classList.add('docked');
      dlg.show();
    } else {
      dlg.showModal();
    }
    input.focus();
  });
  return signingIn;
}

// Ask for a token now (after signing out); resolves once one is stored.
export function signIn(message) {
  return askForToken(message);
}

async function send(method, path, body, raw) {
  const init = { method, headers: {} };
  const t = token();
  if (t) init.headers.authorization = `Bearer ${t}`;
  if (body !== undefined) {
    if (typeof body === 'string') {
      init.body = body;
      init.headers['content-type'] = raw ? 'text/plain' : 'application/json';
    } else {
      init.body = JSON.stringify(body);
      init.headers['content-type'] = 'application/json';
    }
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, 'network', `erp-bridge did not answer (${e.message}); is it running?`);
  }
  if (res.status === 401 && path.startsWith('/api/')) {
    // Ask until a token works; the server limits failed attempts per address.
    await askForToken(t ? 'That token was refused (unknown, wrong or revoked). Paste another API token.' : undefined);
    return send(method, path, body, raw);
  }
  return res;
}

async function failure(method, path, res, text) {
  let json = null;
  if (text) {
    try { json = JSON.parse(text); } catch { json = null; }
  }
  const err = json && json.error;
  if (err && err.message) return new ApiError(res.status, err.code, err.message, json);
  return new ApiError(res.status, 'http', `${method} ${path}: HTTP ${res.status}${text ? `: ${text.slice(0, 200)}` : ''}`, json);
}

export async function request(method, path, body, { raw = false } = {}) {
  const res = await send(method, path, body, raw);
  const text = await res.text();
  if (!res.ok) throw await failure(method, path, res, text);
  let json = null;
  if (text) {
    try { json = JSON.parse(text); } catch { json = null; }
  }
  return json;
}

// A file answer (e.g. a connector bundle): `{ blob, filename }`, the name from Content-Disposition.
export async function download(method, path, body) {
  const res = await send(method, path, body, false);
  if (!res.ok) throw await failure(method, path, res, await res.text());
  const blob = await res.blob();
  const cd = res.headers.get('content-disposition') || '';
  const m = /filename="?([^";]+)"?/i.exec(cd);
  return { blob, filename: m ? m[1] : null };
}

export const get = (path) => request('GET', path);
export const post = (path, body) => request('POST', path, body);
export const put = (path, body) => request('PUT', path, body);
export const del = (path) => request('DELETE', path);

export const enc = encodeURIComponent;
export const conn = (c) => `/api/connections/${enc(c)}`;
