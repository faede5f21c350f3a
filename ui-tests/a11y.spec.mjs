// Accessibility, layout, tokens, contracts and the command form in a real browser (issue 15):
// Debian's Chromium driven by playwright-core, axe-core injected into each page.
//
//   node ui-tests/a11y.spec.mjs <erp-bridge base URL> <admin API token> <screenshot dir>
//
// The Rust side (crates/erp-bridge/tests/api/ui.rs) starts erp-bridge against the simulator with
// the `demo` connection loaded. Every view is visited at 1440 and 390 px: axe-core must find no
// serious or critical violation, nothing may scroll sideways at 390 px, and each view has its own
// page title. Then the defects of issue 15 are checked one by one: Enter in "Look up one item",
// sign-out, a token's one-time display surviving the revocation of the token in use, "open raw"
// and "this page as JSON" without 401 tabs, and MI field lengths in the command form.
// Exits 0 when every check passes; otherwise prints the failed check and exits 1. Screenshots of
// every view, at both widths, go to <screenshot dir>/view-<name>-<width>.png.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { WAIT, browserDriver, CheckFailed, check } from './harness.mjs';

const [base, apiToken, shotsDir] = process.argv.slice(2);
if (!base || !apiToken || !shotsDir) {
  console.error('usage: node a11y.spec.mjs <base URL> <admin API token> <screenshot dir>');
  process.exit(2);
}
const { chromium, executablePath: CHROMIUM, axeSource } = await browserDriver({ axe: true });
fs.mkdirSync(shotsDir, { recursive: true });
for (const f of fs.readdirSync(shotsDir)) if (/^a11y-failure/.test(f)) fs.rmSync(path.join(shotsDir, f)); // from an earlier run
const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'a11y-chromium-'));
const started = Date.now();
const pageErrors = [];
let page;
let context;

async function finish(code) {
  try { if (context) await context.close(); } catch { /* closing */ }
  fs.rmSync(profile, { recursive: true, force: true });
  console.log(`${code === 0 ? 'PASS' : 'FAILED'}: accessibility browser test in ${((Date.now() - started) / 1000).toFixed(1)} s; screenshots in ${shotsDir}`);
  process.exit(code);
}

// Each check runs on its own: a failed one is reported and the rest still run, so one run shows
// every defect. The exit code is 1 when any failed.
const failed = [];
async function step(name, fn) {
  const t = Date.now();
  try {
    await fn();
  } catch (e) {
    const msg = e instanceof CheckFailed ? e.message : e.message.split('\n')[0];
    let where = '';
    const shot = path.join(shotsDir, `a11y-failure-${failed.length + 1}.png`);
    try {
      where = page.url();
      await page.screenshot({ path: shot, fullPage: true });
    } catch { /* the page may be gone */ }
    console.log(`FAIL ${name}: ${msg}\n  page: ${where}\n  screenshot: ${shot}`);
    if (!(e instanceof CheckFailed)) console.log(e.stack);
    failed.push(name);
    if (!page) await finish(1);
    try {
      // Start the next check afresh, signed in as admin.
      await page.evaluate((t) => localStorage.setItem('erp-bridge.token', t), apiToken);
      await page.setViewportSize({ width: 1440, height: 900 });
      await page.goto(`${base}/studio/#/`);
    } catch { /* the page may be gone */ }
    return;
  }
  console.log(`ok   ${name} (${((Date.now() - t) / 1000).toFixed(1)} s)`);
}

