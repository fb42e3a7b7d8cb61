// The TypeScript fuzzer's child process (started by bench/fuzz/main.ts, which restarts it after a
// crash or a hang): mutates the seed models, loads each case with loadModelSpec (GGUF header,
// metadata and tensor infos, safetensors headers and index, config.json, GGUF vocabulary → HF
// tokenizer JSON, tokenizer.json) and checks that
//  - every failure is a WeftError with a WEFT_ERR_MODEL_* code, and not one wrapping a TypeError,
//    RangeError or ReferenceError (a parser bug hidden behind a catch-all);
//  - every success is consistent: each tensor's bytes lie inside its file, shapes are positive
//    integers, the native loader takes the spec (f32 and int8) or refuses it with a typed error;
//  - no case takes longer than --max-parse-ms, and none raises the process's peak RSS more than
//    maxCaseMb above the RSS it started with (garbage is collected every few cases, so what
//    accumulates between collections stays far below that).
// The parent is told which case runs before it runs, so a hang or a crash is kept too.
import { copyFileSync, cpSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { WeftError } from '../../src/errors.js';
import { readGguf, type GgufFile } from '../../src/model/gguf.js';
import { loadModelSpec } from '../../src/model/load.js';
import { checkpointKind, type ModelSpec } from '../../src/model/types.js';
import { loadNative, toNativeModelSpec } from '../../src/workers/binding.js';
import { makeRng, type Rng } from '../serve/rng.js';
import { jsonText, mutateBytes, mutateGguf, mutateJson } from './mutate.js';

export interface TsFuzzOptions {
  seeds: string[]; // .gguf files and HF directories
  seconds: number;
  seed: number;
  work: string; // scratch directory for the cases
  findings: string; // where failing cases are copied
  maxParseMs: number;
  maxCaseMb: number; // most memory one case may take (peak RSS over the RSS before it)
  maxRssMb: number; // the process is replaced (not a finding) when its peak RSS passes this
  nativeLoad: boolean;
}

// Child → parent messages.
export type TsFuzzMessage =
  | { type: 'start'; iter: number; path: string }
  | { type: 'done'; iter: number; outcomes: string[]; ms: number; rssMb: number }
  | { type: 'finding'; label: string; saved: string };

type Seed = { kind: 'gguf'; bytes: Uint8Array; gguf: GgufFile } | { kind: 'hf'; files: Record<string, Uint8Array> };

function loadSeed(path: string): Seed {
  if (!statSync(path).isDirectory()) return { kind: 'gguf', bytes: new Uint8Array(readFileSync(path)), gguf: readGguf(path) };
  const files: Record<string, Uint8Array> = {};
  for (const f of readdirSync(path)) if (statSync(join(path, f)).isFile()) files[f] = new Uint8Array(readFileSync(join(path, f)));
  return { kind: 'hf', files };
}

const utf8 = new TextEncoder(),
  fromUtf8 = new TextDecoder();

// A safetensors file whose JSON header is mutated (its length field rewritten, sometimes wrongly).
function mutateSafetensors(rng: Rng, b: Uint8Array): Uint8Array {
  const len = Number(new DataView(b.buffer, b.byteOffset).getBigUint64(0, true));
  let json: unknown;
  try {
    json = rng.next() < 0.5 ? undefined : JSON.parse(fromUtf8.decode(b.subarray(8, 8 + len)));
  } catch {
    json = undefined; // already broken by an earlier mutation: bytes only
  }
  if (json === undefined) return mutateBytes(rng, b, 8 + len);
  const header = utf8.encode(jsonText(mutateJson(rng, json)));
  const out = new Uint8Array(8 + header.length + b.length - 8 - len);
  new DataView(out.buffer).setBigUint64(0, BigInt(header.length + (rng.next() < 0.1 ? rng.int(-8, 8) : 0)), true);
  out.set(header, 8);
  out.set(b.subarray(8 + len), 8 + header.length);
  return out;
}

function mutateJsonFile(rng: Rng, b: Uint8Array): Uint8Array {
  if (rng.next() < 0.3) return mutateBytes(rng, b, b.length);
  try {
    return utf8.encode(jsonText(mutateJson(rng, JSON.parse(fromUtf8.decode(b)))));
  } catch {
    return mutateBytes(rng, b, b.length); // the seed file is already broken: bytes only
  }
}

// An HF directory with one or two files mutated; sometimes its weights as a sharded checkpoint.
function mutateHf(rng: Rng, seed: Record<string, Uint8Array>): Record<string, Uint8Array> {
  const files = { ...seed };
  if (rng.next() < 0.15) {
    const shard = 'model-00001-of-00001.safetensors';
    const len = Number(new DataView(files['model.safetensors'].buffer, files['model.safetensors'].byteOffset).getBigUint64(0, true));
    const names = Object.keys(JSON.parse(fromUtf8.decode(files['model.safetensors'].subarray(8, 8 + len)))).filter((n) => n !== '__metadata__');
    files[shard] = files['model.safetensors'];
    delete files['model.safetensors'];
    const index = { metadata: {}, weight_map: Object.fromEntries(names.map((n) => [n, shard])) };
    files['model.safetensors.index.json'] = utf8.encode(JSON.stringify(index));
  }
  for (let n = rng.int(1, 2); n > 0; n--) {
    const name =
      rng.next() < 0.4
        ? files['model.safetensors']
          ? 'model.safetensors'
          : 'model-00001-of-00001.safetensors'
        : ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'generation_config.json', 'model.safetensors.index.json'][rng.int(0, 4)];
    if (!files[name]) continue;
    files[name] = name.endsWith('.safetensors') ? mutateSafetensors(rng, files[name]) : mutateJsonFile(rng, files[name]);
  }
  return files;
}

