// Connection dashboard: the connection's light (the server's one status model), per-mapping
// health and progress, relay and webhooks, refreshed every 2 s in place, with a
// messages-per-minute chart of the last hour kept by the server, and a panel listing a
// mapping's source dead letters. While a self-hosted connector is disconnected, what it last
// reported is shown greyed, never green.
import { get, conn, enc } from '../api.js';
import { h, clear, svg, dot, errorBox, num, duration, when } from '../dom.js';
import { light } from '../status.js';

export const name = 'dashboard';

// Samples survive leaving and re-entering the dashboard (per connection, for this page load).
const history = new Map();
const MAX_SAMPLES = 90; // 3 min at 2 s

function totalMessages(s) {
  return Object.values(s.tables || {}).reduce((n, t) => n + (t.messages || 0), 0);
}

const PHASE_TEXT = {
  starting: 'Starting',
  'initial-load': 'Initial load',
  'full-resync': 'Full re-sync',
  polling: 'Polling',
  standby: 'Standby',
};

// Green only when the mapping says Healthy; Failing is red; anything else (not checked yet) grey.
// `stale`: the connector is disconnected, so its last report says nothing about now.
function healthCell(t, stale) {
  const health = t.health || 'Unknown';
  if (stale) {
    return h('td.health', { dataset: { health: 'Stale' } }, dot('idle', 'Unknown'),
      h('div.small.muted', `connector disconnected; last reported ${health}`));
  }
  if (health === 'Failing') {
    return h('td.health', { dataset: { health } },
      dot('bad', 'Failing'),
      t.health_message ? h('div.small.status-bad.reason', { title: t.health_message }, t.health_message) : null,
      h('div.small.muted', `since ${when(t.health_since)}`));
  }
  if (health === 'Healthy') {
    return h('td.health', { dataset: { health } }, dot('ok', 'Healthy'),
      t.last_success ? h('div.small.muted', `last read ${when(t.last_success)}`) : null);
  }
  return h('td.health', { dataset: { health } }, dot('idle', 'Not checked yet'));
}

function heldCell(t) {
  if (!t.held_deletes) return h('td.num.held', '0');
  const why = t.health_message && /delet/i.test(t.health_message) ? t.health_message
    : 'too many keys vanished in one reconciliation pass; held until confirmed';
  return h('td.num.held',
    h('span.status.status-warn', { 'aria-label': `${num(t.held_deletes)} deletes held back` }, num(t.held_deletes)),
    h('div.small.status-warn.reason', { title: why }, why));
}

// A small lag is green only while the mapping is Healthy: a failing one's lag only grows.
function lagLevel(ms, health) {
  if (ms === null || ms === undefined) return 'idle';
  if (ms >= 300000) return 'bad';
  if (ms >= 30000 || health === 'Failing') return 'warn';
  return health === 'Healthy' ? 'ok' : 'idle';
}

// Messages per minute between successive samples (`n`: messages so far at `t`).
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

// The last `spanMs` of rates, placed by time. The plot stretches to the width; its labels are
// HTML around it, so their text is never stretched.
function chart(points, spanMs) {
  const W = 600;
  const H = 120;
  const now = Date.now();
  const el = svg('svg', { class: 'chart', viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: 'none', 'aria-hidden': 'true' });
  const max = Math.max(10, ...points.map((p) => p.v));
  const x = (t) => Math.max(0, Math.min(W, ((t - (now - spanMs)) / spanMs) * W));
  const y = (v) => H - (v / max) * (H - 4);
  el.append(svg('line', { class: 'axis', x1: 0, x2: W, y1: H - 0.5, y2: H - 0.5 }));
  el.append(svg('line', { class: 'axis', x1: 0, x2: W, y1: 0.5, y2: 0.5 }));
  if (points.length > 1) {
    const coords = points.map((p) => `${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`);
    el.append(svg('polygon', { class: 'area', points: `${x(points[0].t).toFixed(1)},${H} ${coords.join(' ')} ${x(points[points.length - 1].t).toFixed(1)},${H}` }));
    el.append(svg('polyline', { class: 'line', points: coords.join(' '), 'vector-effect': 'non-scaling-stroke' }));
  }
  const mins = Math.round(spanMs / 60000);
  const last = points.length ? points[points.length - 1].v : null;
  return h('figure.chartbox#rate-chart', { role: 'img', 'aria-label': `Messages per minute over the last ${mins} min${last === null ? '' : `; latest ${Math.round(last)}`}`, dataset: { points: String(points.length) } },
    h('div.chart-y', h('span', num(Math.round(max))), h('span', '0')),
    h('div.chart-plot', el),
    h('div.chart-x', h('span', `${mins} min ago`), h('span', 'now')));
}

