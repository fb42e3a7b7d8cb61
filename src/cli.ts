// The `weft` command line: generate, quantize, synth, serve.
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';

import { hubEnv, resolveBackend, resolveDtype, resolveNumThreads, type Config } from './config.js';
import { checkpointKind } from './model/types.js';
import { packageVersion } from './package-path.js';
import { usableCpuCount } from './system.js';
import { isWeftError, WeftError } from './errors.js';
import { parseHubId, resolveHubModel } from './hub.js';
import { loadModelSpec } from './model/load.js';
import { progressBar } from './progress.js';
import { GGUF_FILE_TYPES, type GgufFileType } from './model/quant-mix.js';
import { quantizeModel } from './model/quantize.js';
import { quantizeToGguf } from './model/quantize-gguf.js';
import { synthesizeModel } from './model/synth.js';
import { runOffline } from './offline.js';
import { TextTokenizer } from './tokenizer.js';
import { loadNative } from './workers/binding.js';
import { EngineInstance } from './workers/engine-instance.js';

const USAGE = `usage:
  weft generate --model PATH|ORG/NAME[@REV] [--gguf-file F] --prompt TEXT --max-tokens N [--temperature T] [--top-k K] [--top-p P]
                [--min-p P] [--seed S] [--backend cpu|gpu|auto] [--dtype auto|f32|int8|f16|bf16]
                [--num-threads N|auto] [--json]
  weft quantize IN OUT [--type int8|TYPE]
                                         int8 (the default): a HF directory IN → a pre-quantized int8 directory OUT;
                                         TYPE: a HF directory or an F32/F16/BF16 .gguf IN → one GGUF file OUT
  weft synth CONFIG OUT [--format gguf|hf] [--type TYPE] [--seed S]
                                         seeded random weights at the shape of a config.json (hf: f32 or f16)
  TYPE: ${GGUF_FILE_TYPES.join(' | ')},
        with llama.cpp's per-tensor rules (q4_k_m: Q4_K, Q6_K for the output and for attn_v/ffn_down on
        some layers; rows that are not a multiple of 256 fall back to a 32-value type: Q4_0, Q5_0, Q5_1,
        Q8_0); synth's --dtype is another spelling of --type
  weft serve [options]                   the HTTP server (same as npm start; weft serve --help lists its flags)
  weft --version`;

function usageError(message: string): never {
  throw new WeftError('WEFT_ERR_CONFIG_INVALID', `${message}\n${USAGE}`);
}

function num(v: string | undefined, name: string, def: number, integer = false): number {
  if (v === undefined) return def;
  const n = Number(v);
  if (!Number.isFinite(n) || (integer && !Number.isInteger(n))) usageError(`--${name} must be a${integer ? 'n integer' : ' number'}, got "${v}"`);
  return n;
}

async function generate(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      model: { type: 'string' },
      prompt: { type: 'string' },
      'max-tokens': { type: 'string' },
      temperature: { type: 'string' },
      'top-k': { type: 'string' },
      'top-p': { type: 'string' },
      'min-p': { type: 'string' },
      seed: { type: 'string' },
      backend: { type: 'string' },
      dtype: { type: 'string' },
      threads: { type: 'string' },
      'num-threads': { type: 'string' },
      json: { type: 'boolean' },
      'gguf-file': { type: 'string' },
    },
  });
  values.threads ??= values['num-threads']; // serve's spelling works here too
  if (!values.model) usageError('--model is required');
  if (values.prompt === undefined) usageError('--prompt is required (use --prompt "" to start from BOS)');
  const asked = values.backend ?? 'cpu';
  if (asked !== 'cpu' && asked !== 'gpu' && asked !== 'auto') usageError(`--backend must be cpu, gpu or auto, got "${asked}"`);
  const askedDtype = values.dtype ?? 'auto';
  if (!['auto', 'f32', 'int8', 'f16', 'bf16'].includes(askedDtype)) usageError('--dtype must be auto, f32, int8, f16 or bf16');
  const backend = resolveBackend(asked, loadNative().cudaDeviceCount());
  const maxTokens = num(values['max-tokens'], 'max-tokens', 64, true);
  const temperature = num(values.temperature, 'temperature', 0);
  const topK = num(values['top-k'], 'top-k', 0, true);
  const topP = num(values['top-p'], 'top-p', 1);
  const minP = num(values['min-p'], 'min-p', 0);
  const seed = num(values.seed, 'seed', Math.floor(Math.random() * 2 ** 32), true);
  const threads =
    values.threads === undefined || values.threads === 'auto' ? resolveNumThreads(0, 1, usableCpuCount()) : num(values.threads, 'threads', 1, true);
  if (maxTokens < 1 || temperature < 0 || topK < 0 || topP <= 0 || topP > 1 || minP < 0 || minP > 1 || seed < 0 || threads < 1)
    usageError('sampling values out of range');

  const bar = progressBar();
  const hubId = parseHubId(values.model);
  const modelPath = !hubId
    ? values.model
    : await resolveHubModel(hubId, {
        env: hubEnv(),
        ...(values['gguf-file'] ? { ggufFile: values['gguf-file'] } : {}),
        onProgress: (p) => bar.update(`${p.file} (${p.fileIndex}/${p.numFiles})`, p.bytes, p.total),
      });
  bar.end();
  const spec = await loadModelSpec(modelPath);
  const dtype = resolveDtype(askedDtype as Config['dtype'], backend, checkpointKind(spec));
  const tok = new TextTokenizer(spec);
  const promptIds = await tok.encode(values.prompt);
  if (promptIds.length === 0) usageError('the prompt encodes to no tokens and the model has no BOS token');
  const maxLen = spec.config.maxPositions;
  if (promptIds.length + maxTokens > maxLen)
    usageError(`prompt (${promptIds.length} tokens) + --max-tokens ${maxTokens} exceeds the context (${maxLen})`);
  const engine = await EngineInstance.open(
    {
      modelPath,
      dtype,
      numThreads: threads,
      numKvBlocks: Math.ceil((promptIds.length + maxTokens) / 16) + 1,
      blockSize: 16,
      backend,
      maxContextLen: promptIds.length + maxTokens,
    },
    spec,
  );
  const [res] = runOffline(engine, [{ promptIds, maxTokens, sampling: { temperature, topK, topP, minP, seed } }]);
  engine.close();
  const text = await tok.decode(res.outputIds);
  if (values.json) process.stdout.write(JSON.stringify({ prompt_ids: promptIds, output_ids: res.outputIds, text }) + '\n');
  else process.stdout.write(text + '\n');
}

