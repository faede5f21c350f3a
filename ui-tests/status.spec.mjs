// Status lights and connection setup in a real browser (issue 15): Debian's Chromium driven by
// playwright-core.
//
//   node ui-tests/status.spec.mjs <erp-bridge base URL> <.ionapi file> <admin API token> <screenshot dir> <stopped self-hosted connection>
//
// The Rust side (crates/erp-bridge/tests/api/ui.rs) starts erp-bridge and a self-hosted connector,
// lets it call home and poll, then stops it. Each check fails on a Studio whose lights say
// "Healthy" for a stopped connector, "Not checked yet" for refused credentials, saves a failing
// MDP URL over a working one, finds tables by name prefix only, or has no Configuration tab.
// Exits 0 when every check passes; otherwise prints the failed check and exits 1. Screenshots of
// every view touched, at 1440 and 390 px, go to <screenshot dir>.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { WAIT, browserDriver, CheckFailed, check } from './harness.mjs';

const [base, ionapiPath, apiToken, shotsDir, edge] = process.argv.slice(2);
if (!base || !ionapiPath || !apiToken || !shotsDir || !edge) {
  console.error('usage: node status.spec.mjs <base URL> <.ionapi file> <admin API token> <screenshot dir> <stopped self-hosted connection>');
  process.exit(2);
}
const { chromium, executablePath: CHROMIUM } = await browserDriver();
fs.mkdirSync(shotsDir, { recursive: true });
const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'status-chromium-'));
const started = Date.now();
const pageErrors = [];
let page;
let context;

async function finish(code) {
  try { if (context) await context.close(); } catch { /* closing */ }
  fs.rmSync(profile, { recursive: true, force: true });
  console.log(`${code === 0 ? 'PASS' : 'FAILED'}: status browser test in ${((Date.now() - started) / 1000).toFixed(1)} s; screenshots in ${shotsDir}`);
  process.exit(code);
}

async function step(name, fn) {
  const t = Date.now();
  try {
    await fn();
  } catch (e) {
    const msg = e instanceof CheckFailed ? e.message : e.message.split('\n')[0];
    let where = '';
    try {
      where = page.url();
      await page.screenshot({ path: path.join(shotsDir, 'status-failure.png'), fullPage: true });
    } catch { /* the page may be gone */ }
    console.error(`\nFAIL: ${name}: ${msg}\n  page: ${where}\n  screenshot: ${path.join(shotsDir, 'status-failure.png')}`);
    if (pageErrors.length) console.error(`  page errors:\n    ${pageErrors.join('\n    ')}`);
    if (!(e instanceof CheckFailed)) console.error(e.stack);
    await finish(1);
  }
  console.log(`ok   ${name} (${((Date.now() - t) / 1000).toFixed(1)} s)`);
}

