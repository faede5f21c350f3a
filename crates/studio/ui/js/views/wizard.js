// Connection wizard: one page of numbered steps, each saved on its own and checked live.
//   0) name and hosting: creates the connection (the webhook token is shown once); self-hosted
//      ones get a connector bundle and show live whether their connector called home (it can
//      right away: it receives the .ionapi file of step 2 over its channel once saved);
//   1) the Metadata Publisher: through the ION API gateway, or an on-premises URL and user;
//   2) the .ionapi file: checked key by key and against M3, sealed and saved when valid;
//   3) where to go next.
// A setting that fails its check is not saved over the one in use (the server refuses it with
// 422 and says so). The same view, opened as #/c/{name}/config, is the connection's
// Configuration tab: the same forms and live checks, plus rotating the webhook token and the
// Kafka topics.
// The address becomes #/wizard/{name} once created, so a reload resumes. The connection's state
// is polled every 2 s while the page is open. Secrets are never shown (except the new webhook
// token, once).
import { get, post, put, request, download, conn, enc } from '../api.js';
import { h, clear, m3Dot, dot, errorBox, num, when, copyText } from '../dom.js';
import { light } from '../status.js';

export const name = 'wizard';

// The server's rule (mapping::ConnectionName): 1 to 40 of these characters.
const NAME_RE = /^[a-z0-9_-]{1,40}$/;
const NAME_HINT = 'Lower case letters, digits, dashes and underscores (at most 40); it appears in URLs and topic names.';
const POLL_MS = 2000;

function check(ok, what, message, id) {
  const level = ok === null || ok === undefined ? 'idle' : ok ? 'ok' : 'bad';
  const label = ok === null || ok === undefined ? 'not run' : ok ? 'passed' : 'failed';
  return h('li', { dataset: { check: id, ok: ok === null || ok === undefined ? 'skipped' : String(ok) } },
    h('span.what', what),
    h('span.status', { class: `status-${level}` }, h('span.dot'), label),
    message ? h('span.small', message) : null);
}

// The field a 400 answer names: "url: expected …" → "url".
function fieldOf(e) {
  const m = /^([A-Za-z_]+)\s*:/.exec((e && e.message) || '');
  return m ? m[1] : null;
}

function mark(input, bad, message) {
  input.classList.toggle('invalid', bad);
  if (bad) {
    input.setAttribute('aria-invalid', 'true');
    if (message) input.title = message;
  } else {
    input.removeAttribute('aria-invalid');
    input.title = '';
  }
}

// Replace an element's children only when what it shows changed (polling must not flicker or
// re-announce alerts).
function show(el, key, ...children) {
  if (el.dataset.shown === key) return;
  el.dataset.shown = key;
  clear(el, ...children);
}

