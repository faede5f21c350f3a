// Consume: the message log (live tail), read models, JSON Schemas and AsyncAPI, and commands.
import { get, post, conn, enc } from '../api.js';
import { h, clear, errorBox, json, when, uuid, copyText } from '../dom.js';

export const name = 'consume';

export async function render(root, params) {
  if (params.tab === 'messages') return messages(root, params);
  if (params.tab === 'read-models') return readModels(root, params);
  if (params.tab === 'consume') return consume(root, params);
  return commands(root, params);
}

async function deployedTypes(c) {
  const { mappings } = await get(`${conn(c)}/mappings`);
  return mappings.filter((m) => m.resource);
}

// ---------------------------------------------------------------- messages

const KEEP = 300;

async function lastSeq(c) {
  // The log is read forward only (`after`); find the newest sequence number by bisection.
  const any = async (after) => (await get(`${conn(c)}/messages?after=${after}&limit=1`)).messages.length > 0;
  if (!(await any(0))) return 0;
  let lo = 0; // a seq with messages after it
  let hi = 1024;
  while (await any(hi)) { lo = hi; hi *= 2; }
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (await any(mid)) lo = mid;
    else hi = mid;
  }
  return hi;
}

// A link to a JSON document of this erp-bridge, opened in a new tab as fetched with the token
// (a Blob URL), never as a plain link the API would answer with 401.
function jsonLink(url) {
  let same = false;
  try { same = new URL(url, location.href).origin === location.origin; } catch { same = false; }
  if (!same) return h('a', { href: url, target: '_blank', rel: 'noopener' }, url);
  return h('a.json-link', { href: url, onclick: async (e) => {
    e.preventDefault();
    const tab = window.open('about:blank', '_blank');
    try {
      const u = new URL(url, location.href);
      const blob = URL.createObjectURL(new Blob([JSON.stringify(await get(u.pathname + u.search), null, 2)], { type: 'application/json' }));
      if (tab) tab.location = blob;
    } catch (err) {
      if (tab) tab.close();
      alert(`${url}: ${err.message}`);
    }
  } }, url);
}

function attrs(m) {
  const keys = ['specversion', 'id', 'type', 'source', 'subject', 'time', 'datacontenttype', 'dataschema'];
  return h('dl.attrs', keys.flatMap((k) => [h('dt', k), h('dd', k === 'dataschema' && m[k] ? jsonLink(m[k]) : String(m[k] ?? '—'))]));
}

function summary(data) {
  if (!data || typeof data !== 'object') return '';
  const s = Object.entries(data).slice(0, 4).map(([k, v]) => `${k}: ${typeof v === 'object' ? JSON.stringify(v) : v}`).join(' · ');
  return s.length > 120 ? `${s.slice(0, 117)}…` : s;
}

