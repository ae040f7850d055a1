// bench-ort.mjs MODEL.onnx BxT THREADS [REFERENCE.json]: onnxruntime (npm onnxruntime-node, CPU, fp32) on the
// network the oracle exported, timed the way `eml bench` times ours (3 warm-up runs, then about two seconds
// and at least 10 runs; median and p90 of single forward passes). Prints one line in eml bench's format.
// With REFERENCE.json ({"ids": [...], "embedding": [...]}) it first checks ORT reproduces that embedding.
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
const require = createRequire(process.cwd() + '/');
const ort = require('onnxruntime-node');

const [model, shape, threadsArg, ref] = process.argv.slice(2);
const [B, T] = shape.split('x').map(Number);
const threads = Number(threadsArg);
const session = await ort.InferenceSession.create(model, {
	intraOpNumThreads: threads, interOpNumThreads: 1, executionMode: 'sequential', graphOptimizationLevel: 'all',
});

function feeds(b, t, fill) {
	const ids = new BigInt64Array(b * t), mask = new BigInt64Array(b * t).fill(1n);
	for (let i = 0; i < b * t; i++) ids[i] = BigInt(fill(Math.floor(i / t), i % t));
	return { input_ids: new ort.Tensor('int64', ids, [b, t]), attention_mask: new ort.Tensor('int64', mask, [b, t]) };
}

if (ref) {
	const r = JSON.parse(readFileSync(ref, 'utf8'));
	const out = (await session.run(feeds(1, r.ids.length, (s, t) => r.ids[t]))).embeddings.data;
	let worst = 0;
	for (let i = 0; i < r.embedding.length; i++) worst = Math.max(worst, Math.abs(out[i] - r.embedding[i]));
	if (!(worst < 1e-4)) { console.error(`ort: differs from the oracle by ${worst}`); process.exit(1); }
}

// The same ids eml bench uses: [CLS] spread word pieces [SEP].
const vs = 30522;
const input = feeds(B, T, (s, t) => (t === 0 ? 101 : t === T - 1 ? 102 : 1000 + ((s * 131 + t * 7919) % (vs - 2000))));
for (let i = 0; i < 3; i++) await session.run(input);
let t0 = process.hrtime.bigint();
await session.run(input);
const once = Number(process.hrtime.bigint() - t0) / 1e6;
const iters = Math.max(10, Math.min(1000, Math.floor(2000 / Math.max(once, 0.001))));
const ms = [];
for (let i = 0; i < iters; i++) {
	t0 = process.hrtime.bigint();
	await session.run(input);
	ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
}
ms.sort((a, b) => a - b);
const med = ms[Math.floor(iters / 2)], p90 = ms[Math.min(iters - 1, Math.floor(iters * 9 / 10))];
const rss = process.resourceUsage().maxRSS / 1024;
console.log(`shape=${shape} threads=${threads} median_ms=${med.toFixed(3)} p90_ms=${p90.toFixed(3)} ` +
	`sentences_per_s=${(B / (med / 1000)).toFixed(1)} peak_rss_mb=${rss.toFixed(1)}`);
console.error(`kernels=onnxruntime min_ms=${ms[0].toFixed(3)} iterations=${iters}`);