const go = async (hash) => {
  await page.goto(`${base}/studio/${hash}`);
};
// A screenshot at both widths (the page is left at 1440 px).
const shots = async (name) => {
  for (const width of [1440, 390]) {
    await page.setViewportSize({ width, height: 900 });
    await page.waitForTimeout(150);
    await page.screenshot({ path: path.join(shotsDir, `${name}-${width}.png`), fullPage: true });
  }
  await page.setViewportSize({ width: 1440, height: 900 });
};
const api = async (method, p, body) => {
  const r = await fetch(`${base}${p}`, {
    method,
    headers: { authorization: `Bearer ${apiToken}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : null };
};
const lightOf = (sel) => page.locator(`${sel} [data-state]`).first().getAttribute('data-state', { timeout: WAIT });
const isRed = (sel) => page.locator(`${sel} .status[data-state]`).first().evaluate((el) => el.classList.contains('status-bad'));

setTimeout(() => {
  console.error('FAIL: the status browser test did not finish within 180 s');
  finish(1);
}, 180000).unref();

await step('launch Chromium, signed in with the admin token', async () => {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1440, height: 900 },
  });
  context.setDefaultTimeout(WAIT);
  await context.addInitScript((t) => { localStorage.setItem('erp-bridge.token', t); }, apiToken);
  page = context.pages()[0] || (await context.newPage());
  page.on('pageerror', (e) => pageErrors.push(e.message));
  page.on('dialog', (d) => d.accept());
});

await step(`list: the stopped self-hosted connector of ${edge} is red "Disconnected"`, async () => {
  await go('#/');
  const row = `#connections tr[data-connection="${edge}"]`;
  await page.waitForSelector(`${row} td.m3 [data-state]`);
  const state = await lightOf(`${row} td.m3`);
  check(state === 'Disconnected', `${edge} shows ${state}, not Disconnected`);
  check(await isRed(`${row} td.m3`), 'Disconnected is not red');
  check(await page.locator(`${row} .status-ok`).count() === 0, `${edge} shows something green while its connector is stopped`);
  await shots('status-list');
});

await step(`dashboard: ${edge} is red "Disconnected", its last report greyed, nothing green`, async () => {
  await go(`#/c/${edge}`);
  await page.waitForSelector('#connection-status [data-state]');
  const state = await lightOf('#connection-status');
  check(state === 'Disconnected', `the dashboard shows ${state}`);
  check(await isRed('#connection-status'), 'Disconnected is not red');
  await page.waitForSelector('#tables tr[data-mapping]');
  const green = await page.locator('#tables .status-ok, .cards .status-ok').count();
  check(green === 0, `${green} green light(s) on the dashboard of a stopped connector`);
  const phase = await page.locator('#tables td.phase').first().getAttribute('data-phase');
  check(phase !== 'polling', 'the dashboard still says "polling"');
  await shots('status-dashboard-disconnected');
});

// An .ionapi file whose secret M3 refuses.
const wrongIon = path.join(profile, 'wrong.ionapi');
const ion = JSON.parse(fs.readFileSync(ionapiPath, 'utf8'));
fs.writeFileSync(wrongIon, JSON.stringify({ ...ion, sask: 'not-the-secret' }));

await step('wizard: credentials M3 refuses are red AuthenticationFailed, never "runs" in green', async () => {
  await go('#/wizard');
  await page.fill('#conn-name', 'refused');
  await page.click('#create');
  await page.waitForSelector('#webhook-token');
  await page.setInputFiles('#ionapi-file', wrongIon);
  await page.waitForSelector('#ionapi-status [data-m3]');
  const status = await page.locator('#ionapi-status [data-m3]').getAttribute('data-m3');
  check(status === 'AuthenticationFailed', `the check says ${status}`);
  check(await page.locator('#ionapi-result .alert-ok').count() === 0, 'a refused file is reported in green');
  await page.waitForSelector('#wizard-status [data-state="AuthenticationFailed"]');
  await shots('status-wizard-refused');
});

await step('list and dashboard: refused credentials show AuthenticationFailed, not "Not checked yet"', async () => {
  await go('#/');
  const cell = '#connections tr[data-connection="refused"] td.m3';
  await page.waitForSelector(`${cell} [data-state]`);
  check(await lightOf(cell) === 'AuthenticationFailed', `the list shows ${await lightOf(cell)}`);
  check(await isRed(cell), 'AuthenticationFailed is not red in the list');
  await go('#/c/refused');
  await page.waitForSelector('#connection-status [data-state]');
  check(await lightOf('#connection-status') === 'AuthenticationFailed', `the dashboard shows ${await lightOf('#connection-status')}`);
  check((await page.locator('#connection-status').textContent()).length > 'Authentication failed'.length, 'M3\'s message is missing');
  await shots('status-dashboard-refused');
});

await step('wizard: a failing on-premises MDP URL is not saved over the working gateway', async () => {
  await go('#/wizard');
  await page.fill('#conn-name', 'mdpwork');
  await page.click('#create');
  await page.waitForSelector('#webhook-token');
  await page.setInputFiles('#ionapi-file', ionapiPath);
  await page.waitForSelector('#ionapi-status [data-m3="Healthy"]');
  await page.waitForSelector('#ionapi-reachable li[data-reach="tables"]');
  await page.click('#mdp-save');
  await page.waitForSelector('li[data-check="mdp"][data-ok="true"]');
  await page.waitForSelector('#mdp-tables li[data-table="OCUSMA"]');
  await page.check('input[name="mdp-via"][value="direct"]');
  await page.fill('#mdp-url', 'http://127.0.0.1:9/mdprest');
  await page.fill('#mdp-username', 'mdpuser');
  await page.fill('#mdp-password', 'mdppassword');
  await page.click('#mdp-save');
  await page.waitForSelector('#mdp-not-saved');
  const d = await api('GET', '/api/connections/mdpwork');
  check(d.body.mdp.via === 'gateway', `the failing URL was saved: ${JSON.stringify(d.body.mdp)}`);
  await shots('status-wizard-mdp-not-saved');
});

await step('mapping editor: "customer" finds OCUSMA by description; ArrowDown enters, Enter picks', async () => {
  await go('#/c/demo/mappings/new');
  await page.fill('#table-search', 'customer');
  await page.waitForSelector('#table-results button[data-table="OCUSMA"]');
  await page.focus('#table-search');
  await page.keyboard.press('ArrowDown');
  const focused = await page.evaluate(() => document.activeElement && document.activeElement.dataset.table);
  check(focused === 'OCUSMA', `ArrowDown focused ${focused}, not the best match OCUSMA`);
  await page.keyboard.press('Enter');
  await page.waitForSelector('#columns tr[data-column]');
  await shots('status-table-search');
});

await step('Configuration tab: name, hosting, MDP, .ionapi, webhook token rotation, Kafka topics', async () => {
  await go('#/c/mdpwork');
  await page.click('#subnav a:has-text("Configuration")');
  await page.waitForFunction(() => location.hash === '#/c/mdpwork/config');
  await page.waitForSelector('#wizard-status [data-state]');
  for (const sel of ['#conn-name', 'input[name="hosting"]', '#mdp-form', '#ionapi-file', '#webhook-rotate', '#kafka-topics']) {
    check(await page.locator(sel).count() > 0, `the Configuration tab has no ${sel}`);
  }
  check(await page.inputValue('#conn-name') === 'mdpwork', 'the name is not shown');
  await page.click('#webhook-rotate');
  await page.waitForSelector('#webhook-token-value');
  const token = await page.inputValue('#webhook-token-value');
  check(token.length >= 32, 'no new webhook token shown');
  await shots('status-config');
});

await step('dashboard: the chart shows the last hour from the server', async () => {
  await go('#/c/demo');
  await page.waitForSelector('#rate-chart');
  const label = await page.locator('#rate-chart').getAttribute('aria-label');
  check(/last 60 min/.test(label), `the chart is not the last hour: ${label}`);
  await shots('status-dashboard-demo');
});

await step('no uncaught error in the page', async () => {
  check(pageErrors.length === 0, `page errors: ${pageErrors.join('; ')}`);
});

await finish(0);