function fileType(v: string | undefined, def: GgufFileType): GgufFileType {
  if (v === undefined) return def;
  if (!(GGUF_FILE_TYPES as readonly string[]).includes(v)) usageError(`--type must be one of ${GGUF_FILE_TYPES.join(', ')}, got "${v}"`);
  return v as GgufFileType;
}

async function synth(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: { format: { type: 'string' }, type: { type: 'string' }, dtype: { type: 'string' }, seed: { type: 'string' } },
  });
  if (positionals.length !== 2) usageError('synth needs CONFIG and OUT');
  const format = (values.format ?? 'gguf') as 'gguf' | 'hf';
  if (!['gguf', 'hf'].includes(format)) usageError('--format must be gguf or hf');
  if (values.type !== undefined && values.dtype !== undefined && values.type !== values.dtype) usageError('--type and --dtype disagree');
  const type = fileType(values.type ?? values.dtype, 'f32');
  // a tokenizer (and its chat template) lying next to the config.json goes with the model
  const dir = dirname(positionals[0]);
  const tokenizerJson = existsSync(join(dir, 'tokenizer.json')) ? await readFile(join(dir, 'tokenizer.json'), 'utf8') : undefined;
  const tokConfig = existsSync(join(dir, 'tokenizer_config.json'))
    ? (JSON.parse(await readFile(join(dir, 'tokenizer_config.json'), 'utf8')) as { chat_template?: unknown })
    : {};
  const chatTemplate = typeof tokConfig.chat_template === 'string' ? tokConfig.chat_template : undefined;
  const bar = progressBar(process.stderr, 'items');
  await synthesizeModel({
    config: positionals[0],
    out: positionals[1],
    format,
    type,
    seed: num(values.seed, 'seed', 0, true),
    tokenizerJson,
    chatTemplate,
    onProgress: (done, total) => bar.update('synth: tensors', done, total),
  });
  bar.end();
}

async function quantize(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, strict: true, options: { type: { type: 'string' } } });
  if (positionals.length !== 2) usageError('quantize needs IN and OUT');
  const bar = progressBar(process.stderr, 'items');
  const onProgress = (done: number, total: number) => bar.update('quantize: tensors', done, total);
  if (values.type === undefined || values.type === 'int8') await quantizeModel(positionals[0], positionals[1], onProgress);
  else await quantizeToGguf(positionals[0], positionals[1], fileType(values.type, 'q8_0'), onProgress);
  bar.end();
}

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    if (cmd === '--version' || cmd === '-v') {
      process.stdout.write(`weft ${await packageVersion()}\n`);
      return 0;
    }
    // `weft generate --help`, `weft synth --help`, …: the usage, not an error
    if (cmd !== 'serve' && (rest.includes('--help') || rest.includes('-h'))) {
      process.stdout.write(USAGE + '\n');
      return 0;
    }
    if (cmd === 'generate') await generate(rest);
    else if (cmd === 'quantize') await quantize(rest);
    else if (cmd === 'synth') await synth(rest);
    else if (cmd === 'serve') {
      const { runServer } = await import('./server.js');
      return await runServer(rest); // 0 once serving; a failed start exits non-zero
    } else if (cmd === undefined || cmd === '--help' || cmd === '-h') {
      process.stdout.write(USAGE + '\n');
      return cmd === undefined ? 1 : 0;
    } else usageError(`unknown command "${cmd}"`);
    return 0;
  } catch (e) {
    const code = isWeftError(e) ? e.code : ((e as { code?: string }).code ?? 'ERROR');
    process.stderr.write(`weft: ${code}: ${(e as Error).message}\n`);
    return 1;
  }
}
