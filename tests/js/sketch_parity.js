// Runs a sketch-rnn-js model in Node with @magenta/sketch (tfjs-core's CPU backend) and with the
// page's own sampler, for tests/test_export_js.py.
// usage: node sketch_parity.js NODE_MODULES_PARENT SKETCHRNN_LITE_JS MODEL.json INPUT.json
// INPUT: {"strokes": [[dx, dy, p1, p2, p3], ...] (data units), "greedy_steps": N} (greedy decoding
// from S0 feeds each point back, past an end-of-sketch state too)
// prints {"magenta": {"pdf": ..., "greedy": [...]}, "lite": {...}} on stdout
'use strict';
const path = require('path');
const fs = require('fs');

const [base, litePath, modelPath, inputPath] = process.argv.slice(2);
const modelJSON = JSON.parse(fs.readFileSync(modelPath, 'utf8'));
const input = JSON.parse(fs.readFileSync(inputPath, 'utf8'));

function argmax(a) {
  let best = 0;
  for (let i = 1; i < a.length; i++) if (a[i] > a[best]) best = i;
  return best;
}

function plain(pdf) {
  const out = {};
  for (const k of ['pi', 'muX', 'muY', 'sigmaX', 'sigmaY', 'corr', 'pen']) out[k] = Array.from(pdf[k].slice(0, k === 'pen' ? 3 : 20));
  return out;
}

function run(model) {
  model.setPixelFactor(1.0);  // offsets in data units: divided by info.scale_factor alone
  let state = model.update(model.zeroInput(), model.zeroState());
  for (const s of input.strokes) state = model.update(s, state);
  const pdf = plain(model.getPDF(state, 1.0, 1.0));
  const greedy = [];
  state = model.update(model.zeroInput(), model.zeroState());
  for (let t = 0; t < input.greedy_steps; t++) {
    const p = model.getPDF(state, 1.0, 1.0);
    const k = argmax(p.pi);
    const pen = argmax(p.pen);
    const stroke = [p.muX[k] * model.scaleFactor, p.muY[k] * model.scaleFactor, 0, 0, 0];
    stroke[2 + pen] = 1;
    greedy.push(stroke);
    state = model.update(stroke, state);
  }
  return {pdf, greedy};
}

const out = {};
const ms = require(path.join(base, 'node_modules', '@magenta', 'sketch'));
const tf = require(path.join(base, 'node_modules', '@tensorflow', 'tfjs-core'));
const magenta = new ms.SketchRNN('unused');
magenta.instantiateFromJSON(modelJSON[0], modelJSON[1], modelJSON[2]);
out.magenta = run(magenta);
out.backend = tf.getBackend();
const Lite = require(path.resolve(litePath));
out.lite = run(new Lite(modelJSON));
process.stdout.write(JSON.stringify(out));
