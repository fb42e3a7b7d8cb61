// Every metric, driven by requests and read back through GET /metrics.
import t from 'tap';

import { buildApp } from '../../src/app.js';
import { Metrics } from '../../src/metrics.js';
import { metricValue, startTestApp, testConfig } from './helpers.js';

const scrape = async (app: Awaited<ReturnType<typeof startTestApp>>['app']) => (await app.inject({ url: '/metrics' })).body;
const gen = (app: Awaited<ReturnType<typeof startTestApp>>['app'], payload: object) => app.inject({ method: 'POST', url: '/generate', payload });

t.test('request histograms and token / finish counters', async (t) => {
  const s = await startTestApp();
  t.teardown(() => s.close());
  await gen(s.app, { prompt: 'Once upon a time', max_tokens: 10, temperature: 0 });
  await gen(s.app, { prompt: '', max_tokens: 200, temperature: 0 }); // ends at EOS or length
  await gen(s.app, { prompt: 'Once upon a time', max_tokens: 30, temperature: 0, stop_token_ids: [432] });
  const m = await scrape(s.app);
  for (const h of [
    'time_to_first_token_seconds',
    'inter_token_latency_seconds',
    'e2e_request_latency_seconds',
    'request_queue_time_seconds',
    'request_prefill_time_seconds',
    'request_decode_time_seconds',
    'request_inference_time_seconds',
    'request_prompt_tokens',
    'request_generation_tokens',
  ])
    t.ok(
      metricValue(m, `weft_${h}_count`) >= 3 || (h === 'inter_token_latency_seconds' && metricValue(m, `weft_${h}_count`) > 3),
      `weft_${h} observed`,
    );
  t.ok(metricValue(m, 'weft_time_to_first_token_seconds_sum') > 0);
  t.equal(metricValue(m, 'weft_prompt_tokens_total'), 5 + 1 + 5, 'prompt tokens');
  t.ok(metricValue(m, 'weft_generation_tokens_total') >= 10 + 1, 'generation tokens');
  t.equal(
    metricValue(m, 'weft_request_success_total', 'finished_reason="length"') + metricValue(m, 'weft_request_success_total', 'finished_reason="stop"'),
    3,
  );
  t.ok(metricValue(m, 'weft_request_success_total', 'finished_reason="stop"') >= 1, 'a stop token ends with reason stop');
  t.ok(metricValue(m, 'weft_step_batch_size_count') > 0, 'per-step batch size');
  t.ok(metricValue(m, 'weft_iteration_tokens_total_count') > 0, 'per-step tokens');
  t.ok(metricValue(m, 'weft_step_time_seconds_count') > 0 && metricValue(m, 'weft_step_time_seconds_sum') > 0, 'per-step time');
  t.equal(
    metricValue(m, 'weft_step_batch_size_count'),
    metricValue(m, 'weft_step_batch_size_bucket', '{le="1"}'),
    'one request at a time: batches of 1',
  );
  const batch = await s.app.inject({
    method: 'POST',
    url: '/generate_batch',
    payload: { prompts: ['a', 'b', 'c', 'd'], max_tokens: 8, ignore_eos: true },
  });
  t.equal(batch.json().results.length, 4);
  const after = await scrape(s.app);
  const numWide = metricValue(after, 'weft_step_batch_size_count') - metricValue(after, 'weft_step_batch_size_bucket', '{le="2"}');
  t.ok(numWide > 0, `/generate_batch prompts are scheduled together (${numWide} steps of more than 2 sequences)`);
});

t.test('prefix cache queries and hits', async (t) => {
  const s = await startTestApp();
  t.teardown(() => s.close());
  const prompt = 'Once upon a time there was a little girl named Lily who loved to play in the park with her dog';
  await gen(s.app, { prompt, max_tokens: 2 });
  const first = await scrape(s.app);
  await gen(s.app, { prompt, max_tokens: 2 });
  const second = await scrape(s.app);
  t.ok(metricValue(first, 'weft_prefix_cache_queries_total') > 16);
  t.equal(metricValue(first, 'weft_prefix_cache_hits_total'), 0, 'a cold cache');
  t.ok(metricValue(second, 'weft_prefix_cache_hits_total') >= 16, 'the same prompt again hits at least one full block');
});

