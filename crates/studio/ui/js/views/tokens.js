// Access tokens: list, create (the new token is shown once), revoke.
import { get, post, del, token as currentToken, signOut, signIn } from '../api.js';
import { h, clear, errorBox, when, copyText } from '../dom.js';

export const name = 'tokens';

const SCOPES = [
  ['read-model', 'read-model — one connection\'s read models and JSON Schemas'],
  ['read', 'read — read everything (of one connection, if chosen)'],
  ['read-write', 'read-write — read and change mappings, send commands'],
  ['admin', 'admin — everything, tokens included'],
];

// The id of the token this browser signed in with (`ebt_<id>.<secret>`).
function ownId() {
  const m = /^ebt_([^.]+)\./.exec(currentToken());
  return m ? m[1] : null;
}

function expiredNow(t) {
  return !!t.expires_at && new Date(t.expires_at).getTime() <= Date.now();
}

export async function render(root) {
  const tbody = h('tbody');
  const listErr = h('div');
  const created = h('div#token-created');
  const formErr = h('div#token-error');
  const nameInput = h('input#token-name', { type: 'text', placeholder: 'e.g. Webshop read models', autocomplete: 'off', maxLength: 100 });
  nameInput.style.width = '100%';
  const scopeSel = h('select#token-scope', SCOPES.map(([v, label]) => h('option', { value: v }, label)));
  const connSel = h('select#token-connection');
  const connHint = h('div.small.muted#token-connection-hint');
  const expirySel = h('select#token-expiry', [['', 'Never'], ['1d', '1 day'], ['7d', '7 days'], ['30d', '30 days'], ['90d', '90 days'], ['365d', '1 year']]
    .map(([v, label]) => h('option', { value: v }, label)));
  expirySel.value = '90d';
  const createBtn = h('button.primary#token-create', { type: 'submit' }, 'Create token');
  let connections = [];

  const syncForm = () => {
    const scope = scopeSel.value;
    const keep = connSel.value;
    const opts = [];
    if (scope === 'read-model') opts.push(h('option', { value: '' }, connections.length ? 'Choose a connection…' : 'No connection exists yet'));
    else opts.push(h('option', { value: '' }, scope === 'admin' ? 'All connections (admin tokens cannot be restricted)' : 'All connections'));
    if (scope !== 'admin') for (const c of connections) opts.push(h('option', { value: c }, c));
    clear(connSel, opts);
    if ([...connSel.options].some((o) => o.value === keep)) connSel.value = keep;
    if (scope === 'read-model' && !connSel.value && connections.length === 1) connSel.value = connections[0];
    connSel.disabled = scope === 'admin';
    connSel.required = scope === 'read-model';
    connHint.textContent = scope === 'read-model' ? 'Required: a read-model token reads one connection only.' : scope === 'admin' ? '' : 'Optional: restrict the token to one connection.';
  };
  scopeSel.addEventListener('change', syncForm);

  let newest = null; // the token created last, while its one-time display is on screen
  const showCreated = (r) => {
    newest = r;
    const value = h('input#new-token-value.mono', { type: 'text', readOnly: true, value: r.token, 'aria-label': 'The new token', onfocus: (e) => e.target.select() });
    const copied = h('span.small#new-token-copied');
    const copyBtn = h('button.primary#new-token-copy', { type: 'button', onclick: async () => {
      copied.textContent = (await copyText(r.token, value)) ? 'Copied.' : 'Copy failed: select the token and copy it by hand.';
    } }, 'Copy');
    clear(created, h('div.newtoken#new-token', { role: 'status', dataset: { id: r.id } },
      h('h3', `Token “${r.name}” created`),
      h('p.newtoken-warn', h('strong', 'Copy it now: it will not be shown again. '), 'erp-bridge keeps only a fingerprint of it; if it is lost, revoke it and create another.'),
      h('div.newtoken-row', value, copyBtn, copied),
      h('p.small', `Scope ${r.scope}${r.connection ? `, connection ${r.connection}` : ''}${r.expires_at ? `, expires ${when(r.expires_at)}` : ', does not expire'}. Send it as `, h('code', 'Authorization: Bearer <token>'), '.')));
  };

  const create = async (ev) => {
    ev.preventDefault();
    clear(formErr);
    const body = { name: nameInput.value.trim(), scope: scopeSel.value };
    if (connSel.value) body.connection = connSel.value;
    if (expirySel.value) body.expires_in = expirySel.value;
    createBtn.disabled = true;
    try {
      const r = await post('/api/tokens', body);
      showCreated(r);
      nameInput.value = '';
      await load();
    } catch (e) {
      clear(formErr, errorBox(e, 'Not created'));
    } finally {
      createBtn.disabled = false;
    }
  };

  const revoke = async (t) => {
    const mine = t.id === ownId();
    const question = mine
      ? `Revoke “${t.name}”? It is the token this browser signed in with: Studio will ask for another one.`
      : `Revoke “${t.name}”? Everything using it is refused from now on. This cannot be undone.`;
    if (!confirm(question)) return;
    try {
      await del(`/api/tokens/${encodeURIComponent(t.id)}`);
      clear(listErr);
      const box = created.querySelector('#new-token');
      if (box && box.dataset.id === t.id) { clear(created); newest = null; }
    } catch (e) {
      clear(listErr, errorBox(e, `Cannot revoke ${t.name}`));
    }
    if (mine) {
      // This browser's token is gone. No sign-in box over the page: a token shown once above
      // stays readable and copyable; the notice offers the ways on.
      signOut();
      const useNew = newest && newest.scope === 'admin' ? h('button.primary#use-new-token', { type: 'button', onclick: async () => {
        try { localStorage.setItem('erp-bridge.token', newest.token); } catch { /* private mode */ }
        clear(listErr);
        await load();
      } }, 'Sign in with the new token') : null;
      clear(listErr, h('div.alert.alert-warn#signed-out-notice', { role: 'status' },
        h('strong', 'This browser is signed out: '), 'you revoked the token it signed in with. ',
        newest ? 'Copy the new token above first; it is not shown again. ' : '',
        h('div.actions', useNew, h('button#sign-in-again', { type: 'button', onclick: async () => { await signIn(); clear(listErr); await load(); } }, 'Sign in with another token'))));
      return;
    }
    await load();
  };

  const load = async () => {
    let tokens;
    try {
      ({ tokens } = await get('/api/tokens'));
      clear(listErr);
    } catch (e) {
      clear(listErr, errorBox(e, 'Cannot list the tokens'));
      return;
    }
    const own = ownId();
    // Active tokens first, newest first; revoked ones after.
    tokens.sort((a, b) => (!!a.revoked_at - !!b.revoked_at) || String(b.created_at).localeCompare(String(a.created_at)));
    clear(tbody, tokens.length ? tokens.map((t) => h('tr', { class: t.revoked_at ? 'off' : '', dataset: { id: t.id, name: t.name, revoked: String(!!t.revoked_at) } },
      h('td', h('strong', t.name), t.id === own ? h('span.badge.key', { title: 'This browser signed in with this token' }, 'this browser') : null, h('div.small.muted.mono', t.id)),
      h('td', h('span.badge', { class: t.scope === 'admin' ? 'warn' : '' }, t.scope)),
      h('td', t.connection || h('span.muted', 'all')),
      h('td.small', when(t.created_at)),
      h('td.small.expires', t.expires_at ? when(t.expires_at) : h('span.muted', 'never')),
      h('td.small.last-used', t.last_used_at ? when(t.last_used_at) : h('span.muted', 'never used')),
      h('td.state', t.revoked_at ? h('span.badge.bad', { title: when(t.revoked_at) }, 'revoked')
        : expiredNow(t) ? h('span.badge.bad', 'expired') : h('span.badge.ok', 'active'),
        t.revoked_at ? h('div.small.muted', when(t.revoked_at)) : null),
      h('td', t.revoked_at ? null : h('button.danger.revoke', { type: 'button', onclick: () => revoke(t) }, 'Revoke')))) :
      h('tr', h('td.empty', { colSpan: 8 }, 'No token yet.')));
  };

  clear(root,
    h('div.pagehead',
      h('div', h('h1', 'Access tokens'), h('p.muted', 'Tokens let services and people call the erp-bridge API. Only a fingerprint is stored, so a token is shown once, when it is created.'))),
    h('div.grid2',
      h('form.panel#token-form', { onsubmit: create },
        h('h2', 'Create a token'),
        h('label.field', h('span', 'Name (what it is for)'), nameInput),
        h('label.field', h('span', 'Scope'), scopeSel),
        h('label.field', h('span', 'Connection'), connSel, connHint),
        h('label.field', h('span', 'Expires after'), expirySel),
        h('p.small.muted#token-help', 'Read-model tokens are what consumers of the read models use: they can read one connection\'s read models and JSON Schemas, nothing else.'),
        formErr,
        h('div.actions', createBtn)),
      h('div', created)),
    h('h2', 'Tokens'),
    listErr,
    h('div.tablewrap', h('table#tokens',
      h('thead', h('tr', h('th', 'Name'), h('th', 'Scope'), h('th', 'Connection'), h('th', 'Created'), h('th', 'Expires'), h('th', 'Last used'), h('th', 'State'), h('th', h('span.sr-only', 'Actions')))),
      tbody)));

  try {
    connections = (await get('/api/connections')).connections.map((c) => c.name);
  } catch (e) {
    clear(formErr, errorBox(e, 'Cannot list the connections'));
  }
  syncForm();
  await load();
  return { dispose: () => clear(created) };
}