export async function render(root, params) {
  let cname = null; // the connection, once it exists
  let desc = null; // its last GET /api/connections/{c}
  let timer = null;
  let disposed = false;
  let mdpLoaded = false; // the MDP form was filled from the saved settings
  let mdpPending = false; // MDP saved through the gateway: checked once the connection runs

  const hostingOf = () => (desc ? desc.hosting : root.querySelector('input[name=hosting]:checked').value);

  // ------------------------------------------------------------------ 0) name and hosting
  const nameInput = h('input#conn-name', { type: 'text', placeholder: 'e.g. production', autocomplete: 'off', maxLength: 40, 'aria-describedby': 'conn-name-hint' });
  const nameHint = h('div.small.muted#conn-name-hint', NAME_HINT);
  nameInput.addEventListener('input', () => {
    const v = nameInput.value;
    const ok = v === '' || NAME_RE.test(v);
    mark(nameInput, !ok);
    nameHint.textContent = ok ? NAME_HINT : 'Use lower case letters, digits, dashes and underscores (at most 40).';
  });
  const companyInput = h('input#conn-company', { type: 'number', min: 0, max: 999, step: 1, placeholder: 'e.g. 100', inputMode: 'numeric', 'aria-describedby': 'conn-company-hint' });
  const hostingNote = h('div');
  const hostingRadio = (value, title, text) => h('label',
    h('input', { type: 'radio', name: 'hosting', value, checked: value === 'hosted', onchange: showHosting }), ' ', h('strong', title), h('div.small.muted', text));
  function showHosting() {
    if (desc) return;
    clear(hostingNote, hostingOf() === 'hosted'
      ? h('div.alert.alert-info', 'Hosted: erp-bridge itself calls M3 Cloud through the ION API gateway with the .ionapi file of step 2.')
      : h('div.alert.alert-info#self-hosted-note',
        'Self-hosted: a connector runs on your network, next to M3, and calls home to Studio over one outbound connection (no inbound port). ',
        'Once the connection is created, download its connector bundle here and start it.'));
  }
  const createBtn = h('button.primary#create', { type: 'submit' }, 'Create connection');
  const createErr = h('div#create-error');
  const created = h('div#create-result');
  const identity = h('fieldset.plain#identity',
    h('legend.sr-only', 'Name and hosting'),
    h('label.field', h('span', 'Connection name'), nameInput, nameHint),
    h('fieldset.plain', h('legend.sublabel', 'Hosting'),
      h('div.choice',
        hostingRadio('hosted', 'Hosted', 'erp-bridge connects to M3 Cloud through ION API.'),
        hostingRadio('self-hosted', 'Self-hosted', 'A connector on your network calls home (on-premises M3).'))),
    h('label.field.narrow', h('span', 'Company (CONO, optional)'), companyInput,
      h('div.small.muted#conn-company-hint', 'Leave it empty to use the default company of the .ionapi file\'s user.')));
  const createForm = h('form#create-form', { onsubmit: (e) => { e.preventDefault(); create(); } },
    identity, hostingNote, createErr, h('div.actions#create-actions', createBtn));

  // Self-hosted: bundle and the connector's state.
  const bundleBtn = h('button.primary#bundle-download', { type: 'button', onclick: () => downloadBundle() }, 'Download connector bundle');
  const bundleOut = h('div#bundle-result');
  const connectorState = h('div#connector-state', { role: 'status' });
  const connectorBox = h('div#connector', { hidden: true },
    h('h3', 'Connector'),
    h('p.small.muted', 'The bundle holds the connector\'s settings, a new connector token, a Containerfile and a README. Run it with ',
      h('code', 'erp-bridge connector --bundle bundle.toml'), '.'),
    h('div.actions', bundleBtn),
    bundleOut,
    connectorState);

  // ------------------------------------------------------------------ 1) Metadata Publisher
  const viaRadio = (value, title, text) => h('label',
    h('input', { type: 'radio', name: 'mdp-via', value, checked: value === 'gateway', onchange: showVia }), ' ', h('strong', title), h('div.small.muted', text));
  const mdpUrl = h('input#mdp-url', { type: 'text', inputMode: 'url', placeholder: 'https://m3.example.com:20443/mdprest', autocomplete: 'off', spellcheck: false });
  const mdpUser = h('input#mdp-username', { type: 'text', autocomplete: 'off', spellcheck: false });
  const mdpPass = h('input#mdp-password', { type: 'password', autocomplete: 'new-password' });
  for (const i of [mdpUrl, mdpUser, mdpPass]) i.addEventListener('input', () => mark(i, false));
  const directFields = h('div#mdp-direct.grid3',
    h('label.field', h('span', 'MDP URL'), mdpUrl),
    h('label.field', h('span', 'User name'), mdpUser),
    h('label.field', h('span', 'Password'), mdpPass));
  function showVia() {
    directFields.hidden = viaOf() !== 'direct';
  }
  const viaOf = () => (root.querySelector('input[name=mdp-via]:checked') || {}).value || 'gateway';
  const mdpBtn = h('button.primary#mdp-save', { type: 'submit' }, 'Save & check');
  const mdpErr = h('div#mdp-error');
  const mdpOut = h('div#mdp-result');
  const mdpForm = h('form#mdp-form', { onsubmit: (e) => { e.preventDefault(); saveMdp(); } },
    h('fieldset.plain', h('legend.sublabel', 'Where Studio reads tables and columns'),
      h('div.choice',
        viaRadio('gateway', 'Through the ION API gateway (M3 Cloud)', 'With the credentials of the .ionapi file (step 2).'),
        viaRadio('direct', 'On-premises MDP URL', 'The Metadata Publisher\'s /mdprest URL, with an HTTP Basic user.'))),
    directFields,
    mdpErr,
    h('div.actions', mdpBtn));
  const mdpFields = h('fieldset.plain#mdp-fields', { disabled: true }, mdpForm);

  // ------------------------------------------------------------------ 2) ION API
  const fileInput = h('input#ionapi-file', { type: 'file', accept: '.ionapi,application/json,.json', 'aria-label': 'The .ionapi file' });
  const drop = h('div.dropzone#ionapi-drop',
    h('p', h('strong', 'Drop the .ionapi file here'), ' or ', fileInput),
    h('p.small', 'Download it in ION API → Authorized apps → your backend service app → "Download credentials". When it is valid it is sealed and saved; its secrets are never shown again.'));
  const ionOut = h('div#ionapi-result');
  const ionSaved = h('div#ionapi-saved');
  const ionFields = h('fieldset.plain#ionapi-fields', { disabled: true }, drop);

  // ------------------------------------------------------------------ 3) next
  const next = h('div#wizard-next');

  // ------------------------------------------------------------------ status header
  const configMode = !!params.config;
  let topicsLoaded = false;
  const headTitle = h('h1', configMode ? `Configuration of ${params.setup}` : 'Set up an M3 connection');

  // ------------------------------------------------------------------ configuration only
  const rotateBtn = h('button#webhook-rotate', { type: 'button', onclick: () => rotateWebhook() }, 'Rotate webhook token');
  const rotateOut = h('div#webhook-rotate-result');
  const webhookBox = h('div#webhook-config');
  const topicsBox = h('div#kafka-topics', h('p.muted', 'Loading…'));
  const headStatus = h('div#wizard-status', { role: 'status' });
  const pollErr = h('div#wizard-poll-error');
  const configNote = h('div');

  const section = (n, title, ...body) => h('section.panel.step', { 'aria-labelledby': `step-${n}` },
    h('div.num', { 'aria-hidden': 'true' }, String(n)), h('div', h('h2', { id: `step-${n}` }, title), ...body));
  clear(root,
    h('div.pagehead', h('div', headTitle,
      h('p.muted', 'Each step saves on its own and checks live against M3, showing exactly what fails.')), headStatus),
    pollErr,
    configNote,
    section(0, 'Name and hosting', createForm, created, connectorBox),
    section(1, 'Metadata Publisher',
      h('p.muted', 'Tables and columns, custom ones included, come from M3\'s Metadata Publisher (MDP).'),
      mdpFields, mdpOut),
    section(2, 'ION API credentials', ionFields, ionOut, ionSaved),
    configMode ? section(3, 'Webhook token', webhookBox, h('div.actions', rotateBtn), rotateOut) : section(3, 'Use it', next),
    configMode ? section(4, 'Kafka topics', topicsBox) : null);
  showHosting();
  showVia();
  showNext();

  // ------------------------------------------------------------------ behaviour
  function lockIdentity() {
    identity.disabled = true;
    nameInput.value = cname;
    const hosting = desc.hosting;
    for (const r of root.querySelectorAll('input[name=hosting]')) r.checked = r.value === hosting;
    companyInput.value = desc.company === null || desc.company === undefined ? '' : String(desc.company);
    createBtn.hidden = true;
    clear(hostingNote);
    clear(createErr);
    headTitle.textContent = configMode ? `Configuration of ${cname}` : `Connection ${cname}`;
    const editable = desc.source !== 'configuration';
    mdpFields.disabled = !editable;
    ionFields.disabled = !editable;
    connectorBox.hidden = !(hosting === 'self-hosted' && editable);
    if (!editable) {
      clear(configNote, h('div.alert.alert-info#config-note', h('strong', `${cname} is defined in the configuration file`),
        ' (erp-bridge.toml or the command line): change it there and restart erp-bridge. Its state is shown here.'));
    }
  }

  async function create() {
    clear(createErr);
    mark(nameInput, false);
    mark(companyInput, false);
    const cn = nameInput.value.trim();
    const fail = (input, message) => {
      mark(input, true, message);
      clear(createErr, errorBox(new Error(message), 'Not created'));
      input.focus();
    };
    if (!NAME_RE.test(cn) || cn.length > 40) return fail(nameInput, `name: ${NAME_HINT}`);
    const body = { name: cn, hosting: hostingOf() };
    const co = companyInput.value.trim();
    if (co) {
      const n = Number(co);
      if (!Number.isInteger(n) || n < 0 || n > 999) return fail(companyInput, 'company: a whole number from 0 to 999');
      body.company = n;
    }
    createBtn.disabled = true;
    let r;
    try {
      r = await post('/api/connections', body);
    } catch (e) {
      const f = fieldOf(e);
      if (f === 'name') mark(nameInput, true, e.message);
      if (f === 'company') mark(companyInput, true, e.message);
      clear(createErr, errorBox(e, 'Not created'),
        e.status === 409 && !/configuration/.test(e.message)
          ? h('p', h('a#resume-link', { href: `#/wizard/${enc(cn)}` }, `Continue setting up ${cn} →`)) : null);
      return;
    } finally {
      createBtn.disabled = false;
    }
    if (disposed) return;
    cname = r.name;
    desc = r;
    const hash = `#/wizard/${enc(cname)}`;
    history.replaceState(null, '', hash);
    window.dispatchEvent(new CustomEvent('studio:rehash', { detail: hash }));
    lockIdentity();
    showCreated(r);
    showDesc();
    startPolling();
  }

  function showCreated(r, title) {
    const tok = r.webhook && r.webhook.token;
    const url = `${location.origin}${(r.webhook && r.webhook.path) || `/webhooks/${r.name}/{TABLE}`}`;
    if (!tok) return;
    const value = h('input#webhook-token-value.mono', { type: 'text', readOnly: true, value: tok, 'aria-label': 'Webhook token', onfocus: (e) => e.target.select() });
    const copied = h('span.small#webhook-token-copied', { role: 'status' });
    const copyBtn = h('button.primary#webhook-token-copy', { type: 'button', onclick: async () => {
      copied.textContent = (await copyText(tok, value)) ? 'Copied.' : 'Copy failed: select the token and copy it by hand.';
    } }, 'Copy');
    clear(created, h('div.newtoken#webhook-token', { role: 'status' },
      h('h3', title || `Connection “${r.name}” created`),
      h('p.newtoken-warn', h('strong', 'Webhook token, shown once: copy it now. '),
        'M3\'s Event Hub subscription sends it as ', h('code', 'Authorization: Bearer <token>'), '. It is sealed at rest and never shown again.'),
      h('div.newtoken-row', value, copyBtn, copied),
      h('p.small', 'Webhook URL: ', h('code', url))));
  }

  function showConnector(d) {
    if (d.hosting !== 'self-hosted' || d.source === 'configuration') return;
    const c = d.connector || {};
    const key = JSON.stringify([c, d.running]);
    let line;
    if (c.state === 'connected') {
      line = h('div', dot('ok', `Connector connected: holder ${c.holder || 'unknown'}, since ${when(c.connectedSince)}`),
        c.version ? h('span.small.muted', ` (erp-bridge ${c.version})`) : null,
        d.running ? null : h('div.small#connector-needs-ionapi', 'Next: upload the .ionapi file (step 2). The connector receives it over its channel and starts reading M3; it need not be restarted.'));
    } else if (c.state === 'disconnected') {
      line = h('div', dot('bad', 'Disconnected: the connector stopped calling home'),
        h('div.small.muted', `Disconnected${c.holder ? `: holder ${c.holder}` : ''}${c.lastSeen ? `, last seen ${when(c.lastSeen)}` : ''}.`));
    } else {
      line = h('div', dot('warn', 'Waiting for the connector to call home…'),
        d.running ? null : h('div.small.muted', 'Start it now with its bundle: it calls home right away, and receives its M3 credentials once the .ionapi file is saved (step 2).'));
    }
    show(connectorState, key, line,
      c.refused ? h('div.small.status-bad#connector-refused', `Refused ${num(c.refused)} time(s)${c.lastRefusal ? `; last: ${c.lastRefusal}` : ''}.`) : null);
  }

  function showHead(d) {
    headStatus.dataset.running = String(!!d.running);
    show(headStatus, JSON.stringify([d.running, d.status]),
      h('div.actions', d.running ? dot('idle', 'Running') : dot('idle', 'Setup incomplete'), h('span.small.muted', 'Status:'), light(d.status)));
  }

  function showStoredIon(d) {
    const f = d.ionapi;
    const working = d.status && d.status.state === 'Healthy';
    show(ionSaved, JSON.stringify([f || null, working]), f ? h('div.alert#ionapi-stored', { class: working ? 'alert-ok' : 'alert-info' },
      h('strong', working ? 'Saved and working — secrets are never shown again.' : 'Saved (see the status above) — secrets are never shown again.'),
      h('dl.attrs',
        h('dt', 'tenant'), h('dd', f.tenant || '—'),
        h('dt', 'application'), h('dd', f.application || '—'),
        h('dt', 'gateway'), h('dd', f.gateway || '—'),
        h('dt', 'client id'), h('dd', f.clientId || '—'),
        h('dt', 'secrets'), h('dd', 'sealed, never displayed'))) : null);
  }

  function fillMdp(d) {
    if (mdpLoaded || !d.mdp) return;
    mdpLoaded = true;
    const direct = d.mdp.via === 'direct';
    for (const r of root.querySelectorAll('input[name=mdp-via]')) r.checked = r.value === (direct ? 'direct' : 'gateway');
    if (direct) {
      mdpUrl.value = d.mdp.url || '';
      mdpUser.value = d.mdp.username || '';
    }
    mdpPass.value = '';
    mdpPass.placeholder = direct && d.mdp.passwordSet ? '•••• saved' : '';
    showVia();
    if (d.hosting === 'hosted') {
      mdpPending = true; // show what the running connection reads
      if (!d.running) clear(mdpOut, h('p.muted', 'Checked once the .ionapi file is saved and the connection runs.'));
    } else showMdp({ ok: null, message: 'checked by the self-hosted connector when it calls home' });
  }

  function showNext() {
    const running = desc && desc.running;
    if (!cname) {
      clear(next, h('p.muted', 'Create the connection first (step 0).'));
      return;
    }
    const base = `#/c/${enc(cname)}`;
    show(next, `${cname}:${running}`, running
      ? h('p', 'The connection runs. ', h('a.button.primary#open-dashboard', { href: base }, 'Open dashboard'), ' ',
        h('a.button#create-mapping', { href: `${base}/mappings/new` }, 'Create a mapping'))
      : h('p.muted', 'Once the .ionapi file is saved the connection starts; then you can open its dashboard and create a mapping.'));
  }

  function showDesc() {
    if (!desc) return;
    if (configMode) {
      showWebhook(desc);
      if (!topicsLoaded) { topicsLoaded = true; showTopics(); }
    }
    showHead(desc);
    showConnector(desc);
    showStoredIon(desc);
    fillMdp(desc);
    showNext();
    if (mdpPending && desc.running && desc.hosting === 'hosted') checkTables();
  }

  async function refresh() {
    if (!cname || disposed) return;
    try {
      const d = await get(conn(cname));
      if (disposed) return;
      desc = d;
      show(pollErr, '');
      showDesc();
    } catch (e) {
      if (!disposed) show(pollErr, `e:${e.message}`, errorBox(e, `Cannot read the connection ${cname}`));
    }
  }

  function startPolling() {
    if (timer || disposed) return;
    timer = setInterval(refresh, POLL_MS);
  }

  // ---- MDP
  function showMdp(c, note, list) {
    const n = c.tables;
    clear(mdpOut,
      h('ul.checks',
        check(c.ok, 'Metadata Publisher (MDP)', [c.message, c.status ? `(${c.status})` : null].filter(Boolean).join(' '), 'mdp'),
        n !== undefined && n !== null
          ? h('li', h('span.what', 'Tables'), h('span', h('strong#mdp-count', num(n)), ' tables found'), note ? h('span.small.muted', note) : null)
          : null),
      list && list.length ? tableList(list) : null);
  }

  // The tables MDP (or the catalogue) offers, so the next step is choosing one.
  function tableList(list) {
    const shown = list.slice(0, 60);
    return h('details.tables-found#mdp-tables', { open: true },
      h('summary', `Tables found (${num(list.length)})`),
      h('ul.tablelist', shown.map((t) => h('li', { dataset: { table: t.name } }, h('code', t.name), ' ', h('span.muted', t.description || '')))),
      list.length > shown.length ? h('p.small.muted', `… and ${num(list.length - shown.length)} more: search them by name or meaning when creating a message type.`) : null);
  }

  // After a working .ionapi file: what this connection reaches now.
  async function showReachable() {
    if (!cname) return;
    const box = h('div#ionapi-reachable', h('p.muted', 'Looking at what is reachable…'));
    ionOut.append(box);
    const items = [];
    try {
      const t = await get(`${conn(cname)}/tables`);
      items.push(h('li', { dataset: { reach: 'tables' } }, h('span.what', 'Tables'),
        h('span', h('strong', num(t.tables.length)), t.source === 'mdp' ? ' from the Metadata Publisher' : ' from the built-in catalogue (MDP is not answering)')));
    } catch (e) {
      items.push(h('li', h('span.what', 'Tables'), h('span.status-bad', e.message)));
    }
    try {
      const st = await get(`${conn(cname)}/status`);
      items.push(h('li', { dataset: { reach: 'kafka' } }, h('span.what', 'Kafka'),
        st.relay ? h('span', 'events go to topic ', h('code', st.relay.topic)) : h('span.muted', 'not configured: messages stay in the embedded log (read them over HTTP).')));
    } catch { /* the status shows on the dashboard */ }
    items.push(h('li', { dataset: { reach: 'commands' } }, h('span.what', 'Commands'), h('span', 'M3 API transactions (MI) answer with these credentials; ', h('a', { href: `#/c/${enc(cname)}/commands` }, 'set up commands'), '.')));
    if (disposed) return;
    clear(box, h('h3', 'Reachable now'), h('ul.checks', items));
  }

  let tablesSeq = 0;
  async function checkTables() {
    mdpPending = false;
    const seq = ++tablesSeq;
    try {
      const t = await get(`${conn(cname)}/tables`);
      if (disposed || seq !== tablesSeq) return;
      const fromMdp = t.source === 'mdp';
      showMdp({ ok: fromMdp, tables: t.tables.length,
        message: fromMdp ? 'answering: tables and columns, custom ones included, come from this M3.'
          : 'not answering: Studio falls back to its built-in catalogue of standard M3 tables (no custom columns).' },
      fromMdp ? 'read by the running connection' : 'from the built-in catalogue', t.tables);
    } catch (e) {
      if (!disposed && seq === tablesSeq) clear(mdpOut, errorBox(e, 'Metadata check failed'));
    }
  }

  async function saveMdp() {
    if (!cname) return;
    clear(mdpErr);
    for (const i of [mdpUrl, mdpUser, mdpPass]) mark(i, false);
    let body = {};
    if (viaOf() === 'direct') {
      const url = mdpUrl.value.trim();
      const username = mdpUser.value.trim();
      const missing = !url ? [mdpUrl, 'url: required for an on-premises Metadata Publisher'] : !username ? [mdpUser, 'username: required with the URL'] : null;
      if (missing) {
        mark(missing[0], true, missing[1]);
        clear(mdpErr, errorBox(new Error(missing[1]), 'Not saved'));
        missing[0].focus();
        return;
      }
      body = { url, username };
      if (mdpPass.value) body.password = mdpPass.value;
    }
    mdpBtn.disabled = true;
    ++tablesSeq; // an older read-only check must not overwrite this answer
    clear(mdpOut, h('p.muted', 'Saving, then asking the Metadata Publisher…'));
    let r;
    try {
      r = await put(`${conn(cname)}/mdp`, body);
    } catch (e) {
      if (e.status === 422 && e.body && e.body.saved === false) {
        // The check failed: nothing was saved, the setting in use stays.
        showMdp(e.body.check || {});
        mdpOut.prepend(h('div.alert.alert-bad#mdp-not-saved', { role: 'alert' }, h('strong', 'Not saved. '), e.body.message || e.message));
        if (viaOf() === 'direct') mark(mdpUrl, true, e.message);
        mdpBtn.disabled = false;
        return;
      }
      const f = fieldOf(e);
      const input = { url: mdpUrl, username: mdpUser, password: mdpPass }[f];
      if (input) mark(input, true, e.message);
      clear(mdpErr, errorBox(e, 'Not saved'));
      clear(mdpOut);
      return;
    } finally {
      mdpBtn.disabled = false;
    }
    if (disposed) return;
    const c = r.check || {};
    if (r.connection) {
      desc = r.connection;
      mdpLoaded = false;
      fillMdp(desc);
    }
    mdpPending = false;
    if (c.ok === null && desc && desc.hosting === 'hosted') {
      mdpPending = true; // through the gateway: checked with the .ionapi file, once the connection runs
      clear(mdpOut, h('div.alert.alert-info#mdp-saved', h('strong', 'Saved. '), c.message || 'It is checked once the .ionapi file is saved.'));
    } else {
      showMdp(c);
      mdpOut.prepend(h('p.small.muted#mdp-saved', 'Saved.'));
      if (c.ok === true && desc && desc.running && desc.hosting === 'hosted') {
        try {
          const t = await get(`${conn(cname)}/tables`);
          if (!disposed && t.source === 'mdp') mdpOut.append(tableList(t.tables));
        } catch { /* the count above stands */ }
      }
    }
    if (r.launch && r.launch.error && desc && desc.ionapi) {
      mdpOut.append(h('div.alert.alert-warn', { role: 'alert' }, h('strong', 'The connection did not start: '), r.launch.error));
    }
    showDesc();
  }

  // ---- .ionapi
  async function upload(file) {
    if (!file || !cname || ionFields.disabled) return;
    clear(ionOut, h('p.muted', `Checking and saving ${file.name}…`));
    let text;
    try {
      text = await file.text();
    } catch (e) {
      clear(ionOut, errorBox(e, 'Cannot read the file'));
      return;
    }
    let r;
    try {
      r = await request('PUT', `${conn(cname)}/ionapi`, text, { raw: true });
    } catch (e) {
      if (e.status === 400 && e.body && e.body.valid === false) r = e.body;
      else if (e.status === 422 && e.body && e.body.saved === false) r = e.body;
      else {
        clear(ionOut, errorBox(e, 'Not saved'));
        return;
      }
    } finally {
      fileInput.value = ''; // choosing the same file again checks it again
    }
    if (disposed) return;
    showIonResult(file.name, r);
    if (r.saved && r.status === 'Healthy') showReachable();
    if (r.connection) {
      desc = r.connection;
      showDesc();
    }
  }

  function showIonResult(fname, r) {
    const errors = r.errors || [];
    const saved = r.saved === true;
    const byConnector = r.status === 'Unchecked';
    const kept = r.kept === true;
    ionOut.dataset.saved = String(saved);
    const items = [
      check(r.valid, `File ${fname}`, r.valid ? 'every required key is present' : `${errors.length} problem(s)`, 'file'),
      check(r.token ? r.token.ok : null, 'Access token (OAuth2, service account)', r.token ? r.token.message : byConnector ? 'checked by the connector' : null, 'token'),
      check(r.mi ? r.mi.ok : null, 'M3 API call (MMS200MI/LstItmByItm)', r.mi ? r.mi.message : byConnector ? 'checked by the connector' : null, 'mi'),
    ];
    const launch = r.launch || {};
    clear(ionOut,
      h('div.toolbar', h('strong', 'Result: '), h('span#ionapi-status', m3Dot(r.status)),
        saved ? h('span.badge.ok#ionapi-saved-badge', 'saved') : h('span.badge.bad#ionapi-saved-badge', 'not saved')),
      h('ul.checks', items),
      saved
        ? h('div.alert', { class: r.status === 'Healthy' ? 'alert-ok' : byConnector ? 'alert-info' : 'alert-bad', role: r.status === 'Healthy' || byConnector ? null : 'alert' },
          r.status === 'Healthy' ? 'This file works: erp-bridge reads M3 with it. ' : byConnector ? 'The connector checks it against M3 when it calls home. ' : h('strong', `Saved, but M3 refused it (${r.status}): the connection shows ${r.status} until a working file is uploaded. `),
          launch.running && r.status === 'Healthy' ? 'The connection runs.' : launch.error ? `The connection did not start: ${launch.error}` : '')
        : kept ? h('div.alert.alert-bad#ionapi-kept', { role: 'alert' }, h('strong', 'Not saved: '), r.message || 'M3 refused this file; the saved one stays in use.')
        : h('div.alert.alert-bad', { role: 'alert' }, h('strong', 'Not saved: '), 'fix the file and drop it again.',
          h('ul#ionapi-errors', errors.map((e) => h('li', { dataset: { key: e.key || '' } },
            e.key ? h('code', e.key) : null, e.key ? ': ' : '', e.message)))));
  }

  fileInput.addEventListener('change', () => upload(fileInput.files[0]));
  drop.addEventListener('dragover', (e) => { e.preventDefault(); if (!ionFields.disabled) drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    upload(e.dataTransfer.files[0]);
  });

  // ---- configuration: webhook token and Kafka topics
  function showWebhook(d) {
    const w = d.webhook || {};
    show(webhookBox, JSON.stringify(w), h('p', 'M3\'s Event Hub calls ', h('code', `${location.origin}${w.path || ''}`),
      ' with ', h('code', 'Authorization: Bearer <token>'), '. ', w.bearerTokenSet ? 'A token is set (sealed, never shown again).' : 'No token is set.'));
    rotateBtn.disabled = d.source === 'configuration';
  }

  async function rotateWebhook() {
    if (!cname) return;
    if (!confirm(`Rotate the webhook token of ${cname}? The current token stops working at once: M3's Event Hub subscription must get the new one.`)) return;
    rotateBtn.disabled = true;
    try {
      const r = await post(`${conn(cname)}/webhook-token`);
      if (disposed) return;
      showCreated({ name: cname, webhook: { token: r.token, path: desc && desc.webhook && desc.webhook.path } }, 'New webhook token: the old one no longer works');
      clear(rotateOut, created);
      if (r.connection) { desc = r.connection; showDesc(); }
    } catch (e) {
      clear(rotateOut, errorBox(e, 'Not rotated'));
    } finally {
      rotateBtn.disabled = false;
    }
  }

  async function showTopics() {
    if (!cname) return;
    let st = null;
    try { st = await get(`${conn(cname)}/status`); } catch { /* shown below */ }
    if (disposed) return;
    show(topicsBox, JSON.stringify(st && st.relay ? st.relay.topic : null), st && st.relay
      ? h('div', h('p', 'Events of every message type go to ', h('code#kafka-topic', st.relay.topic), '.'),
        h('p.small', h('a', { href: `#/c/${enc(cname)}/messages` }, 'Browse the messages'), ' and the AsyncAPI document for the message types.'))
      : h('p.muted#kafka-topic-none', 'Kafka is not configured for this erp-bridge: messages stay in the embedded log and are read over HTTP. Configure [kafka] brokers in erp-bridge.toml to publish them.'));
  }

  // ---- bundle
  async function downloadBundle() {
    bundleBtn.disabled = true;
    clear(bundleOut, h('p.muted', 'Preparing the bundle…'));
    try {
      const { blob, filename } = await download('POST', `${conn(cname)}/bundle`);
      const file = filename || `erp-bridge-connector-${cname}.tar`;
      const url = URL.createObjectURL(blob);
      const a = h('a', { href: url, download: file, hidden: true });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 30000);
      clear(bundleOut, h('p.small#bundle-note', h('strong', `Downloaded ${file}. `),
        'It holds a new connector token: keep it secret. Each download creates another token; revoke unused ones on the ',
        h('a', { href: '#/tokens' }, 'Tokens'), ' page.'));
    } catch (e) {
      clear(bundleOut, errorBox(e, 'No bundle'));
    } finally {
      bundleBtn.disabled = false;
    }
  }

  // ------------------------------------------------------------------ resume
  if (params.setup) {
    try {
      const d = await get(conn(params.setup));
      cname = d.name || params.setup;
      desc = d;
      lockIdentity();
      showDesc();
      startPolling();
    } catch (e) {
      if (e.status === 404) {
        nameInput.value = params.setup;
        clear(createErr, h('div.alert.alert-info', `There is no connection ${params.setup} yet: create it below.`));
      } else {
        clear(pollErr, errorBox(e, `Cannot read the connection ${params.setup}`));
      }
    }
  } else {
    nameInput.focus();
  }

  return {
    dispose: () => {
      disposed = true;
      if (timer) clearInterval(timer);
      timer = null;
      clear(created); // the webhook token is shown once
    },
  };
}
