// The command line, with vLLM's `vllm bench serve` flag names and meanings plus weft's extras.
// Each flag is declared once with its kind, default and help; --help prints the table.
// Flags vLLM declares with nargs='+' (--goodput, --metadata) take every following word up to
// the next flag.

type Kind = 'string' | 'number' | 'int' | 'bool' | 'words';

interface Flag {
  kind: Kind;
  def?: string | boolean;
  help: string;
  aliases?: string[];
}

const FLAGS = {
  url: { kind: 'string', help: 'base URL of a running OpenAI-compatible server (weft, vLLM, llama-server)', aliases: ['base-url'] },
  model: { kind: 'string', help: 'start weft on this model (HF directory or .gguf) on a free port, and stop it at the end' },
  'server-args': { kind: 'string', def: '', help: 'extra weft serve flags with --model, e.g. "--num-threads 2"' },
  'served-model-name': {
    kind: 'string',
    help: 'the `model` field of each request (default: none; weft and vLLM then use the served model)',
    aliases: ['model-name'],
  },
  endpoint: { kind: 'string', def: '/v1/completions', help: 'API path; /v1/chat/completions works with text prompts (sharegpt)' },
  'request-rate': { kind: 'string', def: 'inf', help: 'requests per second (gamma/Poisson arrivals) or inf to send all at once' },
  burstiness: { kind: 'number', def: '1', help: 'gamma shape of the inter-arrival times: 1 = Poisson, <1 burstier, >1 more regular' },
  'max-concurrency': { kind: 'string', help: 'most requests in flight; a comma list (1,16,64) runs one point per value' },
  'num-prompts': { kind: 'int', def: '1000', help: 'requests per run' },
  'num-warmups': { kind: 'int', def: '0', help: 'unmeasured requests sent before each run' },
  seed: { kind: 'int', def: '0', help: 'seed for the datasets and the arrival times' },
  'dataset-name': { kind: 'string', def: 'random', help: 'random | sharegpt | prefix-repetition' },
  'dataset-path': { kind: 'string', help: 'sharegpt: local JSON file of ShareGPT conversations' },
  'sharegpt-output-len': { kind: 'int', help: "sharegpt: max_tokens of every request (default: the answer's length, 4 chars a token)" },
  'random-input-len': { kind: 'int', def: '1024', help: 'random: prompt tokens' },
  'random-output-len': { kind: 'int', def: '128', help: 'random: max_tokens' },
  'random-range-ratio': { kind: 'number', def: '0', help: 'random: lengths uniform in [len·(1−r), len·(1+r)], 0 ≤ r < 1' },
  'random-prefix-len': { kind: 'int', def: '0', help: 'random: tokens of one prefix shared by every prompt, before the random part' },
  'prefix-repetition-prefix-len': { kind: 'int', def: '256', help: 'prefix-repetition: tokens per prefix' },
  'prefix-repetition-suffix-len': { kind: 'int', def: '256', help: 'prefix-repetition: random tokens after the prefix' },
  'prefix-repetition-num-prefixes': { kind: 'int', def: '10', help: 'prefix-repetition: distinct prefixes, shared round-robin' },
  'prefix-repetition-output-len': { kind: 'int', def: '128', help: 'prefix-repetition: max_tokens' },
  'vocab-size': { kind: 'int', help: "token ids are drawn from [10, vocab-size) (default: the model's, when known, else 32000)" },
  'ignore-eos': { kind: 'bool', def: false, help: 'send ignore_eos so every request generates max_tokens' },
  temperature: { kind: 'number', def: '0', help: 'sampling temperature (0 = greedy)' },
  'request-timeout': { kind: 'number', def: '600', help: 'seconds before one request is abandoned (counted as failed)' },
  goodput: { kind: 'words', help: 'SLOs for goodput, e.g. ttft:500 tpot:50 e2el:2000 (ms)' },
  'percentile-metrics': { kind: 'string', def: 'ttft,tpot,itl', help: 'metrics to report: ttft,tpot,itl,e2el' },
  'metric-percentiles': { kind: 'string', def: '99', help: 'percentiles to report, e.g. 50,90,99' },
  'save-result': { kind: 'bool', def: false, help: "write the results as JSON (vLLM's keys)" },
  'result-dir': { kind: 'string', def: '.', help: 'directory of the JSON result' },
  'result-filename': { kind: 'string', help: 'JSON file name (default: weft-<rate>qps-<model>-<date>.json)' },
  metadata: { kind: 'words', help: 'KEY=VALUE pairs added to the JSON' },
  'disable-tqdm': { kind: 'bool', def: false, help: 'no progress bar on stderr' },
  sweep: { kind: 'bool', def: false, help: 'synchronous, throughput, then --sweep-points rates in between (stops when saturated)' },
  'sweep-points': { kind: 'int', def: '5', help: 'rates between the synchronous and the maximum throughput in a sweep' },
  html: { kind: 'string', help: 'write a self-contained HTML report with charts to this file' },
  'svg-dir': { kind: 'string', help: 'also write each chart as a standalone .svg file here' },
  peer: { kind: 'string', help: 'llama-server: run the same load against llama.cpp on the same --model .gguf' },
  'peer-url': { kind: 'string', help: 'run the same load against this already running server and compare' },
  'peer-args': { kind: 'string', def: '', help: 'llama-server flags (defaults -t 2 -np 64 -c parallel×(max input+max output+16))' },
  'allow-remote': { kind: 'bool', def: false, help: 'allow a --url / --peer-url host other than the loopback' },
  help: { kind: 'bool', def: false, help: 'this text', aliases: ['h'] },
} as const satisfies Record<string, Flag>;

