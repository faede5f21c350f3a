// Studio in a real browser: Debian's Chromium driven by playwright-core.
//
//   node ui-tests/studio.spec.mjs <erp-bridge base URL> <path of the app's .ionapi file> <admin API token>
//
// Exits 0 when every check passes; otherwise prints which check failed and why, saves a
// screenshot of the page at that moment, and exits 1. Screenshots go to a fresh temp folder
// (printed) and copies to /tmp/studio-*.png.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { WAIT, browserDriver, CheckFailed, check } from './harness.mjs';

const [base, ionapiPath, apiToken] = process.argv.slice(2);
if (!base || !ionapiPath || !apiToken) {
  console.error('usage: node studio.spec.mjs <erp-bridge base URL> <path of the .ionapi file> <admin API token>');
  process.exit(2);
}
const { chromium, executablePath: CHROMIUM } = await browserDriver();
const out = fs.mkdtempSync(path.join(os.tmpdir(), 'studio-ui-'));
const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'studio-chromium-'));
const started = Date.now();
const log = [];
const pageErrors = [];
const consoleErrors = [];
let page;
let context;

function elapsed() {
  return `${((Date.now() - started) / 1000).toFixed(1)} s`;
}

async function step(name, fn) {
  const t = Date.now();
  try {
    await fn();
  } catch (e) {
    const msg = e instanceof CheckFailed ? e.message : `${e.message.split('\n')[0]}`;
    const shot = path.join(out, 'failure.png');
    let where = '';
    try {
      where = page.url();
      await page.screenshot({ path: shot, fullPage: true });
      fs.copyFileSync(shot, '/tmp/studio-failure.png');
    } catch { /* the page may be gone */ }
    console.error(`\nFAIL: ${name}: ${msg}`);
    console.error(`  page: ${where}`);
    console.error(`  screenshot: ${shot} (copy: /tmp/studio-failure.png)`);
    if (pageErrors.length) console.error(`  page errors:\n    ${pageErrors.join('\n    ')}`);
    if (log.length) console.error(`  browser console (last 20):\n    ${log.slice(-20).join('\n    ')}`);
    if (!(e instanceof CheckFailed)) console.error(e.stack);
    await finish(1);
  }
  console.log(`ok   ${name} (${((Date.now() - t) / 1000).toFixed(1)} s)`);
}

async function finish(code) {
  try { if (context) await context.close(); } catch { /* closing */ }
  fs.rmSync(profile, { recursive: true, force: true });
  console.log(`${code === 0 ? 'PASS' : 'FAILED'}: Studio browser test in ${elapsed()}; screenshots in ${out}`);
  process.exit(code);
}

const go = async (hash) => {
  await page.goto(`${base}/studio/${hash}`);
};
const text = async (sel) => (await page.locator(sel).first().textContent({ timeout: WAIT })) || '';
const shot = async (name) => {
  const file = path.join(out, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  fs.copyFileSync(file, `/tmp/studio-${name}.png`);
};

// In the message types list of the current connection: a new mapping on `table`, found by `search`.
const newMappingOn = async (search, table) => {
  await page.click('#new-mapping');
  await page.fill('#table-search', search);
  await page.click(`#table-results button[data-table="${table}"]`);
  await page.waitForSelector('#columns tr[data-column]');
};
const isDisabled = (sel) => page.locator(sel).evaluate((el) => el.matches(':disabled'));
const apiStatus = async (method, p) => (await fetch(`${base}${p}`, { method, headers: { authorization: `Bearer ${apiToken}` } })).status;

// A whole-run guard: the test never hangs CI.
setTimeout(() => {
  console.error(`FAIL: the browser test did not finish within 180 s`);
  finish(1);
}, 180000).unref();

await step('launch Chromium', async () => {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1400, height: 900 },
    acceptDownloads: true,
  });
  context.setDefaultTimeout(WAIT);
  page = context.pages()[0] || (await context.newPage());
  page.on('console', (m) => {
    log.push(`${m.type()}: ${m.text()}`);
    // The browser logs every HTTP error answer; the test provokes some (400s) on purpose.
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) consoleErrors.push(m.text());
  });
  page.on('pageerror', (e) => pageErrors.push(e.message));
});

