// The one configuration: defaults < environment < CLI flags, validated (the error names the
// key), frozen, and sliced per part.
import t from 'tap';

import { DEFAULTS, describeConfig, kvFractionForInstance, loadConfig, resolveBackend, resolveDtype, schedulerSlice, serverSlice } from '../../src/config.js';

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
    [{}, ['--gpu-memory-utilization', '1.5'], /gpuMemoryUtilization.*\[0, 0.99\]/],
    [{}, ['--gpu-memory-utilization', 'lots'], /gpuMemoryUtilization.*number/],
    [{}, ['--cuda-graphs', 'maybe'], /cudaGraphs.*true or false/],
    [{}, ['--num-threads', '0'], /numThreads/],
    [{}, ['--max-num-seqs', '512', '--max-num-batched-tokens', '256'], /maxNumBatchedTokens/],
    [{}, ['--no-such-flag', '1'], /no-such-flag/],
    [{ WEFT_DTYPE: 'f8' }, [], /dtype/],
  ];
  for (const [env, argv, msg] of bad) t.throws(() => loadConfig({ env, argv }), { code: 'WEFT_ERR_CONFIG_INVALID', message: msg }, JSON.stringify([env, argv]));
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
  t.equal(resolveDtype('auto', 'cpu', true), 'f32');
  t.equal(resolveDtype('auto', 'gpu', true), 'bf16');
  t.equal(resolveDtype('auto', 'gpu', false), 'f16');
  t.equal(resolveDtype('int8', 'gpu', false), 'int8');
  t.equal(resolveDtype('int8', 'cpu', false), 'int8');
  t.throws(() => resolveDtype('f32', 'gpu', false), { code: 'WEFT_ERR_CONFIG_INVALID' });
  t.throws(() => resolveDtype('bf16', 'cpu', true), { code: 'WEFT_ERR_CONFIG_INVALID' });
  t.equal(loadConfig({ argv: ['--gpu-memory-utilization', '0.5'] }).gpuMemoryUtilization, 0.5);
  t.equal(loadConfig({ env: { WEFT_CUDA_GRAPHS: 'false' } }).cudaGraphs, false);
  // n instances started one after another each take u/n of the memory free at the start
  for (const [u, n] of [[0.9, 1], [0.9, 2], [0.8, 4]] as const) {
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
