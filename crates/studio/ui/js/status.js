// The one status model behind every light: the server computes a connection's state (a closed
// set, `pipeline::status::ConnectionState`) with its message and times; this module is the only
// place that turns it into a colour and words. Nothing is green unless the server says Healthy.
import { h } from './dom.js';
import { when } from './dom.js';

// state -> [colour level, label]
const STATES = {
  Healthy: ['ok', 'Healthy'],
  Failing: ['bad', 'Failing'],
  AuthenticationFailed: ['bad', 'Authentication failed'],
  AuthorizationFailed: ['bad', 'Not authorised'],
  Disconnected: ['bad', 'Disconnected'],
  NotConfigured: ['idle', 'Not configured'],
  Unchecked: ['idle', 'Checking M3…'],
};

export function stateLevel(state) {
  return (STATES[state] || ['idle'])[0];
}

export function stateLabel(state) {
  return (STATES[state] || [null, state || 'Unknown'])[1];
}

// A light: `{state, message, since, at}` from the API. `detail` adds the message and the times.
export function light(l, { detail = true } = {}) {
  const s = (l && l.state) || 'NotConfigured';
  const level = stateLevel(s);
  const label = stateLabel(s);
  const dotEl = h('span.status', { class: `status-${level}`, dataset: { state: s, m3: s }, title: (l && l.message) || label }, h('span.dot'), label);
  if (!detail || !l) return h('span.light', { dataset: { state: s } }, dotEl);
  const times = [];
  if (l.since) times.push(`since ${when(l.since)}`);
  if (l.at && l.at !== l.since) times.push(`${s === 'Healthy' ? 'last checked' : 'last seen'} ${when(l.at)}`);
  return h('span.light', { dataset: { state: s } }, dotEl,
    l.message ? h('div.small.light-message', { class: level === 'bad' ? 'status-bad' : 'muted' }, l.message) : null,
    times.length ? h('div.small.muted.light-time', times.join('; ')) : null);
}
