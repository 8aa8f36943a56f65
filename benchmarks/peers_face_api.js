// face-api (@vladmandic/face-api, npm) on the faces written by `python benchmarks/peers.py faces`:
// its FaceExpressionNet on the WASM backend, one row of the table benchmarks/peers.py prints.
//
//   mkdir -p peers/face-api && cd peers/face-api && npm init -y && \
//     npm install @vladmandic/face-api@1.7.15 @tensorflow/tfjs@4.22.0 @tensorflow/tfjs-backend-wasm@4.22.0 && cd ../..
//   NODE_PATH=peers/face-api/node_modules node benchmarks/peers_face_api.js peers peers/face-api/node_modules/@vladmandic/face-api/model
//
// Each 48x48 gray face is given as a 48x48 RGB image (the net resizes it to 112x112 itself).
const fs = require('fs');
const path = require('path');
const tf = require('@tensorflow/tfjs');
require('@tensorflow/tfjs-backend-wasm');
const faceapi = require('@vladmandic/face-api/dist/face-api.node-wasm.js');

const SHARED = ['neutral', 'happy', 'surprised', 'sad', 'angry', 'disgusted', 'fearful']; // ferkit's order
const KEYS = ['clean', 'noise_std8', 'blur_sigma1', 'jpeg_q30', 'lowres_24px'];
const SIDE = 48;

function tensors(buffer, start, count) {
  const out = [];
  for (let i = start; i < start + count; i += 1) {
    const gray = Float32Array.from(buffer.subarray(i * SIDE * SIDE, (i + 1) * SIDE * SIDE));
    out.push(tf.tidy(() => tf.tensor3d(gray, [SIDE, SIDE, 1]).tile([1, 1, 3])));
  }
  return out;
}

async function predict(buffer, start, count) {
  const input = tensors(buffer, start, count);
  const result = await faceapi.nets.faceExpressionNet.predictExpressions(input.length === 1 ? input[0] : input);
  input.forEach((t) => t.dispose());
  return (Array.isArray(result) ? result : [result]).map((e) => SHARED.map((name) => e[name]));
}

function score(labels, predicted) {
  let right = 0;
  const perClass = new Map();
  labels.forEach((label, i) => {
    const hit = predicted[i] === label ? 1 : 0;
    right += hit;
    const [h, n] = perClass.get(label) || [0, 0];
    perClass.set(label, [h + hit, n + 1]);
  });
  const recalls = [...perClass.values()].map(([h, n]) => h / n);
  return [right / labels.length, recalls.reduce((a, b) => a + b, 0) / recalls.length];
}

async function main() {
  const [facesDir, modelDir] = process.argv.slice(2);
  await tf.setBackend('wasm');
  await tf.ready();
  await faceapi.nets.faceExpressionNet.loadFromDisk(modelDir);
  const labels = Array.from(fs.readFileSync(path.join(facesDir, 'labels.u8')));
  const cells = [];
  for (const key of KEYS) {
    const buffer = fs.readFileSync(path.join(facesDir, `faces_${key}.u8`));
    const predicted = [];
    for (let start = 0; start < labels.length; start += 64) {
      const rows = await predict(buffer, start, Math.min(64, labels.length - start));
      rows.forEach((row) => predicted.push(row.indexOf(Math.max(...row))));
    }
    const [accuracy, balanced] = score(labels, predicted);
    cells.push(`${(100 * accuracy).toFixed(2)}% / ${(100 * balanced).toFixed(1)}%`);
  }
  const clean = fs.readFileSync(path.join(facesDir, 'faces_clean.u8'));
  await predict(clean, 0, 1);
  const began = process.hrtime.bigint();
  for (let i = 0; i < 300; i += 1) await predict(clean, i, 1);
  const ms = Number(process.hrtime.bigint() - began) / 1e6 / 300;
  console.log(`| face-api 1.7.15 (FaceExpressionNet, tfjs WASM) | ${cells.join(' | ')} | ${ms.toFixed(2)} |`);
}

main();
