// The model-server contract of the Gateway API Inference Extension (llm-d's endpoint picker):
// load gauges summed over the engine instances, read with a strict Prometheus text parser while a
// load saturates the server; vLLM's names beside weft's (--metrics-compat vllm); the prefix-cache
// hits in usage.prompt_tokens_details.cached_tokens; several served model names.
import t from 'tap';

import { loadConfig } from '../../src/config.js';
import { parsePrometheusText, singleValue, type Family } from '../fixtures/prom-text.js';
import { sseData, startTestApp, type TestServer } from './helpers.js';

const scrape = async (s: TestServer) => {
  const res = await s.app.inject({ url: '/metrics' });
  return parsePrometheusText(res.body);
};
const post = (s: TestServer, url: string, payload: object) => s.app.inject({ method: 'POST', url, payload });

// The load gauges an endpoint picker reads, under weft's names and vLLM's.
const LOAD_GAUGES = ['num_requests_waiting', 'num_requests_running', 'kv_cache_usage_perc'] as const;

function cacheInfo(m: Map<string, Family>, prefix: 'weft_' | 'vllm:') {
  const f = m.get(`${prefix}cache_config_info`);
  if (!f || f.type !== 'gauge' || f.samples.length !== 1) throw new Error(`${prefix}cache_config_info: expected one gauge series`);
  return f.samples[0];
}

t.test('load gauges under saturation: summed over instances, bounded, and the same under vLLM names', async (t) => {
  const numInstances = 2,
    maxNumSeqs = 4,
    kvCacheBlocks = 64;
  const s = await startTestApp({ numInstances, maxNumSeqs, maxNumBatchedTokens: 64, kvCacheBlocks, metricsCompat: 'vllm' });
  t.teardown(() => s.close());
  const idle = await scrape(s);
  for (const g of LOAD_GAUGES) {
    t.equal(idle.get(`weft_${g}`)?.type, 'gauge', `weft_${g} is a gauge`);
    t.equal(idle.get(`vllm:${g}`)?.type, 'gauge', `vllm:${g} is a gauge`);
  }
  for (const prefix of ['weft_', 'vllm:'] as const) {
    const info = cacheInfo(idle, prefix);
    t.same(info.labels, { block_size: '16', num_gpu_blocks: String(numInstances * kvCacheBlocks) }, `${prefix}cache_config_info labels`);
    t.equal(info.value, 1, `${prefix}cache_config_info is an info gauge`);
  }
  const lora = idle.get('vllm:lora_requests_info');
  t.same(
    lora?.samples.map((x) => x.labels),
    [{ max_lora: '0', running_lora_adapters: '', waiting_lora_adapters: '' }],
    'vllm:lora_requests_info: no adapters, as a LoRA-affinity scorer expects to read it',
  );

  // 24 requests for 2 × 4 running slots: the rest queue until slots free up
  const numRequests = 24;
  let numDone = 0;
  const requests = Array.from({ length: numRequests }, (_, i) =>
    post(s, '/v1/completions', { prompt: `Once upon a time ${i}`, max_tokens: 48, ignore_eos: true, temperature: 0 }).finally(() => {
      numDone++;
    }),
  );
  const peak = { waiting: 0, running: 0, kv: 0, scrapes: 0 };
  const bad: string[] = [];
  // scrape until every request has answered, checking every snapshot
  while (numDone < numRequests) {
    const m = await scrape(s);
    peak.scrapes++;
    const v = Object.fromEntries(LOAD_GAUGES.map((g) => [g, singleValue(m, `weft_${g}`)])) as Record<(typeof LOAD_GAUGES)[number], number>;
    for (const g of LOAD_GAUGES) if (singleValue(m, `vllm:${g}`) !== v[g]) bad.push(`vllm:${g} ${singleValue(m, `vllm:${g}`)} != weft_${g} ${v[g]}`);
    if (v.num_requests_running > numInstances * maxNumSeqs) bad.push(`running ${v.num_requests_running} > ${numInstances} × ${maxNumSeqs}`);
    if (!(v.kv_cache_usage_perc >= 0 && v.kv_cache_usage_perc <= 1)) bad.push(`KV usage ${v.kv_cache_usage_perc} outside [0, 1]`);
    if (v.num_requests_waiting + v.num_requests_running > numRequests) bad.push(`more requests in flight than sent: ${JSON.stringify(v)}`);
    peak.waiting = Math.max(peak.waiting, v.num_requests_waiting);
    peak.running = Math.max(peak.running, v.num_requests_running);
    peak.kv = Math.max(peak.kv, v.kv_cache_usage_perc);
    await new Promise((r) => setImmediate(r));
  }
  const res = await Promise.all(requests);
  t.same(
    res.map((r) => r.statusCode),
    Array(numRequests).fill(200),
    'every request answered 200',
  );
  t.same(bad, [], `every one of ${peak.scrapes} snapshots within the contract`);
  t.ok(peak.waiting > 0, `requests queued while saturated (peak ${peak.waiting})`);
  t.equal(peak.running, numInstances * maxNumSeqs, 'running peaked at max-num-seqs summed over the instances');
  t.ok(peak.kv > 0, `KV usage rose under load (peak ${peak.kv.toFixed(3)})`);

  const after = await scrape(s);
  for (const g of LOAD_GAUGES) {
    t.equal(singleValue(after, `weft_${g}`), 0, `weft_${g} back to 0`);
    t.equal(singleValue(after, `vllm:${g}`), 0, `vllm:${g} back to 0`);
  }
});

