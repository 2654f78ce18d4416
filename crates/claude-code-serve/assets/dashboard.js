// The host's dashboard: keeps the server-rendered session table live over the
// `/v1/events` feed, charts turns per minute and spend, and sends prompts with the reply
// streamed in. Plain JavaScript, no build step. Every call carries the bearer token kept
// in localStorage; a 401 opens the token form and the call is retried.
'use strict';

const TOKEN_KEY = 'claude-code-host-token';
const WINDOW_MS = 10 * 60 * 1000; // the chart's time span
const $ = (id) => document.getElementById(id);

// ---- auth -------------------------------------------------------------------------

let tokenWaiters = null;

/** Shows the token form; resolves once a token is entered. */
function askToken() {
  const refused = localStorage.getItem(TOKEN_KEY) !== null;
  $('token-error').textContent = refused ? 'the host refused that token' : '';
  $('token-form').hidden = false;
  $('token').focus();
  tokenWaiters = tokenWaiters || [];
  return new Promise((resolve) => tokenWaiters.push(resolve));
}

$('token-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  localStorage.setItem(TOKEN_KEY, $('token').value.trim());
  $('token').value = '';
  $('token-form').hidden = true;
  const waiters = tokenWaiters || [];
  tokenWaiters = null;
  waiters.forEach((resolve) => resolve());
});

/** fetch() with the bearer token; on a 401 asks for a token and tries again. */
async function api(path, options = {}) {
  for (;;) {
    const headers = Object.assign({}, options.headers);
    const token = localStorage.getItem(TOKEN_KEY);
    if (token) headers.Authorization = 'Bearer ' + token;
    const res = await fetch(path, Object.assign({}, options, { headers }));
    if (res.status !== 401) return res;
    await askToken();
  }
}

/** The API's error as text: `code: message`. */
async function errorText(res) {
  try {
    const body = await res.json();
    return `${body.code}: ${body.message}`;
  } catch (_) {
    return `HTTP ${res.status}`;
  }
}

// ---- Server-Sent Events over fetch (EventSource cannot send Authorization) ---------

/** Reads a text/event-stream body, calling onEvent(name, data) per event. */
async function readSse(res, onEvent) {
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf = (buf + decoder.decode(value, { stream: true })).replace(/\r/g, '');
    let end;
    while ((end = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, end);
      buf = buf.slice(end + 2);
      let name = 'message';
      const data = [];
      for (const line of block.split('\n')) {
        if (line === '' || line.startsWith(':')) continue; // keep-alive comment
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        let val = colon < 0 ? '' : line.slice(colon + 1);
        if (val.startsWith(' ')) val = val.slice(1);
        if (field === 'event') name = val;
        else if (field === 'data') data.push(val);
      }
      if (data.length) onEvent(name, data.join('\n'));
    }
  }
}

// ---- the session table and health line --------------------------------------------

