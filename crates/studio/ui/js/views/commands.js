// Command editor: a command mapping names an MI transaction and maps command fields to its MI
// input fields. Load the transaction's fields from M3, fill the parameter grid, see the command's
// JSON Schema live, save a version (live at once) or delete it. Unsaved changes are guarded.
import { get, post, put, del, conn, enc } from '../api.js';
import { h, clear, errorBox, json } from '../dom.js';

export const name = 'command-editor';

const TYPES = ['string', 'integer', 'decimal', 'boolean', 'date'];

// The JSON Schema of a parameter's type: as `ParamType::json_schema` (pipeline/src/commands.rs).
function typeSchema(ty) {
  switch (ty) {
    case 'integer': return { type: 'integer' };
    case 'decimal': return { type: 'number' };
    case 'boolean': return { type: 'boolean' };
    case 'date': return { type: 'string', format: 'date' };
    default: return { type: 'string' };
  }
}

// The command envelope's JSON Schema: as `CommandSpec::json_schema` (pipeline/src/commands.rs).
export function commandSchema(spec) {
  const props = {};
  const required = [];
  for (const p of spec.parameters) {
    if (p.field === undefined) continue;
    props[p.field] = { ...typeSchema(p.type), description: p.description ? `${p.description} (MI field ${p.mi})` : `MI field ${p.mi}` };
    if (p.required) required.push(p.field);
  }
  const sorted = Object.fromEntries(Object.keys(props).sort().map((k) => [k, props[k]]));
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    title: spec.name,
    description: `${spec.description} Runs ${spec.program}/${spec.transaction}.`.trim(),
    type: 'object',
    properties: {
      commandId: { type: 'string', minLength: 1, description: 'Unique id; a redelivered command with the same id is not executed twice.' },
      command: { const: spec.name },
      data: { type: 'object', properties: sorted, required, additionalProperties: false },
    },
    required: ['commandId', 'command', 'data'],
  };
}

// "Item number" -> "itemNumber": a field name suggested from an MI field's description.
function suggestField(description, mi) {
  const words = String(description || '').normalize('NFKD').replace(/[^A-Za-z0-9 ]+/g, ' ').trim().split(/\s+/).filter(Boolean).slice(0, 4);
  if (!words.length || !/^[A-Za-z]/.test(words[0])) return mi.toLowerCase();
  return words.map((w, i) => (i ? w[0].toUpperCase() + w.slice(1).toLowerCase() : w.toLowerCase())).join('');
}

// MI types: A alphanumeric, N numeric, D date.
function suggestType(f) {
  if (f.type === 'D') return 'date';
  if (f.type === 'N') return 'decimal';
  return 'string';
}

