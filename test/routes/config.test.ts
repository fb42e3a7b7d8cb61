// The one configuration: defaults < environment < CLI flags, validated (the error names the
// key), frozen, and sliced per part.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import t from 'tap';

import {
  DEFAULTS,
  describeConfig,
  kvFractionForInstance,
  loadConfig,
  resolveBackend,
  resolveDtype,
  resolveKvCacheBlocks,
  resolveNumThreads,
  schedulerSlice,
  serverSlice,
} from '../../src/config.js';
import { loadModelSpec } from '../../src/model/load.js';
import { synthesizeModel } from '../../src/model/synth.js';
import { checkpointKind } from '../../src/model/types.js';
import { availableMemoryBytes, cgroupCpuLimit, cgroupMemoryLeft, memAvailableBytes, usableCpuCount } from '../../src/system.js';
import { captureOutput } from '../fixtures/capture.js';
import { MODEL_DIR } from '../fixtures/paths.js';
import { Metrics } from '../../src/metrics.js';
import { runServer, startEngine } from '../../src/server.js';
import { startTestApp, testConfig } from './helpers.js';

t.test('defaults < env < flags', async (t) => {
  t.equal(loadConfig({ env: {} }).port, 8080);
  t.equal(DEFAULTS.cors, '', 'CORS off by default');
  const c = loadConfig({ env: { WEFT_PORT: '9000', WEFT_MAX_NUM_SEQS: '8', WEFT_API_KEYS: 'a, b' }, argv: ['--port', '9100', '--dtype', 'int8'] });
  t.equal(c.port, 9100, 'flag beats env');
  t.equal(c.maxNumSeqs, 8, 'env beats default');
  t.equal(c.dtype, 'int8');
  t.same(c.apiKeys, ['a', 'b']);
  t.ok(Object.isFrozen(c));
  t.same(describeConfig(c).apiKeys, ['a…(1)', 'b…(1)'], 'keys are masked when printed');
  t.equal(serverSlice(c).port, 9100);
  t.equal(schedulerSlice(c, 512).maxModelLen, 512, 'maxModelLen 0 = the model context');
  t.equal(schedulerSlice(loadConfig({ env: {}, argv: ['--max-model-len', '128'] }), 512).maxModelLen, 128);
});

t.test('invalid values name the key', async (t) => {
  const bad: [Record<string, string>, string[], RegExp][] = [
    [{ WEFT_PORT: 'eighty' }, [], /port.*integer/],
    [{}, ['--port', '70000'], /port.*\[0, 65535\]/],
    [{}, ['--backend', 'tpu'], /backend.*cpu \| gpu \| auto/],
    [{}, ['--backend', 'gpu', '--dtype', 'f32'], /dtype.*f32 weights run on the CPU/],
    [{}, ['--backend', 'cpu', '--dtype', 'bf16'], /dtype.*bf16 weights run on the GPU/],
    [{}, ['--backend', 'gpu', '--kv-dtype', 'f32'], /kvDtype/],
    [{}, ['--backend', 'gpu', '--kv-dtype', 'int8'], /kvDtype/],
    [{}, ['--kv-dtype', 'q4'], /kvDtype.*auto \| f32 \| f16 \| int8/],
    [{}, ['--gpu-memory-utilization', '1.5'], /gpuMemoryUtilization.*\[0, 0.99\]/],
    [{}, ['--gpu-memory-utilization', 'lots'], /gpuMemoryUtilization.*number/],
    [{}, ['--cuda-graphs', 'maybe'], /cudaGraphs.*true or false/],
    [{}, ['--num-threads', '0'], /numThreads/],
    [{}, ['--max-num-seqs', '512', '--max-num-batched-tokens', '256'], /maxNumBatchedTokens/],
    [{}, ['--no-such-flag', '1'], /no-such-flag/],
    [{ WEFT_DTYPE: 'f8' }, [], /dtype/],
    [{}, ['--headers-timeout-ms', '5000', '--body-timeout-ms', '1000'], /headersTimeoutMs.*must not exceed bodyTimeoutMs/],
    [{}, ['--max-seqs-per-request', '0'], /maxSeqsPerRequest/],
    [{}, ['--expose-model-path', 'perhaps'], /exposeModelPath.*true or false/],
  ];
  for (const [env, argv, msg] of bad)
    t.throws(() => loadConfig({ env, argv }), { code: 'WEFT_ERR_CONFIG_INVALID', message: msg }, JSON.stringify([env, argv]));
});

