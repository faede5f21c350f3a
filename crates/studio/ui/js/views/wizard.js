// Connection wizard: a live checker. Name and hosting, the Metadata Publisher, then the .ionapi
// file checked key by key and against M3 (token, then one MI call). Secrets are never shown.
import { get, request, conn } from '../api.js';
import { h, clear, m3Dot, errorBox, num } from '../dom.js';

export const name = 'wizard';

function check(ok, what, message, id) {
  const level = ok === null ? 'idle' : ok ? 'ok' : 'bad';
  const label = ok === null ? 'not run' : ok ? 'passed' : 'failed';
  return h('li', { dataset: { check: id, ok: ok === null ? 'skipped' : String(ok) } },
    h('span.what', what),
    h('span.status', { class: `status-${level}` }, h('span.dot'), label),
    message ? h('span.small', message) : null);
}

export async function render(root) {
  // 0) name + hosting
  const nameInput = h('input#conn-name', { type: 'text', placeholder: 'e.g. production', value: '', autocomplete: 'off' });
  const nameHint = h('div.small.muted', 'Lower case letters, digits and dashes; it appears in URLs and topic names.');
  nameInput.addEventListener('input', () => {
    const ok = /^[a-z][a-z0-9-]*$/.test(nameInput.value) || nameInput.value === '';
    nameInput.classList.toggle('invalid', !ok);
    nameHint.textContent = ok ? 'Lower case letters, digits and dashes; it appears in URLs and topic names.' : 'Use lower case letters, digits and dashes, starting with a letter.';
  });
  const hostingNote = h('div');
  const hosting = (value, title, text) => h('label', h('input', { type: 'radio', name: 'hosting', value, checked: value === 'hosted', onchange: showHosting }), ' ', h('strong', title), h('div.small.muted', text));
  function showHosting() {
    const v = root.querySelector('input[name=hosting]:checked').value;
    clear(hostingNote, v === 'hosted'
      ? h('div.alert.alert-info', 'Hosted: erp-bridge itself calls M3 through the ION API gateway with the .ionapi file below.')
      : h('div.alert.alert-warn', { id: 'self-hosted-note' },
        h('div', h('span.status.status-warn', h('span.dot'), 'Waiting for the connector to call home…')),
        h('p', 'Self-hosted connectors run on your network and call home to Studio. ',
          h('strong', 'This is not available yet in this version: '),
          'no connector bundle can be downloaded and no connector will call home. Use a hosted connection for now.')));
  }

  // 1) MDP
  const mdpConn = h('select#mdp-connection');
  const mdpOut = h('div#mdp-result');
  const runMdp = async () => {
    const c = mdpConn.value;
    if (!c) return;
    clear(mdpOut, h('p.muted', 'Asking the Metadata Publisher…'));
    try {
      const t = await get(`${conn(c)}/tables`);
      const fromMdp = t.source === 'mdp';
      clear(mdpOut, h('ul.checks',
        check(fromMdp, 'Metadata Publisher (MDP)', fromMdp ? 'answering: tables and columns, custom ones included, come from this M3.' : 'not answering: Studio falls back to its built-in catalogue of standard M3 tables (no custom columns).', 'mdp'),
        h('li', h('span.what', 'Tables found'), h('strong#mdp-count', num(t.tables.length)), h('span.small.muted', fromMdp ? 'from MDP' : 'from the built-in catalogue'))));
    } catch (e) {
      clear(mdpOut, errorBox(e, 'Metadata check failed'));
    }
  };
  mdpConn.addEventListener('change', runMdp);

  // 2) ION
  const fileInput = h('input#ionapi-file', { type: 'file', accept: '.ionapi,application/json,.json' });
  const drop = h('div.dropzone#ionapi-drop',
    h('p', h('strong', 'Drop the .ionapi file here'), ' or ', fileInput),
    h('p.small', 'Download it in ION API → Authorized apps → your backend service app → "Download credentials". It is checked here and not stored.'));
  const ionOut = h('div#ionapi-result');
  const checkFile = async (file) => {
    if (!file) return;
    clear(ionOut, h('p.muted', `Checking ${file.name}…`));
    let text;
    try {
      text = await file.text();
    } catch (e) {
      clear(ionOut, errorBox(e, 'Cannot read the file'));
      return;
    }
    let r;
    try {
      r = await request('POST', '/api/checks/ionapi', text, { raw: true });
    } catch (e) {
      clear(ionOut, errorBox(e, 'The check failed'));
      return;
    }
    const f = r.file || {};
    const errors = r.errors || [];
    const items = [
      check(r.valid, `File ${file.name}`, r.valid ? 'every required key is present' : null, 'file'),
      r.valid ? null : h('li', h('ul#ionapi-errors', errors.map((e) => h('li.status-bad', { dataset: { key: e.key || '' } }, e.key ? h('code', e.key) : null, e.key ? ': ' : '', e.message)))),
      check(r.token ? r.token.ok : null, 'Access token (OAuth2, service account)', r.token ? r.token.message : null, 'token'),
      check(r.mi ? r.mi.ok : null, 'M3 API call (MMS200MI/LstItmByItm)', r.mi ? r.mi.message : null, 'mi'),
    ];
    clear(ionOut,
      h('div.toolbar', h('strong', 'Result: '), h('span#ionapi-status', m3Dot(r.status))),
      r.valid ? h('dl.attrs',
        h('dt', 'tenant'), h('dd', f.tenant || '—'),
        h('dt', 'application'), h('dd', f.application || '—'),
        h('dt', 'gateway'), h('dd', f.gateway || '—'),
        h('dt', 'client id'), h('dd', f.clientId || '—'),
        h('dt', 'secrets'), h('dd', 'present, never displayed')) : null,
      h('ul.checks', items),
      r.status === 'Healthy' ? h('div.alert.alert-ok', 'This file works: erp-bridge can read M3 with it.') : null);
  };
  fileInput.addEventListener('change', () => checkFile(fileInput.files[0]));
  drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    checkFile(e.dataTransfer.files[0]);
  });

  const section = (n, title, ...body) => h('section.panel.step', h('div.num', String(n)), h('div', h('h2', title), ...body));
  clear(root,
    h('div.pagehead', h('div', h('h1', 'Set up an M3 connection'),
      h('p.muted', 'Each step checks live against M3 and shows exactly what fails.'))),
    h('div.alert.alert-info',
      h('strong', 'Saving is not available in Studio yet. '),
      'This wizard checks a connection live. To add it, set ', h('code', '[connection] name'), ' and ', h('code', 'ionapi_file'),
      ' in ', h('code', 'erp-bridge.toml'), ' (or ', h('code', 'ERP_BRIDGE__CONNECTION__IONAPI_FILE'), '; or ', h('code', 'erp-bridge up --ionapi FILE'), ') and restart erp-bridge.'),
    section(0, 'Name and hosting',
      h('label.field', h('span', 'Connection name'), nameInput, nameHint),
      h('div.choice',
        hosting('hosted', 'Hosted', 'erp-bridge connects to M3 Cloud through ION API.'),
        hosting('self-hosted', 'Self-hosted', 'A connector on your network calls home (on-premises M3).')),
      hostingNote),
    section(1, 'Metadata Publisher',
      h('p.muted', 'Tables and columns come from M3\'s Metadata Publisher (MDP) when it answers. Until the new connection is saved, this runs through an existing one:'),
      h('div.toolbar', h('label', 'Connection ', mdpConn), h('button', { onclick: runMdp }, 'Check again')),
      mdpOut),
    section(2, 'ION API credentials',
      drop, ionOut));
  showHosting();
  try {
    const { connections } = await get('/api/connections');
    clear(mdpConn, connections.map((x) => h('option', { value: x.name }, x.name)));
    if (connections.length) await runMdp();
    else clear(mdpOut, h('p.muted', 'No connection is configured yet, so MDP cannot be checked here.'));
  } catch (e) {
    clear(mdpOut, errorBox(e, 'Cannot list the connections'));
  }
}