const go = async (hash) => {
  await page.goto(`${base}/studio/${hash}`);
};
const api = async (method, p, body, tok = apiToken) => {
  const r = await fetch(`${base}${p}`, {
    method,
    headers: { authorization: `Bearer ${tok}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : null };
};
// What the API answers a request without the token (what the old links opened in a new tab).
const UNAUTHORIZED = /"error"\s*:\s*\{\s*"code"\s*:\s*"unauthorized"/;
// The view has rendered: its heading is there and nothing says "Loading…".
const rendered = async () => {
  await page.waitForSelector('#view h1');
  await page.waitForFunction(() => !document.querySelector('#view > p.muted') || !/Loading/.test(document.querySelector('#view > p.muted').textContent));
  await page.waitForTimeout(400);
};
// axe-core on the page as it is: the serious and critical violations, as text.
const axe = async () => {
  if (!(await page.evaluate(() => !!window.axe))) await page.addScriptTag({ content: axeSource });
  const violations = await page.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ['violations'] });
    return r.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map((v) => `${v.impact} ${v.id}: ${v.help} (${v.nodes.slice(0, 4).map((n) => n.target.join(' ')).join(', ')}${v.nodes.length > 4 ? ', …' : ''})`);
  });
  return violations;
};

setTimeout(() => {
  console.error('FAIL: the accessibility browser test did not finish within 200 s');
  finish(1);
}, 200000).unref();

await step('launch Chromium, signed in with the admin token', async () => {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1440, height: 900 },
    bypassCSP: true, // axe-core is injected as an inline script; Studio's CSP forbids those
    acceptDownloads: true,
  });
  context.setDefaultTimeout(WAIT);
  await context.addInitScript((t) => {
    if (!sessionStorage.getItem('a11y.signed-in')) {
      localStorage.setItem('erp-bridge.token', t);
      sessionStorage.setItem('a11y.signed-in', '1');
    }
  }, apiToken);
  page = context.pages()[0] || (await context.newPage());
  page.on('pageerror', (e) => pageErrors.push(e.message));
  page.on('dialog', (d) => d.accept());
});

const VIEWS = [
  ['connections', '#/'],
  ['wizard', '#/wizard'],
  ['tokens', '#/tokens'],
  ['dashboard', '#/c/demo'],
  ['config', '#/c/demo/config'],
  ['types', '#/c/demo/types'],
  ['editor-new', '#/c/demo/mappings/new'],
  ['editor', '#/c/demo/mappings/Item'],
  ['messages', '#/c/demo/messages'],
  ['read-models', '#/c/demo/read-models'],
  ['commands', '#/c/demo/commands'],
  ['command-new', '#/c/demo/commands/new'],
  ['consume', '#/c/demo/consume'],
];
const titles = new Map();
for (const [name, hash] of VIEWS) {
  await step(`${name} (${hash}): axe-core finds nothing serious at 1440 and 390 px, no sideways scrolling at 390 px`, async () => {
    await page.setViewportSize({ width: 1440, height: 900 });
    await go(hash);
    await rendered();
    const problems = [];
    const title = await page.title();
    if (!title || title === 'erp-bridge Studio') problems.push(`the page title is the generic "${title}"`);
    else if (titles.has(title)) problems.push(`the same page title as "${titles.get(title)}": ${title}`);
    titles.set(title, name);
    const wide = await axe();
    if (wide.length) problems.push(`axe-core at 1440 px:\n    ${wide.join('\n    ')}`);
    await page.screenshot({ path: path.join(shotsDir, `view-${name}-1440.png`), fullPage: true });
    await page.setViewportSize({ width: 390, height: 844 });
    await page.waitForTimeout(300);
    const narrow = await axe();
    if (narrow.length) problems.push(`axe-core at 390 px:\n    ${narrow.join('\n    ')}`);
    const { sw, iw, wide: culprits } = await page.evaluate(() => ({
      sw: document.documentElement.scrollWidth,
      iw: window.innerWidth,
      wide: [...document.querySelectorAll('body *')]
        .filter((el) => el.getBoundingClientRect().right > window.innerWidth + 1 && !el.parentElement.closest('.tablewrap, pre, .chart-plot'))
        .slice(0, 6).map((el) => `${el.tagName.toLowerCase()}${el.id ? `#${el.id}` : ''}${el.className && typeof el.className === 'string' ? `.${el.className.split(' ').join('.')}` : ''}`),
    }));
    if (sw > iw) problems.push(`scrolls sideways at 390 px: scrollWidth ${sw} > ${iw} (too wide: ${culprits.join(', ')})`);
    await page.screenshot({ path: path.join(shotsDir, `view-${name}-390.png`), fullPage: true });
    await page.setViewportSize({ width: 1440, height: 900 });
    check(problems.length === 0, problems.join('\n  '));
  });
}

await step('read models: Enter in "Look up one item" looks the item up', async () => {
  await go('#/c/demo/read-models');
  await page.waitForSelector('#rm-items tbody tr');
  // An entity key, as the message log names it (the subject).
  const log = await api('GET', '/api/connections/demo/messages?after=0&limit=1');
  const k = log.body.messages[0].subject;
  await page.fill('#rm-key', k);
  await page.focus('#rm-key');
  await page.keyboard.press('Enter');
  await page.waitForSelector('#rm-lookup pre.json, #rm-lookup .json-tree, #rm-lookup [role="alert"]', { timeout: 5000 });
  check(await page.locator('#rm-lookup [role="alert"]').count() === 0, `the look-up of ${k} failed: ${await page.locator('#rm-lookup').textContent()}`);
});

await step('read models: "this page as JSON" shows the JSON without a 401 tab', async () => {
  await go('#/c/demo/read-models');
  await page.waitForSelector('#rm-items tbody tr');
  const before = context.pages().length;
  await page.click('#rm-json');
  await page.waitForTimeout(800);
  const pages = context.pages();
  for (const p of pages.slice(before)) {
    const text = await p.evaluate(() => document.body ? document.body.innerText : '');
    check(!UNAUTHORIZED.test(text), `"this page as JSON" opened a tab saying ${text.slice(0, 80)}`);
    await p.close();
  }
  if (pages.length === before) {
    await page.waitForSelector('#rm-json-view .contract');
    const text = await page.locator('#rm-json-view').textContent();
    check(/"items"|items/.test(text), `the JSON shown is not the page: ${text.slice(0, 80)}`);
  }
});

await step('contracts: AsyncAPI, OpenAPI and JSON Schema rendered readably, "open raw" without a 401 tab, download with the token', async () => {
  await go('#/c/demo/messages');
  await page.waitForSelector('#asyncapi-link');
  for (const link of ['#asyncapi-link', '#openapi-link', '#schemas a[data-schema]']) {
    await page.click(link);
    await page.waitForSelector('#contract-view .contract');
    const sections = await page.locator('#contract-view .contract details').count();
    check(sections > 0, `${link}: the contract is not split into sections`);
    const before = context.pages().length;
    await page.click('#contract-raw');
    await page.waitForTimeout(800);
    for (const p of context.pages().slice(before)) {
      const text = await p.evaluate(() => document.body ? document.body.innerText : '');
      check(!UNAUTHORIZED.test(text), `${link}: "open raw" opened a tab saying ${text.slice(0, 80)}`);
      check(text.trim().startsWith('{'), `${link}: "open raw" opened a tab without the JSON: ${text.slice(0, 80)}`);
      await p.close();
    }
    const [dl] = await Promise.all([page.waitForEvent('download'), page.click('#contract-download')]);
    const file = await dl.path();
    const body = JSON.parse(fs.readFileSync(file, 'utf8'));
    check(!body.error, `${link}: the download is an error: ${JSON.stringify(body).slice(0, 80)}`);
  }
});

await step('messages: a message\'s dataschema link opens the schema, not a 401 tab', async () => {
  await go('#/c/demo/messages');
  await page.waitForSelector('#messages tr.msgrow');
  await page.click('#messages tr.msgrow >> nth=0');
  const link = page.locator('#messages tr.msgdetail:not([hidden]) dd a').first();
  await link.waitFor();
  const [tab] = await Promise.all([context.waitForEvent('page'), link.click()]);
  await tab.waitForFunction(() => location.href.startsWith('blob:') || /\{/.test(document.body ? document.body.innerText : ''), null, { timeout: 5000 }).catch(() => {});
  const text = await tab.evaluate(() => (document.body ? document.body.innerText : ''));
  await tab.close();
  check(!UNAUTHORIZED.test(text), `the dataschema link opened a tab saying ${text.slice(0, 80)}`);
  check(/"\$schema"|"properties"/.test(text), `the dataschema tab does not show the schema: ${text.slice(0, 80)}`);
});

await step('command form: an MI field of 10 characters takes at most 10, with a message', async () => {
  await go('#/c/demo/commands');
  await page.waitForSelector('#cmd-fields');
  const limited = await page.evaluate(() => [...document.querySelectorAll('#cmd-fields input[type="text"]')]
    .map((el) => ({ name: el.name, max: el.maxLength, mi: el.dataset.miLength })));
  check(limited.length > 0, 'the command form has no text field');
  const withLen = limited.filter((f) => f.mi);
  check(withLen.length > 0, `no text field knows its MI length: ${JSON.stringify(limited)}`);
  for (const f of withLen) check(f.max === Number(f.mi), `${f.name} is ${f.mi} characters in M3 but the input takes ${f.max}`);
  const f = withLen[0];
  await page.evaluate(({ n, len }) => {
    const el = document.querySelector(`#cmd-fields input[name="${n}"]`);
    el.value = 'X'.repeat(len + 4); // pasted past maxlength by a script
  }, { n: f.name, len: Number(f.mi) });
  await page.click('#cmd-send');
  await page.waitForSelector('#cmd-fields .field-error:not(:empty)');
  const msg = await page.locator('#cmd-fields .field-error:not(:empty)').first().textContent();
  check(msg.includes(String(f.mi)), `the message does not name the length: ${msg}`);
  check(await page.locator('#cmd-receipt .alert').count() === 0, 'the command was sent anyway');
});

