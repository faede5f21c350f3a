// Table search for the type picker: finds M3 tables by name, description (MDP's
// tableDescription or the built-in catalogue's text) and category, ranked; ArrowDown enters the
// results, ArrowUp/ArrowDown move, Enter picks (Enter in the box picks the best match), Escape
// returns to the box. When the Metadata Publisher does not answer it says so: the list then comes
// from the built-in catalogue, never silently.
import { get } from './api.js';
import { h, clear, debounce, errorBox } from './dom.js';

// What M3 tables are about, by the first letters of their name (M3's module prefixes).
const CATEGORIES = [
  ['OCUS', 'Customer, sales'],
  ['OO', 'Customer order, sales'],
  ['OC', 'Customer, sales'],
  ['OD', 'Delivery, shipping'],
  ['MIT', 'Item, inventory, stock'],
  ['MM', 'Item, inventory'],
  ['MH', 'Warehouse, shipping'],
  ['MW', 'Manufacturing, work order'],
  ['MP', 'Purchase order, purchasing'],
  ['CID', 'Supplier, purchasing'],
  ['CI', 'Supplier, purchasing'],
  ['CUGEX', 'User-defined fields, extension'],
  ['CS', 'Settings, system'],
  ['CM', 'Company, system'],
  ['F', 'Finance, accounting'],
];

export function categoryOf(name) {
  const n = (name || '').toUpperCase();
  const hit = CATEGORIES.find(([p]) => n.startsWith(p));
  return hit ? hit[1] : '';
}

// A table's score for the query (0: no match). Every word must match somewhere.
export function score(t, q) {
  const words = q.toLowerCase().split(/\s+/).filter(Boolean);
  if (!words.length) return 0;
  const name = t.name.toLowerCase();
  const desc = (t.description || '').toLowerCase();
  const cat = categoryOf(t.name).toLowerCase();
  let total = 0;
  for (const w of words) {
    let s = 0;
    if (name === w) s = 100;
    else if (name.startsWith(w)) s = 80;
    else if (name.includes(w)) s = 50;
    else if (new RegExp(`(^|[^a-z0-9])${w.replace(/[^a-z0-9]/g, '')}`).test(desc) && /[a-z0-9]/.test(w)) s = 40;
    else if (desc.includes(w)) s = 30;
    else if (cat.includes(w)) s = 20;
    if (!s) return 0;
    total += s;
  }
  return total;
}

// Wire the search box `input` to `results` (buttons with data-table) and `source` (where the list
// comes from). `pick(name)` is called with the chosen table; `selected()` names the current one.
// Returns the debounced search (with `cancel()`).
export function tableSearch({ base, input, results, source, pick, selected }) {
  let all = null; // { source, tables, at }
  let seq = 0;
  const load = async () => {
    if (all && Date.now() - all.at < 60000) return all;
    const r = await get(`${base}/tables?filter=`);
    all = { source: r.source, tables: r.tables || [], at: Date.now() };
    return all;
  };
  const buttons = () => [...results.querySelectorAll('button[data-table]')];
  const run = async () => {
    const q = input.value.trim();
    const mine = ++seq;
    if (!q) { clear(results); clear(source); return; }
    let list;
    try {
      list = await load();
    } catch (e) {
      if (mine === seq) clear(results, errorBox(e, 'Search failed'));
      return;
    }
    if (mine !== seq) return;
    const ranked = list.tables.map((t) => [score(t, q), t]).filter(([s]) => s > 0)
      .sort((a, b) => b[0] - a[0] || a[1].name.localeCompare(b[1].name)).map(([, t]) => t);
    const shown = ranked.slice(0, 40);
    const current = selected ? selected() : null;
    clear(results, shown.length ? shown.map((t) => {
      const cat = categoryOf(t.name);
      return h('button', { type: 'button', dataset: { table: t.name }, class: current === t.name ? 'selected' : '', onclick: () => pick(t.name) },
        h('strong.mono', t.name), ' ', h('span.muted', t.description || ''), cat ? h('span.small.tag', cat) : null);
    }) : h('span.muted', `No table matches “${q}” by name, description or category.`));
    results.setAttribute('role', 'group');
    results.setAttribute('aria-label', 'Matching tables');
    clear(source,
      `${ranked.length} table(s) from ${list.source === 'mdp' ? 'the Metadata Publisher' : 'the built-in catalogue'}${ranked.length > shown.length ? `; showing ${shown.length}, type more to narrow` : ''}. ArrowDown to choose.`,
      list.source === 'mdp' ? null : h('div.status-warn#table-source-fallback', { role: 'status' },
        'The Metadata Publisher is not answering: these are Studio\'s built-in standard tables only (custom tables and columns are missing). Check MDP on the Configuration tab.'));
  };
  const search = debounce(run, 200);
  input.addEventListener('input', search);
  input.addEventListener('keydown', async (e) => {
    if (e.key === 'ArrowDown') {
      e.preventDefault();
      search.cancel();
      if (!buttons().length) await run();
      const first = buttons()[0];
      if (first) first.focus();
    } else if (e.key === 'Enter') {
      e.preventDefault();
      search.cancel();
      await run();
      const first = buttons()[0];
      if (first) first.click();
    }
  });
  results.addEventListener('keydown', (e) => {
    const list = buttons();
    const i = list.indexOf(document.activeElement);
    if (i < 0) return;
    if (e.key === 'ArrowDown' && i < list.length - 1) { e.preventDefault(); list[i + 1].focus(); }
    else if (e.key === 'ArrowUp') { e.preventDefault(); (i > 0 ? list[i - 1] : input).focus(); }
    else if (e.key === 'Home') { e.preventDefault(); list[0].focus(); }
    else if (e.key === 'End') { e.preventDefault(); list[list.length - 1].focus(); }
    else if (e.key === 'Escape') { e.preventDefault(); input.focus(); }
  });
  return search;
}