export async function render(root, { c, name: existing }) {
  const base = conn(c);
  const listHash = `#/c/${enc(c)}/commands`;
  let savedName = existing;
  let savedSnapshot = null;
  let latestVersion = null;
  let deleted = false;
  let rows = []; // { tr, inputs: {field, mi, required, fixed, type, description} }
  let miFields = null; // the loaded transaction's input fields
  let loadedFor = '';

  const nameInput = h('input#cmd-map-name', { type: 'text', placeholder: 'e.g. RenameItem', autocomplete: 'off' });
  const descInput = h('input#cmd-map-description', { type: 'text', placeholder: 'What the command does' });
  const programInput = h('input#cmd-map-program', { type: 'text', placeholder: 'e.g. MMS200MI', autocomplete: 'off' });
  const transactionInput = h('input#cmd-map-transaction', { type: 'text', placeholder: 'e.g. UpdItmBasic', autocomplete: 'off', list: 'mi-transaction-list' });
  // The program's transactions (MRS001MI/LstTransactions) to pick from, looked up as it is typed.
  const transactionList = h('datalist#mi-transaction-list');
  const transactionHint = h('span.small.muted#mi-transaction-hint');
  let transactionTimer;
  let transactionsFor = '';
  programInput.addEventListener('input', () => {
    clearTimeout(transactionTimer);
    transactionTimer = setTimeout(async () => {
      const program = programInput.value.trim().toUpperCase();
      if (!/^[A-Z][A-Z0-9]*MI$/.test(program) || program === transactionsFor) return;
      transactionsFor = program;
      try {
        const r = await get(`${base}/mi/${enc(program)}/transactions`);
        clear(transactionList, r.transactions.map((t) => h('option', { value: t.name }, t.description)));
        transactionHint.textContent = `${r.transactions.length} transactions of ${program}`;
      } catch (e) {
        clear(transactionList);
        transactionHint.textContent = e.message || `M3 does not know ${program}`;
      }
    }, 300);
  });
  for (const el of [nameInput, descInput, programInput, transactionInput]) el.style.width = '100%';
  const loadBtn = h('button#cmd-load-fields', { type: 'button', onclick: () => loadFields() }, 'Load fields');
  const fieldsBox = h('div#mi-fields-box');
  const fieldFilter = h('input#mi-filter', { type: 'search', placeholder: 'Filter fields…', hidden: true });
  const datalist = h('datalist#mi-field-list');
  const tbody = h('tbody');
  const addBtn = h('button#cmd-add-param', { type: 'button', onclick: () => { addRow({}); changed(); rows[rows.length - 1].inputs.field.focus(); } }, '+ Add parameter');
  const schemaBox = h('pre.json#cmd-schema', { tabindex: '0', 'aria-label': 'JSON Schema of the command' });
  const status = h('div#cmd-edit-status');
  const dirtyFlag = h('span.dirty-flag');
  const versionInfo = h('span.small.muted#cmd-version-info');
  const saveBtn = h('button.primary#cmd-save', { onclick: () => save() }, 'Save');
  const title = h('h1', existing ? `Command ${existing}` : 'New command');
  const deleteBtn = h('button.danger#cmd-delete', { onclick: () => remove(), hidden: !existing }, 'Delete');

  // ---- the spec being edited
  const paramOf = (r) => {
    const i = r.inputs;
    const fixed = i.fixed.value;
    const p = {};
    if (fixed === '') {
      const f = i.field.value.trim();
      if (f) p.field = f;
    }
    p.mi = i.mi.value.trim().toUpperCase();
    p.required = fixed === '' && i.required.checked;
    if (fixed !== '') p.fixed = fixed;
    p.type = i.type.value;
    const d = i.description.value.trim();
    if (d) p.description = d;
    return p;
  };
  const spec = () => ({
    name: nameInput.value.trim(),
    description: descInput.value.trim(),
    program: programInput.value.trim().toUpperCase(),
    transaction: transactionInput.value.trim(),
    parameters: rows.map(paramOf),
  });
  const snapshot = () => JSON.stringify(spec());
  const isDirty = () => {
    if (deleted) return false;
    if (savedSnapshot === null) return !!(nameInput.value.trim() || programInput.value.trim() || rows.length);
    return snapshot() !== savedSnapshot;
  };
  const beforeUnload = (ev) => {
    if (isDirty()) {
      ev.preventDefault();
      ev.returnValue = '';
    }
  };
  window.addEventListener('beforeunload', beforeUnload);

  const clearMarks = () => {
    for (const el of root.querySelectorAll('.invalid')) { el.classList.remove('invalid'); el.removeAttribute('title'); }
  };
  const hintMi = () => {
    // A light hint only; the server checks the fields against M3 on save.
    const known = miFields && loadedFor === `${programInput.value.trim().toUpperCase()}/${transactionInput.value.trim()}` ? new Set(miFields.map((f) => f.name)) : null;
    for (const r of rows) {
      const v = r.inputs.mi.value.trim().toUpperCase();
      const unknown = known && v && !known.has(v);
      r.inputs.mi.classList.toggle('warn', !!unknown);
      r.inputs.mi.title = unknown ? `${loadedFor} has no input field ${v}` : '';
    }
    if (miFields) {
      const used = new Set(rows.map((r) => r.inputs.mi.value.trim().toUpperCase()));
      for (const tr of fieldsBox.querySelectorAll('tr[data-mi]')) {
        tr.classList.toggle('used', used.has(tr.dataset.mi));
        tr.querySelector('button').disabled = used.has(tr.dataset.mi);
      }
    }
  };
  const refresh = () => {
    const s = spec();
    for (const r of rows) {
      const fixed = r.inputs.fixed.value !== '';
      r.inputs.field.disabled = fixed;
      r.inputs.required.disabled = fixed;
      r.inputs.field.placeholder = fixed ? '(fixed)' : 'e.g. itemNumber';
    }
    schemaBox.textContent = JSON.stringify(commandSchema({ ...s, name: s.name || 'NewCommand' }), null, 2);
    dirtyFlag.textContent = isDirty() ? '● Unsaved changes' : '';
    saveBtn.disabled = savedSnapshot !== null && !isDirty();
    versionInfo.textContent = latestVersion ? `Saved v${latestVersion}.` : 'Not saved yet.';
    hintMi();
  };
  const changed = () => refresh();
  for (const el of [nameInput, descInput, programInput, transactionInput]) el.addEventListener('input', changed);

  // ---- parameter grid
  const addRow = (p) => {
    const inputs = {
      field: h('input', { type: 'text', name: 'field', value: p.field || '', autocomplete: 'off', 'aria-label': 'Command field name' }),
      mi: h('input.mi', { type: 'text', name: 'mi', value: p.mi || '', list: 'mi-field-list', autocomplete: 'off', placeholder: 'ITNO', 'aria-label': 'MI field' }),
      required: h('input', { type: 'checkbox', name: 'required', checked: !!p.required, 'aria-label': 'Required' }),
      fixed: h('input', { type: 'text', name: 'fixed', value: p.fixed ?? '', autocomplete: 'off', placeholder: 'none', 'aria-label': 'Fixed value' }),
      type: h('select', { name: 'type', 'aria-label': 'Type' }, TYPES.map((t) => h('option', { value: t, selected: (p.type || 'string') === t }, t))),
      description: h('input', { type: 'text', name: 'description', value: p.description || '', autocomplete: 'off', 'aria-label': 'Description' }),
    };
    const r = { inputs };
    const removeBtn = h('button.danger', { type: 'button', title: 'Remove this parameter', 'aria-label': 'Remove this parameter', onclick: () => {
      rows = rows.filter((x) => x !== r);
      r.tr.remove();
      renumber();
      changed();
    } }, '✕');
    for (const el of Object.values(inputs)) el.addEventListener(el.tagName === 'SELECT' || el.type === 'checkbox' ? 'change' : 'input', changed);
    r.tr = h('tr', h('td', inputs.field), h('td', inputs.mi), h('td.center', inputs.required), h('td', inputs.fixed), h('td', inputs.type), h('td', inputs.description), h('td.center', removeBtn));
    rows.push(r);
    tbody.append(r.tr);
    renumber();
    return r;
  };
  const renumber = () => {
    rows.forEach((r, i) => { r.tr.dataset.row = String(i); });
    if (!rows.length) tbody.append(h('tr.placeholder', h('td.empty', { colSpan: 7 }, 'No parameter yet: load the transaction\'s fields and pick some, or add one.')));
    else for (const p of tbody.querySelectorAll('tr.placeholder')) p.remove();
  };

  // ---- MI fields of the transaction
  const applyFieldFilter = () => {
    const q = fieldFilter.value.trim().toLowerCase();
    for (const tr of fieldsBox.querySelectorAll('tr[data-mi]')) tr.hidden = q && !tr.textContent.toLowerCase().includes(q);
  };
  fieldFilter.addEventListener('input', applyFieldFilter);
  const loadFields = async () => {
    const program = programInput.value.trim().toUpperCase();
    const transaction = transactionInput.value.trim();
    if (!program || !transaction) {
      clear(fieldsBox, h('p.small.muted', 'Enter the MI program and transaction first.'));
      return;
    }
    clear(fieldsBox, h('p.muted', `Asking M3 for the input fields of ${program}/${transaction}…`));
    try {
      const r = await get(`${base}/mi/${enc(program)}/${enc(transaction)}/fields`);
      miFields = r.fields;
      loadedFor = `${r.program}/${r.transaction}`;
      clear(datalist, miFields.map((f) => h('option', { value: f.name }, f.description)));
      fieldFilter.hidden = miFields.length < 8;
      clear(fieldsBox,
        h('p.small.muted', `${miFields.length} input field(s) of ${loadedFor}, from MRS001MI. Add the ones the command sets.`),
        miFields.length ? h('div.tablewrap.short', h('table#mi-fields',
          h('thead', h('tr', h('th', 'MI field'), h('th', 'Description'), h('th', 'Type'), h('th', ''))),
          h('tbody', miFields.map((f) => h('tr', { dataset: { mi: f.name } },
            h('td.mono', f.name), h('td', f.description || ''), h('td.small', `${{ A: 'text', N: 'number', D: 'date' }[f.type] || f.type || ''}${f.length ? ` (${f.length})` : ''}`),
            h('td', h('button', { type: 'button', onclick: () => {
              addRow({ field: suggestField(f.description, f.name), mi: f.name, type: suggestType(f), description: f.description });
              changed();
            } }, '+ Add'))))))) : null);
      applyFieldFilter();
      hintMi();
    } catch (e) {
      miFields = null;
      loadedFor = '';
      clear(fieldsBox, errorBox(e, `Cannot load the fields of ${program}/${transaction}`));
    }
  };

  // ---- errors that name a field: `parameters[1].mi: …`, `transaction: …`
  const markError = (message) => {
    const m = /^(name|description|program|transaction|parameters\[(\d+)\]\.(field|mi|required|fixed|type|description)):/.exec(message || '');
    if (!m) return null;
    let el = null;
    if (m[2] !== undefined) {
      const r = rows[Number(m[2])];
      if (r) el = r.inputs[m[3]];
    } else {
      el = { name: nameInput, description: descInput, program: programInput, transaction: transactionInput }[m[1]];
    }
    if (el) {
      el.classList.add('invalid');
      el.title = message;
      el.scrollIntoView({ block: 'center' });
    }
    return m[1];
  };

  // ---- save / delete
  const save = async () => {
    const s = spec();
    clearMarks();
    clear(status, h('p.muted', 'Saving…'));
    try {
      const r = savedName ? await put(`${base}/command-mappings/${enc(savedName)}`, s) : await post(`${base}/command-mappings`, s);
      savedSnapshot = JSON.stringify(s);
      latestVersion = r.version;
      if (!savedName) {
        savedName = s.name;
        nameInput.readOnly = true;
        deleteBtn.hidden = false;
        title.textContent = `Command ${savedName}`;
        const hash = `#/c/${enc(c)}/commands/${enc(savedName)}`;
        history.replaceState(null, '', hash);
        window.dispatchEvent(new CustomEvent('studio:rehash', { detail: hash }));
      }
      clear(status,
        h('div.alert.alert-ok#cmd-save-result', `Saved ${s.name} as version ${r.version}; it is live now. `, h('a', { href: listHash }, 'Send it from the Commands page.')),
        (r.warnings || []).map((w) => h('div.alert.alert-warn', w)));
      refresh();
      return true;
    } catch (e) {
      const field = markError(e.message);
      clear(status, h('div#cmd-save-error', { dataset: { field: field || '' } }, errorBox(e, 'Not saved')));
      return false;
    }
  };
  const remove = async () => {
    if (!savedName) return;
    if (!confirm(`Delete the command ${savedName}? Services sending it get a rejected receipt from now on.`)) return;
    try {
      await del(`${base}/command-mappings/${enc(savedName)}`);
      deleted = true;
      location.hash = listHash;
    } catch (e) {
      clear(status, errorBox(e, 'Not deleted'));
    }
  };

  // ---- layout
  clear(root,
    h('div.pagehead',
      h('div', title,
        h('p.muted', 'A command runs one MI transaction: each parameter sets an MI input field from a field of the command, or to a fixed value.')),
      h('div.actions', dirtyFlag, versionInfo, h('a.button', { href: listHash }, 'Back to commands'), deleteBtn, saveBtn)),
    status,
    h('div.editor.cmd-editor',
      h('div',
        h('div.panel',
          h('div.grid2',
            h('label.field', h('span', 'Name (PascalCase)'), nameInput),
            h('label.field', h('span', 'Description'), descInput)),
          h('div.grid2',
            h('label.field', h('span', 'MI program'), programInput),
            h('label.field', h('span', 'MI transaction'), transactionInput, transactionHint)),
          transactionList,
          h('div.toolbar', loadBtn, fieldFilter, h('span.small.muted', 'Lists the transaction\'s input fields from M3 (MRS001MI) to pick from.')),
          fieldsBox),
        h('div.panel',
          h('h2', 'Parameters'),
          h('div.tablewrap', h('table#cmd-params',
            h('thead', h('tr', h('th', 'Command field'), h('th', 'MI field'), h('th', 'Required'), h('th', 'Fixed value'), h('th', 'Type'), h('th', 'Description'), h('th', ''))),
            tbody)),
          datalist,
          h('div.toolbar', { style: 'margin-top:10px' }, addBtn,
            h('span.small.muted', 'A fixed value is always sent and takes no command field. Booleans are sent as 1/0, dates yyyy-MM-dd as yyyyMMdd.')))),
      h('div.panel.sticky',
        h('h2', 'JSON Schema'),
        h('p.small.muted', 'The command message your services send, as checked on arrival. Updated as you type.'),
        schemaBox)));

  if (existing) {
    try {
      const m = await get(`${base}/command-mappings/${enc(existing)}`);
      const s = m.spec || {};
      nameInput.value = s.name || existing;
      nameInput.readOnly = true;
      descInput.value = s.description || '';
      programInput.value = s.program || '';
      transactionInput.value = s.transaction || '';
      for (const p of s.parameters || []) addRow(p);
      latestVersion = m.latestVersion;
      savedSnapshot = snapshot();
      if (s.program && s.transaction) loadFields();
    } catch (e) {
      clear(status, errorBox(e, `Cannot load ${existing}`));
    }
  } else {
    nameInput.focus();
  }
  renumber();
  refresh();

  return {
    isDirty,
    dispose: () => window.removeEventListener('beforeunload', beforeUnload),
  };
}