await step('mapping editor: a field\'s type, enum values, date + time column, description and constants are edited and saved', async () => {
  await go('#/c/demo/mappings/Item');
  await page.waitForSelector('#columns tr[data-column="MMSTAT"]');
  await page.click('#columns tr[data-column="MMSTAT"] button.details');
  await page.selectOption('#f-MMSTAT-type', 'enum');
  await page.fill('#f-MMSTAT-values', '20 = active\n90 = deactivated');
  await page.fill('#f-MMSTAT-default', 'other');
  await page.fill('#f-MMSTAT-desc', 'Lifecycle status of the item');
  await page.fill('#mapping-constants', '{"source": "m3"}');
  await page.click('#save');
  await page.waitForSelector('#save-result');
  const m = (await api('GET', '/api/connections/demo/mappings/Item')).body;
  const f = m.spec.fields.find((x) => x.column === 'MMSTAT');
  check(f && f.type === 'enum', `the type was not saved: ${JSON.stringify(f)}`);
  check(f.values && f.values['20'] === 'active' && f.values['90'] === 'deactivated' && f.default === 'other', `the enum values were not saved: ${JSON.stringify(f)}`);
  check(f.description === 'Lifecycle status of the item', `the description was not saved: ${JSON.stringify(f)}`);
  check(m.spec.constants && m.spec.constants.source === 'm3', `the constants were not saved: ${JSON.stringify(m.spec.constants)}`);
  // A date + time field: the time column is chosen from the table's columns.
  const dateCol = await page.evaluate(() => [...document.querySelectorAll('#columns tr[data-column]')].map((tr) => tr.dataset.column).find((c) => /DT$/.test(c)));
  check(!!dateCol, 'the table has no date column');
  await page.click(`#columns tr[data-column="${dateCol}"] button.details`);
  await page.selectOption(`#f-${dateCol}-type`, 'datetime');
  check(await page.locator(`#f-${dateCol}-time`).isVisible(), 'no time column to choose for a date + time field');
});

