// Connection dashboard: M3 connectivity, per-table progress, relay and webhooks, refreshed every
// 2 s in place, with a messages-per-minute chart computed from successive status samples.
import { get, conn } from '../api.js';
import { h, clear, svg, m3Dot, dot, errorBox, num, duration, when } from '../dom.js';

export const name = 'dashboard';

// Samples survive leaving and re-entering the dashboard (per connection, for this page load).
const history = new Map();
const MAX_SAMPLES = 90; // 3 min at 2 s

function totalMessages(s) {
  return Object.values(s.tables || {}).reduce((n, t) => n + (t.messages || 0), 0);
}

function phaseLevel(t) {
  if (t.last_error && t.phase !== 'polling') return 'bad';
  if (t.phase === 'polling') return t.last_error ? 'warn' : 'ok';
  if (t.phase === 'initial-load') return 'warn';
  return 'idle';
}

function lagLevel(ms) {
  if (ms === null || ms === undefined) return 'idle';
  if (ms < 30000) return 'ok';
  if (ms < 300000) return 'warn';
  return 'bad';
}

function rates(samples) {
  const out = [];
  for (let i = 1; i < samples.length; i++) {
    const a = samples[i - 1];
    const b = samples[i];
    const dt = (b.t - a.t) / 60000;
    if (dt > 0) out.push({ t: b.t, v: Math.max(0, (b.n - a.n) / dt) });
  }
  return out;
}

function chart(points) {
  const W = 600;
  const H = 120;
  const pad = { l: 40, r: 8, t: 8, b: 18 };
  const el = svg('svg', { class: 'chart', viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: 'none', role: 'img', 'aria-label': 'Messages per minute' });
  const max = Math.max(10, ...points.map((p) => p.v));
  const x = (i) => pad.l + (i / Math.max(1, MAX_SAMPLES - 2)) * (W - pad.l - pad.r);
  const y = (v) => H - pad.b - (v / max) * (H - pad.t - pad.b);
  el.append(svg('line', { class: 'axis', x1: pad.l, x2: W - pad.r, y1: H - pad.b, y2: H - pad.b }));
  el.append(svg('line', { class: 'axis', x1: pad.l, x2: W - pad.r, y1: pad.t, y2: pad.t }));
  const top = svg('text', { x: 2, y: pad.t + 8 });
  top.textContent = Math.round(max).toLocaleString('en-US');
  const zero = svg('text', { x: 2, y: H - pad.b });
  zero.textContent = '0';
  const span = svg('text', { x: pad.l, y: H - 3 });
  span.textContent = `last ${Math.round((MAX_SAMPLES * 2) / 60)} min`;
  el.append(top, zero, span);
  if (points.length > 1) {
    const offset = MAX_SAMPLES - 1 - points.length;
    const coords = points.map((p, i) => `${x(i + offset).toFixed(1)},${y(p.v).toFixed(1)}`);
    const first = x(offset).toFixed(1);
    const last = x(points.length - 1 + offset).toFixed(1);
    el.append(svg('polygon', { class: 'area', points: `${first},${H - pad.b} ${coords.join(' ')} ${last},${H - pad.b}` }));
    el.append(svg('polyline', { class: 'line', points: coords.join(' ') }));
  }
  return el;
}

