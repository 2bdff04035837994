/*
 * The drawing page: a person draws strokes with pointer events (mouse, touch, pen); after each
 * stroke the model reads them and draws on, a few points per animation frame, until it ends the
 * drawing. window.sketchPage exposes the state (for tests and the console).
 */
(function () {
  'use strict';

  var config = window.SKETCH_CONFIG;
  var canvas = document.getElementById('board');
  var ctx = canvas.getContext('2d');
  var statusEl = document.getElementById('status');
  var tempInput = document.getElementById('temperature');
  var tempOut = document.getElementById('temperature-value');
  var SIZE = canvas.width;                 // drawing coordinates: canvas pixels (512 x 512)
  var STEPS_PER_FRAME = 3;
  var page = window.sketchPage = {state: 'loading', userStrokes: [], modelRows: [], modelLines: 0, runs: 0,
                                   error: null};
  var model = null;
  var current = null;                      // the stroke being drawn: [[x, y], ...]
  var job = 0;                             // bumps to cancel the model's drawing in progress

  function setStatus(text) { statusEl.textContent = text; }

  function fail(e) {
    page.state = 'error';
    page.error = String(e && e.message || e);
    setStatus('Error: ' + page.error);
    console.error(e);
  }

  /* Ramer-Douglas-Peucker on one stroke, so the model sees points as far apart as in its data. */
  function simplify(points, eps) {
    if (points.length < 3) return points.slice();
    var keep = new Uint8Array(points.length), stack = [[0, points.length - 1]];
    keep[0] = keep[points.length - 1] = 1;
    while (stack.length) {
      var seg = stack.pop(), a = points[seg[0]], b = points[seg[1]], best = -1, dmax = 0;
      var dx = b[0] - a[0], dy = b[1] - a[1], len = Math.hypot(dx, dy);
      for (var i = seg[0] + 1; i < seg[1]; i++) {
        var p = points[i];
        var d = len > 0 ? Math.abs(dy * (p[0] - a[0]) - dx * (p[1] - a[1])) / len : Math.hypot(p[0] - a[0], p[1] - a[1]);
        if (d > dmax) { dmax = d; best = i; }
      }
      if (dmax > eps) { keep[best] = 1; stack.push([seg[0], best], [best, seg[1]]); }
    }
    return points.filter(function (_, i) { return keep[i]; });
  }

  /* The person's strokes as stroke-5 rows in canvas pixels, the first row an offset from (0, 0). */
  function userRows() {
    var rows = [], last = [0, 0];
    page.userStrokes.forEach(function (stroke) {
      stroke.forEach(function (p, i) {
        var up = i === stroke.length - 1;
        rows.push([p[0] - last[0], p[1] - last[1], up ? 0 : 1, up ? 1 : 0, 0]);
        last = p;
      });
    });
    return rows;
  }

  function line(a, b, color) {
    ctx.strokeStyle = color;
    ctx.lineWidth = 3;
    ctx.lineCap = 'round';
    ctx.beginPath();
    ctx.moveTo(a[0], a[1]);
    ctx.lineTo(b[0], b[1]);
    ctx.stroke();
  }

  function redrawUser() {
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    page.userStrokes.concat(current ? [current] : []).forEach(function (s) {
      for (var i = 1; i < s.length; i++) line(s[i - 1], s[i], '#111');
      if (s.length === 1) line(s[0], s[0], '#111');
    });
  }

  /* Run the person's strokes through the model, then let it draw on until it ends the drawing. */
  function finish() {
    var my = ++job;
    redrawUser();
    page.modelRows = [];
    page.modelLines = 0;
    page.state = 'drawing';
    page.runs++;
    var temperature = parseFloat(tempInput.value);
    var rows = userRows();
    var state = model.update(model.zeroInput(), model.zeroState());
    rows.forEach(function (r) { state = model.update(r, state); });
    var pos = rows.reduce(function (p, r) { return [p[0] + r[0], p[1] + r[1]]; }, [0, 0]);
    var penDown = rows.length ? rows[rows.length - 1][2] === 1 : false;
    var maxSteps = model.info.max_seq_len || 250;
    setStatus('The model is drawing...');
    function step() {
      if (my !== job) return;
      try {
        for (var k = 0; k < STEPS_PER_FRAME; k++) {
          // pi and pen from softmax(logits / t), sigma x sqrt(t): `sample --sigma-form paper` (both runtimes)
          var pt = model.sample(model.getPDF(state, temperature, temperature));
          if (pt[4] === 1 || page.modelRows.length >= maxSteps) {
            page.state = 'done';
            setStatus('The model added ' + page.modelRows.length + ' points. Draw more, or sample again.');
            return;
          }
          var next = [pos[0] + pt[0], pos[1] + pt[1]];
          if (penDown) { line(pos, next, '#d33'); page.modelLines++; }
          pos = next;
          penDown = pt[2] === 1;
          page.modelRows.push(pt);
          state = model.update(pt, state);
        }
      } catch (e) { fail(e); return; }
      requestAnimationFrame(step);
    }
    requestAnimationFrame(step);
  }

  function toCanvas(e) {
    var r = canvas.getBoundingClientRect();
    return [(e.clientX - r.left) * canvas.width / r.width, (e.clientY - r.top) * canvas.height / r.height];
  }

  canvas.addEventListener('pointerdown', function (e) {
    if (!model) return;
    e.preventDefault();
    canvas.setPointerCapture(e.pointerId);
    job++;                                   // stop the model; its strokes go away
    current = [toCanvas(e)];
    page.state = 'user';
    redrawUser();
  });
  canvas.addEventListener('pointermove', function (e) {
    if (!current) return;
    var p = toCanvas(e), q = current[current.length - 1];
    line(q, p, '#111');
    current.push(p);
  });
  function endStroke(e) {
    if (!current) return;
    var last = current[current.length - 1], p = toCanvas(e);
    if (e.type === 'pointerup' && (p[0] !== last[0] || p[1] !== last[1])) current.push(p);
    var eps = 2.0 / model.pixelFactor;       // convert's RDP tolerance (2 data units) in canvas pixels
    page.userStrokes.push(simplify(current, eps));
    current = null;
    finish();
  }
  canvas.addEventListener('pointerup', endStroke);
  canvas.addEventListener('pointercancel', endStroke);

  document.getElementById('clear').addEventListener('click', function () {
    job++;
    page.userStrokes = [];
    page.modelRows = [];
    page.modelLines = 0;
    page.state = 'ready';
    redrawUser();
    setStatus('Cleared. Draw something.');
  });
  document.getElementById('sample').addEventListener('click', function () { if (model) finish(); });
  tempInput.addEventListener('input', function () {
    tempOut.textContent = parseFloat(tempInput.value).toFixed(2);
  });
  tempInput.addEventListener('change', function () { if (model && page.userStrokes.length) finish(); });

  function ready(m) {
    model = m;
    // a canvas pixel is size / 512 data units: the drawings the model learnt filled a size x size box
    model.setPixelFactor(config.size / SIZE);
    page.state = 'ready';
    page.runtime = config.runtime;
    setStatus('Model "' + (model.info.name || 'sketch-rnn') + '" (' + model.numUnits + ' units, ' +
              config.runtime + ' runtime) is ready. Draw something.');
  }

  /* Load a .gen.json (a class-conditional run has one per class: config.classes, the menu). */
  function load(url) {
    job++;
    model = null;
    page.state = 'loading';
    setStatus('Loading the model...');
    try {
      if (config.runtime === 'magenta') {
        var m = new window.ms.SketchRNN(url);
        m.initialize().then(function () { ready(m); if (page.userStrokes.length) finish(); }, fail);
      } else {
        fetch(url).then(function (r) {
          if (!r.ok) throw new Error('cannot load ' + url + ': HTTP ' + r.status);
          return r.json();
        }).then(function (json) {
          ready(new window.SketchRNNLite(json, {seed: config.seed}));
          if (page.userStrokes.length) finish();
        }, fail);
      }
    } catch (e) { fail(e); }
  }

  if (config.classes) {
    var menu = document.getElementById('class');
    config.classes.forEach(function (c) {
      var option = document.createElement('option');
      option.value = c.model;
      option.textContent = c.name;
      menu.appendChild(option);
    });
    document.getElementById('class-menu').hidden = false;
    menu.addEventListener('change', function () {
      page.className = menu.options[menu.selectedIndex].textContent;
      load(menu.value);
    });
    page.className = config.classes[0].name;
  }
  load(config.model);
})();
