// The whole tool against weft serving the real stories260K model, started as a child process.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import t from 'tap';

import { main } from '../../bench/serve/main.js';
import { MODEL_DIR, REPO_ROOT } from '../fixtures/paths.js';

const VLLM_KEYS = [
  'date',
  'backend',
  'model_id',
  'num_prompts',
  'request_rate',
  'burstiness',
  'max_concurrency',
  'duration',
  'completed',
  'total_input_tokens',
  'total_output_tokens',
  'request_throughput',
  'request_goodput',
  'output_throughput',
  'total_token_throughput',
  'max_output_tokens_per_s',
  'max_concurrent_requests',
  'input_lens',
  'output_lens',
  'ttfts',
  'itls',
  'generated_texts',
  'errors',
  ...['ttft', 'tpot', 'itl', 'e2el'].flatMap((m) => ['mean', 'median', 'std', 'p99'].map((s) => `${s}_${m}_ms`)),
  'server_peak_rss_mb',
  'server_metrics',
];

const skip = !existsSync(join(REPO_ROOT, 'dist', 'src', 'server.js'))
  ? 'dist/src/server.js is not built (npx tsc -p tsconfig.json)'
  : !existsSync(MODEL_DIR)
    ? `no model at ${MODEL_DIR}`
    : false;

t.test('a run against weft saves every vLLM key and an HTML report', { skip }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-bench-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const out: string[] = [],
    log: string[] = [];
  const code = await main(
    [
      '--model',
      MODEL_DIR,
      '--num-prompts',
      '12',
      '--max-concurrency',
      '4',
      '--random-input-len',
      '16',
      '--random-output-len',
      '8',
      '--save-result',
      '--result-dir',
      dir,
      '--html',
      join(dir, 'report.html'),
      '--svg-dir',
      join(dir, 'svg'),
      '--percentile-metrics',
      'ttft,tpot,itl,e2el',
      '--metadata',
      'run=e2e',
      '--disable-tqdm',
    ],
    { out: (s) => out.push(s), log: (s) => log.push(s) },
  );
  t.equal(code, 0, log.join('\n'));

  const summary = out.join('\n');
  for (const l of [
    '============ Serving Benchmark Result ============',
    'Successful requests:',
    'Benchmark duration (s):',
    'Total input tokens:',
    'Total generated tokens:',
    'Request throughput (req/s):',
    'Output token throughput (tok/s):',
    'Total Token throughput (tok/s):',
    '---------------Time to First Token----------------',
    'Mean TTFT (ms):',
    'Median TTFT (ms):',
    'P99 TTFT (ms):',
    '-----Time per Output Token (excl. 1st token)------',
    '---------------Inter-token Latency----------------',
    'P99 E2EL (ms):',
  ]) {
    t.ok(summary.includes(l), l);
  }

  const files = readdirSync(dir).filter((f) => f.endsWith('.json'));
  t.equal(files.length, 1);
  const json = JSON.parse(readFileSync(join(dir, files[0]), 'utf8')) as Record<string, unknown>;
  for (const k of VLLM_KEYS) t.ok(k in json, `key ${k}`);
  t.equal(json.completed, 12);
  t.equal(json.failed, 0);
  t.equal(json.backend, 'weft');
  t.equal(json.run, 'e2e');
  t.equal(json.max_concurrency, 4);
  t.equal(json.request_rate, 'inf');
  t.ok(
    (json.errors as string[]).every((e) => e === ''),
    'no errors',
  );
  t.ok((json.input_lens as number[]).every((n) => n === 16));
  t.ok((json.output_lens as number[]).every((n) => n >= 1 && n <= 8));
  t.ok((json.server_peak_rss_mb as number) > 0);
  t.equal((json.ttfts as number[]).length, 12);

  const html = readFileSync(join(dir, 'report.html'), 'utf8');
  t.ok(html.includes('<svg'));
  t.notOk(/<script|<link|@import|url\(/.test(html), 'self-contained');
  t.ok(readdirSync(join(dir, 'svg')).includes('ttft-vs-load.svg'));
});