export async function render(root, { c }) {
  const samples = history.get(c) || [];
  history.set(c, samples);
  const m3 = h('div.value');
  const m3msg = h('div.small.muted');
  const total = h('div.value');
  const rate = h('div.value');
  const relay = h('div.value');
  const relayMsg = h('div.small.muted');
  const hooks = h('div.value');
  const hooksMsg = h('div.small.muted');
  const chartBox = h('div');
  const tbody = h('tbody');
  const err = h('div');
  const updated = h('span.small.muted');
  clear(root,
    h('div.pagehead',
      h('div', h('h1', `Connection ${c}`), h('p.muted', 'Live status of the connector. Refreshes every 2 seconds. ', updated)),
      h('div.actions', h('a.button', { href: `#/c/${encodeURIComponent(c)}/mappings/new` }, '+ New message type'))),
    err,
    h('div.cards',
      h('div.card', h('div.label', 'M3 connectivity'), m3, m3msg),
      h('div.card', h('div.label', 'Messages (all tables)'), total),
      h('div.card', h('div.label', 'Messages per minute'), rate),
      h('div.card', h('div.label', 'Kafka relay'), relay, relayMsg),
      h('div.card', h('div.label', 'Webhooks received'), hooks, hooksMsg)),
    h('div.panel', h('h2', 'Messages per minute'), chartBox),
    h('div.panel', h('h2', 'Tables'),
      h('div.tablewrap', h('table#tables',
        h('thead', h('tr', h('th', 'Message type'), h('th', 'M3 table'), h('th', 'Phase'), h('th.num', 'Lag'),
          h('th.num', 'Rows read'), h('th.num', 'Messages'), h('th.num', 'Unchanged'), h('th.num', 'Rejected'),
          h('th.num', 'Deletes found'), h('th.num', 'Errors'), h('th', 'Last poll'))),
        tbody))));

  let stopped = false;
  const refresh = async () => {
    let s;
    try {
      s = await get(`${conn(c)}/status`);
    } catch (e) {
      clear(err, errorBox(e, 'Cannot read the status'));
      return;
    }
    if (stopped) return;
    clear(err);
    samples.push({ t: Date.now(), n: totalMessages(s) });
    while (samples.length > MAX_SAMPLES) samples.shift();
    clear(m3, m3Dot(s.m3));
    m3msg.textContent = s.m3_message || '';
    total.textContent = num(totalMessages(s));
    const r = rates(samples);
    rate.textContent = r.length ? num(Math.round(r[r.length - 1].v)) : '…';
    clear(chartBox, chart(r));
    if (s.relay) {
      clear(relay, dot(s.relay.healthy ? 'ok' : 'bad', `${num(s.relay.published)} published`));
      relayMsg.textContent = s.relay.last_error || `topic ${s.relay.topic}`;
    } else {
      clear(relay, dot('idle', 'Not configured'));
      relayMsg.textContent = 'Messages stay in the embedded log.';
    }
    hooks.textContent = num(s.webhooks ? s.webhooks.received : 0);
    const unauth = s.webhooks ? s.webhooks.unauthorized : 0;
    clear(hooksMsg, unauth ? h('span.status.status-warn', `${num(unauth)} refused (wrong credentials)`) : 'none refused');
    const rows = Object.entries(s.tables || {});
    clear(tbody, rows.length ? rows.map(([mapping, t]) => h('tr', { dataset: { mapping } },
      h('td', h('strong', mapping)),
      h('td.mono', t.table),
      h('td.phase', dot(phaseLevel(t), t.phase || 'starting')),
      h('td.num', dot(lagLevel(t.lag_ms), duration(t.lag_ms))),
      h('td.num', num(t.rows_seen)),
      h('td.num.messages', num(t.messages)),
      h('td.num', num(t.unchanged)),
      h('td.num', t.rejected_rows ? h('span.status.status-bad', num(t.rejected_rows)) : '0'),
      h('td.num', num(t.deletes_found)),
      h('td.num', t.errors ? h('span.status.status-bad', { title: t.last_error || '' }, num(t.errors)) : '0'),
      h('td.small', when(t.last_poll), t.last_error ? h('div.status-bad.small', t.last_error) : null))) :
      h('tr', h('td.empty', { colSpan: 11 }, 'No message type is deployed. ', h('a', { href: `#/c/${encodeURIComponent(c)}/types` }, 'Deploy one.'))));
    updated.textContent = `Updated ${new Date().toLocaleTimeString()}.`;
  };
  await refresh();
  const timer = setInterval(refresh, 2000);
  return { dispose: () => { stopped = true; clearInterval(timer); } };
}
