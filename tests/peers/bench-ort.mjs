// bench-ort.mjs MODEL.onnx BxT THREADS [REFERENCE.json] [--lockstep SECONDS -- EML_BENCH_COMMAND...]
//
// onnxruntime (npm onnxruntime-node, CPU, fp32) on the network the oracle exported, timed the way `eml bench`
// times ours (3 warm-up runs, then about two seconds and at least 10 runs; median and p90 of single forward
// passes). Prints one line in eml bench's format. With REFERENCE.json ({"ids": [...], "embedding": [...]}) it
// first checks ORT reproduces that embedding.
//
// --lockstep: runs `EML_BENCH_COMMAND --lockstep` as a child (one pass per line it is sent) and alternates
// short bursts of the two engines for about SECONDS: eml then ort, ort then eml, ... Each burst waits until
// the other engine's threads are idle, runs one pass that is not counted (threads waking, caches refilling),
// then back-to-back passes for at least BURST_MS (as in a run of its own) and at least two. A round's ratio is
// eml's burst median / ort's; the two bursts are well under a second apart, so the drift of a shared host
// (10-30% over seconds here, sometimes a whole run at one core's speed) hits both alike, where two 2-second
// runs of their own can land in different phases. Prints the eml line and the ort line over the counted
// passes, then
//   lockstep shape=BxT rounds=N ratio_median=... ratio_geomean=... eml_min_ms=... ort_min_ms=...
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
const require = createRequire(process.cwd() + '/');
const ort = require('onnxruntime-node');

const argv = process.argv.slice(2);
const dashes = argv.indexOf('--');
const emlCommand = dashes >= 0 ? argv.slice(dashes + 1) : null;
const args = dashes >= 0 ? argv.slice(0, dashes) : argv;
let lockstepSeconds = 0;
const li = args.indexOf('--lockstep');
if (li >= 0) {
	lockstepSeconds = Number(args[li + 1]);
	args.splice(li, 2);
}
const [model, shape, threadsArg, ref] = args;
if (!model || !/^\d+x\d+$/.test(shape ?? '') || !(Number(threadsArg) > 0) ||
    (li >= 0 && (!(lockstepSeconds > 0) || !emlCommand?.length))) {
	console.error('usage: bench-ort.mjs MODEL.onnx BxT THREADS [REFERENCE.json] [--lockstep SECONDS -- EML_BENCH_COMMAND...]');
	process.exit(2);
}
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
async function ortPass() {
	const t0 = process.hrtime.bigint();
	await session.run(input);
	return Number(process.hrtime.bigint() - t0) / 1e6;
}
const median = (v) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
function report(ms, kernels, rss) {
	ms = [...ms].sort((a, b) => a - b);
	const n = ms.length, med = ms[Math.floor(n / 2)], p90 = ms[Math.min(n - 1, Math.floor(n * 9 / 10))];
	console.log(`shape=${shape} threads=${threads} median_ms=${med.toFixed(3)} p90_ms=${p90.toFixed(3)} ` +
		`sentences_per_s=${(B / (med / 1000)).toFixed(1)} peak_rss_mb=${rss.toFixed(1)}`);
	console.error(`kernels=${kernels} min_ms=${ms[0].toFixed(3)} iterations=${n}`);
}

for (let i = 0; i < 3; i++) await session.run(input);
if (!emlCommand) {
	const once = await ortPass();
	const iters = Math.max(10, Math.min(1000, Math.floor(2000 / Math.max(once, 0.001))));
	const ms = [];
	for (let i = 0; i < iters; i++) ms.push(await ortPass());
	report(ms, 'onnxruntime', process.resourceUsage().maxRSS / 1024);
	process.exit(0);
}

// Lockstep with eml bench.
const child = spawn(emlCommand[0], [...emlCommand.slice(1), '--lockstep'], { stdio: ['pipe', 'pipe', 'pipe'] });
child.on('error', (e) => { console.error(`${emlCommand[0]}: ${e.message}`); process.exit(1); });
let childErr = '';
child.stderr.on('data', (d) => { childErr += d; });
const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
async function nextLine() {
	const { value, done } = await lines.next();
	if (done) { console.error(`eml bench ended early: ${childErr.trim()}`); process.exit(1); }
	return value;
}
async function emlPass() {
	child.stdin.write('\n');
	const m = /^pass_ms=([0-9.]+)$/.exec(await nextLine());
	if (!m) { console.error('eml bench: unexpected output'); process.exit(1); }
	return Number(m[1]);
}
// Before a burst, wait until the other engine's threads are idle: onnxruntime's workers spin for about 40 ms
// after a run (its default, which back-to-back runs rely on), ours for about 1 ms (40000 pauses), and passes
// started while the other engine spins run on half the machine. onnxruntime runs in this process: idle is
// under 2 ms of CPU time in the last 12 ms (getrusage() charges a spinning thread a whole scheduler tick, 4 or
// 10 ms, at a time, so a shorter window cannot tell). For eml a fixed pause covers its spin.
async function settleOrt() {
	const start = Date.now(), window = [];
	for (let last = process.cpuUsage(); Date.now() - start < 1000;) {
		await sleep(2);
		const d = process.cpuUsage(last);
		last = process.cpuUsage();
		window.push({ t: Date.now(), us: d.user + d.system });
		while (window[0].t < Date.now() - 12) window.shift();
		if (Date.now() - start >= 12 && window.reduce((s, w) => s + w.us, 0) < 2000) return;
	}
}
const settleEml = () => sleep(3);
const BURST_MS = 250;
async function burst(pass, settle) {
	await settle();
	await pass();
	const ms = [], t0 = Date.now();
	do ms.push(await pass()); while (Date.now() - t0 < BURST_MS || ms.length < 2);
	return ms;
}
const emlMs = [], ortMs = [], ratios = [];
const t0 = Date.now();
for (let i = 0; Date.now() - t0 < lockstepSeconds * 1000 || i < 6; i++) {
	let e, o;
	if (i % 2 === 0) {
		e = await burst(emlPass, settleOrt);
		o = await burst(ortPass, settleEml);
	} else {
		o = await burst(ortPass, settleEml);
		e = await burst(emlPass, settleOrt);
	}
	emlMs.push(...e);
	ortMs.push(...o);
	ratios.push(median(e) / median(o));
}
child.stdin.end();
const rss = /peak_rss_mb=([0-9.]+)/.exec(await nextLine());
await new Promise((resolve) => child.on('close', resolve));
report(emlMs, /kernels=(\S+)/.exec(childErr)?.[1] ?? '?', rss ? Number(rss[1]) : NaN);
report(ortMs, 'onnxruntime', process.resourceUsage().maxRSS / 1024);
const geo = Math.exp(ratios.reduce((s, r) => s + Math.log(r), 0) / ratios.length);
console.log(`lockstep shape=${shape} rounds=${ratios.length} ratio_median=${median(ratios).toFixed(3)} ` +
	`ratio_geomean=${geo.toFixed(3)} eml_min_ms=${Math.min(...emlMs).toFixed(3)} ort_min_ms=${Math.min(...ortMs).toFixed(3)}`);