async function messages(root, { c }) {
  const types = await deployedTypes(c).catch(() => []);
  const allTypes = [...new Set(types.flatMap((m) => m.messageTypes || []))].sort();
  const typeSel = h('select#msg-type', { 'aria-label': 'Message type' }, h('option', { value: '' }, 'All types'), allTypes.map((t) => h('option', { value: t }, t)));
  const keyInput = h('input#msg-key', { type: 'search', placeholder: 'Entity key, e.g. 100|A000001', 'aria-label': 'Entity key' });
  const live = h('input#msg-live', { type: 'checkbox', checked: true });
  const info = h('span.small.muted#msg-info');
  const err = h('div');
  const tbody = h('tbody');
  const olderBtn = h('button#msg-older', { onclick: () => older() }, 'Load older');
  let shown = []; // newest first
  let next = 0;
  let oldest = null;
  let gen = 0;
  let timer = null;
  const expanded = new Set();

  const query = () => {
    let q = '';
    if (typeSel.value) q += `&type=${enc(typeSel.value)}`;
    if (keyInput.value.trim()) q += `&key=${enc(keyInput.value.trim())}`;
    return q;
  };
  const row = (m) => {
    const detail = h('tr.msgdetail', { hidden: !expanded.has(m.seq) }, h('td', { colSpan: 5 }, attrs(m), h('div.small.muted', 'data (payload)'), json(m.data)));
    const tr = h('tr.msgrow.clickable', { dataset: { seq: String(m.seq), type: m.type }, onclick: () => {
      detail.hidden = !detail.hidden;
      if (detail.hidden) expanded.delete(m.seq); else expanded.add(m.seq);
    } },
    h('td.num', String(m.seq)), h('td.small', new Date(m.time).toLocaleString()), h('td', h('span.badge', { class: /Deleted$/.test(m.type) ? 'bad' : 'ok' }, m.type)),
    h('td.mono', m.subject), h('td.small.muted', summary(m.data)));
    return [tr, detail];
  };
  const draw = () => {
    clear(tbody, shown.length ? shown.map(row) : h('tr', h('td.empty', { colSpan: 5 }, 'No message matches.')));
    info.textContent = `${shown.length} message(s) shown${live.checked ? '; following new ones live' : ''}.`;
    olderBtn.disabled = !oldest || oldest <= 1;
  };
  const fetchForward = async (after, g) => {
    const got = [];
    for (let i = 0; i < 50; i++) {
      const r = await get(`${conn(c)}/messages?after=${after}&limit=1000${query()}`);
      if (g !== gen) return null;
      got.push(...r.messages);
      if (got.length > KEEP) got.splice(0, got.length - KEEP);
      after = r.next;
      if (r.messages.length < 1000) break;
    }
    return { got, next: after };
  };
  const start = async () => {
    const g = ++gen;
    clear(err);
    info.textContent = 'Loading…';
    try {
      const last = await lastSeq(c);
      if (g !== gen) return;
      const from = keyInput.value.trim() ? 0 : Math.max(0, last - (typeSel.value ? 2000 : 100));
      const r = await fetchForward(from, g);
      if (!r) return;
      shown = r.got.reverse();
      next = Math.max(r.next, last);
      oldest = shown.length ? shown[shown.length - 1].seq : from + 1;
      draw();
    } catch (e) {
      if (g === gen) clear(err, errorBox(e, 'Cannot read the message log'));
    }
  };
  const tail = async () => {
    if (!live.checked) return;
    const g = gen;
    try {
      const r = await get(`${conn(c)}/messages?after=${next}&limit=1000${query()}`);
      if (g !== gen) return;
      next = r.next;
      if (r.messages.length) {
        shown = r.messages.reverse().concat(shown).slice(0, KEEP * 2);
        draw();
      }
      clear(err);
    } catch (e) {
      clear(err, errorBox(e, 'Cannot read the message log'));
    }
  };
  const older = async () => {
    if (!oldest || oldest <= 1) return;
    const g = gen;
    const from = Math.max(0, oldest - 1000);
    try {
      const r = await get(`${conn(c)}/messages?after=${from}&limit=1000${query()}`);
      if (g !== gen) return;
      const page = r.messages.filter((m) => m.seq < oldest).reverse();
      shown = shown.concat(page);
      oldest = from + 1;
      draw();
    } catch (e) {
      clear(err, errorBox(e, 'Cannot read older messages'));
    }
  };
  typeSel.addEventListener('change', start);
  let keyTimer;
  keyInput.addEventListener('input', () => { clearTimeout(keyTimer); keyTimer = setTimeout(start, 300); });
  live.addEventListener('change', draw);

  clear(root,
    h('div.pagehead',
      h('div', h('h1', 'Messages'), h('p.muted', 'The message log of this connection, newest first, with CloudEvents attributes. Click a message to see everything.')),
      schemaLinks(c, allTypes)),
    h('div.toolbar', typeSel, keyInput, h('label', live, ' Live'), h('span.grow'), info),
    err,
    h('div.tablewrap.tall', h('table#messages',
      h('thead', h('tr', h('th.num', 'Seq'), h('th', 'Time'), h('th', 'Type'), h('th', 'Subject (key)'), h('th', 'Data'))),
      tbody)),
    h('div.toolbar', { style: 'margin-top:10px' }, olderBtn));
  await start();
  timer = setInterval(tail, 2000);
  return { dispose: () => { gen++; clearInterval(timer); clearTimeout(keyTimer); } };
}