await step('sign in: a wrong token is refused, the admin token lets Studio in', async () => {
  await page.goto(`${base}/`);
  check(page.url().startsWith(`${base}/studio/`), `/ should redirect to /studio/, got ${page.url()}`);
  await page.waitForSelector('dialog#signin[open]');
  await page.fill('dialog#signin input[name="token"]', 'ebt_nope.wrong');
  await page.click('dialog#signin button');
  await page.waitForFunction(() => {
    const d = document.querySelector('dialog#signin[open] p');
    return d && d.textContent.includes('refused');
  });
  await page.fill('dialog#signin input[name="token"]', apiToken);
  await page.click('dialog#signin button');
  await page.waitForSelector('dialog#signin', { state: 'detached' });
  check(!(await page.content()).includes(apiToken), 'the token must not be shown on the page');
});

await step('connections list shows demo Healthy', async () => {
  await page.goto(`${base}/`);
  await page.waitForSelector('#connections tr[data-connection="demo"] [data-m3="Healthy"]');
  check((await page.locator('#setup').textContent()).includes('Set up M3 connection'), 'the "Set up M3 connection" button is missing');
});

await step('dashboard shows the Item table with messages > 0', async () => {
  await page.click('#connections tr[data-connection="demo"] a');
  await page.waitForFunction(() => location.hash === '#/c/demo');
  await page.waitForFunction(() => {
    const td = document.querySelector('#tables tr[data-mapping="Item"] td.messages');
    return td && Number(td.textContent.replace(/[^0-9]/g, '')) > 0;
  });
  check((await text('#tables tr[data-mapping="Item"]')).includes('MITMAS'), 'the Item row does not name MITMAS');
  // A few refreshes so the messages-per-minute chart has a line, and it refreshed in place.
  const first = await text('#view .pagehead .muted');
  await page.evaluate(() => { window.studioNotReloaded = true; });
  await page.waitForSelector('svg.chart polyline', { state: 'attached', timeout: 15000 });
  await page.waitForFunction((t) => document.querySelector('#view .pagehead .muted').textContent !== t, first)
    .catch(() => { throw new CheckFailed('the dashboard did not refresh itself within 20 s'); });
  check(await page.evaluate(() => window.studioNotReloaded === true), 'the dashboard reloaded the whole page');
  await shot('dashboard');
});

const ionText = fs.readFileSync(ionapiPath, 'utf8');
const ion = JSON.parse(ionText);
const secrets = ['cs', 'saak', 'sask'].map((k) => ion[k]).filter((v) => typeof v === 'string' && v.length >= 4);

let webhookToken;
await step('wizard: create the hosted connection second; its webhook token is shown once', async () => {
  await go('#/wizard');
  await page.waitForSelector('#conn-name');
  check(!/not available/i.test(await page.locator('#view').innerText()), 'the wizard still says something is not available');
  await page.fill('#conn-name', 'Second!');
  await page.click('#create');
  await page.waitForSelector('#create-error [role="alert"]');
  check((await text('#create-error')).includes('name'), `the error does not name the field: ${await text('#create-error')}`);
  check(await page.locator('#conn-name.invalid').count() === 1, 'the wrong name is not marked');
  await page.fill('#conn-name', 'second');
  await page.check('input[name="hosting"][value="hosted"]');
  await page.click('#create');
  await page.waitForSelector('#webhook-token');
  check(page.url().endsWith('#/wizard/second'), `the address did not follow the new connection: ${page.url()}`);
  check(await isDisabled('#conn-name'), 'the name can still be changed');
  check(await page.locator('#create').isHidden(), 'the "Create connection" button is still shown');
  webhookToken = await page.inputValue('#webhook-token-value');
  check(webhookToken.length >= 20, `the webhook token looks wrong: ${webhookToken}`);
  check((await text('#webhook-token')).includes('shown once'), 'the webhook token has no "shown once" note');
  check(await page.locator('#webhook-token-copy').isVisible(), 'no copy button for the webhook token');
  await page.waitForSelector('#wizard-status[data-running="false"] [data-m3="NotConfigured"]');
});