function writeCase(rng: Rng, seed: Seed, path: string): void {
  if (seed.kind === 'gguf') {
    const structured = rng.next() < 0.5 ? mutateGguf(rng, seed.gguf, seed.bytes.subarray(seed.gguf.dataOffset)) : null;
    writeFileSync(path, structured ?? mutateBytes(rng, seed.bytes, seed.gguf.dataOffset));
    return;
  }
  mkdirSync(path);
  for (const [name, bytes] of Object.entries(mutateHf(rng, seed.files))) writeFileSync(join(path, name), bytes);
}

// Why a thrown value is a finding (null: an expected, typed refusal).
function errorFinding(e: unknown, allowed: (code: string) => boolean): string | null {
  if (!(e instanceof WeftError)) return `untyped ${e instanceof Error ? e.name : typeof e}: ${String((e as Error)?.message ?? e).slice(0, 200)}`;
  const cause = e.cause;
  if (cause instanceof TypeError || cause instanceof RangeError || cause instanceof ReferenceError)
    return `${e.code} wrapping ${cause.name}: ${cause.message.slice(0, 200)}`;
  return allowed(e.code) ? null : `unexpected code ${e.code}: ${e.message.slice(0, 200)}`;
}

// What must hold for a spec the loader accepted.
function specFinding(spec: ModelSpec): string | null {
  const sizes = new Map<string, number>();
  for (const [name, t] of Object.entries(spec.tensors)) {
    const size = sizes.get(t.file) ?? statSync(t.file).size;
    sizes.set(t.file, size);
    const inside = Number.isSafeInteger(t.offset) && Number.isSafeInteger(t.byteLength) && t.offset >= 0 && t.byteLength > 0;
    if (!inside || t.offset + t.byteLength > size) return `accepted tensor ${name} outside its file: ${t.offset} + ${t.byteLength} > ${size}`;
    if (!t.shape.every((d) => Number.isSafeInteger(d) && d > 0)) return `accepted tensor ${name} with shape [${t.shape}]`;
  }
  for (const [k, v] of Object.entries(spec.config))
    if (typeof v === 'number' && !(Number.isFinite(v) && v > 0) && !['bosTokenId'].includes(k)) return `accepted config ${k} = ${v}`;
  return null;
}

const MODEL_CODE = (c: string) => c.startsWith('WEFT_ERR_MODEL_');
const NATIVE_CODE = (c: string) => MODEL_CODE(c) || c === 'WEFT_ERR_ENGINE_OUT_OF_MEMORY';

