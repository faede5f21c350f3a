// Parse erp-bridge's AsyncAPI document with @asyncapi/parser (its Spectral rules included) and
// fail on any diagnostic of severity error, warning, information or hint: `0 errors, 0 warnings`.
// Usage: node conformance/asyncapi.mjs <url of /api/connections/{c}/asyncapi> [token]
//        node conformance/asyncapi.mjs <file.json>
import { readFile } from 'node:fs/promises';
import { Parser, DiagnosticSeverity } from '@asyncapi/parser';

const [source, token] = process.argv.slice(2);
if (!source) {
  console.error('usage: node asyncapi.mjs <url|file> [token]');
  process.exit(2);
}
let text;
if (/^https?:\/\//.test(source)) {
  const r = await fetch(source, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  if (!r.ok) {
    console.error(`GET ${source}: ${r.status}`);
    process.exit(1);
  }
  text = await r.text();
} else {
  text = await readFile(source, 'utf8');
}
const { document, diagnostics } = await new Parser().parse(text);
const names = { [DiagnosticSeverity.Error]: 'error', [DiagnosticSeverity.Warning]: 'warning',
  [DiagnosticSeverity.Information]: 'information', [DiagnosticSeverity.Hint]: 'hint' };
for (const d of diagnostics) {
  console.log(`${names[d.severity]}: ${d.code}: ${d.message} at ${(d.path || []).join('.')}`);
}
const count = (s) => diagnostics.filter((d) => d.severity === s).length;
console.log(`${count(DiagnosticSeverity.Error)} errors, ${count(DiagnosticSeverity.Warning)} warnings, ` +
  `${count(DiagnosticSeverity.Information)} information, ${count(DiagnosticSeverity.Hint)} hints; ` +
  `document ${document ? 'parsed' : 'NOT parsed'} (AsyncAPI ${document ? document.version() : '?'})`);
process.exit(document && count(DiagnosticSeverity.Error) + count(DiagnosticSeverity.Warning) === 0 ? 0 : 1);