await step('mapping editor: renaming a field warns before deploy; history shows a diff; rollback saves the old version anew', async () => {
  await go('#/c/demo/mappings/Item');
  await page.waitForSelector('#columns tr[data-column="MMITDS"]');
  const before = (await api('GET', '/api/connections/demo/mappings/Item')).body;
  const renamed = await page.inputValue('#columns tr[data-column="MMITDS"] input[type="text"]');
  await page.fill('#columns tr[data-column="MMITDS"] input[type="text"]', `${renamed}Renamed`);
  await page.click('#deploy');
  await page.waitForSelector('#breaking-warning [role="alert"]');
  const warning = await page.locator('#breaking-warning').textContent();
  check(warning.includes(`renamed to ${renamed}Renamed`), `the warning does not name the rename: ${warning}`);
  check(warning.includes('type from the column → enum'), `the warning does not name the changed type (status became an enum): ${warning}`);
  await page.click('#deploy-cancel');
  const after = (await api('GET', '/api/connections/demo/mappings/Item')).body;
  check(after.deployedVersion === before.deployedVersion, 'deployed although the change breaks consumers');
  await page.click('#save');
  await page.waitForSelector('#save-result');
  const latest = (await api('GET', '/api/connections/demo/mappings/Item')).body.versions.length;
  await page.waitForSelector(`#version-list tr[data-version="${latest}"] button.diff`);
  await page.click(`#version-list tr[data-version="${latest}"] button.diff`);
  const diff = await page.locator('#version-diff').textContent();
  check(diff.includes(`renamed to ${renamed}Renamed`), `the diff does not show the rename: ${diff}`);
  await page.click('#version-list tr[data-version="1"] button.rollback');
  await page.waitForSelector('#rollback-result');
  const m = (await api('GET', '/api/connections/demo/mappings/Item')).body;
  check(m.versions.length === latest + 1, `rollback did not save a new version: ${m.versions.length}`);
  check(JSON.stringify(m.spec.fields) === JSON.stringify(m.versions[0].spec.fields), 'the new version is not version 1');
  check(await page.inputValue('#columns tr[data-column="MMITDS"] input[type="text"]') === renamed, 'the editor does not show the rolled-back field name');
});