// A JSON document as a tree of collapsible sections: objects and arrays are <details>, the top
// levels open, plain values one line each.
function jsonTree(v, key, depth = 0) {
  const isObj = v && typeof v === 'object';
  if (!isObj) {
    return h('div.leaf', key !== undefined ? [h('span.k', `${key}: `)] : null, JSON.stringify(v));
  }
  const entries = Array.isArray(v) ? v.map((x, i) => [i, x]) : Object.entries(v);
  const kids = entries.map(([k, x]) => jsonTree(x, k, depth + 1));
  const count = Array.isArray(v) ? `[${entries.length}]` : `{${entries.length}}`;
  return h('details', { open: depth < 2 },
    h('summary', key !== undefined ? String(key) : 'document', h('span.count', count)), kids);
}

// A JSON answer fetched with the token, never as a link a new tab would open without it.
function blobOf(v) {
  return URL.createObjectURL(new Blob([JSON.stringify(v, null, 2)], { type: 'application/json' }));
}

// A contract shown in the page: its sections as a tree, the raw JSON in a new tab (a Blob URL:
// no request without the token) and a download.
function contractView(viewer, title, doc, filename, onClose) {
  const url = blobOf(doc);
  const raw = h('button#contract-raw', { type: 'button', onclick: () => window.open(url, '_blank', 'noopener') }, 'Open raw');
  const dl = h('a.button#contract-download', { href: url, download: filename }, 'Download');
  const pretty = h('details', h('summary', 'Pretty-printed JSON'), h('pre.json.contract-json', JSON.stringify(doc, null, 2)));
  clear(viewer, h('div.toolbar', h('strong', title), raw, dl, h('button', { type: 'button', onclick: () => { URL.revokeObjectURL(url); onClose(); } }, 'Close')),
    h('div.contract', jsonTree(doc)), pretty);
}

function schemaLinks(c, types) {
  const viewer = h('div#contract-view');
  const show = async (title, path, filename) => {
    try {
      contractView(viewer, title, await get(path), filename, () => clear(viewer));
    } catch (e) {
      clear(viewer, errorBox(e, title));
    }
  };
  const link = (label, path, id, filename, extra) => h('a', { href: '#', id, dataset: extra, onclick: (e) => { e.preventDefault(); show(label, path, filename); } }, label);
  return h('div.panel.small#schemas', { style: 'margin:0; max-width: 640px' },
    h('div', h('strong', 'Contracts: '), link('AsyncAPI document', `${conn(c)}/asyncapi`, 'asyncapi-link', `${c}-asyncapi.json`),
      ' · ', link('OpenAPI (read models, commands)', `${conn(c)}/openapi.json`, 'openapi-link', `${c}-openapi.json`),
      types.length ? ' · JSON Schemas: ' : '', types.map((t, i) => [i ? ', ' : '', link(t, `${conn(c)}/schemas/${enc(t)}`, null, `${t}.schema.json`, { schema: t })])),
    viewer);
}

// ---------------------------------------------------------------- consume

// A read-only text with a Copy button.
function copyRow(id, text, label) {
  const input = h('input.mono', { id, type: 'text', readOnly: true, value: text, 'aria-label': label, onfocus: (e) => e.target.select() });
  const said = h('span.small', { role: 'status' });
  return h('div.newtoken-row', input, h('button', { type: 'button', onclick: async () => {
    said.textContent = (await copyText(input.value, input)) ? 'Copied.' : 'Select it and copy it by hand.';
  } }, 'Copy'), said);
}

