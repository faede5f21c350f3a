// Mapping editor: pick an M3 table, choose and name its columns, filter rows, preview real
// messages live, save a version and deploy it. Unsaved changes are guarded.
import { get, post, put, conn, enc } from '../api.js';
import { h, clear, errorBox, debounce, json, svg } from '../dom.js';
import { tableSearch } from '../tablesearch.js';

export const name = 'editor';

const FIELD_NAME = /^[a-z][A-Za-z0-9]*$/;
const TYPE_NAME = /^[A-Z][A-Za-z0-9]*$/;

function lock() {
  return svg('svg', { class: 'lock', viewBox: '0 0 12 14', width: '10', height: '12', 'aria-hidden': 'true' },
    svg('rect', { x: '1', y: '6', width: '10', height: '7.5', rx: '1.5', fill: 'currentColor' }),
    svg('path', { d: 'M3.2 6V4.2a2.8 2.8 0 0 1 5.6 0V6', fill: 'none', stroke: 'currentColor', 'stroke-width': '1.6' }));
}

function typeLabel(col) {
  const t = { A: 'text', N: 'number', D: 'date' }[col.type] || col.type;
  const size = col.type === 'N' && col.decimals ? `${col.length},${col.decimals}` : col.type === 'D' ? '' : String(col.length);
  return `${t}${size ? ` (${size})` : ''}`;
}

// The differences between two mapping definitions, each `{text, breaking}`. Fields are matched by
// column: a removed or renamed field or a changed type breaks consumers; the rest does not.
export function specDiff(a, b) {
  const out = [];
  const fa = new Map(((a && a.fields) || []).map((f) => [f.column, f]));
  const fb = new Map(((b && b.fields) || []).map((f) => [f.column, f]));
  const same = (x, y) => JSON.stringify(x ?? null) === JSON.stringify(y ?? null);
  for (const [col, f] of fa) {
    const g = fb.get(col);
    if (!g) { out.push({ breaking: true, text: `field ${f.name} (${col}) removed` }); continue; }
    if (g.name !== f.name) out.push({ breaking: true, text: `field ${f.name} (${col}) renamed to ${g.name}` });
    if ((f.type || '') !== (g.type || '')) out.push({ breaking: true, text: `field ${g.name}: type ${f.type || 'from the column'} → ${g.type || 'from the column'}` });
    if (!same(f.values, g.values) || !same(f.default, g.default)) out.push({ breaking: !!f.values && !!g.values && Object.values(f.values).some((v) => !Object.values(g.values).includes(v)), text: `field ${g.name}: enum values changed` });
    if (!same(f.timeColumn, g.timeColumn)) out.push({ breaking: false, text: `field ${g.name}: time column ${f.timeColumn || '—'} → ${g.timeColumn || '—'}` });
    if ((f.description || '') !== (g.description || '')) out.push({ breaking: false, text: `field ${g.name}: description changed` });
  }
  for (const [col, g] of fb) if (!fa.has(col)) out.push({ breaking: false, text: `field ${g.name} (${col}) added` });
  for (const k of ['description', 'filter', 'resource', 'timeZone']) {
    if (!same((a || {})[k], (b || {})[k])) out.push({ breaking: k === 'resource', text: `${k}: ${JSON.stringify((a || {})[k] ?? null)} → ${JSON.stringify((b || {})[k] ?? null)}` });
  }
  const ca = (a && a.constants) || {};
  const cb = (b && b.constants) || {};
  for (const k of new Set([...Object.keys(ca), ...Object.keys(cb)])) {
    if (!same(ca[k], cb[k])) out.push({ breaking: k in ca, text: k in cb ? (k in ca ? `constant ${k} changed` : `constant ${k} added`) : `constant ${k} removed` });
  }
  return out;
}