await step('audit and re-export: the history names the token that saved; re-export asks first, naming the mappings', async () => {
  await go('#/c/demo/mappings/Item');
  const latest = (await api('GET', '/api/connections/demo/mappings/Item')).body.versions.length;
  await page.waitForSelector(`#version-list tr[data-version="${latest}"]`);
  const row = await page.locator(`#version-list tr[data-version="${latest}"]`).textContent();
  check(/by token:\S+ \(/.test(row), `the history does not name the token that saved v${latest}: ${row}`);
  await go('#/c/demo/types');
  await page.check('#types tr[data-mapping="Item"] input[type="checkbox"]');
  let asked = '';
  page.removeAllListeners('dialog');
  try {
    page.once('dialog', (d) => { asked = d.message(); d.dismiss(); });
    await page.click('#bulk-reexport');
    await page.waitForTimeout(300);
    check(asked.includes('Item') && asked.includes('emitted again'), `re-export did not ask first, naming Item and that every row is emitted again (asked: "${asked}")`);
    check(await page.locator('ul.report li[data-item="Item"]').count() === 0, 're-export ran although it was not confirmed');
    page.once('dialog', (d) => d.accept());
    await page.click('#bulk-reexport');
    await page.waitForSelector('ul.report li[data-item="Item"][data-ok="true"]');
  } finally {
    page.removeAllListeners('dialog');
    page.on('dialog', (d) => d.accept());
  }
});

await step('Consume: topics, example consumer configuration, the read-model base URL and a token that reads it', async () => {
  await go('#/c/demo');
  await page.click('#subnav a:has-text("Consume")');
  await page.waitForSelector('#consume-topics tr[data-channel="events"]');
  const doc = (await api('GET', '/api/connections/demo/asyncapi')).body;
  const topic = await page.locator('#consume-topics tr[data-channel="events"] td.mono').textContent();
  check(topic === doc.channels.events.address, `the events topic is ${topic}, not ${doc.channels.events.address}`);
  const config = await page.locator('#consume-config').textContent();
  check(/bootstrap\.servers=/.test(config) && config.includes(topic), `the example configuration lacks servers or the topic: ${config}`);
  if (doc.servers) {
    const hosts = Object.values(doc.servers).map((s) => s.host).join(',');
    check(await page.inputValue('#consume-bootstrap') === hosts, 'the bootstrap servers differ from the AsyncAPI servers');
    check(await page.locator('#consume-auth').count() === 1, 'nothing says how to authenticate');
  } else {
    check(await page.locator('#consume-no-kafka').count() === 1, 'no Kafka and nothing says so');
  }
  const baseUrl = await page.inputValue('#consume-base-url');
  check(baseUrl === `${base}/api/connections/demo/read-models/`, `the base URL is ${baseUrl}`);
  await page.click('#consume-token-create');
  await page.waitForSelector('#consume-token-value');
  const tok = await page.inputValue('#consume-token-value');
  const r = await fetch(`${baseUrl}items?limit=1`, { headers: { authorization: `Bearer ${tok}` } });
  check(r.status === 200, `the token does not read the read model: ${r.status}`);
  const other = await fetch(`${base}/api/tokens`, { headers: { authorization: `Bearer ${tok}` } });
  check(other.status === 403, `the read-model token may do more than read: ${other.status}`);
});

await step('tokens: revoking the token in use right after creating one keeps the new token on screen', async () => {
  // This browser signs in with a token of its own, so that revoking it leaves the test's admin.
  const own = await api('POST', '/api/tokens', { name: 'a11y browser', scope: 'admin' });
  check(own.status === 201, `cannot create a token: ${JSON.stringify(own.body)}`);
  await go('#/tokens');
  await page.evaluate((t) => localStorage.setItem('erp-bridge.token', t), own.body.token);
  await page.reload();
  await page.waitForSelector(`#tokens tr[data-id="${own.body.id}"] .badge.key`);
  await page.fill('#token-name', 'a11y new admin');
  await page.selectOption('#token-scope', 'admin');
  await page.click('#token-create');
  await page.waitForSelector('#new-token-value');
  const shown = await page.inputValue('#new-token-value');
  await page.click(`#tokens tr[data-id="${own.body.id}"] button.revoke`);
  await page.waitForTimeout(1000);
  check(await page.locator('#new-token-value').isVisible(), 'the new token is no longer shown');
  check(await page.inputValue('#new-token-value') === shown, 'the new token changed');
  const dlg = page.locator('dialog#signin[open]');
  if (await dlg.count()) {
    // The sign-in box may appear, but it must not cover the token: the token stays copyable.
    const covered = await page.evaluate(() => {
      const el = document.querySelector('#new-token-value');
      const r = el.getBoundingClientRect();
      const top = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
      return top !== el;
    });
    check(!covered, 'the sign-in box covers the new token');
  }
  await page.click('#new-token-copy');
  await page.evaluate((t) => localStorage.setItem('erp-bridge.token', t), shown);
});

await step('tokens: an expiry can be set, the list shows expiry and last use', async () => {
  await go('#/tokens');
  await page.waitForSelector('#tokens tbody tr');
  check(await page.locator('#token-expiry').count() === 1, 'the create form has no expiry');
  const headers = (await page.locator('#tokens thead').textContent()).toLowerCase();
  check(headers.includes('last used'), `the list has no "Last used" column: ${headers}`);
  check(headers.includes('expires'), `the list has no "Expires" column: ${headers}`);
  await page.fill('#token-name', 'a11y one day');
  await page.selectOption('#token-scope', 'read');
  await page.selectOption('#token-expiry', '1d');
  // The step before showed a new token too: wait for this one's panel, not that one's.
  const before = (await page.locator('#new-token').count()) ? await page.getAttribute('#new-token', 'data-id') : null;
  await page.click('#token-create');
  await page.waitForFunction(
    (prev) => {
      const el = document.querySelector('#new-token');
      return el && document.querySelector('#new-token-value') && el.getAttribute('data-id') !== prev;
    },
    before,
  );
  const id = await page.getAttribute('#new-token', 'data-id');
  const t = (await api('GET', '/api/tokens')).body.tokens.find((x) => x.id === id);
  const hours = (new Date(t.expires_at) - Date.now()) / 3600000;
  check(hours > 23 && hours <= 24, `a one-day token expires in ${hours.toFixed(1)} h`);
  const expires = await page.locator(`#tokens tr[data-id="${id}"] td.expires`).textContent();
  check(!/never/.test(expires), `the list says the one-day token expires ${expires}`);
  // The token this browser uses was used just now.
  const own = await page.locator('#tokens tr:has(.badge.key) td.last-used').textContent();
  check(!/never/.test(own), `the token in use shows last used: ${own}`);
});

await step('sign-out: clears the stored token and shows the sign-in box', async () => {
  await go('#/');
  await page.waitForSelector('#sign-out');
  await page.click('#sign-out');
  await page.waitForSelector('dialog#signin[open]');
  check(await page.evaluate(() => !localStorage.getItem('erp-bridge.token')), 'the token is still stored');
  await page.fill('dialog#signin input[name="token"]', apiToken);
  await page.keyboard.press('Enter');
  await page.waitForSelector('#connections tr[data-connection="demo"]');
});

await step('no uncaught error in the page', async () => {
  check(pageErrors.length === 0, `page errors: ${pageErrors.join('; ')}`);
});

if (failed.length) console.log(`\n${failed.length} check(s) failed:\n  ${failed.join('\n  ')}`);
await finish(failed.length ? 1 : 0);