export async function render(root, { c }) {
  const samples = history.get(c) || [];
  history.set(c, samples);
  const m3 = h('div.value#connection-status');
  const m3msg = h('div.small.muted');
  let server = { samples: [], spanMs: 3600000 }; // the last hour, from the server
  let historyAt = 0;
  const total = h('div.value');
  const rate = h('div.value');
  const relay = h('div.value');
  const relayMsg = h('div.small.muted');
  const hooks = h('div.value');
  const hooksMsg = h('div.small.muted');
  const chartBox = h('div');
  const tbody = h('tbody');
  const err = h('div');
  const deadPanel = h('div.panel#dead-letters', { hidden: true, role: 'region', 'aria-label': 'Source dead letters', tabindex: '-1' });
  let deadShown = null; // the mapping whose dead letters are shown
  let deadCount = null; // its count in the status when they were read
  const updated = h('span.small.muted');
  clear(root,
    h('div.pagehead',
      h('div', h('h1', `Connection ${c}`), h('p.muted', 'Live status of the connector. Refreshes every 2 seconds. ', updated)),
      h('div.actions', h('a.button', { href: `#/c/${encodeURIComponent(c)}/mappings/new` }, '+ New message type'))),
    err,
    h('div.cards',
      h('div.card', h('div.label', 'Status'), m3, m3msg),
      h('div.card', h('div.label', 'Messages (all tables)'), total),
      h('div.card', h('div.label', 'Messages per minute'), rate),
      h('div.card', h('div.label', 'Kafka relay'), relay, relayMsg),
      h('div.card', h('div.label', 'Webhooks received'), hooks, hooksMsg)),
    h('div.panel', h('h2', 'Messages per minute, last hour'), chartBox),
    h('div.panel', h('h2', 'Tables'),
      h('div.tablewrap', h('table#tables',
        h('thead', h('tr', h('th', 'Message type'), h('th', 'M3 table'), h('th', 'Health'), h('th', 'Phase'),
          h('th.num', 'Lag'), h('th.num', 'Rows read'), h('th.num', 'Messages'), h('th.num', 'Unchanged'),
          h('th.num', 'Rejected'), h('th.num', 'Dead letters'), h('th.num', 'Deletes found'),
          h('th.num', 'Held deletes'), h('th.num', 'Errors'), h('th', 'Last poll'))),
        tbody))),
    deadPanel);

  const showDeadLetters = async (mapping) => {
    if (deadShown !== mapping) deadCount = null;
    deadShown = mapping;
    const body = h('div', h('p.muted', 'Loading…'));
    clear(deadPanel,
      h('div.toolbar',
        h('h2.grow', `Dead letters of ${mapping}`),
        h('button', { type: 'button', onclick: () => showDeadLetters(mapping) }, 'Reload'),
        h('button', { type: 'button', 'aria-label': 'Close the dead letters', onclick: () => { deadShown = null; deadPanel.hidden = true; } }, 'Close')),
      h('p.muted.small', 'Rows M3 returned that could not be split or mapped. The other rows flow on; a row leaves this list once it reads fine again.'),
      body);
    deadPanel.hidden = false;
    let list;
    try {
      list = (await get(`${conn(c)}/dead-letters?mapping=${enc(mapping)}&limit=100`)).deadLetters || [];
    } catch (e) {
      clear(body, errorBox(e, 'Cannot read the dead letters'));
      return;
    }
    if (deadShown !== mapping) return;
    clear(body, list.length ? h('div.tablewrap.tall', h('table#dead-letter-list', { 'aria-label': `Dead letters of ${mapping}` },
      h('thead', h('tr', h('th', 'Key'), h('th', 'Reason'), h('th', 'Raw row'), h('th.num', 'Attempts'), h('th', 'Last seen'))),
      h('tbody', list.map((d) => h('tr',
        h('td.mono', d.key || h('span.muted', 'unreadable')),
        h('td.status-bad.small', d.reason),
        h('td', h('pre.json', d.raw)),
        h('td.num', num(d.attempts)),
        h('td.small', when(d.lastSeen), h('div.muted', `first ${when(d.firstSeen)}`))))))) :
      h('p.empty', 'No dead letters.'));
  };

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
    const state = (s.status && s.status.state) || 'Unchecked';
    const stale = state === 'Disconnected';
    clear(m3, light(s.status));
    m3msg.textContent = '';
    total.textContent = num(totalMessages(s));
    const r = rates(samples);
    rate.textContent = stale ? '—' : r.length ? num(Math.round(r[r.length - 1].v)) : '…';
    if (Date.now() - historyAt > 10000) {
      historyAt = Date.now();
      try {
        const hist = await get(`${conn(c)}/status/history`);
        server = { samples: (hist.samples || []).map((p) => ({ t: p.t, n: p.messages })), spanMs: hist.spanMs || 3600000 };
      } catch { /* the chart keeps what it had */ }
      if (stopped) return;
    }
    clear(chartBox, chart(rates(server.samples), server.spanMs));
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
      healthCell(t, stale),
      h('td.phase', { dataset: { phase: stale ? 'unknown' : t.phase || 'starting' } }, stale ? h('span.muted', `last reported: ${PHASE_TEXT[t.phase] || t.phase || 'Starting'}`) : PHASE_TEXT[t.phase] || t.phase || 'Starting'),
      h('td.num', stale ? dot('idle', '—') : dot(lagLevel(t.lag_ms, t.health), duration(t.lag_ms))),
      h('td.num', num(t.rows_seen)),
      h('td.num.messages', num(t.messages)),
      h('td.num', num(t.unchanged)),
      h('td.num', t.rejected_rows ? h('span.status.status-bad', num(t.rejected_rows)) : '0'),
      h('td.num.dead-letters', t.dead_letters ? h('button.small', {
        type: 'button',
        class: 'status-bad',
        'aria-label': `Show the ${num(t.dead_letters)} dead letters of ${mapping}`,
        'aria-controls': 'dead-letters',
        onclick: () => { showDeadLetters(mapping); deadPanel.focus(); },
      }, `${num(t.dead_letters)} — show`) : '0'),
      h('td.num', num(t.deletes_found)),
      heldCell(t),
      h('td.num', t.errors ? h('span.status.status-bad', { title: t.last_error || '' }, num(t.errors)) : '0'),
      h('td.small', when(t.last_poll), t.last_error ? h('div.status-bad.small', t.last_error) : null))) :
      h('tr', h('td.empty', { colSpan: 14 }, 'No message type is deployed. ', h('a', { href: `#/c/${encodeURIComponent(c)}/types` }, 'Deploy one.'))));
    // The open dead-letter list follows its mapping: read again when the count moves.
    const shown = deadShown && s.tables ? s.tables[deadShown] : null;
    if (deadShown && !shown) {
      deadShown = null;
      deadPanel.hidden = true;
    } else if (shown && deadCount !== null && shown.dead_letters !== deadCount) {
      deadCount = shown.dead_letters;
      showDeadLetters(deadShown);
    } else if (shown) {
      deadCount = shown.dead_letters;
    }
    updated.textContent = `Updated ${new Date().toLocaleTimeString()}.`;
  };
  await refresh();
  const timer = setInterval(refresh, 2000);
  return { dispose: () => { stopped = true; clearInterval(timer); } };
}