function ago(ts) {
  if (ts === null || ts === undefined) return '—';
  const s = Math.max(0, Math.floor(Date.now() / 1000 - ts));
  if (s < 5) return 'just now';
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

const money = (usd) => '$' + Number(usd || 0).toFixed(4);

function cell(text, className) {
  const td = document.createElement('td');
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

let created = null; // a session this page created, selected once the feed lists it

function renderSessions(sessions) {
  const rows = sessions.map((s) => {
    const tr = document.createElement('tr');
    tr.dataset.name = s.name;
    tr.append(
      cell(s.name, 'name'),
      cell(s.status, `status status-${s.status}`),
      cell(String(s.restarts), 'num'),
      cell(String(s.turns), 'num'),
      cell(money(s.cost_usd), 'num'),
      cell(ago(s.last_activity), 'ago'),
    );
    return tr;
  });
  if (!rows.length) {
    const tr = document.createElement('tr');
    const td = cell('no sessions yet: send a prompt to a new one below', 'muted');
    td.colSpan = 6;
    tr.append(td);
    rows.push(tr);
  }
  document.querySelector('#sessions tbody').replaceChildren(...rows);

  const select = $('session-select');
  const names = sessions.map((s) => s.name);
  const shown = Array.from(select.options, (o) => o.value);
  if (names.join('\n') !== shown.join('\n')) {
    const keep = select.value;
    select.replaceChildren(...names.map((n) => new Option(n, n)));
    if (names.includes(keep)) select.value = keep;
  }
  if (names.includes(created)) {
    select.value = created;
    created = null;
  }
}

function renderHealth(health) {
  const status = document.createElement('span');
  status.className = health.status;
  status.textContent = health.status;
  const mode = health.offline ? 'offline: built-in mock Messages API' : 'online';
  $('health').replaceChildren(status, ` · ${mode}`);
}

const setFeedState = (text) => { $('feed-state').textContent = text; };

// ---- the chart: turns per minute and cumulative spend -------------------------------

const samples = []; // {t (ms), turns, cost}

function drawChart() {
  const canvas = $('chart');
  const w = (canvas.width = canvas.clientWidth || 640);
  const h = (canvas.height = canvas.clientHeight || 200);
  const ctx = canvas.getContext('2d');
  const pad = { l: 48, r: 64, t: 12, b: 20 };
  const plotW = w - pad.l - pad.r;
  const plotH = h - pad.t - pad.b;
  ctx.clearRect(0, 0, w, h);
  ctx.font = '11px system-ui, sans-serif';
  ctx.strokeStyle = '#d8dde6';
  ctx.strokeRect(pad.l, pad.t, plotW, plotH);
  ctx.fillStyle = '#667085';
  if (samples.length < 2) {
    ctx.fillText('waiting for data…', w / 2 - 40, h / 2);
    return;
  }
  const now = samples[samples.length - 1].t;
  // The span grows with the data from one minute up to WINDOW_MS.
  const span = Math.min(WINDOW_MS, Math.max(60000, now - samples[0].t));
  ctx.fillText(`-${Math.round(span / 60000)} min`, pad.l, h - 5);
  ctx.fillText('now', w - pad.r - 20, h - 5);
  // Turns in the minute before each sample (less than a minute of data early on).
  let first = 0;
  const rate = samples.map((s) => {
    while (samples[first].t < s.t - 60000) first++;
    return Math.max(0, s.turns - samples[first].turns);
  });
  const costs = samples.map((s) => s.cost);
  const maxRate = Math.max(1, ...rate);
  const maxCost = Math.max(0.0001, ...costs);
  const x = (i) => pad.l + (1 - (now - samples[i].t) / span) * plotW;
  const line = (values, max, color, fill) => {
    const y = (v) => pad.t + plotH - (v / max) * plotH;
    ctx.beginPath();
    values.forEach((v, i) => (i ? ctx.lineTo(x(i), y(v)) : ctx.moveTo(x(i), y(v))));
    ctx.strokeStyle = color;
    ctx.lineWidth = 2;
    ctx.stroke();
    if (fill) {
      ctx.lineTo(x(values.length - 1), pad.t + plotH);
      ctx.lineTo(x(0), pad.t + plotH);
      ctx.fillStyle = fill;
      ctx.fill();
    }
  };
  line(rate, maxRate, '#3b5bdb', 'rgba(59, 91, 219, 0.15)');
  line(costs, maxCost, '#d9480f');
  ctx.fillStyle = '#3b5bdb';
  ctx.fillText(`${maxRate}/min`, 4, pad.t + 8);
  ctx.fillText('0', pad.l - 12, pad.t + plotH);
  ctx.fillStyle = '#d9480f';
  ctx.fillText(money(maxCost), w - pad.r + 4, pad.t + 8);
}

// ---- the live feed ------------------------------------------------------------------

function onSnapshot(snap) {
  renderSessions(snap.sessions);
  renderHealth(snap.health);
  const t = Date.now();
  samples.push({ t, turns: snap.totals.turns, cost: snap.totals.cost_usd });
  while (samples.length && samples[0].t < t - WINDOW_MS) samples.shift();
  drawChart();
}

async function feed() {
  for (;;) {
    try {
      const res = await api('/v1/events', { headers: { Accept: 'text/event-stream' } });
      if (!res.ok) throw new Error(await errorText(res));
      setFeedState('live');
      await readSse(res, (name, data) => {
        if (name === 'sessions') onSnapshot(JSON.parse(data));
      });
      setFeedState('the feed ended (host draining?); reconnecting…');
    } catch (e) {
      setFeedState(`the feed is down (${e.message}); reconnecting…`);
    }
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
}

// ---- sending a prompt -----------------------------------------------------------------

function setReplyStatus(state, text) {
  const el = $('reply-status');
  el.dataset.state = state;
  el.textContent = text;
  el.className = state === 'error' ? 'error' : 'muted';
}

const textOf = (assistant) =>
  ((assistant.message && assistant.message.content) || [])
    .filter((b) => b.type === 'text')
    .map((b) => b.text)
    .join('');

async function send(name, isNew, prompt) {
  const reply = $('reply');
  reply.textContent = '';
  const json = { 'Content-Type': 'application/json' };
  if (isNew) {
    setReplyStatus('creating', `creating ${name}…`);
    const res = await api('/v1/sessions', {
      method: 'POST', headers: json, body: JSON.stringify({ name }),
    });
    if (!res.ok && res.status !== 409) throw new Error(await errorText(res));
    created = name;
  }
  setReplyStatus('sending', 'sending…');
  const res = await api(`/v1/sessions/${encodeURIComponent(name)}/messages`, {
    method: 'POST',
    headers: Object.assign({ Accept: 'text/event-stream' }, json),
    body: JSON.stringify({ prompt }),
  });
  if (!res.ok) throw new Error(await errorText(res));
  setReplyStatus('streaming', 'streaming…');
  let streamed = false; // text deltas already shown for the current message
  let result = null;
  await readSse(res, (event, data) => {
    const m = JSON.parse(data);
    if (event === 'stream_event') {
      const delta = m.event && m.event.delta;
      if (delta && delta.type === 'text_delta') {
        reply.textContent += delta.text;
        streamed = true;
      }
    } else if (event === 'assistant') {
      const text = textOf(m);
      if (!streamed && text) reply.textContent += (reply.textContent ? '\n\n' : '') + text;
      streamed = false;
    } else if (event === 'result') {
      result = m;
    } else if (event === 'error') {
      throw new Error(`${m.code}: ${m.message}`);
    }
  });
  if (!result) throw new Error('the reply ended without a result');
  if (!reply.textContent && result.result) reply.textContent = result.result;
  const cost = result.total_cost_usd === undefined ? '' : ` · ${money(result.total_cost_usd)}`;
  if (result.is_error) {
    setReplyStatus('error', `the turn failed (${result.subtype}): ${(result.errors || []).join('; ')}`);
  } else {
    setReplyStatus('done', `done${cost}`);
  }
}

$('send-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const newName = $('new-name').value.trim();
  const name = newName || $('session-select').value;
  if (!name) {
    setReplyStatus('error', 'choose a session or type a new name');
    return;
  }
  $('send').disabled = true;
  try {
    await send(name, newName !== '', $('prompt').value);
    if (newName) $('new-name').value = '';
  } catch (e) {
    setReplyStatus('error', e.message);
  } finally {
    $('send').disabled = false;
  }
});

drawChart();
feed();