export async function render(root, { c, name: existing }) {
  const base = conn(c);
  let original = null; // the loaded spec (existing mapping), kept to preserve keys Studio does not edit
  let savedName = existing;
  let savedSnapshot = null; // JSON of the last saved spec
  let table = null; // GET tables/{TABLE}
  let rows = []; // {col, include, name, tr, nameInput, box}
  let deployedVersion = null;
  let latestVersion = null;

  const nameInput = h('input#mapping-name', { type: 'text', placeholder: 'e.g. Item', autocomplete: 'off' });
  const nameHint = h('div.small.muted', 'PascalCase: messages are named NameUpdated and NameDeleted.');
  const descInput = h('input#mapping-description', { type: 'text', placeholder: 'What this message type means' });
  descInput.style.width = '100%';
  const filterInput = h('textarea#mapping-filter', { rows: 2, placeholder: "Optional, e.g. MMSTAT in ('20','50') and not MMITTY = 'SP'" });
  const filterMsg = h('div#filter-message.small');
  const searchInput = h('input#table-search', { type: 'search', placeholder: 'Name or meaning, e.g. customer or MIT', autocomplete: 'off' });
  const searchResults = h('div.results#table-results');
  const searchSource = h('div.small.muted');
  const tableHead = h('div');
  const quick = h('input#column-filter', { type: 'search', placeholder: 'Filter columns…' });
  const hideUnselected = h('input#hide-unselected', { type: 'checkbox' });
  const selCount = h('span.small.muted');
  const tbody = h('tbody');
  const preview = h('div.preview#preview');
  const status = h('div#editor-status');
  const dirtyFlag = h('span.dirty-flag');
  const saveBtn = h('button.primary#save', { onclick: () => save() }, 'Save');
  const deployBtn = h('button#deploy', { onclick: () => deploy(false) }, 'Save and deploy');
  const versionInfo = h('span.small.muted#version-info');
  const tzInput = h('input#mapping-time-zone', { type: 'text', placeholder: 'UTC, +01:00 or Europe/Stockholm', autocomplete: 'off' });
  const constantsInput = h('textarea#mapping-constants', { rows: 2, placeholder: '{"source": "m3"}' });
  const constantsMsg = h('div.small.status-bad#constants-message', { role: 'alert' });
  const historyBox = h('div#versions');
  const breaking = h('div#breaking-warning');
  let versions = []; // every saved version, oldest first

  const spec = () => {
    const s = original ? structuredClone(original) : {};
    s.name = nameInput.value.trim();
    s.description = descInput.value.trim();
    s.table = table ? table.name : '';
    const f = filterInput.value.trim();
    if (f) s.filter = f;
    else delete s.filter;
    const before = new Map(((original && original.fields) || []).map((x) => [x.column, x]));
    s.fields = rows.filter((r) => r.include).map((r) => fieldOf(r, before.get(r.col.name)));
    const tz = tzInput.value.trim();
    if (tz) s.timeZone = tz;
    else delete s.timeZone;
    const consts = constantsValue();
    if (consts && Object.keys(consts).length) s.constants = consts;
    else delete s.constants;
    return s;
  };
  // A field as the mapping format has it: column, name, and the details set in its row.
  const fieldOf = (r, was) => {
    const f = { ...(was || {}), column: r.col.name, name: r.nameInput.value.trim() };
    for (const k of ['type', 'description', 'timeColumn', 'values', 'default']) delete f[k];
    const d = r.details;
    const ty = d.type.value;
    if (ty) f.type = ty;
    const desc = d.description.value.trim();
    if (desc) f.description = desc;
    if (ty === 'datetime' && d.timeColumn.value) f.timeColumn = d.timeColumn.value;
    if (ty === 'enum') {
      const values = {};
      for (const line of d.values.value.split('\n')) {
        const m = /^\s*([^=]*?)\s*=\s*(.*?)\s*$/.exec(line);
        if (m && m[1] !== '') values[m[1]] = m[2];
      }
      f.values = values;
      if (d.default.value.trim()) f.default = d.default.value.trim();
    }
    return f;
  };
  // The constants as an object, or null (and the box marked) when it is not a JSON object.
  const constantsValue = () => {
    const t = constantsInput.value.trim();
    if (!t) { constantsInput.classList.remove('invalid'); constantsMsg.textContent = ''; return {}; }
    try {
      const v = JSON.parse(t);
      if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error('expected a JSON object, e.g. {"source": "m3"}');
      constantsInput.classList.remove('invalid');
      constantsMsg.textContent = '';
      return v;
    } catch (e) {
      constantsInput.classList.add('invalid');
      constantsMsg.textContent = `Constants: ${e.message}`;
      return null;
    }
  };
  const snapshot = () => JSON.stringify(spec());
  const fillFromSpec = (s) => {
    descInput.value = s.description || '';
    filterInput.value = s.filter || '';
    tzInput.value = s.timeZone || '';
    constantsInput.value = s.constants && Object.keys(s.constants).length ? JSON.stringify(s.constants) : '';
  };
  const isDirty = () => {
    if (savedSnapshot === null) return !!(table || nameInput.value.trim());
    return snapshot() !== savedSnapshot;
  };
  const beforeUnload = (ev) => {
    if (isDirty()) {
      ev.preventDefault();
      ev.returnValue = '';
    }
  };
  window.addEventListener('beforeunload', beforeUnload);

  const refreshState = () => {
    dirtyFlag.textContent = isDirty() ? '● Unsaved changes' : '';
    saveBtn.disabled = !table || !isDirty();
    deployBtn.disabled = !table;
    const n = rows.filter((r) => r.include).length;
    selCount.textContent = table ? `${n} of ${rows.length} columns selected` : '';
    versionInfo.textContent = latestVersion ? `Saved v${latestVersion}; ${deployedVersion ? `deployed v${deployedVersion}` : 'not deployed'}.` : 'Not saved yet.';
  };

  // ---- columns grid
  const applyVisibility = () => {
    const q = quick.value.trim().toLowerCase();
    for (const r of rows) {
      const text = `${r.col.name} ${r.col.description} ${r.nameInput.value}`.toLowerCase();
      r.tr.hidden = (q && !text.includes(q)) || (hideUnselected.checked && !r.include);
      if (r.tr.hidden) r.detailRow.hidden = true;
    }
  };
  quick.addEventListener('input', applyVisibility);
  hideUnselected.addEventListener('change', applyVisibility);

  const validateNames = () => {
    const seen = new Map();
    for (const r of rows) {
      if (!r.include) { r.nameInput.classList.remove('invalid'); r.nameInput.title = ''; continue; }
      const v = r.nameInput.value.trim();
      const problem = !FIELD_NAME.test(v) ? 'camelCase: starts with a lower-case letter, then letters and digits' : seen.has(v) ? `also used by ${seen.get(v)}` : '';
      if (!problem) seen.set(v, r.col.name);
      r.nameInput.classList.toggle('invalid', !!problem);
      r.nameInput.title = problem;
    }
    const v = nameInput.value.trim();
    const ok = v === '' || TYPE_NAME.test(v);
    nameInput.classList.toggle('invalid', !ok);
    nameHint.textContent = ok ? (v ? `Messages: ${v}Updated and ${v}Deleted.` : 'PascalCase: messages are named NameUpdated and NameDeleted.') : 'Start with an upper-case letter; letters and digits only.';
  };

  const changed = () => {
    validateNames();
    refreshState();
    schedulePreview();
  };
  for (const el of [nameInput, descInput, filterInput, tzInput, constantsInput]) el.addEventListener('input', changed);

  // A column's details: type, date + time column, enum values and default, description.
  const TYPES = [['', 'from the column'], ['string', 'string'], ['integer', 'integer'], ['decimal', 'decimal'], ['boolean', 'boolean (1/0)'],
    ['date', 'date'], ['datetime', 'date + time'], ['enum', 'enum (codes to values)']];
  const detailsOf = (col, was, columns) => {
    const f = was || {};
    const id = (k) => `f-${col.name}-${k}`;
    const d = {
      type: h('select', { id: id('type'), dataset: { detail: 'type' } }, TYPES.map(([v, l]) => h('option', { value: v }, l))),
      timeColumn: h('select', { id: id('time') }, h('option', { value: '' }, 'Choose the time column…'),
        columns.filter((x) => x.name !== col.name).map((x) => h('option', { value: x.name }, `${x.name} — ${x.description || ''}`))),
      values: h('textarea', { id: id('values'), rows: 3, placeholder: '20 = active\n90 = deactivated' }),
      default: h('input', { id: id('default'), type: 'text', placeholder: 'Optional: value of other codes' }),
      description: h('input', { id: id('desc'), type: 'text', placeholder: 'What the field means' }),
    };
    d.type.value = f.type || '';
    d.timeColumn.value = f.timeColumn || '';
    d.values.value = f.values ? Object.entries(f.values).map(([k, v]) => `${k} = ${v}`).join('\n') : '';
    d.default.value = f.default || '';
    d.description.value = f.description || '';
    const timeBox = h('label.field', { htmlFor: id('time') }, h('span', 'Time column (HHmmss)'), d.timeColumn);
    const enumBox = h('div', h('label.field', { htmlFor: id('values') }, h('span', 'Values: one "code = value" a line'), d.values),
      h('label.field', { htmlFor: id('default') }, h('span', 'Default value'), d.default));
    const sync = () => { timeBox.hidden = d.type.value !== 'datetime'; enumBox.hidden = d.type.value !== 'enum'; };
    sync();
    d.type.addEventListener('change', () => { sync(); changed(); });
    for (const el of [d.timeColumn, d.values, d.default, d.description]) el.addEventListener(el.tagName === 'SELECT' ? 'change' : 'input', changed);
    d.panel = h('div.field-details.grid3',
      h('label.field', { htmlFor: id('type') }, h('span', 'Type'), d.type),
      h('label.field', { htmlFor: id('desc') }, h('span', 'Description'), d.description),
      timeBox, enumBox);
    return d;
  };

  const showTable = (t, fields) => {
    table = t;
    const chosen = fields ? new Map(fields.map((f) => [f.column, f.name])) : null;
    const specOf = new Map((fields || []).map((f) => [f.column, f]));
    rows = t.columns.map((col) => {
      const include = col.key || (chosen ? chosen.has(col.name) : false);
      const r = { col, include };
      r.nameInput = h('input', { type: 'text', value: (chosen && chosen.get(col.name)) || col.suggestedName || '', 'aria-label': `Field name for ${col.name}` });
      r.box = h('input', { type: 'checkbox', checked: include, disabled: col.key, 'aria-label': `Include ${col.name}`, title: col.key ? 'Key columns are always included' : '' });
      r.box.addEventListener('change', () => {
        r.include = r.box.checked;
        r.tr.classList.toggle('off', !r.include);
        applyVisibility();
        changed();
      });
      r.nameInput.addEventListener('input', changed);
      r.details = detailsOf(col, specOf.get(col.name), t.columns);
      const detailRow = h('tr.detail-row', { hidden: true, dataset: { detailsOf: col.name } }, h('td', { colSpan: 6 }, r.details.panel));
      const more = h('button.small.details', { type: 'button', 'aria-expanded': 'false', 'aria-label': `Details of ${col.name}`, onclick: () => {
        detailRow.hidden = !detailRow.hidden;
        more.setAttribute('aria-expanded', String(!detailRow.hidden));
      } }, 'Details');
      r.detailRow = detailRow;
      r.tr = h('tr', { class: `${col.key ? 'key' : ''} ${include ? '' : 'off'}`, dataset: { column: col.name, key: String(!!col.key) } },
        h('td', r.box),
        h('td.mono', col.name, col.key ? h('span.badge.key', { title: 'Primary key: always included' }, lock(), 'key') : null),
        h('td', col.description),
        h('td.small', typeLabel(col)),
        h('td', r.nameInput),
        h('td', more));
      return r;
    });
    clear(tbody, rows.map((r) => [r.tr, r.detailRow]));
    clear(tableHead, h('h2', h('span.mono', t.name), ' — ', t.description),
      h('p.small.muted', `Key: ${t.primaryKey.join(', ')}. Columns from ${t.source === 'mdp' ? 'the Metadata Publisher (custom columns included)' : 'the built-in catalogue'}.`));
    validateNames();
    applyVisibility();
    refreshState();
  };

  const pickTable = async (tname) => {
    clear(tableHead, h('p.muted', `Loading ${tname}…`));
    try {
      const t = await get(`${base}/tables/${enc(tname)}`);
      showTable(t, null);
      for (const b of searchResults.querySelectorAll('button')) b.classList.toggle('selected', b.dataset.table === tname);
      schedulePreview();
    } catch (e) {
      clear(tableHead, errorBox(e, `Cannot load ${tname}`));
    }
  };

  // The search widget (name, description and category, ranked, keyboard): ../tablesearch.js.
  const search = tableSearch({ base, input: searchInput, results: searchResults, source: searchSource, pick: pickTable, selected: () => (table ? table.name : null) });

  // ---- preview
  let previewSeq = 0;
  const runPreview = async () => {
    if (!table) { clear(preview, h('p.muted', 'Pick a table to see messages for real rows.')); return; }
    const s = spec();
    if (!s.name) s.name = 'Preview';
    const seq = ++previewSeq;
    preview.dataset.state = 'loading';
    try {
      const r = await post(`${base}/mappings/preview?limit=5`, s);
      if (seq !== previewSeq) return;
      filterInput.classList.remove('invalid');
      clear(filterMsg);
      clear(preview, r.messages.length ? r.messages.map((m) => h('div.msg', { dataset: { subject: m.subject } },
        h('header', h('strong', m.type || 'no message'), h('span.mono.muted', m.subject)),
        m.data ? json(m.data) : null,
        m.note ? h('p.small.muted', m.note) : null,
        m.error ? h('p.status-bad.small', m.error) : null)) : h('p.muted', 'The table has no rows.'));
      preview.dataset.state = 'ok';
    } catch (e) {
      if (seq !== previewSeq) return;
      preview.dataset.state = 'error';
      clear(preview, errorBox(e, 'Not valid'));
      const aboutFilter = /filter/i.test(e.message);
      filterInput.classList.toggle('invalid', aboutFilter);
      clear(filterMsg, aboutFilter ? h('span.status-bad', e.message) : null);
    }
  };
  const schedulePreview = debounce(runPreview, 400);

  // ---- versions: history, diff, rollback, and what breaks consumers
  const loadVersions = async () => {
    if (!savedName) return;
    try {
      const m = await get(`${base}/mappings/${enc(savedName)}`);
      versions = m.versions || [];
      deployedVersion = m.deployedVersion;
      latestVersion = versions.length ? versions[versions.length - 1].version : null;
      drawHistory();
      refreshState();
    } catch (e) {
      clear(historyBox, errorBox(e, 'Cannot load the versions'));
    }
  };
  const diffBox = h('div#version-diff');
  const drawHistory = () => {
    clear(historyBox,
      h('div.tablewrap', h('table#version-list',
        h('thead', h('tr', h('th.num', 'Version'), h('th', 'Saved'), h('th', 'Changes from the one before'), h('th', h('span.sr-only', 'Actions')))),
        h('tbody', [...versions].reverse().map((v) => {
          const prev = versions.find((x) => x.version === v.version - 1);
          const changes = prev ? specDiff(prev.spec, v.spec) : [];
          return h('tr', { dataset: { version: String(v.version) } },
            h('td.num', `v${v.version}`, v.version === deployedVersion ? h('span.badge.ok', { style: 'margin-left:6px' }, 'deployed') : null),
            h('td.small', new Date(v.created_at || v.createdAt).toLocaleString(), h('div.muted', `by ${v.created_by || v.createdBy || '—'}`)),
            h('td.small', prev ? (changes.length ? `${changes.length} change(s)` : 'no change') : 'first version',
              prev ? [' ', h('button.small.diff', { type: 'button', onclick: () => showDiff(prev, v) }, `Diff v${prev.version} → v${v.version}`)] : null),
            h('td', v.version === latestVersion ? null : h('button.small.rollback', { type: 'button', onclick: () => rollback(v.version) }, `Roll back to v${v.version}`)));
        })))),
      diffBox);
  };
  const showDiff = (a, b) => {
    const changes = specDiff(a.spec, b.spec);
    clear(diffBox, h('h3', `v${a.version} → v${b.version}`),
      changes.length ? h('ul.diff', changes.map((x) => h('li', { class: x.breaking ? 'breaking' : '' }, x.breaking ? h('strong', 'Breaking: ') : null, x.text))) : h('p.muted', 'No change.'));
  };
  const rollback = async (n) => {
    if (isDirty() && !confirm('Rolling back discards your unsaved changes. Go on?')) return;
    try {
      const r = await post(`${base}/mappings/${enc(savedName)}/rollback`, { version: n });
      clear(status, h('div.alert.alert-ok#rollback-result', `Saved version ${n} again as version ${r.version}. Deploy it to run it.`));
      const m = await get(`${base}/mappings/${enc(savedName)}`);
      original = m.spec;
      fillFromSpec(original);
      showTable(table, original.fields || []);
      savedSnapshot = snapshot();
      await loadVersions();
      schedulePreview();
    } catch (e) {
      clear(status, errorBox(e, 'Not rolled back'));
    }
  };
  // What a consumer of the deployed version would notice: removed or renamed fields, changed types.
  const breakingChanges = () => {
    const dep = versions.find((v) => v.version === deployedVersion);
    if (!dep) return [];
    return specDiff(dep.spec, spec()).filter((x) => x.breaking);
  };

  // ---- save / deploy
  const save = async () => {
    if (constantsValue() === null) {
      clear(status, errorBox(new Error(constantsMsg.textContent), 'Not saved'));
      constantsInput.focus();
      return false;
    }
    const s = spec();
    clear(status, h('p.muted', 'Saving…'));
    try {
      const r = savedName ? await put(`${base}/mappings/${enc(savedName)}`, s) : await post(`${base}/mappings`, s);
      original = s;
      savedSnapshot = JSON.stringify(s);
      latestVersion = r.version;
      if (!savedName) {
        savedName = s.name;
        nameInput.readOnly = true;
        const hash = `#/c/${enc(c)}/mappings/${enc(savedName)}`;
        history.replaceState(null, '', hash);
        window.dispatchEvent(new CustomEvent('studio:rehash', { detail: hash }));
      }
      clear(status, h('div.alert.alert-ok#save-result', `Saved ${s.name} as version ${r.version}.`));
      refreshState();
      await loadVersions();
      return true;
    } catch (e) {
      clear(status, errorBox(e, 'Not saved'));
      if (/filter/i.test(e.message)) {
        filterInput.classList.add('invalid');
        clear(filterMsg, h('span.status-bad', e.message));
      }
      return false;
    }
  };
  const deploy = async (confirmed) => {
    const breaks = confirmed === true ? [] : breakingChanges();
    if (breaks.length) {
      clear(breaking, h('div.alert.alert-warn', { role: 'alert' },
        h('strong', `This change breaks consumers of the deployed version v${deployedVersion}:`),
        h('ul', breaks.map((x) => h('li', x.text))),
        h('p.small', 'Services reading these fields will miss them or get another type. Consider a new message type instead.'),
        h('div.actions',
          h('button.danger#deploy-anyway', { type: 'button', onclick: () => { clear(breaking); deploy(true); } }, 'Deploy anyway'),
          h('button#deploy-cancel', { type: 'button', onclick: () => clear(breaking) }, 'Cancel'))));
      breaking.querySelector('#deploy-cancel').focus();
      return;
    }
    clear(breaking);
    if ((isDirty() || !savedName) && !(await save())) return;
    clear(status, h('p.muted', 'Deploying…'));
    try {
      const r = await post(`${base}/mappings/${enc(savedName)}/deploy`, {});
      deployedVersion = r.deployedVersion;
      drawHistory();
      clear(status, h('div.alert.alert-ok#deploy-result', `Deployed ${savedName} version ${r.deployedVersion}. The initial load starts now; follow it on the `,
        h('a', { href: `#/c/${enc(c)}` }, 'dashboard'), '.'));
      refreshState();
    } catch (e) {
      clear(status, errorBox(e, 'Not deployed'));
    }
  };

  // ---- layout
  clear(root,
    h('div.pagehead',
      h('div', h('h1', existing ? `Message type ${existing}` : 'New message type'), h('p.muted', 'Choose an M3 table, the columns to publish and their names.')),
      h('div.actions', dirtyFlag, versionInfo, saveBtn, deployBtn)),
    status,
    breaking,
    h('div.editor',
      h('div',
        h('div.panel',
          h('div.grid2',
            h('label.field', h('span', 'Name'), nameInput, nameHint),
            h('label.field', h('span', 'Description'), descInput)),
          existing ? null : h('div',
            h('label.field', h('span', 'M3 table'), searchInput),
            searchSource, searchResults)),
        h('div.panel',
          tableHead,
          h('div.toolbar', quick, h('label', hideUnselected, ' Hide unselected'), h('span.grow'), selCount),
          h('div.tablewrap.tall', h('table#columns',
            h('thead', h('tr', h('th', 'Include'), h('th', 'M3 column'), h('th', 'Description'), h('th', 'Type'), h('th', 'Field name'), h('th', 'Field details'))),
            tbody))),
        h('div.panel',
          h('label.field', h('span', 'Filter (which rows belong to this message type)'), filterInput),
          filterMsg,
          h('p.small.muted', 'Columns, comparisons (=, <>, <, >), in (...), and, or, not. Rows outside the filter produce no message (or a Deleted when they leave it). Checked by the preview and on save.')),
        h('div.panel',
          h('div.grid2',
            h('label.field', h('span', 'Constants (a JSON object added to every Updated message)'), constantsInput, constantsMsg),
            h('label.field', h('span', 'Time zone of the M3 server (date + time fields)'), tzInput))),
        existing ? h('div.panel', h('h2', 'Version history'), historyBox) : null),
      h('div.panel.sticky',
        h('h2', 'Preview'),
        h('p.small.muted', 'Messages this mapping would send for the first rows of the table, read live from M3.'),
        preview)));

  if (existing) {
    try {
      const m = await get(`${base}/mappings/${enc(existing)}`);
      original = m.spec || {};
      nameInput.value = original.name || existing;
      nameInput.readOnly = true;
      fillFromSpec(original);
      deployedVersion = m.deployedVersion;
      versions = m.versions || [];
      latestVersion = versions.length ? versions[versions.length - 1].version : null;
      const t = await get(`${base}/tables/${enc(original.table)}`);
      showTable(t, original.fields || []);
      savedSnapshot = snapshot();
      drawHistory();
    } catch (e) {
      clear(status, errorBox(e, `Cannot load ${existing}`));
    }
  } else {
    searchInput.focus();
  }
  refreshState();
  runPreview();

  return {
    isDirty,
    dispose: () => {
      window.removeEventListener('beforeunload', beforeUnload);
      schedulePreview.cancel();
      search.cancel();
    },
  };
}
