// drey's web UI: lists sources and flows from the TAMS API, draws a flow's segments on a
// zoomable timeline (gaps visible), plays live or a selected range with hls.js, links the
// range's export, and shows how to publish a new stream. Signed in with an access key, every
// request it makes (API calls, playlists, segments, export links) is a SigV4-presigned URL
// and the new-stream view carries a publish token (sign.js). Plain DOM, no framework; every
// text from the store goes through textContent (labels are user input).
'use strict';

const TAI_UTC = 37; // seconds TAI is ahead of UTC (since 2017)
const $ = (id) => document.getElementById(id);

const state = {
  flows: [],
  sources: new Map(),
  selected: null, // the flow shown
  content: null, // [start, end] of its content, TAI seconds
  view: null, // [start, end] of the timeline, TAI seconds
  sel: null, // selected range
  segments: [], // content runs [[start, end]] in the view
  hls: null,
  config: null,
  follow: false, // keep the view at the live edge
  key: null, // {id, secret} when signed in
};

// --- access key --------------------------------------------------------------------
// The key lives in sessionStorage: it is gone when the tab closes, and never leaves the
// page except as signatures.
const KEY_STORE = 'drey.key';
function loadKey() {
  try {
    const k = JSON.parse(sessionStorage.getItem(KEY_STORE) || 'null');
    state.key = k && k.id && k.secret ? k : null;
  } catch (e) { state.key = null; }
}
// The URL to use for `path` (same origin): presigned when signed in.
const signed = (path, ttl) => (state.key ? window.dreySign.presign(state.key, path, { ttl }) : path);

class HttpError extends Error {
  constructor(path, status, message) {
    super(`${path}: HTTP ${status}${message ? `: ${message}` : ''}`);
    this.status = status;
  }
}

async function api(path) {
  const r = await fetch(signed(path, 300), { headers: { accept: 'application/json' } });
  if (!r.ok) {
    const body = await r.json().catch(() => null);
    const err = new HttpError(path, r.status, body && body.summary);
    if (r.status === 401 || r.status === 403) showSignIn(err.message);
    throw err;
  }
  return r.json();
}

function renderKey() {
  $('sign-in').hidden = !!state.key;
  $('signed-in').hidden = !state.key;
  $('key-id').textContent = state.key ? state.key.id : '';
}

function showSignIn(reason) {
  $('auth-reason').textContent = state.key
    ? `Key ${state.key.id} may not do this: ${reason}`
    : `This server wants an access key: ${reason}`;
  $('auth').hidden = false;
}

async function signIn(ev) {
  ev.preventDefault();
  const key = { id: $('auth-id').value.trim(), secret: $('auth-secret').value.trim() };
  if (!key.id || !key.secret) return;
  state.key = key;
  $('auth-reason').textContent = 'Checking…';
  try {
    await api('/flows?limit=1');
  } catch (e) {
    state.key = null;
    $('auth-reason').textContent = `Not signed in: ${e.message}`;
    return;
  }
  sessionStorage.setItem(KEY_STORE, JSON.stringify(key));
  $('auth-secret').value = '';
  $('auth').hidden = true;
  renderKey();
  await loadList().catch(() => {});
  if (state.selected) updateSelection();
}

function signOut() {
  sessionStorage.removeItem(KEY_STORE);
  state.key = null;
  renderKey();
  stopPlayer();
  if (state.selected) updateSelection();
  loadList().catch(() => {});
}

