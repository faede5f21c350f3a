// Message types (mappings) of a connection, with bulk deploy / undeploy / re-export / delete that
// reports each item's outcome.
import { get, post, del, conn, enc } from '../api.js';
import { h, clear, errorBox, when } from '../dom.js';

export const name = 'types';

function deployment(m) {
  if (m.deployedVersion === null || m.deployedVersion === undefined) return h('span.badge', 'not deployed');
  if (m.deployedVersion === m.latestVersion) return h('span.badge.ok', `v${m.deployedVersion} deployed`);
  return h('span.badge.warn', { title: `v${m.latestVersion} is saved but not deployed` }, `v${m.deployedVersion} deployed, v${m.latestVersion} not yet`);
}

export async function render(root, { c }) {
  const tbody = h('tbody');
  const report = h('div#bulk-report');
  const err = h('div');
  const all = h('input#select-all', { type: 'checkbox', title: 'Select all', 'aria-label': 'Select all message types' });
  const count = h('span.muted.small');
  const buttons = {};
  const bulk = (label, id, cls, run) => {
    buttons[id] = h('button', { id, class: cls, disabled: true, onclick: () => runBulk(label, run) }, label);
    return buttons[id];
  };
  let list = [];
  const selected = () => [...tbody.querySelectorAll('input[type=checkbox]:checked')].map((x) => x.value);
  const sync = () => {
    const n = selected().length;
    count.textContent = n ? `${n} selected` : '';
    for (const b of Object.values(buttons)) b.disabled = n === 0;
    all.checked = n > 0 && n === list.length;
  };
  all.addEventListener('change', () => {
    for (const x of tbody.querySelectorAll('input[type=checkbox]')) x.checked = all.checked;
    sync();
  });

  const load = async () => {
    const keep = new Set(selected());
    try {
      ({ mappings: list } = await get(`${conn(c)}/mappings`));
      clear(err);
    } catch (e) {
      clear(err, errorBox(e, 'Cannot list the message types'));
      return;
    }
    clear(tbody, list.length ? list.map((m) => {
      const href = `#/c/${enc(c)}/mappings/${enc(m.name)}`;
      return h('tr', { dataset: { mapping: m.name } },
        h('td', h('input', { type: 'checkbox', value: m.name, checked: keep.has(m.name), onchange: sync, 'aria-label': `Select ${m.name}` })),
        h('td', h('a', { href }, h('strong', m.name)), m.description ? h('div.small.muted', m.description) : null),
        h('td.mono', m.table),
        h('td.num', String(m.fields)),
        h('td.num', `v${m.latestVersion}`),
        h('td.deployed', deployment(m), m.messageTypes ? h('div.small.muted', m.messageTypes.join(', ')) : null),
        h('td.small', m.deployedAt ? when(m.deployedAt) : '—', m.deployedBy ? h('div.muted', `by ${m.deployedBy}`) : null));
    }) : h('tr', h('td.empty', { colSpan: 7 }, 'No message type yet.')));
    sync();
  };

  async function runBulk(label, run) {
    const names = selected();
    if (label === 'Delete' && !confirm(`Delete ${names.join(', ')}? Deployed ones must be undeployed first.`)) return;
    if (label === 'Re-export' && !confirm(`Re-export ${names.join(', ')}? Every row of ${names.length === 1 ? 'its table' : 'their tables'} is read from M3 and emitted again to Kafka: consumers receive each record once more.`)) return;
    for (const b of Object.values(buttons)) b.disabled = true;
    clear(report, h('p.muted', `${label}: working on ${names.length}…`));
    const results = [];
    for (const n of names) {
      try {
        results.push({ n, ok: true, text: await run(n) });
      } catch (e) {
        results.push({ n, ok: false, text: e.message });
      }
    }
    const failed = results.filter((r) => !r.ok).length;
    clear(report, h('div.alert', { class: failed ? 'alert-bad' : 'alert-ok' },
      h('strong', failed ? `${label}: ${failed} of ${results.length} failed` : `${label}: done for ${results.length}`),
      h('ul.report', results.map((r) => h('li', { dataset: { item: r.n, ok: String(r.ok) } },
        h('span.status', { class: r.ok ? 'status-ok' : 'status-bad' }, h('span.dot'), r.n), ' — ', r.text)))));
    await load();
  }

  clear(root,
    h('div.pagehead',
      h('div', h('h1', 'Message types'), h('p.muted', 'Each message type maps one M3 table to ', h('em', 'Updated'), ' and ', h('em', 'Deleted'), ' messages and a read model.')),
      h('a.button.primary#new-mapping', { href: `#/c/${enc(c)}/mappings/new` }, '+ New message type')),
    err,
    h('div.toolbar',
      bulk('Deploy', 'bulk-deploy', 'primary', async (n) => `deployed v${(await post(`${conn(c)}/mappings/${enc(n)}/deploy`, {})).deployedVersion}`),
      bulk('Undeploy', 'bulk-undeploy', '', async (n) => { await post(`${conn(c)}/mappings/${enc(n)}/undeploy`); return 'undeployed'; }),
      bulk('Re-export', 'bulk-reexport', '', async (n) => { await post(`${conn(c)}/re-export`, { mappings: [n] }); return 're-export started: every row is read and sent again'; }),
      bulk('Delete', 'bulk-delete', 'danger', async (n) => { await del(`${conn(c)}/mappings/${enc(n)}`); return 'deleted'; }),
      count),
    report,
    h('div.tablewrap', h('table#types',
      h('thead', h('tr', h('th', all), h('th', 'Name'), h('th', 'M3 table'), h('th.num', 'Fields'), h('th.num', 'Latest'), h('th', 'Deployed'), h('th', 'Last deployed'))),
      tbody)));
  await load();
}
