// `npm run fuzz`: the untrusted-model-file fuzzers, each for --seconds.
//  native: the libFuzzer target native/fuzz/fuzz_model_load.cc (clang, ASan + UBSan), built into
//          build-fuzz/ with -DWEFT_FUZZ=ON, seeded from the seed models (bench/fuzz/seed-models.ts);
//          its corpus grows in build-fuzz/corpus/native across runs.
//  ts:     the mutation fuzzer of the TypeScript loaders (bench/fuzz/ts-target.ts) in a child
//          process, restarted after a crash or a hang.
// Failing inputs land in build-fuzz/findings/; the exit status is 1 when there is any.
import { spawnSync, fork, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { findInPackage } from '../../src/package-path.js';
import { writeNativeSeeds } from './native-corpus.js';
import { seedModels } from './seed-models.js';
import type { TsFuzzMessage, TsFuzzOptions } from './ts-target.js';

const USAGE = `npm run fuzz -- [--seconds N] [--only native|ts] [--seed S] [--model-dir DIR] [--work DIR]
  --seconds N        how long each fuzzer runs (default 60)
  --only native|ts   run one fuzzer
  --seed S           the TypeScript fuzzer's seed (default: from the clock; printed)
  --model-dir DIR    the real seed model, stories260K (default: ../shared/models/stories260K beside the repository)
  --work DIR         build directory, corpus and findings (default: build-fuzz)
  --max-parse-ms N   a TypeScript load slower than this is a finding (default 2000)
  --no-native-load   the TypeScript fuzzer does not hand accepted specs to the native loader`;

const ROOT = dirname(findInPackage(import.meta.url, 'package.json')!);
const HANG_MS = 30_000;

function run(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'inherit', 'inherit'], cwd: ROOT });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.error?.message ?? `exit ${r.status}`})`);
}

function buildNative(work: string): string {
  if (!existsSync(join(work, 'CMakeCache.txt')))
    run('cmake', [
      '-S',
      ROOT,
      '-B',
      work,
      '-DCMAKE_CXX_COMPILER=clang++',
      '-DCMAKE_C_COMPILER=clang',
      '-DWEFT_FUZZ=ON',
      '-DCMAKE_BUILD_TYPE=RelWithDebInfo',
    ]);
  run('cmake', ['--build', work, '-j', String(availableParallelism()), '--target', 'fuzz_model_load']);
  return join(work, 'fuzz_model_load');
}

interface NativeResult {
  execs: number;
  cov: number;
  ft: number;
  corpus: number;
  findings: string[];
  seconds: number;
}

async function fuzzNative(exe: string, seeds: string, corpus: string, findings: string, seconds: number): Promise<NativeResult> {
  mkdirSync(corpus, { recursive: true });
  const args = [
    corpus,
    seeds,
    `-max_total_time=${seconds}`,
    `-artifact_prefix=${findings}/native-`,
    '-print_final_stats=1',
    '-rss_limit_mb=2048',
    '-malloc_limit_mb=1024',
    '-timeout=20',
    '-max_len=1200000',
  ];
  const t0 = Date.now();
  const native = () => readdirSync(findings).filter((f) => f.startsWith('native-'));
  const before = new Set(native());
  // the target rewrites its model file for every input: in memory where there is a tmpfs
  const tmp = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
  const child = spawn(exe, args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, TMPDIR: tmp } });
  let log = '',
    last = '';
  child.stderr.on('data', (b: Buffer) => {
    log = (log + b.toString()).slice(-200_000);
    const lines = log.split('\n').filter((l) => /^#\d+\s/.test(l));
    if (lines.length) last = lines[lines.length - 1];
  });
  const code: number = await new Promise((r) => child.on('close', (c) => r(c ?? 1)));
  rmSync(join(tmp, `weft-fuzz-model-${child.pid}.bin`), { force: true }); // left behind when the target crashed
  const stat = (k: string) => Number(new RegExp(`stat::${k}:\\s+(\\d+)`).exec(log)?.[1] ?? 0);
  const num = (k: string) => Number(new RegExp(`${k}: (\\d+)`).exec(last)?.[1] ?? 0);
  const found = native()
    .filter((f) => !before.has(f))
    .map((f) => join(findings, f));
  if (code !== 0) process.stderr.write(log.split('\n').slice(-60).join('\n') + '\n');
  if (code !== 0 && found.length === 0) found.push(`libFuzzer exited with ${code}`);
  return {
    execs: stat('number_of_executed_units'),
    cov: num('cov'),
    ft: num('ft'),
    corpus: readdirSync(corpus).length,
    findings: found,
    seconds: (Date.now() - t0) / 1000,
  };
}

interface TsResult {
  iters: number;
  outcomes: Record<string, number>;
  maxParseMs: number;
  peakRssMb: number;
  findings: string[];
  restarts: number;
}

// Runs the child until the time is spent, starting a new one (next seed) after a crash or a hang.
async function fuzzTs(base: Omit<TsFuzzOptions, 'seconds' | 'seed'>, seed: number, seconds: number): Promise<TsResult> {
  const res: TsResult = { iters: 0, outcomes: {}, maxParseMs: 0, peakRssMb: 0, findings: [], restarts: 0 };
  const deadline = Date.now() + seconds * 1000;
  for (let s = seed; Date.now() < deadline - 500; s++) {
    const child = fork(join(dirname(fileURLToPath(import.meta.url)), 'ts-target.js'), [], { execArgv: ['--expose-gc', '--max-old-space-size=1024'] });
    let current: { path: string; since: number } | null = null;
    child.on('message', (m: TsFuzzMessage) => {
      if (m.type === 'start') current = { path: m.path, since: Date.now() };
      else if (m.type === 'finding') res.findings.push(`${m.saved}: ${m.label}`);
      else {
        current = null;
        res.iters++;
        res.maxParseMs = Math.max(res.maxParseMs, m.ms);
        res.peakRssMb = Math.max(res.peakRssMb, m.rssMb);
        for (const k of m.outcomes) res.outcomes[k] = (res.outcomes[k] ?? 0) + 1;
      }
    });
    const watchdog = setInterval(() => {
      if (current && Date.now() - current.since > HANG_MS) child.kill('SIGKILL');
    }, 1000);
    child.send({ ...base, seed: s, seconds: Math.max(1, (deadline - Date.now()) / 1000) } satisfies TsFuzzOptions);
    const [code, signal] = await new Promise<[number | null, string | null]>((r) => child.on('exit', (c, sig) => r([c, sig])));
    clearInterval(watchdog);
    if (code === 0 && !current) continue;
    res.restarts++;
    const c = current as { path: string; since: number } | null;
    const what = c && Date.now() - c.since > HANG_MS ? `hang over ${HANG_MS} ms` : `child died (exit ${code}, signal ${signal})`;
    const saved = c ? join(base.findings, `ts-crash-${s}-${c.path.split('/').pop()}`) : '(no case running)';
    if (c && existsSync(c.path)) spawnSync('cp', ['-r', c.path, saved]);
    res.findings.push(`${saved}: ${what}`);
  }
  return res;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      seconds: { type: 'string', default: '60' },
      only: { type: 'string' },
      seed: { type: 'string' },
      'model-dir': { type: 'string' },
      work: { type: 'string' },
      'max-parse-ms': { type: 'string', default: '2000' },
      'no-native-load': { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) return void console.log(USAGE);
  const seconds = Number(values.seconds);
  if (!(seconds > 0) || (values.only && !['native', 'ts'].includes(values.only))) throw new Error(USAGE);
  const work = resolve(values.work ?? join(ROOT, 'build-fuzz'));
  const modelDir = resolve(values['model-dir'] ?? join(ROOT, '..', 'shared', 'models', 'stories260K'));
  const findings = join(work, 'findings');
  mkdirSync(findings, { recursive: true });
  const models = await seedModels(join(work, 'seeds', 'models'), modelDir);
  let failed = false;

  if (values.only !== 'ts') {
    const exe = buildNative(work);
    const seedDir = join(work, 'seeds', 'native');
    rmSync(seedDir, { recursive: true, force: true });
    mkdirSync(seedDir, { recursive: true });
    const numSeeds = await writeNativeSeeds(models, seedDir);
    const r = await fuzzNative(exe, seedDir, join(work, 'corpus', 'native'), findings, seconds);
    console.log(
      `fuzz native (fuzz_model_load, ASan+UBSan): ${r.execs} execs in ${r.seconds.toFixed(0)} s ` +
        `(${(r.execs / r.seconds).toFixed(0)}/s), cov ${r.cov}, ft ${r.ft}, corpus ${r.corpus} (${numSeeds} seeds), findings ${r.findings.length}`,
    );
    for (const f of r.findings) console.log(`  finding: ${f}`);
    failed ||= r.findings.length > 0;
  }
  if (values.only !== 'native') {
    const seed = values.seed !== undefined ? Number(values.seed) : Date.now() % 2 ** 31;
    const r = await fuzzTs(
      {
        seeds: models,
        work: join(work, 'ts-cases'),
        findings,
        maxParseMs: Number(values['max-parse-ms']),
        maxCaseMb: 1024,
        maxRssMb: 2048,
        nativeLoad: !values['no-native-load'],
      },
      seed,
      seconds,
    );
    const byOutcome = Object.entries(r.outcomes)
      .sort((a, b) => b[1] - a[1])
      .map(([k, v]) => `${k} ${v}`)
      .join(', ');
    console.log(
      `fuzz ts (seed ${seed}): ${r.iters} cases in ${seconds} s (${(r.iters / seconds).toFixed(0)}/s), ` +
        `max load ${r.maxParseMs.toFixed(0)} ms, peak rss ${r.peakRssMb.toFixed(0)} MiB, restarts ${r.restarts}, findings ${r.findings.length}`,
    );
    console.log(`  outcomes: ${byOutcome}`);
    for (const f of r.findings) console.log(`  finding: ${f}`);
    failed ||= r.findings.length > 0;
  }
  process.exitCode = failed ? 1 : 0;
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(2);
});