// --- time --------------------------------------------------------------------------
// TAMS timestamps are "sec:ns" TAI; the UI works in TAI seconds as floats (sub-µs
// precision at today's epoch), shows UTC.
function parseTs(s) {
  const neg = s.startsWith('-');
  const [a, b] = s.replace('-', '').split(':');
  const v = Number(a) + Number(b || 0) / 1e9;
  return neg ? -v : v;
}
function fmtTs(sec) {
  let s = Math.floor(sec);
  let ns = Math.round((sec - s) * 1e9);
  if (ns >= 1e9) { s += 1; ns -= 1e9; }
  return `${s}:${ns}`;
}
function parseRange(r) {
  const m = /^[[(]?([^_]*)_([^\])]*)[\])]?$/.exec(r || '');
  if (!m || !m[1] || !m[2]) return null;
  return [parseTs(m[1]), parseTs(m[2])];
}
const rangeStr = (a, b) => `[${fmtTs(a)}_${fmtTs(b)})`;
const utcDate = (tai) => new Date((tai - TAI_UTC) * 1000);
const iso = (tai) => utcDate(tai).toISOString().replace(/\.(\d\d\d)Z$/, (_, ms) => (ms === '000' ? 'Z' : `.${ms}Z`));
function parseIso(text) {
  const d = new Date(text);
  return Number.isNaN(d.getTime()) ? null : d.getTime() / 1000 + TAI_UTC;
}
function human(secs) {
  if (secs < 120) return `${secs.toFixed(secs < 10 ? 1 : 0)} s`;
  if (secs < 7200) return `${(secs / 60).toFixed(1)} min`;
  if (secs < 172800) return `${(secs / 3600).toFixed(1)} h`;
  return `${(secs / 86400).toFixed(1)} days`;
}

// --- list --------------------------------------------------------------------------
const isLive = (f) => f.status === 'ingesting';
const playable = (f) => ['video/mp2t', 'video/mp4', 'audio/mp4'].includes(f.container);
const formatName = (f) => (f.format || '').split(':').pop();

function matches(f, q) {
  if (!q) return true;
  const tags = f.tags || {};
  const eq = q.indexOf('=');
  if (eq > 0) {
    const k = q.slice(0, eq).trim();
    const v = q.slice(eq + 1).trim().toLowerCase();
    const t = tags[k];
    const vals = Array.isArray(t) ? t : t == null ? [] : [t];
    return vals.some((x) => String(x).toLowerCase().includes(v));
  }
  const hay = [f.label, f.description, f.id, f.source_id, ...Object.values(tags).flat()]
    .filter(Boolean).join(' ').toLowerCase();
  return hay.includes(q.toLowerCase());
}

async function loadList() {
  const [flows, sources] = await Promise.all([api('/flows?limit=1000'), api('/sources?limit=1000')]);
  state.flows = flows;
  state.sources = new Map(sources.map((s) => [s.id, s]));
  renderList();
  if (state.selected) {
    const f = flows.find((x) => x.id === state.selected.id);
    if (f) { state.selected = f; renderMeta(); }
  }
}

function renderList() {
  const nav = $('list');
  const q = $('search').value.trim();
  const bySource = new Map();
  for (const f of state.flows.filter((x) => matches(x, q))) {
    if (!bySource.has(f.source_id)) bySource.set(f.source_id, []);
    bySource.get(f.source_id).push(f);
  }
  nav.replaceChildren();
  if (bySource.size === 0) {
    const p = document.createElement('p');
    p.className = 'muted';
    p.textContent = q ? 'No flow matches.' : 'No flows yet: start a new stream.';
    nav.append(p);
    return;
  }
  const groups = [...bySource.entries()].sort((a, b) => (b[1].some(isLive) - a[1].some(isLive)));
  for (const [sid, flows] of groups) {
    const div = document.createElement('div');
    div.className = 'source';
    const h = document.createElement('h3');
    const src = state.sources.get(sid);
    h.textContent = (src && src.label) || `source ${sid.slice(0, 8)}`;
    div.append(h);
    for (const f of flows) {
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'flow' + (state.selected && state.selected.id === f.id ? ' selected' : '');
      b.dataset.id = f.id;
      b.dataset.live = String(isLive(f));
      b.dataset.playable = String(playable(f));
      b.append(document.createTextNode(f.label || f.id));
      if (isLive(f)) {
        const s = document.createElement('span');
        s.className = 'badge live';
        s.textContent = 'LIVE';
        b.append(s);
      }
      const small = document.createElement('small');
      small.textContent = `${formatName(f)} · ${f.container || 'no container'}${f.codec ? ' · ' + f.codec : ''}`;
      b.append(small);
      b.addEventListener('click', () => selectFlow(f.id));
      div.append(b);
    }
    nav.append(div);
  }
}

// --- one flow ----------------------------------------------------------------------
async function selectFlow(id) {
  const f = await api(`/flows/${id}?include_timerange=true`);
  state.selected = f;
  state.sel = null;
  state.content = parseRange(f.timerange);
  state.follow = isLive(f);
  $('empty').hidden = true;
  $('publish').hidden = true;
  $('flow').hidden = false;
  stopPlayer();
  renderList();
  renderMeta();
  fit();
}