t.test('without --metrics-compat: weft names only; the cache-config gauge follows the configured blocks', async (t) => {
  const s = await startTestApp({ kvCacheBlocks: 40, blockSize: 32 });
  t.teardown(() => s.close());
  const m = await scrape(s);
  t.same(
    [...m.keys()].filter((k) => k.startsWith('vllm:')),
    [],
    'no vllm: series',
  );
  t.same(cacheInfo(m, 'weft_').labels, { block_size: '32', num_gpu_blocks: '40' });
});

t.test('usage.prompt_tokens_details.cached_tokens equals the prefix-cache hits; model aliases', async (t) => {
  const names = ['stories260K', 'alias-a', 'team/alias-b'];
  const s = await startTestApp({ servedModelName: names });
  t.teardown(() => s.close());
  const hits = async () => singleValue(await scrape(s), 'weft_prefix_cache_hits_total');
  const prompt = 'Once upon a time there was a little girl named Lily who loved to play in the park with her dog Max. '.repeat(3);
  // each call: the cached tokens it reports, and the hits it added to the counter
  const measure = async (url: string, payload: object) => {
    const before = await hits();
    const res = await post(s, url, payload);
    t.equal(res.statusCode, 200, `${url} 200`);
    const isStream = (payload as { stream?: boolean }).stream;
    const withUsage = (d: unknown) => typeof d === 'object' && d !== null && 'usage' in d && (d as { usage: unknown }).usage !== undefined;
    const body = isStream ? (sseData(res.body).find(withUsage) as { usage: Usage }) : res.json();
    return { cached: body.usage.prompt_tokens_details.cached_tokens, added: (await hits()) - before, body };
  };
  interface Usage {
    prompt_tokens: number;
    prompt_tokens_details: { cached_tokens: number };
  }

  const cold = await measure('/v1/completions', { model: 'alias-a', prompt, max_tokens: 4 });
  t.equal(cold.cached, 0, 'a cold cache: nothing cached');
  t.equal(cold.added, 0);
  t.equal(cold.body.model, 'alias-a', 'the response names the model as the request did');
  const numPrompt = (cold.body.usage as Usage).prompt_tokens;
  t.ok(numPrompt > 64, `a long prompt (${numPrompt} tokens)`);

  const warm = await measure('/v1/completions', { model: 'team/alias-b', prompt, max_tokens: 4 });
  t.equal(warm.cached, warm.added, `repeated: cached_tokens = the prefix-cache hits (${warm.added})`);
  t.equal(warm.cached, Math.floor((numPrompt - 1) / 16) * 16, 'every full block but the one holding the last token');

  const streamed = await measure('/v1/completions', { prompt, max_tokens: 4, stream: true, stream_options: { include_usage: true } });
  t.equal(streamed.cached, streamed.added, 'streamed usage chunk: cached_tokens = hits');
  t.ok(streamed.cached > 0);

  const twoSamples = await measure('/v1/completions', { model: 'stories260K', prompt, max_tokens: 4, n: 2 });
  t.equal(twoSamples.cached, twoSamples.added, 'n = 2: the prompt is looked up once and counted once');
  t.ok(twoSamples.cached > 0);

  const messages = [{ role: 'user', content: prompt }];
  await measure('/v1/chat/completions', { model: 'alias-a', messages, max_tokens: 4 });
  const chat = await measure('/v1/chat/completions', { model: 'alias-a', messages, max_tokens: 4 });
  t.ok(chat.cached > 0, 'chat: the repeated conversation hits the cache');
  t.equal(chat.cached, chat.added, 'chat: cached_tokens = hits');
  const beam = await measure('/v1/completions', { prompt, max_tokens: 4, n: 2, use_beam_search: true });
  t.equal(beam.cached, beam.added, 'beam search: cached_tokens = hits');
  t.ok(beam.cached > 0);

  const models = (await s.app.inject({ url: '/v1/models' })).json();
  t.same(
    models.data.map((m: { id: string }) => m.id),
    names,
    '/v1/models lists every name',
  );
  const unknown = await post(s, '/v1/completions', { model: 'other', prompt: 'a', max_tokens: 1 });
  t.equal(unknown.statusCode, 404);
  t.equal(unknown.json().error.code, 'WEFT_ERR_REQ_UNKNOWN_MODEL');
  t.match(unknown.json().error.message, /"alias-a"/, 'the error lists the names served');
});

t.test('config: --served-model-name takes a list or repeats; --metrics-compat', async (t) => {
  const load = (argv: string[]) => loadConfig({ argv, env: {} });
  t.same(load(['--served-model-name', 'a,b']).servedModelName, ['a', 'b']);
  t.same(load(['--served-model-name', 'a', '--served-model-name', 'b,c']).servedModelName, ['a', 'b', 'c']);
  t.same(loadConfig({ argv: [], env: { WEFT_SERVED_MODEL_NAME: 'x, y' } }).servedModelName, ['x', 'y']);
  t.same(load([]).servedModelName, [], 'none: the name comes from the model path');
  t.throws(() => load(['--served-model-name', 'a,a']), { code: 'WEFT_ERR_CONFIG_INVALID' }, 'a name twice is refused');
  t.equal(load(['--metrics-compat', 'vllm']).metricsCompat, 'vllm');
  t.equal(load([]).metricsCompat, 'none');
  t.throws(() => load(['--metrics-compat', 'sglang']), { code: 'WEFT_ERR_CONFIG_INVALID' });
});