// How a service consumes this connection: Kafka servers, topics, authentication and an example
// consumer configuration (from the AsyncAPI document), and the read-model REST base URL with a
// read-model token to copy.
async function consume(root, { c }) {
  let doc;
  let types = [];
  try {
    doc = await get(`${conn(c)}/asyncapi`);
    types = await deployedTypes(c);
  } catch (e) {
    clear(root, h('h1', 'Consume'), errorBox(e, 'Cannot read the AsyncAPI document'));
    return;
  }
  const servers = Object.values(doc.servers || {});
  const secure = servers.some((s) => s.protocol === 'kafka-secure');
  const topics = Object.entries(doc.channels || {}).map(([k, ch]) => [k, ch.address, ch.description]);
  const events = (doc.channels && doc.channels.events && doc.channels.events.address) || '';
  const bootstrap = servers.map((s) => s.host).join(',');
  const group = `${c}-my-service`;
  const props = [
    `bootstrap.servers=${bootstrap || '<kafka.brokers of erp-bridge>'}`,
    `group.id=${group}`,
    'auto.offset.reset=earliest',
    'enable.auto.commit=false',
    'key.deserializer=org.apache.kafka.common.serialization.StringDeserializer',
    'value.deserializer=org.apache.kafka.common.serialization.ByteArrayDeserializer',
    ...(secure ? ['security.protocol=SASL_SSL', 'sasl.mechanism=SCRAM-SHA-512', 'sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="<user>" password="<password>";'] : []),
    `# subscribe to: ${events}`,
  ].join('\n');
  const rmBase = `${location.origin}${conn(c)}/read-models/`;
  const firstResource = types.length ? types[0].resource : 'items';
  const tokenOut = h('div#consume-token');
  const expirySel = h('select#consume-token-expiry', { 'aria-label': 'The token expires after' },
    [['30d', '30 days'], ['90d', '90 days'], ['365d', '1 year'], ['', 'never']].map(([v, l]) => h('option', { value: v }, l)));
  expirySel.value = '90d';
  const makeToken = async () => {
    try {
      const body = { name: `read models of ${c}`, scope: 'read-model', connection: c };
      if (expirySel.value) body.expires_in = expirySel.value;
      const r = await post('/api/tokens', body);
      clear(tokenOut, h('div.newtoken#new-token', { role: 'status', dataset: { id: r.id } },
        h('p.newtoken-warn', h('strong', 'Copy it now: it will not be shown again. '), `It reads the read models and JSON Schemas of ${c} only${r.expires_at ? `, until ${when(r.expires_at)}` : ''}.`),
        copyRow('consume-token-value', r.token, 'The new read-model token'),
        h('p.small', 'Example:'),
        h('pre.json#consume-curl', `curl -H "Authorization: Bearer ${r.token}" \\\n  ${rmBase}${firstResource}?limit=20`)));
    } catch (e) {
      clear(tokenOut, errorBox(e, 'No token created (creating tokens needs an admin token)'));
    }
  };
  clear(root,
    h('div.pagehead', h('div', h('h1', 'Consume'), h('p.muted', `How your services read the messages and read models of ${c}.`))),
    h('div.grid2',
      h('div.panel#consume-kafka',
        h('h2', 'Kafka'),
        servers.length ? [
          h('label.field', h('span', 'Bootstrap servers'), copyRow('consume-bootstrap', bootstrap, 'Bootstrap servers')),
          h('p.small#consume-auth', h('strong', 'Authentication: '), secure
            ? 'the brokers use TLS (kafka-secure). Connect with SASL_SSL and the user and password your Kafka administrator gives your service; erp-bridge never hands out Kafka credentials.'
            : 'the brokers accept plain connections (no TLS, no SASL) as erp-bridge is configured; ask your Kafka administrator whether your service needs credentials of its own.'),
        ] : h('div.alert.alert-warn#consume-no-kafka', 'Kafka is not configured for this erp-bridge (no kafka.brokers): messages are read from the HTTP message log instead. Set kafka.brokers to publish them.'),
        h('h3', 'Topics'),
        h('div.tablewrap', h('table#consume-topics', h('thead', h('tr', h('th', 'Channel'), h('th', 'Topic'), h('th', 'What it carries'))),
          h('tbody', topics.map(([k, address, d]) => h('tr', { dataset: { channel: k } }, h('td', k), h('td.mono', address), h('td.small', d || '')))))),
        h('h3', 'Example consumer configuration'),
        h('pre.json#consume-config', props),
        h('p.small', 'Events are CloudEvents; the record key is the entity key. The full contract: ', h('a', { href: `#/c/${enc(c)}/messages` }, 'AsyncAPI on the Messages page'), '.')),
      h('div.panel#consume-rest',
        h('h2', 'Read models over REST'),
        h('label.field', h('span', 'Base URL'), copyRow('consume-base-url', rmBase, 'Read-model base URL')),
        h('p.small', types.length ? ['Resources: ', types.map((m, i) => [i ? ', ' : '', h('code', m.resource)])] : 'No message type is deployed yet.'),
        h('h3', 'A token for your service'),
        h('div.actions', h('label', 'Expires after ', expirySel), h('button.primary#consume-token-create', { type: 'button', onclick: makeToken }, 'Create a read-model token')),
        tokenOut)));
}