t.test('backend auto', async (t) => {
  t.equal(resolveBackend('auto', 0), 'cpu');
  t.equal(resolveBackend('auto', 1), 'gpu');
  t.equal(resolveBackend('cpu', 1), 'cpu');
  t.equal(resolveBackend('gpu', 2), 'gpu');
  t.throws(() => resolveBackend('gpu', 0), { code: 'WEFT_ERR_ENGINE_NO_DEVICE', message: /no CUDA device/ });
  t.equal(loadConfig({ argv: ['--backend', 'gpu'] }).backend, 'gpu', 'gpu is a valid choice; availability is checked at start');
});

t.test('dtype auto and GPU memory shares', async (t) => {
  t.equal(resolveDtype('auto', 'cpu', 'bf16'), 'f32');
  t.equal(resolveDtype('auto', 'gpu', 'bf16'), 'bf16');
  t.equal(resolveDtype('auto', 'gpu', 'float'), 'f16');
  t.equal(resolveDtype('auto', 'cpu', 'q8_0'), 'int8', 'a Q8_0 file runs on the int8 path');
  t.equal(resolveDtype('auto', 'gpu', 'q8_0'), 'int8');
  t.equal(resolveDtype('f32', 'cpu', 'q8_0'), 'f32', 'an explicit dtype still converts');
  t.equal(resolveDtype('auto', 'cpu', 'blocks'), 'quant', 'GGUF block types (Q4_K_M …) are kept on the CPU');
  t.equal(resolveDtype('auto', 'gpu', 'blocks'), 'int8', 'and dequantized to int8 on a GPU');
  t.equal(resolveDtype('int8', 'cpu', 'blocks'), 'int8', 'an explicit dtype still converts a block file');
  t.equal(resolveDtype('int8', 'gpu', 'float'), 'int8');
  t.equal(resolveDtype('int8', 'cpu', 'float'), 'int8');
  t.throws(() => resolveDtype('f32', 'gpu', 'float'), { code: 'WEFT_ERR_CONFIG_INVALID' });
  t.throws(() => resolveDtype('bf16', 'cpu', 'bf16'), { code: 'WEFT_ERR_CONFIG_INVALID' });
  t.equal(loadConfig({ argv: ['--gpu-memory-utilization', '0.5'] }).gpuMemoryUtilization, 0.5);
  t.equal(loadConfig({ env: { WEFT_CUDA_GRAPHS: 'false' } }).cudaGraphs, false);
  // n instances started one after another each take u/n of the memory free at the start
  for (const [u, n] of [
    [0.9, 1],
    [0.9, 2],
    [0.8, 4],
  ] as const) {
    let free = 1000;
    const taken: number[] = [];
    for (let i = 0; i < n; i++) {
      const got = free * kvFractionForInstance(u, n, i);
      taken.push(got);
      free -= got;
    }
    for (const x of taken) t.ok(Math.abs(x - (1000 * u) / n) < 1e-9, `u=${u} n=${n}: ${taken.map((v) => v.toFixed(1)).join(', ')}`);
  }
  t.equal(kvFractionForInstance(0, 2, 1), 0, 'utilization 0 = fixed block count');
});

t.test('--num-threads auto: the usable CPUs over the instances, at least 1', async (t) => {
  t.equal(loadConfig({ env: {} }).numThreads, 0, 'auto is the default');
  t.equal(loadConfig({ env: {}, argv: ['--num-threads', 'auto'] }).numThreads, 0);
  t.equal(loadConfig({ env: { WEFT_NUM_THREADS: '3' } }).numThreads, 3);
  t.equal(resolveNumThreads(0, 1, 8), 8);
  t.equal(resolveNumThreads(0, 3, 8), 2);
  t.equal(resolveNumThreads(0, 4, 2), 1);
  t.equal(resolveNumThreads(5, 4, 2), 5, 'an explicit count wins');
  t.ok(usableCpuCount() >= 1);
  t.equal(cgroupCpuLimit('max 100000'), Infinity);
  t.equal(cgroupCpuLimit('150000 100000\n'), 2);
  t.equal(cgroupCpuLimit('50000 100000'), 1);
});