await step('wizard: MDP: a bad on-premises URL names url; through the gateway is saved', async () => {
  check(await page.locator('#mdp-url').isHidden(), 'the on-premises fields show for the gateway');
  await page.check('input[name="mdp-via"][value="direct"]');
  await page.fill('#mdp-url', 'mdp.example');
  await page.fill('#mdp-username', 'mdpuser');
  await page.fill('#mdp-password', 'not-saved');
  await page.click('#mdp-save');
  await page.waitForSelector('#mdp-error [role="alert"]');
  const err = await text('#mdp-error');
  check(err.includes('url'), `the MDP error does not name the url: ${err}`);
  check(await page.locator('#mdp-url.invalid').count() === 1, 'the wrong URL is not marked');
  await page.check('input[name="mdp-via"][value="gateway"]');
  check(await page.locator('#mdp-url').isHidden(), 'the on-premises fields still show');
  await page.click('#mdp-save');
  await page.waitForSelector('#mdp-saved');
  check(await page.locator('#mdp-error [role="alert"]').count() === 0, 'the MDP error stayed after saving');
});

await step('wizard: a broken .ionapi file (no saak) names saak and is not saved', async () => {
  const broken = { ...ion };
  delete broken.saak;
  await page.setInputFiles('#ionapi-file', { name: 'no-saak.ionapi', mimeType: 'application/json', buffer: Buffer.from(JSON.stringify(broken)) });
  await page.waitForSelector('#ionapi-result[data-saved="false"]');
  await page.waitForSelector('#ionapi-errors li[data-key="saak"]');
  const errs = await text('#ionapi-errors');
  check(errs.includes('saak'), `the error does not name saak: ${errs}`);
  check((await page.getAttribute('#ionapi-status [data-m3]', 'data-m3')) === 'Invalid', 'the status is not Invalid');
  check(await page.locator('#ionapi-stored').count() === 0, 'a broken file is shown as saved');
  check((await page.getAttribute('#wizard-status', 'data-running')) === 'false', 'second runs with a broken file');
});

await step('wizard: the good .ionapi file is Healthy and saved; second runs; MDP finds tables', async () => {
  await page.setInputFiles('#ionapi-file', ionapiPath);
  await page.waitForSelector('#ionapi-result[data-saved="true"]');
  const status = await page.getAttribute('#ionapi-status [data-m3]', 'data-m3');
  check(status === 'Healthy', `the valid .ionapi file was judged ${status}: ${await text('#ionapi-result')}`);
  await page.waitForSelector('li[data-check="token"][data-ok="true"]');
  await page.waitForSelector('li[data-check="mi"][data-ok="true"]');
  await page.waitForSelector('#ionapi-stored');
  const stored = await text('#ionapi-stored');
  check(stored.includes('secrets are never shown again'), `the saved file says: ${stored}`);
  check(!ion.ti || stored.includes(ion.ti), `the saved summary does not name the tenant ${ion.ti}: ${stored}`);
  await page.waitForSelector('#wizard-status[data-running="true"]');
  // MDP through the gateway was waiting for the .ionapi file: now it is checked.
  await page.waitForSelector('li[data-check="mdp"][data-ok="true"]');
  check(Number((await text('#mdp-count')).replace(/[^0-9]/g, '')) > 0, 'no table found through MDP');
  // Save & check again: now checked with the saved .ionapi file.
  await page.click('#mdp-save');
  await page.waitForSelector('#mdp-saved');
  await page.waitForSelector('li[data-check="mdp"][data-ok="true"]');
  check(Number((await text('#mdp-count')).replace(/[^0-9]/g, '')) > 0, `MDP save & check found no table: ${await text('#mdp-result')}`);
  await page.waitForSelector('#wizard-status[data-running="true"]');
  check((await page.getAttribute('#create-mapping', 'href')) === '#/c/second/mappings/new', 'no "Create a mapping" link');
  check((await page.getAttribute('#open-dashboard', 'href')) === '#/c/second', 'no "Open dashboard" link');
  const all = await page.locator('body').innerText();
  for (const s of secrets) check(!all.includes(s), 'a secret of the .ionapi file is displayed');
  await shot('wizard');
});

