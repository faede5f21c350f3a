// DOM helpers: `h('tag.class', {attrs}, ...children)` builds elements; text is always set as text
// (never parsed as HTML), so nothing from the API can inject markup.

export function h(spec, attrs, ...children) {
  // spec: 'tag.class#id.class2'
  const tokens = spec.match(/^[^.#]*|[.#][^.#]+/g);
  const el = document.createElement(tokens[0] || 'div');
  const classes = [];
  for (const t of tokens.slice(1)) {
    if (t[0] === '#') el.id = t.slice(1);
    else classes.push(t.slice(1));
  }
  if (classes.length) el.className = classes.join(' ');
  // A box that scrolls (a wide table, a JSON document) can be scrolled from the keyboard.
  if (classes.includes('tablewrap') || (el.tagName === 'PRE' && classes.includes('json'))) el.tabIndex = 0;
  if (attrs && (typeof attrs !== 'object' || attrs instanceof Node || Array.isArray(attrs))) {
    children.unshift(attrs);
    attrs = null;
  }
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className += (el.className ? ' ' : '') + v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k in el && typeof v !== 'string') el[k] = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : String(c));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

const SVG = 'http://www.w3.org/2000/svg';
export function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  for (const c of children) if (c) el.append(c);
  return el;
}

export function debounce(fn, ms) {
  let t;
  const d = (...args) => { clearTimeout(t); t = setTimeout(() => fn(...args), ms); };
  d.cancel = () => clearTimeout(t);
  return d;
}

// Status colours: ok (green), warn (amber), bad (red), idle (grey).
export function m3Level(status) {
  switch (status) {
    case 'Healthy': return 'ok';
    case 'Failing': case 'Unknown': return 'warn';
    case 'AuthenticationFailed': case 'AuthorizationFailed': case 'Invalid': case 'Unreachable': return 'bad';
    default: return 'idle';
  }
}

const M3_TEXT = {
  Healthy: 'Healthy',
  Failing: 'Failing (retrying)',
  Unknown: 'Not checked yet',
  AuthenticationFailed: 'Authentication failed',
  AuthorizationFailed: 'Not authorised',
  Unreachable: 'Unreachable',
  Invalid: 'Invalid file',
  NotConfigured: 'Not configured',
  Unchecked: 'Checked by the connector',
};

export function dot(level, label) {
  return h('span.status', { class: `status-${level}`, title: label }, h('span.dot'), label);
}

export function m3Dot(status) {
  return h('span.status', { class: `status-${m3Level(status)}`, dataset: { m3: status } }, h('span.dot'), M3_TEXT[status] || status);
}

export function errorBox(e, title) {
  return h('div.alert.alert-bad', { role: 'alert' }, title ? h('strong', title + ': ') : null, e && e.message ? e.message : String(e));
}

export function num(n) {
  return n === null || n === undefined ? '—' : Number(n).toLocaleString('en-US');
}

export function duration(ms) {
  if (ms === null || ms === undefined) return '—';
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms < 3600000) return `${(ms / 60000).toFixed(1)} min`;
  return `${(ms / 3600000).toFixed(1)} h`;
}

export function when(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const ago = Date.now() - d.getTime();
  const rel = ago < 0 ? '' : ago < 60000 ? `${Math.round(ago / 1000)} s ago` : ago < 3600000 ? `${Math.round(ago / 60000)} min ago` : ago < 86400000 ? `${Math.round(ago / 3600000)} h ago` : '';
  return rel ? `${d.toLocaleString()} (${rel})` : d.toLocaleString();
}

export function json(v) {
  return h('pre.json', JSON.stringify(v, null, 2));
}

export function uuid() {
  if (globalThis.crypto && crypto.randomUUID) return crypto.randomUUID();
  return 'xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx'.replace(/[xy]/g, (c) => {
    const r = (Math.random() * 16) | 0;
    return (c === 'x' ? r : (r & 0x3) | 0x8).toString(16);
  });
}

// Copy text to the clipboard; without the clipboard API (plain http on another host), select the
// text of `input` and copy it the old way. Whether it worked.
export async function copyText(text, input) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    input.focus();
    input.select();
    try { return document.execCommand('copy'); } catch { return false; }
  }
}
