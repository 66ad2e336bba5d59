/**
 * The admin status page: plain HTML and a script of its own (no framework, no CDN), served by
 * the server. The script reads `/status/feed` (server-sent events) and draws the charts on
 * canvases by hand. Text from events (library ids, types) is only ever set as textContent.
 */

export const STATUS_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Notification server status</title>
<style>
  :root { color-scheme: light; --ink: #1d2433; --muted: #6b7385; --line: #e3e6ee; --accent: #e8710a; --accent2: #1a73e8; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink); background: #f6f7fb; }
  header { display: flex; align-items: baseline; gap: 16px; padding: 16px 24px; background: #fff; border-bottom: 1px solid var(--line); }
  header h1 { font-size: 18px; margin: 0; }
  #state { color: var(--muted); }
  #tail-head { color: var(--muted); font-size: 12px; padding-bottom: 3px; border-bottom: 1px solid var(--line); }
  #state.live::before { content: "●"; color: #1e8e3e; margin-right: 6px; }
  #state.lost::before { content: "●"; color: #d93025; margin-right: 6px; }
  main { padding: 16px 24px; display: grid; gap: 16px; grid-template-columns: repeat(auto-fit, minmax(320px, 1fr)); }
  section { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 12px 16px; }
  h2 { font-size: 13px; font-weight: 600; color: var(--muted); margin: 0 0 4px; text-transform: uppercase; letter-spacing: .04em; }
  .value { font-size: 28px; font-weight: 600; font-variant-numeric: tabular-nums; }
  .unit { font-size: 14px; color: var(--muted); font-weight: 400; }
  canvas { width: 100%; height: 120px; display: block; margin-top: 8px; }
  table { width: 100%; border-collapse: collapse; font-variant-numeric: tabular-nums; }
  td, th { text-align: left; padding: 4px 6px; border-bottom: 1px solid var(--line); }
  th { color: var(--muted); font-weight: 500; }
  td.num, th.num { text-align: right; }
  .id { font-family: ui-monospace, "SFMono-Regular", Menlo, monospace; font-size: 12px; }
  ol#tail { list-style: none; margin: 0; padding: 0; max-height: 320px; overflow: auto; font-size: 13px; }
  ol#tail li, #tail-head { display: grid; grid-template-columns: 72px 150px 1fr 40px; gap: 8px; padding: 3px 0; border-bottom: 1px solid var(--line); }
  .wide { grid-column: 1 / -1; }
  .empty { color: var(--muted); }
  .legend { color: var(--muted); font-size: 12px; }
  .legend b { font-weight: 600; }
</style>
</head>
<body>
<header><h1>Notification server</h1><span id="state">connecting…</span></header>
<main>
  <section><h2>Connections</h2><div class="value" id="connections">–</div><canvas id="chart-connections" aria-label="connections over time"></canvas></section>
  <section><h2>Subscriptions</h2><div class="value"><span id="subscriptions">–</span> <span class="unit">in <span id="libraries">–</span> libraries</span></div><canvas id="chart-subscriptions" aria-label="subscriptions over time"></canvas></section>
  <section><h2>Events per second</h2><div class="value" id="events-per-second">–</div><canvas id="chart-events" aria-label="events per second"></canvas></section>
  <section><h2>Delivery latency</h2><div class="value"><span id="latency">–</span> <span class="unit">ms p99</span></div><div class="legend"><b style="color:var(--accent)">p99</b> · <b style="color:var(--accent2)">p50</b></div><canvas id="chart-latency" aria-label="delivery latency"></canvas></section>
  <section><h2>Busiest libraries, last minute</h2><table><thead><tr><th>library</th><th class="num">events</th><th class="num">subscribers</th></tr></thead><tbody id="busiest"></tbody></table><p class="empty" id="busiest-empty">no events yet</p></section>
  <section class="wide"><h2>Recent events</h2><div id="tail-head"><span>time</span><span>type</span><span>library</span><span>to</span></div><ol id="tail"></ol><p class="empty" id="tail-empty">no events yet</p></section>
</main>
<script src="/status/app.js"></script>
</body>
</html>
`;

export const STATUS_SCRIPT = `'use strict';
(function () {
  var HISTORY = 120;
  var TAIL = 50;
  var points = [];
  var $ = function (id) { return document.getElementById(id); };

  function format(n) { return n === null || n === undefined ? '–' : n.toLocaleString('en-US'); }
  function ms(n) { return n === null ? '–' : n < 1 ? n.toFixed(2) : n < 10 ? n.toFixed(1) : n.toFixed(0); }
  function clock(at) { return new Date(at).toTimeString().slice(0, 8); }

  // One hand-drawn line chart: series share the y axis, which starts at 0.
  function draw(canvas, series, unit) {
    var ratio = window.devicePixelRatio || 1;
    var width = canvas.clientWidth, height = canvas.clientHeight;
    if (canvas.width !== width * ratio || canvas.height !== height * ratio) { canvas.width = width * ratio; canvas.height = height * ratio; }
    var g = canvas.getContext('2d');
    g.setTransform(ratio, 0, 0, ratio, 0, 0);
    g.clearRect(0, 0, width, height);
    var max = 0;
    series.forEach(function (s) { s.values.forEach(function (v) { if (v !== null && v > max) max = v; }); });
    max = max <= 0 ? 1 : niceCeil(max);
    var left = 40, right = width - 4, top = 6, bottom = height - 16;
    g.strokeStyle = '#e3e6ee'; g.fillStyle = '#6b7385'; g.font = '11px system-ui, sans-serif'; g.lineWidth = 1;
    [0, 0.5, 1].forEach(function (f) {
      var y = bottom - f * (bottom - top);
      g.beginPath(); g.moveTo(left, y + 0.5); g.lineTo(right, y + 0.5); g.stroke();
      g.fillText(short(max * f) + unit, 2, y + 4);
    });
    g.fillText('-' + HISTORY + ' s', left, height - 3);
    g.fillText('now', right - 22, height - 3);
    var step = (right - left) / (HISTORY - 1);
    series.forEach(function (s) {
      g.strokeStyle = s.color; g.fillStyle = s.color; g.lineWidth = 2; g.beginPath();
      var offset = HISTORY - s.values.length, pen = false;
      var at = function (i) { return [left + (offset + i) * step, bottom - (s.values[i] / max) * (bottom - top)]; };
      s.values.forEach(function (v, i) {
        if (v === null) { pen = false; return; }
        var p = at(i);
        if (pen) g.lineTo(p[0], p[1]); else { g.moveTo(p[0], p[1]); pen = true; }
      });
      g.stroke();
      // A second with a value between two without one is a dot, not an invisible segment.
      s.values.forEach(function (v, i) {
        var before = i > 0 ? s.values[i - 1] : null, after = i + 1 < s.values.length ? s.values[i + 1] : null;
        if (v === null || before !== null || after !== null) return;
        var p = at(i);
        g.beginPath(); g.arc(p[0], p[1], 2.5, 0, 2 * Math.PI); g.fill();
      });
    });
  }
  function niceCeil(v) { var p = Math.pow(10, Math.floor(Math.log10(v))); var m = v / p; return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p; }
  function short(v) { return v >= 1e6 ? (v / 1e6) + 'M' : v >= 1e3 ? (v / 1e3) + 'k' : String(Math.round(v * 100) / 100); }

  function render() {
    var last = points[points.length - 1];
    if (last) {
      $('connections').textContent = format(last.connections);
      $('subscriptions').textContent = format(last.subscriptions);
      $('libraries').textContent = format(last.libraries);
      $('events-per-second').textContent = format(last.events);
      $('latency').textContent = ms(last.latencyP99Ms);
    }
    var pick = function (key) { return points.map(function (p) { return p[key]; }); };
    draw($('chart-connections'), [{ values: pick('connections'), color: '#1a73e8' }], '');
    draw($('chart-subscriptions'), [{ values: pick('subscriptions'), color: '#1a73e8' }], '');
    draw($('chart-events'), [{ values: pick('events'), color: '#1e8e3e' }], '');
    draw($('chart-latency'), [{ values: pick('latencyP50Ms'), color: '#1a73e8' }, { values: pick('latencyP99Ms'), color: '#e8710a' }], ' ms');
  }

  function cell(text, className) { var td = document.createElement('td'); td.textContent = text; if (className) td.className = className; return td; }

  function showBusiest(busiest) {
    var body = $('busiest');
    body.replaceChildren();
    busiest.forEach(function (b) {
      var tr = document.createElement('tr');
      tr.append(cell(b.repoId, 'id'), cell(format(b.events), 'num'), cell(format(b.subscribers), 'num'));
      body.append(tr);
    });
    $('busiest-empty').hidden = busiest.length > 0;
  }

  function addTail(entries) {
    var list = $('tail');
    entries.forEach(function (e) {
      var li = document.createElement('li');
      var parts = [clock(e.at), e.type, e.repoId, String(e.recipients)];
      parts.forEach(function (text, i) { var span = document.createElement('span'); span.textContent = text; if (i === 2) span.className = 'id'; if (i === 1) span.className = 'type'; li.append(span); });
      li.title = e.recipients + ' recipient(s)';
      list.prepend(li);
    });
    while (list.children.length > TAIL) list.lastElementChild.remove();
    $('tail-empty').hidden = list.children.length > 0;
  }

  function connect() {
    var feed = new EventSource('/status/feed');
    feed.onopen = function () { $('state').textContent = 'live'; $('state').className = 'live'; };
    feed.onerror = function () { $('state').textContent = 'connection lost, retrying…'; $('state').className = 'lost'; };
    feed.onmessage = function (message) {
      var data = JSON.parse(message.data);
      if (data.kind === 'snapshot') {
        points = data.points.slice(-HISTORY);
        $('tail').replaceChildren();
      } else {
        points.push(data.point);
        if (points.length > HISTORY) points.shift();
      }
      addTail(data.tail);
      showBusiest(data.busiest);
      // Under --workers: how many workers' figures are in (a missing one is left out).
      if (data.workers) $('state').textContent = 'live, ' + data.workers.answered + ' of ' + data.workers.expected + ' workers';
      render();
    };
  }
  window.addEventListener('resize', render);
  connect();
})();
`;
