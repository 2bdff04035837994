/*
 * sketchrnn-lite: a small, dependency-free sampler for sketch-rnn-js models (.gen.json), with the
 * API of @magenta/sketch's SketchRNN (update, updateStrokes, getPDF, sample, zeroState, zeroInput,
 * copyState, setPixelFactor) and the same arithmetic: TensorFlow's basic LSTM cell (gates i, j, f, o,
 * forget bias 1.0), weights w = 10 * q / 32767, offsets divided by scale_factor / pixelFactor.
 * Hand-written instead of shipping @magenta/sketch because that bundle pulls TensorFlow.js (1.2 MB)
 * for a few small matrix-vector products per point. Works in a browser (global SketchRNNLite) and
 * in Node (module.exports).
 */
(function (root) {
  'use strict';

  var NMIXTURE = 20;
  var MAX_WEIGHT = 10.0;

  function base64ToInt16(b64) {
    var bin = typeof atob === 'function' ? atob(b64) : Buffer.from(b64, 'base64').toString('binary');
    var bytes = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    var out = new Int16Array(bytes.length >> 1);
    var view = new DataView(bytes.buffer);
    for (var k = 0; k < out.length; k++) out[k] = view.getInt16(2 * k, true);  // little-endian
    return out;
  }

  function dequantize(q) {
    var w = new Float32Array(q.length);
    for (var i = 0; i < q.length; i++) w[i] = MAX_WEIGHT * q[i] / 32767;
    return w;
  }

  function sigmoid(x) { return 1 / (1 + Math.exp(-x)); }

  function softmax(logits, temp) {
    var m = -Infinity, i, out = new Float32Array(logits.length), sum = 0;
    for (i = 0; i < logits.length; i++) m = Math.max(m, logits[i] / temp);
    for (i = 0; i < logits.length; i++) { out[i] = Math.exp(logits[i] / temp - m); sum += out[i]; }
    for (i = 0; i < logits.length; i++) out[i] /= sum;
    return out;
  }

  /* A seeded uniform generator (mulberry32), so a page or a test can replay a drawing. */
  function makeRandom(seed) {
    var a = seed >>> 0;
    return function () {
      a = (a + 0x6D2B79F5) >>> 0;
      var t = a;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }

  function SketchRNNLite(modelJSON, options) {
    var info = modelJSON[0], dims = modelJSON[1], strings = modelJSON[2];
    if (!info || !dims || !strings || strings.length !== 5) throw new Error('not a sketch-rnn-js model');
    this.info = info;
    this.numUnits = dims[0][0];
    this.nOut = dims[0][1];
    if (this.nOut !== 3 + 6 * NMIXTURE) throw new Error('the model must have 20 mixtures');
    var w = strings.map(function (s) { return dequantize(base64ToInt16(s)); });
    this.outputKernel = w[0];                            // [H, 3 + 6M] row-major
    this.outputBias = w[1];
    var H = this.numUnits, G = 4 * H;
    this.lstmKernel = new Float32Array((5 + H) * G);     // [5 + H, 4H]: input kernel, then recurrent
    this.lstmKernel.set(w[2], 0);
    this.lstmKernel.set(w[3], 5 * G);
    this.lstmBias = w[4];
    this.random = makeRandom((options && options.seed) || 1);
    this.setPixelFactor(2.0);
  }

  SketchRNNLite.prototype.setPixelFactor = function (f) {
    this.pixelFactor = f;
    this.scaleFactor = this.info.scale_factor / f;
  };

  SketchRNNLite.prototype.setSeed = function (seed) { this.random = makeRandom(seed); };

  SketchRNNLite.prototype.zeroState = function () {
    return {c: new Float32Array(this.numUnits), h: new Float32Array(this.numUnits)};
  };

  SketchRNNLite.prototype.copyState = function (s) {
    return {c: new Float32Array(s.c), h: new Float32Array(s.h)};
  };

  SketchRNNLite.prototype.zeroInput = function () { return [0, 0, 1, 0, 0]; };

  /* One LSTM step on a stroke-5 point [dx, dy, p1, p2, p3] in pixels -> the new state. */
  SketchRNNLite.prototype.update = function (stroke, state) {
    var H = this.numUnits, G = 4 * H, s = this.scaleFactor, K = this.lstmKernel;
    var x = [stroke[0] / s, stroke[1] / s, stroke[2], stroke[3], stroke[4]];
    var g = new Float32Array(this.lstmBias);
    var r, j, row, v;
    for (r = 0; r < 5; r++) {
      v = x[r];
      if (v === 0) continue;
      row = r * G;
      for (j = 0; j < G; j++) g[j] += v * K[row + j];
    }
    for (r = 0; r < H; r++) {
      v = state.h[r];
      if (v === 0) continue;
      row = (5 + r) * G;
      for (j = 0; j < G; j++) g[j] += v * K[row + j];
    }
    var c = new Float32Array(H), h = new Float32Array(H);
    for (j = 0; j < H; j++) {
      c[j] = state.c[j] * sigmoid(g[2 * H + j] + 1.0) + sigmoid(g[j]) * Math.tanh(g[H + j]);
      h[j] = Math.tanh(c[j]) * sigmoid(g[3 * H + j]);
    }
    return {c: c, h: h};
  };

  SketchRNNLite.prototype.updateStrokes = function (strokes, state, steps) {
    var n = steps || strokes.length;
    for (var i = 0; i < n; i++) state = this.update(strokes[i], state);
    return state;
  };

  /* The mixture after a state, as @magenta/sketch's getPDF: pi and pen from softmax(logits / t'),
     t' = 0.5 + 0.5 * temperature (or softmaxTemperature), sigmas times sqrt(temperature). */
  SketchRNNLite.prototype.getPDF = function (state, temperature, softmaxTemperature) {
    if (temperature === undefined) temperature = 0.65;
    var discrete = softmaxTemperature || 0.5 + 0.5 * temperature;
    var H = this.numUnits, N = this.nOut, W = this.outputKernel, M = NMIXTURE;
    var z = new Float32Array(this.outputBias);
    for (var r = 0; r < H; r++) {
      var v = state.h[r], row = r * N;
      for (var j = 0; j < N; j++) z[j] += v * W[row + j];
    }
    var sq = Math.sqrt(temperature);
    var part = function (k) { return z.subarray(3 + k * M, 3 + (k + 1) * M); };
    var sx = new Float32Array(M), sy = new Float32Array(M), corr = new Float32Array(M);
    for (var k = 0; k < M; k++) {
      sx[k] = Math.exp(part(3)[k]) * sq;
      sy[k] = Math.exp(part(4)[k]) * sq;
      corr[k] = Math.tanh(part(5)[k]);
    }
    return {pi: softmax(part(0), discrete), muX: new Float32Array(part(1)), muY: new Float32Array(part(2)),
            sigmaX: sx, sigmaY: sy, corr: corr, pen: softmax(z.subarray(0, 3), discrete)};
  };

  function sampleIndex(p, u) {
    var acc = 0;
    for (var i = 0; i < p.length; i++) { acc += p[i]; if (acc >= u) return i; }
    return p.length - 1;  // round-off left the sum below u
  }

  function argmax(p) {
    var best = 0;
    for (var i = 1; i < p.length; i++) if (p[i] > p[best]) best = i;
    return best;
  }

  SketchRNNLite.prototype.gauss = function () {
    // Box-Muller on the seeded generator
    var u = 1 - this.random(), v = this.random();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  };

  /* A point drawn from the mixture, in pixels: [dx, dy, p1, p2, p3]. greedy: the most likely
     component, its mean and the most likely pen state. */
  SketchRNNLite.prototype.sample = function (pdf, greedy) {
    var k = greedy ? argmax(pdf.pi) : sampleIndex(pdf.pi, this.random());
    var pen = greedy ? argmax(pdf.pen) : sampleIndex(pdf.pen, this.random());
    var dx = pdf.muX[k], dy = pdf.muY[k];
    if (!greedy) {
      var n1 = this.gauss(), n2 = this.gauss(), rho = pdf.corr[k];
      dx += pdf.sigmaX[k] * n1;
      dy += pdf.sigmaY[k] * (rho * n1 + Math.sqrt(1 - rho * rho) * n2);
    }
    var out = [dx * this.scaleFactor, dy * this.scaleFactor, 0, 0, 0];
    out[2 + pen] = 1;
    return out;
  };

  SketchRNNLite.NMIXTURE = NMIXTURE;
  if (typeof module !== 'undefined' && module.exports) module.exports = SketchRNNLite;
  else root.SketchRNNLite = SketchRNNLite;
})(this);