await step('wizard: a reload resumes second; the webhook token is gone', async () => {
  await page.reload();
  await page.waitForSelector('#ionapi-stored');
  check((await page.inputValue('#conn-name')) === 'second', 'the name is not second after a reload');
  check(await isDisabled('#conn-name'), 'the name can be changed after a reload');
  check(await page.locator('#webhook-token').count() === 0, 'the webhook token is shown again');
  check(!(await page.content()).includes(webhookToken), 'the webhook token is still on the page');
  await page.waitForSelector('li[data-check="mdp"][data-ok="true"]');
  check(await page.isChecked('input[name="mdp-via"][value="gateway"]'), 'the saved MDP choice is not shown');
});

await step('connections list shows second running and hosted, deletable; demo is not deletable', async () => {
  await page.click('.topnav a[href="#/"]');
  const row = '#connections tr[data-connection="second"][data-running="true"]';
  await page.waitForSelector(row);
  check((await text(`${row} td.hosting`)).trim() === 'Hosted', `second's hosting says ${await text(`${row} td.hosting`)}`);
  check(await page.locator(`${row} .setup-incomplete`).count() === 0, 'a running connection says setup incomplete');
  await page.waitForSelector(`${row} button.delete`);
  check(await page.locator('#connections tr[data-connection="demo"] button.delete').count() === 0, 'the demo connection of the configuration can be deleted');
});

const secondType = `Extension${Date.now() % 100000}`;
await step('second: a mapping on the custom MDP table CUGEX1, saved and deployed', async () => {
  await page.click('#connections tr[data-connection="second"] a');
  await page.waitForFunction(() => location.hash === '#/c/second');
  await page.click('#subnav a[href="#/c/second/types"]');
  await newMappingOn('CUGEX', 'CUGEX1');
  check((await text('#view')).includes('Metadata Publisher'), 'CUGEX1 does not come from the Metadata Publisher');
  for (const c of ['F1A030', 'F1N096']) await page.check(`#columns tr[data-column="${c}"] input[type="checkbox"]`);
  await page.fill('#mapping-name', secondType);
  await page.waitForFunction(() => {
    const p = document.querySelector('#preview');
    return p && p.dataset.state === 'ok' && p.querySelector('.msg');
  });
  await shot('editor-second');
  await page.click('#deploy');
  await page.waitForSelector('#deploy-result');
  check(page.url().endsWith(`#/c/second/mappings/${secondType}`), `the address did not follow the saved name: ${page.url()}`);
});

await step('second: its message browser shows its messages', async () => {
  await page.click('#subnav a[href="#/c/second/messages"]');
  await page.waitForSelector(`#messages tr.msgrow[data-type="${secondType}Updated"]`);
  const types = await page.locator('#messages tr.msgrow').evaluateAll((trs) => [...new Set(trs.map((t) => t.dataset.type))]);
  check(types.every((t) => t.startsWith(secondType)), `second's browser shows other connections' messages: ${types.join(', ')}`);
  await shot('messages-second');
});