// ---------------------------------------------------------------- read models

async function readModels(root, { c }) {
  const types = await deployedTypes(c).catch((e) => { clear(root, errorBox(e, 'Cannot list the read models')); return null; });
  if (!types) return;
  if (!types.length) {
    clear(root, h('h1', 'Read models'), h('p.empty', 'No message type is deployed, so there is no read model yet.'));
    return;
  }
  const resSel = h('select#rm-resource', types.map((m) => h('option', { value: m.resource, dataset: { mapping: m.name } }, `${m.resource} (${m.name})`)));
  const fieldSel = h('select#rm-field');
  const valueInput = h('input#rm-value', { type: 'search', placeholder: 'value', 'aria-label': 'Filter value' });
  const limitSel = h('select#rm-limit', { 'aria-label': 'Items per page' }, [20, 50, 100].map((n) => h('option', { value: n }, `${n} per page`)));
  const keyInput = h('input#rm-key', { type: 'search', placeholder: 'Key, e.g. 100|A000001', 'aria-label': 'Key of the item' });
  const err = h('div');
  const table = h('div');
  const pageInfo = h('span.small.muted#rm-page');
  const jsonView = h('div#rm-json-view');
  let lastPage = null;
  let lastPath = null;
  const apiLink = h('button.small#rm-json', { type: 'button', onclick: () => {
    if (!lastPage) return;
    contractView(jsonView, `GET ${lastPath}`, lastPage, `${resSel.value}-page.json`, () => clear(jsonView));
  } }, 'This page as JSON');
  let fields = [];
  let pages = [null]; // `after` of each visited page
  let nextAfter = null;

  const loadFields = async () => {
    const opt = resSel.selectedOptions[0];
    const m = await get(`${conn(c)}/mappings/${enc(opt.dataset.mapping)}`);
    fields = m.deployed ? m.deployed.fields.map((f) => f.name) : [];
    clear(fieldSel, h('option', { value: '' }, 'No filter'), fields.map((f) => h('option', { value: f }, f)));
  };
  const load = async () => {
    const after = pages[pages.length - 1];
    let q = `limit=${limitSel.value}`;
    if (after) q += `&after=${enc(after)}`;
    if (fieldSel.value && valueInput.value !== '') q += `&${enc(fieldSel.value)}=${enc(valueInput.value)}`;
    const path = `${conn(c)}/read-models/${enc(resSel.value)}?${q}`;
    try {
      const r = await get(path);
      lastPage = r;
      lastPath = path;
      clear(err);
      nextAfter = r.next;
      const cols = fields.length ? fields : Object.keys(r.items[0] || {});
      clear(table, h('div.tablewrap', h('table#rm-items',
        h('thead', h('tr', cols.map((f) => h('th', f)))),
        h('tbody', r.items.length ? r.items.map((it) => h('tr', cols.map((f) => h('td', typeof it[f] === 'object' && it[f] !== null ? JSON.stringify(it[f]) : String(it[f] ?? ''))))) :
          h('tr', h('td.empty', { colSpan: Math.max(1, cols.length) }, 'No item matches.'))))));
      pageInfo.textContent = `Page ${pages.length}, ${r.items.length} item(s)${nextAfter ? '' : ', last page'}.`;
      prevBtn.disabled = pages.length < 2;
      nextBtn.disabled = !nextAfter;
    } catch (e) {
      clear(err, errorBox(e, 'Cannot read the read model'));
    }
  };
  const first = () => { pages = [null]; load(); };
  const prevBtn = h('button#rm-prev', { onclick: () => { pages.pop(); load(); } }, '← Previous');
  const nextBtn = h('button#rm-next', { onclick: () => { pages.push(nextAfter); load(); } }, 'Next →');
  const lookupOut = h('div#rm-lookup');
  const lookup = async (ev) => {
    if (ev) ev.preventDefault();
    const k = keyInput.value.trim();
    if (!k) { clear(lookupOut); return; }
    try {
      clear(lookupOut, json(await get(`${conn(c)}/read-models/${enc(resSel.value)}/${enc(k)}`)));
    } catch (e) {
      clear(lookupOut, errorBox(e, k));
    }
  };
  resSel.addEventListener('change', async () => { await loadFields(); first(); });
  fieldSel.addEventListener('change', first);
  limitSel.addEventListener('change', first);
  let t;
  valueInput.addEventListener('input', () => { clearTimeout(t); t = setTimeout(first, 300); });

  clear(root,
    h('div.pagehead', h('div', h('h1', 'Read models'), h('p.muted', 'The current state of each entity, in key order, as served to your services over REST.'))),
    h('div.toolbar', h('label', 'Resource ', resSel), h('label', 'Filter ', fieldSel), h('span', { 'aria-hidden': 'true' }, '='), valueInput, limitSel, h('span.grow'), apiLink),
    jsonView, err, table,
    h('div.toolbar', { style: 'margin-top:10px' }, h('button', { onclick: first }, 'First page'), prevBtn, nextBtn, pageInfo),
    h('div.panel', h('h2#rm-lookup-title', 'Look up one item'),
      h('form.toolbar#rm-lookup-form', { onsubmit: lookup, 'aria-labelledby': 'rm-lookup-title' }, keyInput, h('button', { type: 'submit' }, 'Look up')), lookupOut));
  await loadFields();
  await load();
  return { dispose: () => clearTimeout(t) };
}