t.test('gauges (running, waiting, preempted, KV usage) and preemptions', async (t) => {
  // 12 blocks of 16 tokens for 6 sequences of up to ~150 tokens: they cannot all fit
  const s = await startTestApp({ kvCacheBlocks: 12, maxNumSeqs: 8, maxNumBatchedTokens: 64 });
  t.teardown(() => s.close());
  // /metrics as it reads after each token: every step's state (the gauges are collected when the
  // text is asked for, so each snapshot is taken at its token, whenever it finishes rendering)
  const snapshots: Promise<string>[] = [];
  const svc = s.engine.service;
  const gens = await Promise.all(
    Array.from({ length: 6 }, async (_, i) =>
      svc.start(
        { promptIds: await svc.encode(`Once upon a time ${i}`), maxTokens: 140, ignoreEos: true },
        {
          onDelta: () => {
            snapshots.push(s.app.weft.metrics.text());
          },
        },
      ),
    ),
  );
  const results = await Promise.all(gens.map((g) => g.result));
  t.same(
    results.map((r) => r.finishReason),
    Array(6).fill('length'),
  );
  const peak = { running: 0, waiting: 0, preempted: 0, kv: 0 };
  for (const m of await Promise.all(snapshots)) {
    peak.running = Math.max(peak.running, metricValue(m, 'weft_num_requests_running'));
    peak.waiting = Math.max(peak.waiting, metricValue(m, 'weft_num_requests_waiting'));
    peak.preempted = Math.max(peak.preempted, metricValue(m, 'weft_num_requests_preempted'));
    peak.kv = Math.max(peak.kv, metricValue(m, 'weft_kv_cache_usage_perc'));
  }
  const m = await scrape(s.app);
  t.ok(metricValue(m, 'weft_num_preemptions_total') > 0, `preemptions counted (${metricValue(m, 'weft_num_preemptions_total')})`);
  t.ok(peak.running > 1, `running gauge peaked at ${peak.running}`);
  t.ok(peak.waiting > 0, `waiting gauge peaked at ${peak.waiting}`);
  t.ok(peak.preempted > 0, `preempted gauge peaked at ${peak.preempted}`);
  t.ok(peak.kv > 0.5 && peak.kv <= 1, `KV usage peaked at ${peak.kv}`);
  t.equal(metricValue(m, 'weft_kv_cache_usage_perc'), 0, 'and is 0 when idle');
  t.equal(
    metricValue(m, 'weft_num_requests_running') + metricValue(m, 'weft_num_requests_waiting') + metricValue(m, 'weft_num_requests_preempted'),
    0,
  );
});

t.test('errors by code, and Node default metrics', async (t) => {
  const app = await buildApp(testConfig(), { metrics: new Metrics() });
  t.teardown(() => app.close());
  await app.inject({ method: 'POST', url: '/generate', payload: { prompt: 1 } });
  await app.inject({ method: 'POST', url: '/generate', payload: { prompt: 'a' } }); // no engine: 503
  await app.inject({ url: '/nowhere' });
  const m = await app.inject({ url: '/metrics' });
  t.match(m.headers['content-type'], /^text\/plain; version=0\.0\.4/);
  t.equal(metricValue(m.body, 'weft_errors_total', 'code="WEFT_ERR_REQ_INVALID"'), 1);
  t.equal(metricValue(m.body, 'weft_errors_total', 'code="WEFT_ERR_HTTP_NOT_READY"'), 1);
  t.equal(metricValue(m.body, 'weft_errors_total', 'code="WEFT_ERR_HTTP_NOT_FOUND"'), 1);
  t.ok(metricValue(m.body, 'weft_process_cpu_user_seconds_total') > 0, 'process metrics');
  t.match(m.body, /weft_nodejs_eventloop_lag_seconds/, 'event-loop metrics');
  const other = new Metrics({ defaultMetrics: false });
  t.notMatch(await other.text(), /weft_errors_total\{/, 'a registry per app: another app starts from zero');
});