export async function runTsFuzz(o: TsFuzzOptions, send: (m: TsFuzzMessage) => void): Promise<void> {
  const rng = makeRng(o.seed);
  const seeds = o.seeds.map(loadSeed);
  const native = o.nativeLoad ? loadNative() : null;
  const signatures = new Set<string>();
  const gc = (globalThis as { gc?: () => void }).gc;
  let iter = 0,
    outcomes: string[] = [];
  const count = (k: string) => {
    outcomes.push(k);
  };
  const keep = (label: string, path: string) => {
    count('finding');
    const signature = label.replace(/\d+/g, 'N').slice(0, 120);
    if (signatures.has(signature)) return;
    signatures.add(signature);
    const saved = join(o.findings, `ts-${process.pid}-${iter}${path.endsWith('.gguf') ? '.gguf' : ''}`);
    if (statSync(path).isDirectory()) cpSync(path, saved, { recursive: true });
    else copyFileSync(path, saved);
    writeFileSync(`${saved}.txt`, `${label}\n`);
    send({ type: 'finding', label, saved });
  };
  mkdirSync(o.work, { recursive: true });
  mkdirSync(o.findings, { recursive: true });
  const deadline = Date.now() + o.seconds * 1000;
  for (; Date.now() < deadline; iter++) {
    outcomes = [];
    const rssBefore = process.memoryUsage.rss() / 2 ** 20,
      peakBefore = process.resourceUsage().maxRSS / 1024;
    const seed = seeds[rng.int(0, seeds.length - 1)];
    // a fresh path per case: native code maps files once per path
    const path = join(o.work, `case-${process.pid}-${iter}${seed.kind === 'gguf' ? '.gguf' : ''}`);
    try {
      writeCase(rng, seed, path);
    } catch {
      // a mutation the writers cannot express (JSON nested too deep to re-serialize): counted
      rmSync(path, { recursive: true, force: true });
      send({ type: 'done', iter, outcomes: ['mutation failed'], ms: 0, rssMb: 0 });
      continue;
    }
    send({ type: 'start', iter, path });
    const t0 = performance.now();
    let spec: ModelSpec | null = null;
    try {
      spec = await loadModelSpec(path);
      count('accepted');
    } catch (e) {
      const f = errorFinding(e, MODEL_CODE);
      if (f) keep(f, path);
      else count((e as WeftError).code);
    }
    const ms = performance.now() - t0;
    if (ms > o.maxParseMs) keep(`slow: ${ms.toFixed(0)} ms`, path);
    const bad = spec && specFinding(spec);
    if (bad) keep(bad, path);
    if (spec && native && !bad) {
      // as --dtype auto would also ask for a file with GGML blocks: kept as they are
      for (const wd of checkpointKind(spec) === 'blocks' ? (['f32', 'int8', 'quant'] as const) : (['f32', 'int8'] as const)) {
        try {
          native.loadModel(toNativeModelSpec(spec, wd, path));
          count(`native ${wd} loaded`);
        } catch (e) {
          const f = errorFinding(e, NATIVE_CODE);
          if (f) keep(`native ${wd}: ${f}`, path);
          else count(`native ${wd} ${(e as WeftError).code}`);
        }
      }
    }
    // the peak, so a big allocation freed before the case ends is seen too (if its pages were touched)
    const rssMb = process.resourceUsage().maxRSS / 1024;
    if (rssMb > peakBefore && rssMb - rssBefore > o.maxCaseMb)
      keep(`memory: the peak rss rose to ${rssMb.toFixed(0)} MiB from ${rssBefore.toFixed(0)} MiB in this case`, path);
    rmSync(path, { recursive: true, force: true });
    send({ type: 'done', iter, outcomes, ms, rssMb });
    if (rssMb > o.maxRssMb) break; // the peak is a high-water mark: a fresh process measures again
    // native models, HF tokenizers and mapped files are freed with their handles, which V8
    // does not weigh: collect often
    if (gc && iter % 16 === 15) gc();
    await new Promise((r) => setImmediate(r)); // lets the messages out
  }
}

if (process.send) {
  process.once('message', (o: TsFuzzOptions) => {
    runTsFuzz(o, (m) => process.send!(m)).then(
      () => process.disconnect(),
      (e) => {
        console.error(e);
        process.exit(2);
      },
    );
  });
}