t.test('--kv-cache-blocks auto: one full context and at least 1024 blocks, within half the memory left after the weights', async (t) => {
  t.equal(loadConfig({ env: {} }).kvCacheBlocks, 0, 'auto is the default');
  t.equal(loadConfig({ env: {}, argv: ['--kv-cache-blocks', 'auto'] }).kvCacheBlocks, 0);
  t.equal(loadConfig({ env: { WEFT_KV_CACHE_BLOCKS: '64' } }).kvCacheBlocks, 64);
  const GiB = 2 ** 30;
  // a Llama-3.2-1B-like cache: 16 layers x 8 KV heads x 64 x (K, V) x f16 = 32 KiB a token
  const base = { blockSize: 16, bytesPerToken: 32768, numInstances: 1, availableBytes: 16 * GiB, weightBytes: 2 * GiB };
  t.same(resolveKvCacheBlocks(0, { ...base, maxModelLen: 2048 }), { blocks: 1024, limitedByMemory: false }, 'a short context: the floor');
  t.same(
    resolveKvCacheBlocks(0, { ...base, maxModelLen: 131072 }),
    { blocks: 8192, limitedByMemory: false },
    'one 128K context (4 GiB) fits in 7 GiB',
  );
  // 4 GiB available, 2 GiB of weights: 1 GiB for the cache = 32768 tokens = 2048 blocks
  t.same(resolveKvCacheBlocks(0, { ...base, maxModelLen: 131072, availableBytes: 4 * GiB }), { blocks: 2048, limitedByMemory: true });
  t.same(
    resolveKvCacheBlocks(0, { ...base, maxModelLen: 2048, availableBytes: 2.5 * GiB }),
    { blocks: 512, limitedByMemory: true },
    'under the floor too',
  );
  t.same(
    resolveKvCacheBlocks(0, { ...base, maxModelLen: 131072, numInstances: 2 }),
    { blocks: 7168, limitedByMemory: true },
    'instances share it: 3.5 GiB each',
  );
  t.same(resolveKvCacheBlocks(0, { ...base, maxModelLen: 2048, availableBytes: GiB }), { blocks: 1, limitedByMemory: true }, 'never 0');
  t.same(
    resolveKvCacheBlocks(100, { ...base, maxModelLen: 131072, availableBytes: 0 }),
    { blocks: 100, limitedByMemory: false },
    'a count given wins',
  );
  t.equal(memAvailableBytes('MemTotal:       24000000 kB\nMemFree:  100 kB\nMemAvailable:   20000000 kB\n'), 20000000 * 1024);
  t.ok(Number.isNaN(memAvailableBytes('MemTotal: 1 kB\n')));
  t.equal(cgroupMemoryLeft('max\n', '123\n'), Infinity);
  t.equal(cgroupMemoryLeft('1073741824\n', '73741824\n'), 1e9);
  t.equal(cgroupMemoryLeft('100\n', '200\n'), 0, 'over the limit: nothing left');
  t.ok(availableMemoryBytes() > 0);
});

t.test('--dtype auto on a Q8_0 GGUF serves on the int8 path', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-q8-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const out = join(dir, 'm.gguf');
  const config = JSON.parse(readFileSync(join(MODEL_DIR, 'config.json'), 'utf8'));
  await synthesizeModel({ config, out, format: 'gguf', dtype: 'q8_0', seed: 1 });
  const spec = await loadModelSpec(out);
  t.equal(checkpointKind(spec), 'q8_0');
  t.equal(resolveDtype('auto', 'cpu', checkpointKind(spec)), 'int8');
  t.equal(checkpointKind(await loadModelSpec(MODEL_DIR)), 'float');
  const s = await startTestApp({ model: out, backend: 'cpu' });
  t.teardown(() => s.close());
  const m = (await s.app.inject({ url: '/v1/models' })).json();
  t.equal(m.data[0].dtype, 'int8', JSON.stringify(m.data[0]));
});

