// What every Studio browser spec shares: the driver (playwright-core with Debian's Chromium, no
// browser download), the wait limit, and the check that fails a step with a message.
import fs from 'node:fs';
import { createRequire } from 'node:module';

/** How long a spec waits for anything on a page, in milliseconds. */
export const WAIT = 20000;

/** playwright-core's Chromium driver and the browser's path; `axe: true` also reads axe-core's
 *  script for injection. Exits with a message naming what to install when something is missing. */
export async function browserDriver({ axe = false } = {}) {
  let chromium;
  let axeSource;
  try {
    ({ chromium } = await import('playwright-core'));
    if (axe) axeSource = fs.readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
  } catch {
    console.error(`FAIL: ${axe ? 'playwright-core or axe-core' : 'playwright-core'} is not installed: run \`npm ci --prefix ui-tests\` from the workspace root`);
    process.exit(1);
  }
  const executablePath = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
  if (!fs.existsSync(executablePath)) {
    console.error(`FAIL: no Chromium at ${executablePath}; install it with: apt-get install -y chromium`);
    process.exit(1);
  }
  return { chromium, executablePath, axeSource };
}

/** A failed check: the step that threw it reports its message. */
export class CheckFailed extends Error {}

/** Fail the current step with `message` unless `cond` holds. */
export function check(cond, message) {
  if (!cond) throw new CheckFailed(message);
}