await step('wizard: self-hosted edge: create, download the connector bundle, waiting for the connector', async () => {
  await page.click('.topnav a[href="#/wizard"]');
  await page.waitForSelector('#conn-name');
  await page.fill('#conn-name', 'edge');
  await page.check('input[name="hosting"][value="self-hosted"]');
  check((await text('#self-hosted-note')).includes('connector'), 'self-hosted does not explain the connector');
  await page.click('#create');
  await page.waitForSelector('#bundle-download');
  check(page.url().endsWith('#/wizard/edge'), `the address did not follow the new connection: ${page.url()}`);
  await page.waitForFunction(() => document.querySelector('#connector-state')?.textContent.includes('Waiting for the connector to call home'))
    .catch(() => { throw new CheckFailed('no "Waiting for the connector to call home" line'); });
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#bundle-download')]);
  check(download.suggestedFilename() === 'erp-bridge-connector-edge.tar', `the download is named ${download.suggestedFilename()}`);
  const file = path.join(out, 'bundle.tar');
  await download.saveAs(file);
  const tar = fs.readFileSync(file, 'latin1');
  fs.rmSync(file); // it holds a connector token
  check(tar.includes('bundle.toml') && tar.includes('Containerfile') && tar.includes('README.md'), 'the bundle lacks bundle.toml, Containerfile or README.md');
  check(/token = "ebt_/.test(tar) && tar.includes('connection = "edge"'), 'bundle.toml has no connector token for edge');
  await page.waitForSelector('#bundle-note');
  await shot('wizard-self-hosted');
});

await step('connections list: edge is self-hosted with setup incomplete; delete it (confirmed)', async () => {
  await page.click('.topnav a[href="#/"]');
  const row = '#connections tr[data-connection="edge"]';
  await page.waitForSelector(`${row} a.setup-incomplete`);
  check((await page.getAttribute(`${row} a.setup-incomplete`, 'href')) === '#/wizard/edge', 'setup incomplete does not link to the wizard');
  check((await text(`${row} td.hosting`)).includes('Self-hosted'), `edge's hosting says ${await text(`${row} td.hosting`)}`);
  await page.waitForSelector(`${row} button.delete`);
  await shot('connections');
  let asked = '';
  page.removeAllListeners('dialog');
  page.once('dialog', (d) => { asked = d.message(); d.accept(); });
  await page.click(`${row} button.delete`);
  await page.waitForSelector(row, { state: 'detached' });
  check(asked.includes('Delete'), `deleting did not ask to confirm (asked: ${asked})`);
  await page.waitForSelector('#deleted');
  const gone = await apiStatus('GET', '/api/connections/edge');
  check(gone === 404, `GET /api/connections/edge after deleting answered ${gone}`);
  check(await page.locator('#connections tr[data-connection="second"]').count() === 1, 'second is gone too');
});

const typeName = `StudioItem${Date.now() % 100000}`;

await step('mapping editor: search MIT, pick MITMAS, key columns locked', async () => {
  await go('#/c/demo/types');
  await newMappingOn('MIT', 'MITMAS');
  const keys = page.locator('#columns tr[data-key="true"] input[type="checkbox"]');
  const n = await keys.count();
  check(n >= 1, 'no key column in the grid');
  for (let i = 0; i < n; i++) {
    check(await keys.nth(i).isChecked(), 'a key column is not selected');
    check(await keys.nth(i).isDisabled(), 'a key column can be unselected');
  }
});

await step('mapping editor: select and rename columns, bad filter shows the server error, live preview', async () => {
  const others = await page.locator('#columns tr[data-key="false"]').evaluateAll((trs) => trs.map((t) => t.dataset.column));
  const wanted = ['MMITDS', 'MMSTAT', 'MMUNMS'].filter((c) => others.includes(c));
  const picks = wanted.length === 3 ? wanted : others.slice(0, 3);
  for (const c of picks) await page.check(`#columns tr[data-column="${c}"] input[type="checkbox"]`);
  await page.fill(`#columns tr[data-column="${picks[0]}"] input[type="text"]`, 'itemTitle');
  await page.fill('#column-filter', picks[1]);
  check(await page.locator(`#columns tr[data-column="${picks[0]}"]`).isHidden(), 'the quick filter does not hide other columns');
  await page.fill('#column-filter', '');
  await page.check('#hide-unselected');
  check(await page.locator('#columns tbody tr:not([hidden])').count() === picks.length + (await page.locator('#columns tr[data-key="true"]').count()), 'hide unselected shows unselected columns');
  await page.uncheck('#hide-unselected');
  await page.fill('#mapping-filter', 'MMSTAT ==');
  await page.waitForSelector('#filter-message .status-bad');
  await page.fill('#mapping-filter', '');
  await page.waitForFunction(() => {
    const p = document.querySelector('#preview');
    return p && p.dataset.state === 'ok' && p.textContent.includes('itemTitle');
  });
  await page.fill('#mapping-name', typeName);
  await page.fill('#mapping-description', 'Items, as shaped in Studio');
});

await step('mapping editor: unsaved changes are guarded', async () => {
  let asked = false;
  page.once('dialog', (d) => { asked = true; d.dismiss(); });
  await page.click('#subnav a[href="#/c/demo"]');
  await page.waitForTimeout(300);
  check(asked, 'leaving with unsaved changes did not ask');
  check(page.url().endsWith('#/c/demo/mappings/new'), `after refusing to leave, the page is ${page.url()}`);
  await page.waitForFunction(() => document.querySelector('#preview').textContent.includes('itemTitle'));
  await shot('editor');
});

await step('mapping editor: save, then deploy', async () => {
  await page.click('#save');
  await page.waitForSelector('#save-result');
  check((await text('#save-result')).includes('version 1'), `save said: ${await text('#save-result')}`);
  check(page.url().endsWith(`#/c/demo/mappings/${typeName}`), `the address did not follow the saved name: ${page.url()}`);
  await page.click('#deploy');
  await page.waitForSelector('#deploy-result');
});

await step('message types list shows the new type deployed', async () => {
  await page.click('#subnav a[href="#/c/demo/types"]');
  await page.waitForSelector(`#types tr[data-mapping="${typeName}"] td.deployed .badge.ok`);
  check((await text(`#types tr[data-mapping="${typeName}"]`)).includes('v1 deployed'), 'not shown as v1 deployed');
  await shot('types');
});

await step('mapping editor opens an existing mapping unchanged', async () => {
  await page.click('#types tr[data-mapping="Item"] a');
  await page.waitForSelector('#columns tr[data-column="MMITNO"]');
  await page.waitForFunction(() => document.querySelector('#preview')?.dataset.state === 'ok');
  check((await text('#mapping-name')) === '' && (await page.inputValue('#mapping-name')) === 'Item', 'the name is not Item');
  check((await text('.dirty-flag')) === '', 'an untouched mapping shows unsaved changes');
  let asked = false;
  page.once('dialog', (d) => { asked = true; d.accept(); });
  await page.click('#subnav a[href="#/c/demo/messages"]');
  await page.waitForFunction(() => location.hash === '#/c/demo/messages');
  check(!asked, 'leaving an untouched mapping asked to confirm');
});

await step('message browser shows messages with CloudEvents attributes; AsyncAPI and OpenAPI documents open', async () => {
  await go('#/c/demo/messages');
  await page.waitForSelector('#messages tr.msgrow');
  await page.click('#messages tr.msgrow >> nth=0');
  const detail = await text('#messages tr.msgdetail:not([hidden])');
  check(detail.includes('specversion') && detail.includes('1.0'), 'the expanded message shows no CloudEvents attributes');
  await page.selectOption('#msg-type', 'ItemUpdated');
  await page.waitForFunction(() => {
    const rows = [...document.querySelectorAll('#messages tr.msgrow')];
    return rows.length > 0 && rows.every((r) => r.dataset.type === 'ItemUpdated');
  });
  await page.click('#asyncapi-link');
  await page.waitForFunction(() => document.querySelector('#schemas pre.json')?.textContent.includes('asyncapi'));
  await page.click('#openapi-link');
  await page.waitForFunction(() => document.querySelector('#schemas pre.json')?.textContent.includes('"openapi"'));
  await shot('messages');
});

let itemNumber;
await step('read model browser shows items', async () => {
  await go('#/c/demo/read-models');
  await page.selectOption('#rm-resource', 'items');
  await page.waitForSelector('#rm-items tbody tr td:not(.empty)');
  check((await page.locator('#rm-items tbody tr').count()) > 1, 'fewer than 2 items');
  const headers = await page.locator('#rm-items thead th').allTextContents();
  const col = headers.indexOf('itemNumber');
  check(col >= 0, `no itemNumber column: ${headers.join(', ')}`);
  itemNumber = (await page.locator(`#rm-items tbody tr >> nth=0 >> td >> nth=${col}`).textContent()).trim();
  await shot('read-models');
  await page.click('#rm-next');
  await page.waitForFunction(() => document.querySelector('#rm-page')?.textContent.startsWith('Page 2'));
});

await step('commands panel sends UpdateItem and shows the receipt succeeded', async () => {
  await go('#/c/demo/commands');
  await page.selectOption('#cmd-name', 'UpdateItem');
  await page.fill('#cmd-fields input[name="itemNumber"]', itemNumber);
  await page.fill('#cmd-fields input[name="name"]', 'Renamed from Studio');
  await page.click('#cmd-send');
  await page.waitForSelector('#cmd-status');
  const status = await text('#cmd-status');
  check(status === 'succeeded', `the receipt says ${status}: ${await text('#cmd-receipt')}`);
  await shot('commands');
});

let rmToken;
let rmTokenId;
await step('tokens: create a read-model token for demo, shown once with a copy button', async () => {
  await page.click('#nav-tokens');
  await page.waitForFunction(() => location.hash === '#/tokens');
  await page.waitForSelector('#tokens tbody tr[data-id]');
  check((await text('#token-help')).includes('consumers of the read models'), 'no help text on read-model tokens');
  await page.fill('#token-name', 'UI test read models');
  await page.selectOption('#token-scope', 'read-model');
  await page.selectOption('#token-connection', 'demo');
  await page.click('#token-create');
  await page.waitForSelector('#new-token');
  rmToken = await page.inputValue('#new-token-value');
  rmTokenId = await page.getAttribute('#new-token', 'data-id');
  check(/^ebt_[^.]+\..+/.test(rmToken || ''), `the new token does not look like a token: ${rmToken}`);
  check((await text('#new-token')).includes('will not be shown again'), 'the new token has no "will not be shown again" warning');
  check(await page.locator('#new-token-copy').isVisible(), 'no copy button');
  const row = `#tokens tr[data-id="${rmTokenId}"][data-revoked="false"]`;
  await page.waitForSelector(row);
  const rowText = await text(row);
  check(rowText.includes('read-model') && rowText.includes('demo'), `the token row says: ${rowText}`);
  check(!rowText.includes(rmToken), 'the token list shows the secret');
  await shot('tokens');
});

const callWith = async (tok, p) => (await fetch(`${base}${p}`, { headers: { authorization: `Bearer ${tok}` } })).status;

await step('tokens: the read-model token reads read models (200), not messages (403)', async () => {
  const rm = await callWith(rmToken, '/api/connections/demo/read-models/items');
  check(rm === 200, `GET read-models/items with the read-model token answered ${rm}`);
  const msgs = await callWith(rmToken, '/api/connections/demo/messages');
  check(msgs === 403, `GET messages with the read-model token answered ${msgs}`);
});

await step('tokens: the new token is gone after navigating away', async () => {
  await go('#/');
  await page.waitForSelector('#connections tr[data-connection="demo"]');
  await page.click('#nav-tokens');
  await page.waitForSelector(`#tokens tr[data-id="${rmTokenId}"]`);
  check(await page.locator('#new-token').count() === 0, 'the new token is still shown');
  check(!(await page.content()).includes(rmToken), 'the token secret is still on the page');
});

await step('tokens: revoke it in the UI (confirmed), then it gets 401', async () => {
  let asked = '';
  page.removeAllListeners('dialog'); // an earlier step's unused `once` handler must not answer this one
  page.once('dialog', (d) => { asked = d.message(); d.accept(); });
  await page.click(`#tokens tr[data-id="${rmTokenId}"] button.revoke`);
  await page.waitForSelector(`#tokens tr[data-id="${rmTokenId}"][data-revoked="true"]`);
  check(asked.includes('Revoke'), `revoking did not ask to confirm (asked: ${asked})`);
  const after = await callWith(rmToken, '/api/connections/demo/read-models/items');
  check(after === 401, `GET read-models/items with the revoked token answered ${after}`);
});

const r0 = '#cmd-params tr[data-row="0"]';
const r1 = '#cmd-params tr[data-row="1"]';
await step('commands editor: new command, the program transactions offered, MI fields loaded, live schema, a bad MI field shows the server error', async () => {
  await go('#/c/demo/commands');
  await page.click('#new-command');
  await page.waitForFunction(() => location.hash === '#/c/demo/commands/new');
  await page.fill('#cmd-map-name', 'RenameItemUi');
  await page.fill('#cmd-map-description', 'Rename an item (made in Studio).');
  await page.fill('#cmd-map-program', 'MMS200MI');
  await page.waitForSelector('#mi-transaction-list option[value="UpdItmBasic"]', { state: 'attached' });
  check((await text('#mi-transaction-hint')).includes('transactions of MMS200MI'), 'no transaction count for MMS200MI');
  await page.fill('#cmd-map-transaction', 'UpdItmBasic');
  await page.click('#cmd-load-fields');
  await page.waitForSelector('#mi-fields tr[data-mi="ITNO"]');
  check(await page.locator('#mi-fields tr[data-mi="ITDS"]').count() === 1, 'UpdItmBasic lists no ITDS field');
  await page.click('#mi-fields tr[data-mi="ITNO"] button');
  await page.fill(`${r0} input[name="field"]`, 'itemNumber');
  await page.check(`${r0} input[name="required"]`);
  await page.click('#cmd-add-param');
  await page.fill(`${r1} input[name="field"]`, 'newName');
  await page.fill(`${r1} input[name="mi"]`, 'ITNOX');
  await page.check(`${r1} input[name="required"]`);
  await page.waitForFunction(() => {
    const s = JSON.parse(document.querySelector('#cmd-schema').textContent);
    return s.title === 'RenameItemUi' && s.properties.data.required.join() === 'itemNumber,newName';
  }).catch(() => { throw new CheckFailed('the JSON Schema preview does not follow the parameters'); });
  await page.click('#cmd-save');
  await page.waitForSelector('#cmd-save-error');
  const err = await text('#cmd-save-error');
  check(err.includes('parameters[1].mi') && err.includes('ITNOX'), `the save error does not name the field: ${err}`);
  check(await page.locator(`${r1} input[name="mi"].invalid`).count() === 1, 'the wrong MI field is not marked');
});

await step('commands editor: fix the MI field and save', async () => {
  await page.fill(`${r1} input[name="mi"]`, 'ITDS');
  await page.click('#cmd-save');
  await page.waitForSelector('#cmd-save-result');
  check((await text('#cmd-save-result')).includes('version 1'), `save said: ${await text('#cmd-save-result')}`);
  check(page.url().endsWith('#/c/demo/commands/RenameItemUi'), `the address did not follow the saved name: ${page.url()}`);
  check(await page.locator('#cmd-params .invalid').count() === 0, 'an error mark stayed after saving');
  await shot('commands-editor');
});

await step('commands: send RenameItemUi from the send form, receipt succeeded', async () => {
  await page.click('#subnav a[href="#/c/demo/commands"]');
  await page.waitForSelector('#command-mappings tr[data-command="RenameItemUi"]');
  await page.selectOption('#cmd-name', 'RenameItemUi');
  await page.fill('#cmd-fields input[name="itemNumber"]', itemNumber);
  await page.fill('#cmd-fields input[name="newName"]', 'Renamed by RenameItemUi');
  await page.click('#cmd-send');
  await page.waitForSelector('#cmd-status');
  const status = await text('#cmd-status');
  check(status === 'succeeded', `the receipt says ${status}: ${await text('#cmd-receipt')}`);
});

await step('commands editor: delete RenameItemUi (confirmed)', async () => {
  await page.click('#command-mappings tr[data-command="RenameItemUi"] a');
  await page.waitForSelector(`${r1} input[name="mi"]`);
  check((await page.inputValue(`${r1} input[name="mi"]`)) === 'ITDS', 'the saved command does not load back');
  let asked = '';
  page.removeAllListeners('dialog'); // an earlier step's unused `once` handler must not answer this one
  page.once('dialog', (d) => { asked = d.message(); d.accept(); });
  await page.click('#cmd-delete');
  await page.waitForFunction(() => location.hash === '#/c/demo/commands');
  await page.waitForSelector('#cmd-mappings');
  check(asked.includes('Delete'), `deleting did not ask to confirm (asked: ${asked})`);
  check(await page.locator('#command-mappings tr[data-command="RenameItemUi"]').count() === 0, 'RenameItemUi is still listed');
});

await step('no uncaught error in the page and no console error', async () => {
  check(pageErrors.length === 0, `page errors: ${pageErrors.join('; ')}`);
  check(consoleErrors.length === 0, `console errors: ${consoleErrors.join('; ')}`);
});

await finish(0);