export type FlagName = keyof typeof FLAGS;
export type ParsedArgs = Record<FlagName, string | number | boolean | string[] | undefined>;

export function usage(): string {
  const rows = (Object.entries(FLAGS) as [string, Flag][]).map(([name, f]) => {
    const names = [name, ...(f.aliases ?? [])].map((n) => (n.length === 1 ? `-${n}` : `--${n}`)).join(', ');
    const value = f.kind === 'bool' ? '' : f.kind === 'words' ? ' V [V ...]' : ' V';
    const def = f.def !== undefined && f.def !== '' && f.kind !== 'bool' ? ` (default ${f.def})` : '';
    return `  ${(names + value).padEnd(40)} ${f.help}${def}`;
  });
  return [
    'usage: npm run bench -- (--url URL | --model PATH) [options]',
    '',
    "A serving load generator with the flags of vLLM's `vllm bench serve`.",
    '',
    ...rows,
  ].join('\n');
}

function convert(name: string, f: Flag, raw: string): string | number {
  if (f.kind === 'string') return raw;
  const n = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(n) || (f.kind === 'int' && !Number.isInteger(n)))
    throw new Error(`--${name} must be a${f.kind === 'int' ? 'n integer' : ' number'}, got "${raw}"`);
  return n;
}

export function parseArgs(argv: string[]): ParsedArgs {
  const byName = new Map<string, [FlagName, Flag]>();
  for (const [name, f] of Object.entries(FLAGS) as [FlagName, Flag][]) for (const n of [name, ...(f.aliases ?? [])]) byName.set(n, [name, f]);
  const out = {} as ParsedArgs;
  for (const [name, f] of Object.entries(FLAGS) as [FlagName, Flag][])
    out[name] = f.def === undefined ? undefined : typeof f.def === 'boolean' ? f.def : convert(name, f, f.def);
  for (let i = 0; i < argv.length; i++) {
    const m = /^--?([^=]+)(?:=(.*))?$/s.exec(argv[i]);
    const hit = m && byName.get(m[1]);
    if (!hit) throw new Error(`unknown argument "${argv[i]}" (see --help)`);
    const [name, f] = hit;
    if (f.kind === 'bool') {
      out[name] = m[2] === undefined ? true : m[2] !== 'false';
      continue;
    }
    if (f.kind === 'words') {
      const words = m[2] !== undefined ? [m[2]] : [];
      while (i + 1 < argv.length && !argv[i + 1].startsWith('--')) words.push(argv[++i]);
      out[name] = [...((out[name] as string[] | undefined) ?? []), ...words];
      continue;
    }
    const raw = m[2] ?? argv[++i];
    if (raw === undefined) throw new Error(`--${name} needs a value`);
    out[name] = convert(name, f, raw);
  }
  return out;
}
