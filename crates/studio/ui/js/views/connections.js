// Connections list: name, hosting (and a self-hosted connector's state), setup, the
// connection's light (the server's one status model, see ../status.js), message types. Connections that do not run yet link to the wizard; the ones created in Studio can be
// deleted (the one of the configuration file cannot).
import { get, del, conn, enc } from '../api.js';
import { h, clear, dot, errorBox, when } from '../dom.js';
import { light } from '../status.js';

export const name = 'connections';

// Where each connection is defined ('api' or 'configuration'); it never changes, so it is asked
// once per connection (the list does not say it).
const sources = new Map();

async function sourceOf(c) {
  if (c.source) return c.source;
  if (!sources.has(c.name)) {
    try {
      const d = await get(conn(c.name));
      sources.set(c.name, d.source || 'configuration');
    } catch {
      return null; // unknown for now: asked again on the next refresh
    }
  }
  return sources.get(c.name);
}

function connectorState(c) {
  const k = c.connector || {};
  switch (k.state) {
    case 'connected': return dot('ok', `Connector connected${k.holder ? ` (${k.holder})` : ''}`);
    case 'waiting': return dot('warn', 'Waiting for the connector');
    case 'disconnected': return h('span', dot('bad', 'Connector disconnected'), k.lastSeen ? h('div.small.muted', `last seen ${when(k.lastSeen)}`) : null);
    case 'not-configured': return dot('idle', 'Connector not configured');
    default: return k.state ? dot('idle', `Connector ${k.state}`) : null;
  }
}

export async function render(root) {
  const body = h('tbody');
  const note = h('div'); // outcome of a delete
  const listErr = h('div');
  let disposed = false;
  clear(root,
    h('div.pagehead',
      h('div', h('h1', 'Connections'), h('p.muted', 'Each connection links one Infor M3 environment to its messages and read models.')),
      h('a.button.primary', { href: '#/wizard', id: 'setup' }, '+ Set up M3 connection')),
    note,
    listErr,
    h('div.tablewrap', h('table#connections',
      h('thead', h('tr', h('th', 'Name'), h('th', 'Hosting'), h('th', 'Setup'), h('th', 'Status'), h('th.num', 'Message types'), h('th', h('span.sr-only', 'Actions')))),
      body)));

  const remove = async (c) => {
    const question = `Delete the connection “${c.name}”? It stops, and its settings, secrets and tokens are removed (its messages and read models stay in the store). This cannot be undone.`;
    if (!confirm(question)) return;
    let outcome;
    try {
      await del(conn(c.name));
      sources.delete(c.name);
      outcome = h('div.alert.alert-ok#deleted', { role: 'status' }, `Connection ${c.name} deleted.`);
    } catch (e) {
      outcome = errorBox(e, `Cannot delete ${c.name}`);
    }
    await load();
    if (!disposed) clear(note, outcome);
  };

  const row = (c, source) => {
    const base = `#/c/${enc(c.name)}`;
    const setup = `#/wizard/${enc(c.name)}`;
    const href = c.running ? base : setup;
    const stop = (e) => e.stopPropagation();
    return h('tr.clickable', { dataset: { connection: c.name, running: String(!!c.running), hosting: c.hosting, source: source || '', state: (c.status && c.status.state) || '' }, onclick: () => { location.hash = href; } },
      h('td', h('a', { href, onclick: stop }, h('strong', c.name))),
      h('td.hosting', c.hosting === 'self-hosted' ? 'Self-hosted' : 'Hosted', c.hosting === 'self-hosted' ? h('div.small', connectorState(c)) : null),
      h('td.state', c.running ? dot('idle', 'Running')
        : h('a.setup-incomplete', { href: setup, onclick: stop }, dot('warn', 'Setup incomplete'))),
      h('td.m3.status-cell', light(c.status)),
      h('td.num', String(c.messageTypes)),
      h('td.actions-cell',
        c.running ? h('a', { href: `${base}/types`, onclick: stop }, 'Message types →') : h('a', { href: setup, onclick: stop }, 'Continue setup →'),
        source === 'api' ? [' ', h('button.danger.delete', { type: 'button', 'aria-label': `Delete connection ${c.name}`, onclick: (e) => { stop(e); remove(c); } }, 'Delete')] : null));
  };

  const load = async () => {
    try {
      const { connections } = await get('/api/connections');
      const srcs = await Promise.all(connections.map(sourceOf));
      if (disposed) return;
      clear(listErr);
      clear(body, connections.length ? connections.map((c, i) => row(c, srcs[i]))
        : h('tr', h('td.empty', { colSpan: 6 }, 'No connection yet. ', h('a', { href: '#/wizard' }, 'Set one up.'))));
    } catch (e) {
      if (!disposed) clear(listErr, errorBox(e, 'Cannot list the connections'));
    }
  };
  await load();
  const timer = setInterval(load, 5000);
  return { dispose: () => { disposed = true; clearInterval(timer); } };
}