// ---------------------------------------------------------------- commands

function inputFor(name, schema, required) {
  const type = schema.type;
  let el;
  if (type === 'boolean') el = h('select', h('option', { value: '' }, '(not sent)'), h('option', { value: 'true' }, 'true'), h('option', { value: 'false' }, 'false'));
  else if (type === 'integer' || type === 'number') el = h('input', { type: 'number', step: type === 'integer' ? '1' : 'any' });
  else if (schema.format === 'date') el = h('input', { type: 'date' });
  else el = h('input', { type: 'text' });
  el.name = name;
  el.dataset.type = type;
  const kind = h('span.muted.kind', ` (${schema.format || type})`);
  return h('label.field', { dataset: { field: name } }, h('span', name, required ? ' *' : '', kind), el, schema.description ? h('div.small.muted', schema.description) : null, h('div.field-error', { role: 'alert' }));
}

// The MI field lengths of a command (from M3's MRS001MI metadata) applied to its form: a text
// input takes at most that many characters, a number at most that many digits.
async function applyMiLengths(c, cmd, formFields) {
  let fields;
  try {
    ({ fields } = await get(`${conn(c)}/mi/${enc(cmd.program)}/${enc(cmd.transaction)}/fields`));
  } catch {
    return; // M3 cannot say: the server checks when the command runs
  }
  const byMi = new Map(fields.map((f) => [f.name, f]));
  for (const p of cmd.mapping.parameters || []) {
    const f = p.field && byMi.get(p.mi);
    const box = f && formFields.querySelector(`label.field[data-field="${CSS.escape(p.field)}"]`);
    if (!box || !f.length) continue;
    const el = box.querySelector('input');
    if (!el) continue;
    el.dataset.miLength = String(f.length);
    el.dataset.miType = f.type || '';
    if (el.type === 'text') el.maxLength = f.length;
    box.querySelector('.kind').textContent = ` (${el.dataset.type === 'string' ? 'text' : el.dataset.type}, ${p.mi} ${{ A: 'text', N: 'number', D: 'date' }[f.type] || f.type || ''} ${f.length})`;
  }
}

