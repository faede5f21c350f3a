// Studio: a one-page app with hash routing. Each view module exports
// `render(root, params)` returning an optional `{ dispose(), isDirty() }`.

import { h, clear, errorBox } from './dom.js';
import { signOut, signIn } from './api.js';

const routes = [
  [/^\/$/, () => import('./views/connections.js'), () => ({})],
  [/^\/wizard$/, () => import('./views/wizard.js'), () => ({})],
  [/^\/wizard\/([^/]+)$/, () => import('./views/wizard.js'), (m) => ({ setup: m[1] })],
  [/^\/tokens$/, () => import('./views/tokens.js'), () => ({})],
  [/^\/c\/([^/]+)$/, () => import('./views/dashboard.js'), (m) => ({ c: m[1], tab: 'dashboard' })],
  [/^\/c\/([^/]+)\/config$/, () => import('./views/wizard.js'), (m) => ({ c: m[1], tab: 'config', setup: m[1], config: true })],
  [/^\/c\/([^/]+)\/types$/, () => import('./views/types.js'), (m) => ({ c: m[1], tab: 'types' })],
  [/^\/c\/([^/]+)\/mappings\/new$/, () => import('./views/editor.js'), (m) => ({ c: m[1], tab: 'types', name: null })],
  [/^\/c\/([^/]+)\/mappings\/([^/]+)$/, () => import('./views/editor.js'), (m) => ({ c: m[1], tab: 'types', name: m[2] })],
  [/^\/c\/([^/]+)\/commands\/new$/, () => import('./views/commands.js'), (m) => ({ c: m[1], tab: 'commands', name: null })],
  [/^\/c\/([^/]+)\/commands\/([^/]+)$/, () => import('./views/commands.js'), (m) => ({ c: m[1], tab: 'commands', name: m[2] })],
  [/^\/c\/([^/]+)\/(messages|read-models|commands|consume)$/, () => import('./views/consume.js'), (m) => ({ c: m[1], tab: m[2] })],
];

const TABS = [
  ['dashboard', 'Dashboard', ''],
  ['types', 'Message types', '/types'],
  ['messages', 'Messages', '/messages'],
  ['read-models', 'Read models', '/read-models'],
  ['commands', 'Commands', '/commands'],
  ['consume', 'Consume', '/consume'],
  ['config', 'Configuration', '/config'],
];

let current = null; // { dispose, isDirty }
let currentHash = null;
let restoring = false;

function path() {
  const raw = location.hash.replace(/^#/, '') || '/';
  return raw.split('?')[0];
}

function decodeParams(p) {
  const out = {};
  const dec = (v) => {
    try { return decodeURIComponent(v); } catch { return v; } // a malformed escape stays as typed
  };
  for (const [k, v] of Object.entries(p)) out[k] = typeof v === 'string' ? dec(v) : v;
  return out;
}

function subnav(params) {
  const nav = document.getElementById('subnav');
  const crumbs = document.getElementById('crumbs');
  if (!params.c) {
    nav.hidden = true;
    clear(crumbs);
    return;
  }
  const base = `#/c/${encodeURIComponent(params.c)}`;
  clear(crumbs, h('a', { href: '#/' }, 'Connections'), ' / ', h('a', { href: base }, params.c));
  clear(nav, TABS.map(([tab, label, suffix]) =>
    h('a', { href: base + suffix, class: tab === params.tab ? 'active' : '', 'aria-current': tab === params.tab ? 'page' : null }, label)));
  nav.hidden = false;
}

// A page title per view: the view's heading, its connection, then the product.
function setTitle(root, params) {
  const h1 = root.querySelector('h1');
  const head = h1 ? h1.textContent.trim() : 'Studio';
  const parts = [head];
  if (params.c && !head.includes(params.c)) parts.push(params.c);
  parts.push('erp-bridge Studio');
  document.title = parts.join(' · ');
}

async function navigate() {
  if (restoring) {
    restoring = false;
    return;
  }
  const hash = location.hash || '#/';
  if (current && current.isDirty && current.isDirty() && hash !== currentHash) {
    if (!confirm('You have unsaved changes. Leave this page and lose them?')) {
      restoring = true;
      history.replaceState(null, '', currentHash);
      restoring = false;
      return;
    }
  }
  if (current && current.dispose) current.dispose();
  current = null;
  currentHash = hash;
  const p = path();
  const root = document.getElementById('view');
  const route = routes.find(([re]) => re.test(p));
  if (!route) {
    subnav({});
    clear(root, h('h1', 'Not found'), h('p', 'Studio has no page ', h('code', p), '. ', h('a', { href: '#/' }, 'Go to the connections.')));
    setTitle(root, {});
    return;
  }
  const [re, load, paramsOf] = route;
  const params = decodeParams(paramsOf(p.match(re)));
  subnav(params);
  clear(root, h('p.muted', 'Loading…'));
  try {
    const mod = await load();
    if (currentHash !== hash) return; // navigated away meanwhile
    root.dataset.view = mod.name || '';
    current = (await mod.render(root, params)) || null;
    if (currentHash !== hash && current && current.dispose) current.dispose();
    else setTitle(root, params);
  } catch (e) {
    console.error(e);
    clear(root, h('h1', 'This page failed'), errorBox(e, 'This page failed'));
    setTitle(root, params);
  }
}

window.addEventListener('hashchange', navigate);
// Sign-out forgets the stored token and asks for one again; the page then loads afresh.
document.getElementById('sign-out').addEventListener('click', async () => {
  if (current && current.isDirty && current.isDirty() && !confirm('You have unsaved changes. Sign out and lose them?')) return;
  if (current && current.dispose) current.dispose();
  current = null;
  signOut();
  clear(document.getElementById('view'), h('h1', 'Signed out'), h('p.muted', 'Sign in with an API token to go on.'));
  document.title = 'Signed out · erp-bridge Studio';
  await signIn('Signed out. Paste an API token to sign in again.');
  currentHash = null;
  navigate();
});
// A view that changed its own address (a new mapping saved under its name) tells the router.
window.addEventListener('studio:rehash', (e) => { currentHash = e.detail; });
window.addEventListener('beforeunload', (ev) => {
  if (current && current.isDirty && current.isDirty()) {
    ev.preventDefault();
    ev.returnValue = '';
  }
});
navigate();
