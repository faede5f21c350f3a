// Thin client for the erp-bridge HTTP API. Errors carry the server's `{"error": {"code", "message"}}`.

export class ApiError extends Error {
  constructor(status, code, message, body) {
    super(message);
    this.status = status;
    this.code = code;
    this.body = body;
  }
}

export async function request(method, path, body, { raw = false } = {}) {
  const init = { method, headers: {} };
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
  const text = await res.text();
  let json = null;
  if (text) {
    try { json = JSON.parse(text); } catch { json = null; }
  }
  if (!res.ok) {
    const err = json && json.error;
    if (err && err.message) throw new ApiError(res.status, err.code, err.message, json);
    throw new ApiError(res.status, 'http', `${method} ${path}: HTTP ${res.status}${text ? `: ${text.slice(0, 200)}` : ''}`, json);
  }
  return json;
}

export const get = (path) => request('GET', path);
export const post = (path, body) => request('POST', path, body);
export const put = (path, body) => request('PUT', path, body);
export const del = (path) => request('DELETE', path);

export const enc = encodeURIComponent;
export const conn = (c) => `/api/connections/${enc(c)}`;