function renderMeta() {
  const f = state.selected;
  $('flow-title').textContent = f.label || f.id;
  const bits = [formatName(f), f.container || 'no container', f.codec || '', isLive(f) ? 'LIVE' : f.status || '', `id ${f.id}`];
  if (state.content) bits.push(`content ${iso(state.content[0])} – ${iso(state.content[1])} (${human(state.content[1] - state.content[0])})`);
  $('flow-meta').textContent = bits.filter(Boolean).join(' · ');
  $('live').disabled = !(isLive(f) && playable(f));
  $('play-range').disabled = !playable(f);
  if (!playable(f)) $('player-state').textContent = 'This flow has no MPEG-TS or MP4 segments to play.';
  updateSelection();
}

function fit() {
  const c = state.content;
  if (!c) { state.view = [Date.now() / 1000 + TAI_UTC - 60, Date.now() / 1000 + TAI_UTC]; }
  else {
    const pad = Math.max((c[1] - c[0]) * 0.02, 1);
    state.view = [c[0] - pad, c[1] + pad];
  }
  loadSegments();
}

let segTimer = null;
function loadSegments() {
  draw();
  clearTimeout(segTimer);
  segTimer = setTimeout(async () => {
    const f = state.selected;
    if (!f) return;
    const [a, b] = state.view;
    // Content runs at one-pixel resolution: every gap wide enough to see is there.
    const resolution = (b - a) / Math.max($('timeline').clientWidth, 1);
    try {
      const t = await api(`/flows/${f.id}/timeline?timerange=${encodeURIComponent(rangeStr(a, b))}&resolution=${resolution}`);
      if (!state.selected || state.selected.id !== f.id) return;
      state.segments = t.runs.map(parseRange).filter(Boolean);
      const gaps = Math.max(state.segments.length - 1, 0);
      $('timeline-note').textContent = `${t.segments} segments in view, ${gaps} gap${gaps === 1 ? '' : 's'}`
        + `${t.truncated ? ' (view too long: zoom in)' : ''}. Drag to select a range; wheel to zoom, shift+wheel to pan.`;
    } catch (e) {
      $('timeline-note').textContent = String(e);
    }
    draw();
  }, 120);
}

const STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800];

function draw() {
  const c = $('timeline');
  if (!state.view || c.clientWidth === 0) return;
  const dpr = window.devicePixelRatio || 1;
  const w = c.clientWidth;
  const h = c.clientHeight;
  c.width = w * dpr;
  c.height = h * dpr;
  const g = c.getContext('2d');
  g.scale(dpr, dpr);
  g.clearRect(0, 0, w, h);
  const [v0, v1] = state.view;
  const x = (t) => ((t - v0) / (v1 - v0)) * w;
  // The content's extent in red: what the segments do not cover shows as a gap.
  if (state.content) {
    g.fillStyle = '#ffcecb';
    g.fillRect(x(state.content[0]), 22, x(state.content[1]) - x(state.content[0]), 34);
  }
  g.fillStyle = '#2da44e';
  for (const [a, b] of state.segments) g.fillRect(x(a), 22, Math.max(1, x(b) - x(a)), 34);
  if (state.sel) {
    g.fillStyle = 'rgba(9,105,218,0.25)';
    g.fillRect(x(state.sel[0]), 0, x(state.sel[1]) - x(state.sel[0]), h);
  }
  // Axis in UTC, a step that gives labels ~110 px apart.
  const span = v1 - v0;
  const step = STEPS.find((s) => (s / span) * w >= 110) || STEPS[STEPS.length - 1];
  g.fillStyle = '#57606a';
  g.strokeStyle = '#d0d7de';
  g.font = '11px system-ui, sans-serif';
  const u0 = v0 - TAI_UTC;
  for (let u = Math.ceil(u0 / step) * step; u < v1 - TAI_UTC; u += step) {
    const px = x(u + TAI_UTC);
    g.beginPath();
    g.moveTo(px, 58);
    g.lineTo(px, h);
    g.stroke();
    const d = new Date(u * 1000).toISOString();
    g.fillText(step >= 86400 ? d.slice(0, 10) : step >= 60 ? d.slice(11, 16) : d.slice(11, 19), px + 3, h - 6);
  }
  $('view-label').textContent = `${human(span)} shown, from ${iso(v0)}`;
}

