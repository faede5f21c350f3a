// Connections list: name, hosting, M3 status, message types.
import { get } from '../api.js';
import { h, clear, m3Dot, errorBox } from '../dom.js';

export const name = 'connections';

export async function render(root) {
  const body = h('tbody');
  const note = h('div');
  clear(root,
    h('div.pagehead',
      h('div', h('h1', 'Connections'), h('p.muted', 'Each connection links one Infor M3 environment to its messages and read models.')),
      h('a.button.primary', { href: '#/wizard', id: 'setup' }, '+ Set up M3 connection')),
    note,
    h('div.tablewrap', h('table#connections',
      h('thead', h('tr', h('th', 'Name'), h('th', 'Hosting'), h('th', 'M3'), h('th.num', 'Message types'), h('th', ''))),
      body)));
  const load = async () => {
    try {
      const { connections } = await get('/api/connections');
      clear(note);
      clear(body, connections.length ? connections.map((c) => {
        const href = `#/c/${encodeURIComponent(c.name)}`;
        return h('tr.clickable', { dataset: { connection: c.name }, onclick: () => { location.hash = href; } },
          h('td', h('a', { href }, h('strong', c.name))),
          h('td', c.hosting === 'hosted' ? 'Hosted (in this process)' : c.hosting),
          h('td.m3', m3Dot(c.m3)),
          h('td.num', String(c.messageTypes)),
          h('td', h('a', { href: `${href}/types`, onclick: (e) => e.stopPropagation() }, 'Message types →')));
      }) : h('tr', h('td.empty', { colSpan: 5 }, 'No connection yet. ', h('a', { href: '#/wizard' }, 'Set one up.'))));
    } catch (e) {
      clear(note, errorBox(e, 'Cannot list the connections'));
    }
  };
  await load();
  const timer = setInterval(load, 5000);
  return { dispose: () => clearInterval(timer) };
}
