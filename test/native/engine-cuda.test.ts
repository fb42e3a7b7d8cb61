// The CUDA backend. Where no GPU is visible (CI) the parity tests skip with a message and what
// must hold everywhere is checked: the addon loads, reports no device, refuses a GPU engine with
// a typed error, stages weights for CUDA without a device, and `auto` falls back to the CPU.
// Where a GPU is visible, the C++ driver (build/test_cuda: every CUDA op against the CPU
// reference, whole steps on the model) runs, and the same parity is checked through Node.
import { spawn, spawnSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';

import { resolveBackend } from '../../src/config.js';
import { runOffline } from '../../src/offline.js';
import { loadNative, toNativeModelSpec } from '../../src/workers/binding.js';
import { EngineInstance } from '../../src/workers/engine-instance.js';
import { loadModelSpec } from '../../src/model/load.js';
import { startTestApp } from '../routes/helpers.js';
import { runCli } from '../fixtures/capture.js';
import { GOLDEN_IDS, MODEL_DIR, REPO_ROOT } from '../fixtures/paths.js';

const native = loadNative();
const devices = native.cudaDeviceCount();
const NO_GPU = devices === 0 ? 'no CUDA device visible: the GPU parity tests run only on a machine with an NVIDIA GPU' : false;
const golden = GOLDEN_IDS.slice(1);
const driver = join(REPO_ROOT, 'build', 'test_cuda');

const openGpu = (dtype: 'f16' | 'bf16' | 'int8', extra: { cudaGraphs?: boolean; numKvBlocks?: number } = {}) =>
  EngineInstance.open({
    modelPath: MODEL_DIR,
    dtype,
    numThreads: 1,
    numKvBlocks: extra.numKvBlocks ?? 128,
    blockSize: 16,
    backend: 'gpu',
    maxNumTokens: 512,
    maxNumSeqs: 64,
    cudaGraphs: extra.cudaGraphs ?? true,
  });

// ---- everywhere ----

t.test('the addon reports CUDA devices without failing', async (t) => {
  t.type(devices, 'number');
  t.ok(devices >= 0);
  t.equal(resolveBackend('auto', devices), devices > 0 ? 'gpu' : 'cpu', 'auto follows the devices');
});

t.test('the C++ CUDA driver is built and runs (or says why it skips)', async (t) => {
  if (!existsSync(driver)) {
    // a build without nvcc has no CUDA backend at all; then no GPU engine can be created either
    t.equal(devices, 0, 'no CUDA build → no devices');
    await t.rejects(openGpu('f16'), { code: 'WEFT_ERR_ENGINE_NO_DEVICE' });
    return;
  }
  const list = spawnSync(driver, ['--list'], { encoding: 'utf8' });
  t.equal(list.status, 0);
  for (const name of ['gemm', 'attention', 'sampl', 'rmsnorm', 'rope', 'engine_greedy_golden_ids', 'engine_batched_equals_alone'])
    t.match(list.stdout, name, `the driver has ${name} tests`);
  if (devices === 0) {
    const r = spawnSync(driver, ['--model', MODEL_DIR], { encoding: 'utf8' });
    t.equal(r.status, 0, r.stderr);
    t.match(r.stdout, /skipped: no CUDA device visible/);
    return;
  }
  // One process per test, several at once: the CPU references dominate the run time. The
  // *_perf tests only time kernels (scripts/gpu-check.sh runs them alone), so they stay out.
  const names = list.stdout.split('\n').filter((n) => n && !n.endsWith('_perf') && !n.includes('_perf_'));
  const runOne = (name: string) =>
    new Promise<{ name: string; status: number | null; out: string }>((resolve) => {
      const child = spawn(driver, ['--model', MODEL_DIR, `=${name}`], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (d) => (out += d));
      child.stderr.on('data', (d) => (out += d));
      child.on('close', (status) => resolve({ name, status, out }));
    });
  const results: { name: string; status: number | null; out: string }[] = [];
  const queue = [...names];
  await Promise.all(
    Array.from({ length: Math.min(8, availableParallelism()) }, async () => {
      for (let n = queue.shift(); n; n = queue.shift()) results.push(await runOne(n));
    }),
  );
  let passed = 0;
  for (const r of results) {
    const m = /(\d+) checks passed, (\d+) failed/.exec(r.out);
    passed += Number(m?.[1] ?? 0);
    t.ok(r.status === 0 && m && m[2] === '0', `${r.name}: ${m?.[0] ?? 'no summary'}`, {
      diagnostic: r.status !== 0,
      failures: r.out
        .split('\n')
        .filter((l) => /FAIL/.test(l))
        .slice(0, 20)
        .join('\n'),
    });
  }
  t.ok(passed > 50, `driver checks passed: ${passed} in ${results.length} tests`);
});

t.test('weights stage for CUDA on any machine; dtypes a backend cannot run are typed errors', async (t) => {
  const spec = await loadModelSpec(MODEL_DIR);
  for (const dtype of ['f16', 'bf16', 'int8'] as const) {
    const m = native.loadModel(toNativeModelSpec(spec, dtype, `${MODEL_DIR}-stage-test`, 'cuda'));
    t.ok(m.weightBytes > 0, `${dtype}: ${m.weightBytes} bytes staged`);
  }
  t.throws(() => native.loadModel(toNativeModelSpec(spec, 'f32', `${MODEL_DIR}-stage-test`, 'cuda')), { code: 'WEFT_ERR_MODEL_UNSUPPORTED_DTYPE' });
  t.throws(() => native.loadModel(toNativeModelSpec(spec, 'bf16', `${MODEL_DIR}-stage-test`, 'cpu')), { code: 'WEFT_ERR_MODEL_UNSUPPORTED_DTYPE' });
  const cpuModel = native.loadModel(toNativeModelSpec(spec, 'f32', `${MODEL_DIR}-stage-test`, 'cpu'));
  t.throws(
    () => native.createEngine(cpuModel.handle, { backend: 'cuda', numThreads: 1, numKvBlocks: 16, blockSize: 16 }),
    { code: devices > 0 ? 'WEFT_ERR_ENGINE_BAD_INPUT' : 'WEFT_ERR_ENGINE_NO_DEVICE' },
    'a CPU-layout model cannot feed a CUDA engine',
  );
});

t.test('without a GPU: gpu is a typed error, auto serves on the CPU', { skip: devices > 0 ? 'a GPU is visible here' : false }, async (t) => {
  await t.rejects(openGpu('f16'), { code: 'WEFT_ERR_ENGINE_NO_DEVICE', message: /no CUDA device/ });
  const gpu = await runCli(['generate', '--model', MODEL_DIR, '--prompt', '', '--max-tokens', '8', '--backend', 'gpu', '--json']);
  const auto = await runCli(['generate', '--model', MODEL_DIR, '--prompt', '', '--max-tokens', '8', '--backend', 'auto', '--json']);
  const gpuCode = gpu.code,
    autoCode = auto.code,
    out = gpu.out + gpu.err + auto.out + auto.err;
  t.equal(gpuCode, 1, 'generate --backend gpu exits 1');
  t.match(out, /WEFT_ERR_ENGINE_NO_DEVICE/);
  t.equal(autoCode, 0, 'generate --backend auto runs on the CPU');
  t.match(out, `"output_ids":[${golden.slice(0, 8).join(',')}]`);
  await t.rejects(startTestApp({ backend: 'gpu', dtype: 'auto' }), { code: 'WEFT_ERR_ENGINE_NO_DEVICE' }, 'the server refuses --backend gpu');
  const s = await startTestApp({ backend: 'auto' });
  const r = await s.app.inject({ method: 'POST', url: '/generate', payload: { prompt: '', max_tokens: 8, temperature: 0 } });
  t.equal(r.statusCode, 200, r.body);
  await s.close();
});

// ---- on a GPU ----

t.test('GPU: greedy from BOS equals the golden ids (f16, graphs on and off)', { skip: NO_GPU }, async (t) => {
  for (const cudaGraphs of [true, false]) {
    const e = await openGpu('f16', { cudaGraphs });
    t.match(e.kvDtype, /f16/);
    const [r] = runOffline(e, [{ promptIds: [1], maxTokens: golden.length, ignoreEos: true }]);
    t.same(r.outputIds, golden, `graphs ${cudaGraphs}`);
    e.close();
  }
});

t.test('GPU: logits against the CPU f32 engine; bf16 and int8 stay close to the golden ids', { skip: NO_GPU }, async (t) => {
  const cpu = await EngineInstance.open({ modelPath: MODEL_DIR, dtype: 'f32', numThreads: 1, numKvBlocks: 64, blockSize: 16 });
  const prompt = GOLDEN_IDS.slice(0, 20);
  const [ref] = runOffline(cpu, [{ promptIds: prompt, maxTokens: 8, ignoreEos: true }], { returnLogits: true });
  cpu.close();
  for (const [dtype, tol, minAgree] of [
    ['f16', 0.08, 48],
    ['bf16', 0.5, 43],
    ['int8', 1.0, 43],
  ] as const) {
    const e = await openGpu(dtype);
    const [r] = runOffline(e, [{ promptIds: prompt, maxTokens: 8, ignoreEos: true }], { returnLogits: true });
    let worst = 0;
    for (let i = 0; i < ref.logits.length && ref.outputIds[i] === r.outputIds[i]; i++)
      for (let v = 0; v < ref.logits[i].length; v++) worst = Math.max(worst, Math.abs(ref.logits[i][v] - r.logits[i][v]));
    t.ok(worst < tol, `${dtype}: max |logit - CPU f32| = ${worst.toFixed(4)} (< ${tol})`);
    const [g] = runOffline(e, [{ promptIds: [1], maxTokens: golden.length, ignoreEos: true }]);
    const agree = g.outputIds.filter((id, i) => id === golden[i]).length;
    t.ok(agree >= minAgree, `${dtype}: ${agree}/${golden.length} greedy ids equal the golden ids`);
    e.close();
  }
});

t.test('GPU: 8 mixed prefill/decode sequences batched equal each alone', { skip: NO_GPU }, async (t) => {
  const e = await openGpu('f16', { numKvBlocks: 256 });
  const reqs = Array.from({ length: 8 }, (_, i) => ({
    promptIds: [1, ...Array.from({ length: 2 + 11 * i }, (_, j) => 3 + ((i * 37 + j * 11) % 500))],
    maxTokens: 24,
    ignoreEos: true,
    startStep: i,
  }));
  const alone = reqs.map((q) => runOffline(e, [{ ...q, startStep: 0 }])[0].outputIds);
  const batched = runOffline(e, reqs, { chunkSize: 13 }).map((r) => r.outputIds);
  t.same(batched, alone);
  e.close();
});

t.test('GPU: seeded sampling is reproducible and logprobs come back', { skip: NO_GPU }, async (t) => {
  const e = await openGpu('f16');
  const req = {
    promptIds: [1, 403, 407],
    maxTokens: 24,
    ignoreEos: true,
    sampling: { temperature: 0.9, topK: 40, topP: 0.95, minP: 0.02, seed: 7, numLogprobs: 5, repetitionPenalty: 1.2 },
  };
  const [a] = runOffline(e, [req]);
  const [b] = runOffline(e, [req, { ...req, sampling: { ...req.sampling, seed: 8 } }]);
  t.same(b.outputIds, a.outputIds, 'same seed → same tokens, alone or batched');
  t.ok(
    a.logprobs.every((lp) => lp <= 0 && Number.isFinite(lp)),
    'chosen-token logprobs',
  );
  t.ok(
    a.topLogprobs.every((top) => top.length === 5),
    'top-5 logprobs per token',
  );
  e.close();
});

t.test('GPU: the server serves /generate with --backend gpu', { skip: NO_GPU }, async (t) => {
  const s = await startTestApp({ backend: 'gpu', dtype: 'f16', gpuMemoryUtilization: 0.05 });
  const r = await s.app.inject({ method: 'POST', url: '/generate', payload: { prompt: '', max_tokens: 16, temperature: 0 } });
  t.equal(r.statusCode, 200, r.body);
  const m = await s.app.inject({ method: 'GET', url: '/v1/models' });
  t.equal(m.statusCode, 200);
  await s.close();
});

t.test('GPU: the top 32 log-probs (a width-16 beam search asks for 2 × 16), and a width-16 beam search served', { skip: NO_GPU }, async (t) => {
  const cpu = await EngineInstance.open({ modelPath: MODEL_DIR, dtype: 'f32', numThreads: 1, numKvBlocks: 64, blockSize: 16 });
  t.teardown(() => cpu.close());
  const e = await openGpu('f16');
  t.teardown(() => e.close());
  const req = { promptIds: [1, 403, 407], maxTokens: 1, ignoreEos: true, sampling: { numLogprobs: 32 } };
  const [g] = runOffline(e, [req]);
  const [c] = runOffline(cpu, [req]);
  const top = g.topLogprobs[0];
  t.equal(top.length, 32, '32 candidates');
  t.ok(
    top.every((x, i) => i === 0 || x.logprob <= top[i - 1].logprob),
    'best first',
  );
  const cpuIds = new Set(c.topLogprobs[0].map((x) => x.id));
  t.ok(top.filter((x) => cpuIds.has(x.id)).length >= 30, 'the same candidates as the CPU f32 engine (f16 may swap the last near-ties)');
  const s = await startTestApp({ backend: 'gpu', dtype: 'f16' });
  t.teardown(() => s.close());
  const r = await s.app.inject({ method: 'POST', url: '/rerank_scores', payload: { messages: ['Hello'], beam_width: 16, max_tokens: 8 } });
  t.equal(r.statusCode, 200, r.body);
  t.equal(r.json().hypotheses.length, 16, '16 hypotheses');
});