function zoom(factor, at) {
  const [v0, v1] = state.view;
  const t = at == null ? (v0 + v1) / 2 : at;
  let a = t - (t - v0) * factor;
  let b = t + (v1 - t) * factor;
  if (b - a < 1) { a = t - 0.5; b = t + 0.5; }
  if (b - a > 90 * 86400) return;
  state.view = [a, b];
  state.follow = false;
  loadSegments();
}

function pan(fraction) {
  const [v0, v1] = state.view;
  const d = (v1 - v0) * fraction;
  state.view = [v0 + d, v1 + d];
  state.follow = false;
  loadSegments();
}

function timeAt(ev) {
  const c = $('timeline');
  const r = c.getBoundingClientRect();
  const [v0, v1] = state.view;
  return v0 + ((ev.clientX - r.left) / r.width) * (v1 - v0);
}

function setupTimeline() {
  const c = $('timeline');
  let dragFrom = null;
  c.addEventListener('mousedown', (ev) => { dragFrom = timeAt(ev); state.sel = null; draw(); });
  window.addEventListener('mousemove', (ev) => {
    if (dragFrom == null) return;
    const t = timeAt(ev);
    state.sel = [Math.min(dragFrom, t), Math.max(dragFrom, t)];
    draw();
  });
  window.addEventListener('mouseup', () => {
    if (dragFrom == null) return;
    dragFrom = null;
    if (state.sel && state.sel[1] - state.sel[0] < 0.05) state.sel = null;
    updateSelection();
    draw();
  });
  c.addEventListener('wheel', (ev) => {
    ev.preventDefault();
    if (ev.shiftKey || Math.abs(ev.deltaX) > Math.abs(ev.deltaY)) pan((ev.deltaX || ev.deltaY) > 0 ? 0.1 : -0.1);
    else zoom(ev.deltaY > 0 ? 1.25 : 0.8, timeAt(ev));
  }, { passive: false });
  window.addEventListener('resize', draw);
}

function updateSelection() {
  const f = state.selected;
  const sel = state.sel;
  $('sel-start').value = sel ? iso(sel[0]) : '';
  $('sel-end').value = sel ? iso(sel[1]) : '';
  for (const [id, format] of [['export-mp4', 'mp4'], ['export-ts', 'ts']]) {
    const a = $(id);
    const ok = f && sel && playable(f) && (format === 'mp4' || f.container === 'video/mp2t');
    a.classList.toggle('disabled', !ok);
    a.dataset.path = ok ? `/flows/${f.id}/download?format=${format}&timerange=${encodeURIComponent(rangeStr(sel[0], sel[1]))}` : '';
    a.href = ok ? signed(a.dataset.path, 3600) : '#';
  }
}

function selectionFromInputs() {
  const a = parseIso($('sel-start').value);
  const b = parseIso($('sel-end').value);
  if (a != null && b != null && b > a) {
    state.sel = [a, b];
    updateSelection();
    draw();
  }
}

// --- player ------------------------------------------------------------------------
function stopPlayer() {
  if (state.hls) { state.hls.destroy(); state.hls = null; }
  const v = $('player');
  v.removeAttribute('src');
  v.load();
  $('player-state').textContent = '';
}

function play(url, what) {
  stopPlayer();
  const v = $('player');
  $('player-state').textContent = `Loading ${what}…`;
  if (window.Hls && window.Hls.isSupported()) {
    // Every playlist and segment request is signed afresh, so a live stream keeps playing
    // past any one signature's expiry.
    const h = new window.Hls(state.key ? {
      xhrSetup: (xhr, u) => {
        const url = new URL(u, window.location.href);
        if (url.origin === window.location.origin) xhr.open('GET', signed(url.pathname + url.search, 300), true);
      },
    } : {});
    h.on(window.Hls.Events.ERROR, (_, d) => {
      if (d.fatal) $('player-state').textContent = `Player error: ${d.details}`;
    });
    h.on(window.Hls.Events.MANIFEST_PARSED, () => v.play().catch(() => {}));
    h.loadSource(url);
    h.attachMedia(v);
    state.hls = h;
  } else {
    v.src = signed(url, 3600); // browsers with native HLS (URIs in the playlist come signed)
    v.play().catch(() => {});
  }
  v.dataset.playing = what;
}

