"""The HTML, CSS and script of `viewer`'s page; __TITLE__ and __DATA__ (the JSON of viewer.page_data) are filled in.

Everything is inline: the page opens from disk with no network. The heatmap's gray level of a cell is exactly
round(255 * (1 - w / max w)) of the shown map (the test reads it back from a screenshot), drawn without smoothing.
"""

PAGE = r"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>__TITLE__</title>
<style>
body { font: 13px sans-serif; margin: 12px; color: #222; }
#controls { margin-bottom: 10px; } #controls label { margin-right: 14px; }
.panel { display: inline-block; vertical-align: top; margin: 0 18px 18px 0; }
.panel h3 { font-size: 13px; margin: 0 0 6px 0; }
canvas { image-rendering: pixelated; display: block; }
#lines text { font: 12px sans-serif; cursor: pointer; dominant-baseline: middle; }
#lines line { stroke: #c0392b; }
#info { color: #555; margin-top: 4px; min-height: 16px; }
</style></head>
<body>
<h2 id="title"></h2>
<div id="controls">
  <label>map <select id="map"></select></label>
  <label>head <select id="head"></select></label>
  <label id="query-label">query <select id="query"></select></label>
</div>
<div class="panel"><h3>weights (queries down, keys across)</h3><canvas id="heatmap"></canvas><div id="info"></div></div>
<div class="panel" id="lines-panel"><h3>token to token (hover a token)</h3><svg id="lines"></svg></div>
<div class="panel" id="overlay-panel"><h3 id="overlay-title"></h3><canvas id="overlay"></canvas></div>
<script type="application/json" id="data">__DATA__</script>
<script>
"use strict";
const D = JSON.parse(document.getElementById('data').textContent);
const $ = (id) => document.getElementById(id);
const state = { map: 0, head: 'mean', query: 0, matrix: null, cell: 1 };
window.viewerState = state;
const images = {};

function option(select, value, text) {
  const o = document.createElement('option'); o.value = value; o.textContent = text; select.appendChild(o);
}
function currentMatrix() {
  const heads = D.maps[state.map].heads;
  if (state.head !== 'mean') return heads[Number(state.head)];
  return heads[0].map((row, t) => row.map((_, s) => heads.reduce((acc, h) => acc + h[t][s], 0) / heads.length));
}
function maxOf(m) { let x = 0; for (const row of m) for (const v of row) x = Math.max(x, v); return x > 0 ? x : 1; }

function drawHeatmap() {
  const m = state.matrix, T = m.length, S = T ? m[0].length : 0;
  const cell = Math.max(2, Math.floor(420 / Math.max(T, S, 1)));
  const c = $('heatmap'); c.width = S * cell; c.height = T * cell; state.cell = cell;
  const ctx = c.getContext('2d'), top = maxOf(m);
  for (let t = 0; t < T; t++) for (let s = 0; s < S; s++) {
    const g = Math.round(255 * (1 - m[t][s] / top));
    ctx.fillStyle = `rgb(${g},${g},${g})`; ctx.fillRect(s * cell, t * cell, cell, cell);
  }
  c.onmousemove = (e) => {
    const t = Math.floor(e.offsetY / cell), s = Math.floor(e.offsetX / cell), mp = D.maps[state.map];
    if (t < T && s < S) $('info').textContent = `${mp.queries[t]} -> ${mp.keys[s]}: ${m[t][s].toFixed(4)}`;
  };
}

function drawLines() {
  const mp = D.maps[state.map], m = state.matrix, svg = $('lines');
  const T = mp.queries.length, S = mp.keys.length, ns = 'http://www.w3.org/2000/svg';
  svg.innerHTML = '';
  if (T > 120 || S > 120 || D.kind === 'captioner' || (D.kind === 'asr' && mp.cross)) {
    $('lines-panel').style.display = 'none'; return;
  }
  $('lines-panel').style.display = '';
  const step = 16, h = Math.max(T, S) * step + 10, xl = 110, xr = 260;
  svg.setAttribute('width', 380); svg.setAttribute('height', h);
  const lines = [];
  for (let t = 0; t < T; t++) for (let s = 0; s < S; s++) {
    const l = document.createElementNS(ns, 'line');
    l.setAttribute('x1', xl); l.setAttribute('y1', 10 + t * step); l.setAttribute('x2', xr);
    l.setAttribute('y2', 10 + s * step); l.setAttribute('stroke-opacity', m[t][s].toFixed(4));
    l.setAttribute('stroke-width', (0.5 + 3 * m[t][s]).toFixed(3));
    l.dataset.t = t; l.dataset.s = s; svg.appendChild(l); lines.push(l);
  }
  const label = (text, x, y, anchor, side, i) => {
    const e = document.createElementNS(ns, 'text');
    e.setAttribute('x', x); e.setAttribute('y', y); e.setAttribute('text-anchor', anchor); e.textContent = text;
    e.addEventListener('mouseenter', () => lines.forEach((l) => {
      l.style.strokeOpacity = Number(l.dataset[side]) === i ? '' : '0.02';
    }));
    e.addEventListener('mouseleave', () => lines.forEach((l) => { l.style.strokeOpacity = ''; }));
    svg.appendChild(e);
  };
  mp.queries.forEach((q, t) => label(q, xl - 6, 10 + t * step, 'end', 't', t));
  mp.keys.forEach((k, s) => label(k, xr + 6, 10 + s * step, 'start', 's', s));
}

function overlayKind() {
  const mp = D.maps[state.map];
  if (D.image && (D.kind === 'captioner' || D.kind === 'vit')) return 'image';
  if (D.spectrogram && D.kind === 'asr' && mp.cross) return 'spectrogram';
  return null;
}
function patchGrid(S) {
  if (D.grid) return { rows: D.grid[0], cols: D.grid[1], offset: S - D.grid[0] * D.grid[1] };
  const side = Math.round(Math.sqrt(S)), cls = Math.round(Math.sqrt(S - 1));
  if (side * side === S) return { rows: side, cols: side, offset: 0 };
  if (cls * cls === S - 1) return { rows: cls, cols: cls, offset: 1 };
  return null;
}

function drawOverlay() {
  const kind = overlayKind(), panel = $('overlay-panel');
  $('query-label').style.display = kind ? '' : 'none';
  if (!kind) { panel.style.display = 'none'; return; }
  panel.style.display = '';
  const mp = D.maps[state.map], row = state.matrix[Math.min(state.query, state.matrix.length - 1)];
  const img = images[kind], c = $('overlay'), ctx = c.getContext('2d'), top = Math.max(...row) || 1;
  if (!img || !img.complete) return;
  if (kind === 'image') {
    const g = patchGrid(row.length);
    const scale = 320 / Math.max(img.width, img.height);
    c.width = Math.round(img.width * scale); c.height = Math.round(img.height * scale);
    ctx.imageSmoothingEnabled = false; ctx.drawImage(img, 0, 0, c.width, c.height);
    $('overlay-title').textContent = `"${mp.queries[state.query]}" over the image`;
    if (!g || g.offset < 0) return;
    const pw = c.width / g.cols, ph = c.height / g.rows;
    for (let r = 0; r < g.rows; r++) for (let q = 0; q < g.cols; q++) {
      ctx.fillStyle = `rgba(255,40,0,${(0.75 * row[g.offset + r * g.cols + q] / top).toFixed(3)})`;
      ctx.fillRect(q * pw, r * ph, pw, ph);
    }
  } else {
    // The spectrogram, then the token's weights over the encoder frames as bars on the same time axis.
    const specH = 160, barH = 60;
    c.width = 560; c.height = specH + barH; ctx.clearRect(0, 0, c.width, c.height);
    ctx.imageSmoothingEnabled = false; ctx.drawImage(img, 0, 0, c.width, specH);
    $('overlay-title').textContent = `"${mp.queries[state.query]}" over the spectrogram frames`;
    const fw = c.width / row.length;
    row.forEach((v, f) => {
      ctx.fillStyle = `rgba(0,220,255,${(0.6 * v / top).toFixed(3)})`; ctx.fillRect(f * fw, 0, fw, specH);
      ctx.fillStyle = '#1f77b4'; const h = barH * v / top; ctx.fillRect(f * fw, specH + barH - h, fw, h);
    });
  }
}

function redraw() {
  state.matrix = currentMatrix();
  drawHeatmap(); drawLines(); drawOverlay();
}
function fillHeads() {
  const sel = $('head'), n = D.maps[state.map].heads.length; sel.innerHTML = '';
  option(sel, 'mean', n > 1 ? `mean of ${n}` : 'mean');
  for (let i = 0; i < n; i++) option(sel, String(i), String(i));
  if (state.head !== 'mean' && Number(state.head) >= n) state.head = 'mean';
  sel.value = state.head;
}
function fillQueries() {
  const sel = $('query'), mp = D.maps[state.map]; sel.innerHTML = '';
  mp.queries.forEach((q, t) => option(sel, String(t), `${t}: ${q}`));
  state.query = Math.min(state.query, mp.queries.length - 1); sel.value = String(state.query);
}

$('title').textContent = D.title || 'attention';
D.maps.forEach((mp, i) => option($('map'), String(i), `${mp.name} (${mp.heads.length} heads, ${mp.queries.length}x${mp.keys.length})`));
$('map').onchange = (e) => { state.map = Number(e.target.value); fillHeads(); fillQueries(); redraw(); };
$('head').onchange = (e) => { state.head = e.target.value; redraw(); };
$('query').onchange = (e) => { state.query = Number(e.target.value); drawOverlay(); };
for (const kind of ['image', 'spectrogram']) {
  if (!D[kind]) continue;
  images[kind] = new Image(); images[kind].onload = drawOverlay; images[kind].src = D[kind];
}
fillHeads(); fillQueries(); redraw();
document.body.dataset.ready = 'true';
</script>
</body></html>
"""
