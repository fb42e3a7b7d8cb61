// The one configuration: defaults < environment < CLI flags, validated (the error names the
// key), frozen, and sliced per part.
import t from 'tap';

import { DEFAULTS, describeConfig, loadConfig, resolveBackend, schedulerSlice, serverSlice } from '../../src/config.js';

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
    [{}, ['--backend', 'gpu'], /backend.*no CUDA backend/],
    [{}, ['--num-threads', '0'], /numThreads/],
    [{}, ['--max-num-seqs', '512', '--max-num-batched-tokens', '256'], /maxNumBatchedTokens/],
    [{}, ['--no-such-flag', '1'], /no-such-flag/],
    [{ WEFT_DTYPE: 'f16' }, [], /dtype/],
  ];
  for (const [env, argv, msg] of bad) t.throws(() => loadConfig({ env, argv }), { code: 'WEFT_ERR_CONFIG_INVALID', message: msg }, JSON.stringify([env, argv]));
});

t.test('backend auto', async (t) => {
  t.equal(resolveBackend('auto', 0), 'cpu');
  t.equal(resolveBackend('auto', 1), 'gpu');
  t.equal(resolveBackend('cpu', 1), 'cpu');
});