function setupPlayer() {
  const v = $('player');
  v.addEventListener('timeupdate', () => {
    $('player-state').textContent = `${v.dataset.playing || ''}: ${v.currentTime.toFixed(1)} s`;
  });
  $('live').addEventListener('click', () => play(`/flows/${state.selected.id}/playlist.m3u8`, 'live'));
  $('play-range').addEventListener('click', () => {
    const f = state.selected;
    const sel = state.sel || state.content;
    if (!sel) return;
    play(`/flows/${f.id}/playlist.m3u8?timerange=${encodeURIComponent(rangeStr(sel[0], sel[1]))}`, state.sel ? 'selection' : 'whole flow');
  });
}

// --- new stream --------------------------------------------------------------------
function showPublish() {
  $('empty').hidden = true;
  $('flow').hidden = true;
  $('publish').hidden = false;
  stopPlayer();
  const key = encodeURIComponent($('stream-key').value.trim() || 'cam1');
  const c = state.config || {};
  const url = c.rtmp_url ? `${c.rtmp_url}${key}` : 'RTMP ingest is off on this server';
  $('publish-url').textContent = url;
  $('publish-cmd').textContent = c.rtmp_url
    ? `ffmpeg -re -i INPUT -c:v libx264 -g 60 -c:a aac -f flv ${url}`
    : '';
  if (c.rtmp_url && c.auth && state.key) {
    // A publish token from the signed-in key, valid for a day (drey token does the same).
    const expires = Math.floor(Date.now() / 1000) + 86400;
    const token = window.dreySign.publishToken(state.key, `live/${decodeURIComponent(key)}`, expires);
    $('publish-url').textContent = `${url}?token=${token}`;
    $('publish-cmd').textContent = `ffmpeg -re -i INPUT -c:v libx264 -g 60 -c:a aac -f flv '${url}?token=${token}'`;
    $('publish-auth').textContent = `The URL carries a publish token made with key ${state.key.id}, valid until ${new Date(expires * 1000).toISOString()}; it works only if the key may write this stream.`;
  } else {
    $('publish-auth').textContent = c.auth
      ? 'This server needs a publish token: sign in with an access key, or run `drey token --key KEY_ID --stream live/' + decodeURIComponent(key) + '` for the URL to use.'
      : 'This server accepts publishes without a token.';
  }
}

// --- start -------------------------------------------------------------------------
async function main() {
  setupTimeline();
  setupPlayer();
  $('search').addEventListener('input', renderList);
  $('zoom-in').addEventListener('click', () => zoom(0.5));
  $('zoom-out').addEventListener('click', () => zoom(2));
  $('fit').addEventListener('click', fit);
  $('sel-start').addEventListener('change', selectionFromInputs);
  $('sel-end').addEventListener('change', selectionFromInputs);
  $('new-stream').addEventListener('click', showPublish);
  $('stream-key').addEventListener('input', showPublish);
  for (const id of ['export-mp4', 'export-ts']) {
    // Signed at the click, so a link left on screen for hours still works.
    $(id).addEventListener('click', (ev) => { if (ev.currentTarget.dataset.path) ev.currentTarget.href = signed(ev.currentTarget.dataset.path, 3600); });
  }
  $('sign-in').addEventListener('click', () => showSignIn('sign in to use your grants'));
  $('sign-out').addEventListener('click', signOut);
  $('auth-form').addEventListener('submit', signIn);
  $('auth-cancel').addEventListener('click', () => { $('auth').hidden = true; });
  loadKey();
  renderKey();
  $('copy-url').addEventListener('click', () => navigator.clipboard && navigator.clipboard.writeText($('publish-url').textContent));
  try { state.config = await api('/ui/config.json'); } catch (e) { state.config = {}; }
  await loadList().catch((e) => { $('list').textContent = String(e); });
  setInterval(async () => {
    await loadList().catch(() => {});
    const f = state.selected;
    if (f && isLive(f)) {
      const fresh = await api(`/flows/${f.id}?include_timerange=true`).catch(() => null);
      if (fresh) {
        state.content = parseRange(fresh.timerange) || state.content;
        if (state.follow) fit(); else loadSegments();
        renderMeta();
      }
    }
  }, 4000);
}

window.dreyUi = state; // for debugging from the console
main();
