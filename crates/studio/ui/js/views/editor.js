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
  const deployBtn = h('button#deploy', { onclick: () => deploy() }, 'Save and deploy');
  const versionInfo = h('span.small.muted#version-info');

  const spec = () => {
    const s = original ? structuredClone(original) : {};
    s.name = nameInput.value.trim();
    s.description = descInput.value.trim();
    s.table = table ? table.name : '';
    const f = filterInput.value.trim();
    if (f) s.filter = f;
    else delete s.filter;
    const before = new Map(((original && original.fields) || []).map((x) => [x.column, x]));
    s.fields = rows.filter((r) => r.include).map((r) => ({ ...(before.get(r.col.name) || {}), column: r.col.name, name: r.nameInput.value.trim() }));
    return s;
  };
  const snapshot = () => JSON.stringify(spec());
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
  for (const el of [nameInput, descInput, filterInput]) el.addEventListener('input', changed);

  const showTable = (t, fields) => {
    table = t;
    const chosen = fields ? new Map(fields.map((f) => [f.column, f.name])) : null;
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
      r.tr = h('tr', { class: `${col.key ? 'key' : ''} ${include ? '' : 'off'}`, dataset: { column: col.name, key: String(!!col.key) } },
        h('td', r.box),
        h('td.mono', col.name, col.key ? h('span.badge.key', { title: 'Primary key: always included' }, lock(), 'key') : null),
        h('td', col.description),
        h('td.small', typeLabel(col)),
        h('td', r.nameInput));
      return r;
    });
    clear(tbody, rows.map((r) => r.tr));
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

  // ---- save / deploy
  const save = async () => {
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
  const deploy = async () => {
    if ((isDirty() || !savedName) && !(await save())) return;
    clear(status, h('p.muted', 'Deploying…'));
    try {
      const r = await post(`${base}/mappings/${enc(savedName)}/deploy`, {});
      deployedVersion = r.deployedVersion;
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
            h('thead', h('tr', h('th', 'Include'), h('th', 'M3 column'), h('th', 'Description'), h('th', 'Type'), h('th', 'Field name'))),
            tbody))),
        h('div.panel',
          h('label.field', h('span', 'Filter (which rows belong to this message type)'), filterInput),
          filterMsg,
          h('p.small.muted', 'Columns, comparisons (=, <>, <, >), in (...), and, or, not. Rows outside the filter produce no message (or a Deleted when they leave it). Checked by the preview and on save.'))),
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
      descInput.value = original.description || '';
      filterInput.value = original.filter || '';
      deployedVersion = m.deployedVersion;
      latestVersion = m.versions && m.versions.length ? m.versions[m.versions.length - 1].version : null;
      const t = await get(`${base}/tables/${enc(original.table)}`);
      showTable(t, original.fields || []);
      savedSnapshot = snapshot();
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