t.test('a port in use: one line on stderr, exit code 1, no stack trace', async (t) => {
  const blocker = createServer();
  await new Promise<void>((res) => blocker.listen(0, '127.0.0.1', res));
  t.teardown(() => blocker.close());
  const port = (blocker.address() as { port: number }).port;
  const before = process.exitCode;
  const { err } = await captureOutput(() =>
    runServer(['--model', MODEL_DIR, '--host', '127.0.0.1', '--port', String(port), '--log-level', 'silent']),
  );
  t.equal(process.exitCode, 1);
  process.exitCode = before;
  t.match(err, `weft: cannot listen on 127.0.0.1:${port}: the address is in use`);
  t.notMatch(err, /\n\s+at /, 'no stack trace');
});

t.test('--api-key, the vLLM and llama.cpp spelling, adds keys', async (t) => {
  t.same(loadConfig({ env: {}, argv: ['--api-key', 'a'] }).apiKeys, ['a']);
  t.same(loadConfig({ env: {}, argv: ['--api-key', 'a', '--api-key', 'b', '--api-keys', 'c'] }).apiKeys, ['c', 'a', 'b']);
});

t.test('a KV cache smaller than one full context starts with a warning', async (t) => {
  const warnings: string[] = [];
  const log = {
    info() {},
    debug() {},
    error() {},
    fatal() {},
    trace() {},
    warn(m: string) {
      warnings.push(m);
    },
    child() {
      return log;
    },
    level: 'info',
  };
  const engine = await startEngine(testConfig({ kvCacheBlocks: 4, maxNumBatchedTokens: 64 }), new Metrics({ defaultMetrics: false }), log as never);
  t.teardown(() => engine.close());
  t.match(warnings.join('\n'), /KV cache holds 64 tokens, less than one full context/);
  const quiet: string[] = [];
  const ok = await startEngine(testConfig(), new Metrics({ defaultMetrics: false }), {
    ...log,
    warn(m: string) {
      quiet.push(m);
    },
  } as never);
  t.teardown(() => ok.close());
  t.same(
    quiet.filter((m) => m.includes('KV cache')),
    [],
    'no warning when a context fits',
  );
});

t.test('the KV cache by default: auto, said at startup, the floor for a short-context model', async (t) => {
  const infos: string[] = [];
  const log = { info: (m: string) => infos.push(m), debug() {}, error() {}, fatal() {}, trace() {}, warn() {}, child: () => log, level: 'info' };
  const engine = await startEngine(testConfig({ kvCacheBlocks: 0 }), new Metrics({ defaultMetrics: false }), log as never);
  t.teardown(() => engine.close());
  t.match(infos.join('\n'), /KV cache: 1024 blocks of 16 per instance, \d+ MiB at most, taken from the OS as used \(auto\)/);
  t.equal(engine.workers[0].info.numKvBlocks, 1024, 'the engine has them');
});

t.test('--kv-dtype int8: the engine caches int8, and the cache is sized by its bytes (a value and a scale per position and head)', async (t) => {
  const mib = async (kvDtype: 'auto' | 'int8') => {
    const infos: string[] = [];
    const log = { info: (m: string) => infos.push(m), debug() {}, error() {}, fatal() {}, trace() {}, warn() {}, child: () => log, level: 'info' };
    const engine = await startEngine(testConfig({ kvCacheBlocks: 0, kvDtype }), new Metrics({ defaultMetrics: false }), log as never);
    t.teardown(() => engine.close());
    t.equal(engine.workers[0].info.kvDtype, kvDtype === 'int8' ? 'int8' : 'f32');
    return Number(/KV cache: 1024 blocks of 16 per instance, (\d+) MiB/.exec(infos.join('\n'))![1]);
  };
  const f32 = await mib('auto');
  const i8 = await mib('int8');
  // stories260K: head_dim 8, so an int8 value with its share of the scale is 1.5 bytes against 4
  t.ok(Math.abs(i8 - (f32 * 1.5) / 4) <= 1, `int8 ${i8} MiB against f32 ${f32} MiB`);
});