// What is wrong with a form value for M3, or null.
function miProblem(el) {
  const len = Number(el.dataset.miLength || 0);
  const v = el.value;
  if (v === '' || !len) return null;
  if (el.dataset.type === 'integer' && !/^-?\d+$/.test(v)) return 'A whole number is needed.';
  if ((el.dataset.type === 'integer' || el.dataset.type === 'number') && v.replace(/[^0-9]/g, '').length > len) return `At most ${len} digits: M3's field is ${len} long.`;
  if (el.type === 'text' && [...v].length > len) return `At most ${len} characters: M3's field is ${len} long (this is ${[...v].length}).`;
  return null;
}

async function commands(root, { c }) {
  let list;
  try {
    ({ commands: list } = await get(`${conn(c)}/commands`));
  } catch (e) {
    clear(root, h('h1', 'Commands'), errorBox(e, 'Commands are not available'));
    return;
  }
  // The editable command mappings (none when the connection has fixed default commands).
  let managed = null;
  let manageErr = null;
  try {
    ({ commandMappings: managed } = await get(`${conn(c)}/command-mappings`));
  } catch (e) {
    manageErr = e;
  }
  const editHref = (n) => `#/c/${enc(c)}/commands/${enc(n)}`;
  const isManaged = (n) => !!managed && managed.some((m) => m.name === n);
  const sel = h('select#cmd-name', list.map((x) => h('option', { value: x.name }, x.name)));
  const idInput = h('input#cmd-id', { type: 'text', value: uuid() });
  idInput.style.width = '22em';
  const formFields = h('div#cmd-fields');
  const about = h('div');
  const receipt = h('div#cmd-receipt');
  const current = () => list.find((x) => x.name === sel.value);
  const showForm = () => {
    const cmd = current();
    if (!cmd) return;
    const props = (cmd.schema.properties && cmd.schema.properties.data && cmd.schema.properties.data.properties) || cmd.schema.properties || {};
    const req = new Set((cmd.schema.properties && cmd.schema.properties.data && cmd.schema.properties.data.required) || []);
    // In the command mapping's parameter order (the schema's properties are alphabetical).
    const order = (cmd.mapping.parameters || []).map((x) => x.field).filter((f) => f && props[f]);
    for (const f of Object.keys(props)) if (!order.includes(f)) order.push(f);
    clear(formFields, order.map((n) => inputFor(n, props[n], req.has(n))));
    applyMiLengths(c, cmd, formFields);
    const p = cmd.mapping.parameters || [];
    clear(about,
      h('p', cmd.mapping.description || '', ' Runs ', h('code', `${cmd.program}/${cmd.transaction}`), '.',
        isManaged(cmd.name) ? [' ', h('a#cmd-edit', { href: editHref(cmd.name) }, 'Edit this command')] : null),
      h('div.tablewrap', h('table', h('thead', h('tr', h('th', 'Field'), h('th', 'MI field'), h('th', 'Type'), h('th', 'Required'), h('th', 'Description'))),
        h('tbody', p.map((x) => h('tr', h('td.mono', x.field || '—'), h('td.mono', x.mi), h('td', x.fixed !== undefined ? `fixed "${x.fixed}"` : x.type || 'string'), h('td', x.required ? 'yes' : ''), h('td.small', x.description || '')))))),
      h('details', h('summary', 'JSON Schema'), json(cmd.schema)));
  };
  sel.addEventListener('change', showForm);
  const send = async () => {
    const data = {};
    let bad = null;
    for (const el of formFields.querySelectorAll('input')) {
      const problem = miProblem(el);
      const out = el.closest('label.field').querySelector('.field-error');
      out.textContent = problem || '';
      el.classList.toggle('invalid', !!problem);
      el.setAttribute('aria-invalid', problem ? 'true' : 'false');
      if (problem && !bad) bad = el;
    }
    if (bad) {
      clear(receipt);
      bad.focus();
      return;
    }
    for (const el of formFields.querySelectorAll('input, select')) {
      const v = el.value;
      if (v === '') continue;
      const t = el.dataset.type;
      data[el.name] = t === 'integer' || t === 'number' ? Number(v) : t === 'boolean' ? v === 'true' : v;
    }
    const body = { commandId: idInput.value.trim(), command: sel.value, data };
    clear(receipt, h('p.muted', 'Sending…'));
    let r;
    try {
      r = await post(`${conn(c)}/commands`, body);
    } catch (e) {
      if (e.body && e.body.status) r = e.body;
      else { clear(receipt, errorBox(e, 'Not sent')); return; }
    }
    const level = r.status === 'succeeded' ? 'ok' : 'bad';
    clear(receipt,
      h('div.alert', { class: `alert-${level}` },
        h('strong', 'Receipt: '), h('span.badge#cmd-status', { class: level }, r.status),
        r.error ? h('span', ` ${r.error.code}${r.error.field ? ` (${r.error.field})` : ''}: ${r.error.message}`) : null),
      h('div.small.muted', 'Sent:'), json(body), h('div.small.muted', 'Receipt:'), json(r));
    idInput.value = uuid();
  };
  const mappingsPanel = h('div.panel#cmd-mappings',
    h('h2', 'Command mappings'),
    manageErr ? h('p.muted.small', `These commands cannot be edited here: ${manageErr.message}`) :
      h('div.tablewrap', h('table#command-mappings',
        h('thead', h('tr', h('th', 'Command'), h('th', 'MI transaction'), h('th.num', 'Parameters'), h('th.num', 'Latest'), h('th', 'Last changed'))),
        h('tbody', managed.length ? managed.map((m) => h('tr', { dataset: { command: m.name } },
          h('td', h('a', { href: editHref(m.name) }, h('strong', m.name)), m.description ? h('div.small.muted', m.description) : null),
          h('td.mono', `${m.program}/${m.transaction}`),
          h('td.num', String(m.parameters)),
          h('td.num', `v${m.latestVersion}`),
          h('td.small', m.updatedAt ? when(m.updatedAt) : '—', m.updatedBy ? h('div.muted', `by ${m.updatedBy}`) : null))) :
          h('tr', h('td.empty', { colSpan: 5 }, 'No command mapping yet.'))))));
  clear(root,
    h('div.pagehead', h('div', h('h1', 'Commands'), h('p.muted', 'Commands change M3 through MI transactions. Your services send them on the commands topic; here you can send one by hand and see its receipt.')),
      manageErr ? null : h('a.button.primary#new-command', { href: `#/c/${enc(c)}/commands/new` }, '+ New command')),
    list.length ? h('div.grid2',
      h('div.panel', h('h2', 'Send a command'),
        h('label.field', h('span', 'Command'), sel),
        h('label.field', h('span', 'Command id (deduplicates retries)'), idInput),
        formFields,
        h('div.actions', h('button.primary#cmd-send', { onclick: send }, 'Send command'))),
      h('div', h('div.panel', h('h2', 'About this command'), about), receipt)) :
      h('p.empty', 'No command mapping is configured.'),
    mappingsPanel);
  showForm();
}
