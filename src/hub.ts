// Models by Hugging Face Hub id: `--model org/name[@revision]` or `hf://org/name[@revision]`.
// The files weft needs go into the standard Hub cache (HF_HUB_CACHE, else HF_HOME/hub, else
// ~/.cache/huggingface/hub) through the official @huggingface/hub library, in the layout Python's
// huggingface_hub uses (blobs/, snapshots/<commit>/, refs/<revision>), so files fetched by either
// are shared. The revision is first resolved to its commit, so that every file lands in one
// snapshot folder and refs/<revision> lets a later start (or HF_HUB_OFFLINE=1) find it without the
// network. HF_ENDPOINT and HF_TOKEN are honoured.
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TransformStream } from 'node:stream/web';

import { downloadFileToCacheDir, getHFHubCachePath, listFiles } from '@huggingface/hub';

import type { HubEnv } from './config.js';
import { WeftError } from './errors.js';

export interface HubId {
  repo: string; // org/name
  revision: string; // branch, tag or commit ('main' when not given)
}

export interface DownloadProgress {
  file: string;
  bytes: number; // of this file so far
  total: number; // its size (0 when unknown)
  fileIndex: number; // 1-based, of numFiles
  numFiles: number;
}

export interface HubOptions {
  ggufFile?: string; // pick this .gguf of a GGUF repository
  env: HubEnv; // config.ts's hubEnv(): the HF_* variables
  onProgress?: (p: DownloadProgress) => void;
  fetch?: typeof fetch;
}

const HUB_ID = /^(?:hf:\/\/)?([A-Za-z0-9][\w.-]*\/[\w.-]+)(?:@([\w./-]+))?$/;

// A --model value names a Hub repository when it is not a local path and looks like org/name.
export function parseHubId(model: string): HubId | null {
  if (model === '' || (!model.startsWith('hf://') && existsSync(model))) return null;
  const m = HUB_ID.exec(model);
  if (!m || (!model.startsWith('hf://') && (model.startsWith('.') || model.startsWith('/')))) return null;
  return { repo: m[1], revision: m[2] ?? 'main' };
}

const truthy = (v: string | undefined) => v !== undefined && ['1', 'true', 'yes', 'on'].includes(v.toLowerCase());
const COMMIT = /^[0-9a-f]{40}$/;
// GGUF quantizations weft loads, most preferred first, for repositories with several files:
// Q4_K_M first, as Ollama and `llama-server -hf` pick, then the closer-to-full-precision ones,
// the other block mixes (the 3- and 2-bit ones last: the smallest and the least exact), floats.
const GGUF_PREFERENCE = [
  ...['q4_k_m', 'q8_0', 'q5_k_m', 'q6_k', 'q4_0', 'q5_0', 'q5_k_s', 'q4_k_s', 'q5_1', 'q4_1', 'q3_k_l', 'q3_k_m', 'q3_k_s', 'q2_k'],
  ...['bf16', 'f16', 'f32'],
];

// The local directory (HF checkpoints) or .gguf file for a Hub id, downloading what is missing.
export async function resolveHubModel(id: HubId, o: HubOptions): Promise<string> {
  const env = o.env;
  const cacheDir = env.HF_HUB_CACHE ?? (env.HF_HOME ? join(env.HF_HOME, 'hub') : getHFHubCachePath());
  const storage = join(cacheDir, `models--${id.repo.replace(/\//g, '--')}`);
  if (truthy(env.HF_HUB_OFFLINE)) return fromCache(id, storage, o.ggufFile);
  const hubUrl = (env.HF_ENDPOINT ?? 'https://huggingface.co').replace(/\/+$/, '');
  const token = env.HF_TOKEN || undefined;
  const doFetch = o.fetch ?? fetch;
  if (COMMIT.test(id.revision) && existsSync(join(storage, 'snapshots', id.revision))) {
    try {
      return fromCache(id, storage, o.ggufFile); // a commit is immutable: what is cached is what it holds
    } catch {
      // files missing from the snapshot: fetch them below
    }
  }
  const commit = COMMIT.test(id.revision) ? id.revision : await resolveRevision(id, hubUrl, token, doFetch);
  if (commit === null) {
    // the Hub is unreachable: a second start runs from the cache, as huggingface_hub does
    try {
      return fromCache(id, storage, o.ggufFile);
    } catch {
      throw new WeftError('WEFT_ERR_MODEL_HUB', `cannot reach the Hub at ${hubUrl} for ${id.repo}, and it is not in the cache (${storage})`);
    }
  }
  if (!COMMIT.test(id.revision)) {
    mkdirSync(join(storage, 'refs'), { recursive: true });
    writeFileSync(join(storage, 'refs', id.revision), commit);
  }
  const files: string[] = [];
  try {
    for await (const f of listFiles({ repo: id.repo, revision: commit, recursive: true, hubUrl, accessToken: token, fetch: doFetch }))
      if (f.type === 'file') files.push(f.path);
  } catch (e) {
    throw hubError(id, e);
  }
  const wanted = chooseFiles(id, files, o.ggufFile);
  let fileIndex = 0;
  for (const path of wanted) {
    fileIndex++;
    const progressFetch: typeof fetch = async (input, init) => {
      const res = await doFetch(input, init);
      const ranged = new Headers(init?.headers).has('range');
      if (!o.onProgress || ranged || !res.ok || !res.body || !/\/resolve\//.test(String(input))) return res;
      const total = Number(res.headers.get('content-length') ?? 0);
      let bytes = 0;
      const counted = res.body.pipeThrough(
        new TransformStream<Uint8Array, Uint8Array>({
          transform(chunk, ctl) {
            bytes += chunk.byteLength;
            o.onProgress!({ file: path, bytes, total, fileIndex, numFiles: wanted.length });
            ctl.enqueue(chunk);
          },
        }),
      );
      const head = { status: res.status, statusText: res.statusText, headers: res.headers };
      return new Response(counted as unknown as ConstructorParameters<typeof Response>[0], head);
    };
    // the library announces each download with console.debug, on stdout: that would corrupt
    // `weft generate --json`, and the progress bar says it already
    const debug = console.debug;
    console.debug = () => {};
    try {
      await downloadFileToCacheDir({ repo: id.repo, path, revision: commit, hubUrl, accessToken: token, cacheDir, fetch: progressFetch });
    } catch (e) {
      throw hubError(id, e, path);
    } finally {
      console.debug = debug;
    }
  }
  return modelPathIn(join(storage, 'snapshots', commit), wanted);
}

// revision (branch or tag) → its commit: the model API's sha; null when the Hub cannot be reached.
async function resolveRevision(id: HubId, hubUrl: string, token: string | undefined, doFetch: typeof fetch): Promise<string | null> {
  const url = `${hubUrl}/api/models/${id.repo}/revision/${encodeURIComponent(id.revision)}`;
  let res: Response;
  try {
    res = await doFetch(url, { headers: { accept: 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) } });
  } catch {
    return null;
  }
  if (!res.ok) throw hubError(id, { statusCode: res.status, message: `revision ${id.revision}: HTTP ${res.status}` });
  const sha = ((await res.json()) as { sha?: unknown }).sha;
  if (typeof sha !== 'string' || !COMMIT.test(sha))
    throw new WeftError('WEFT_ERR_MODEL_HUB', `${id.repo}@${id.revision}: the Hub returned no commit`);
  return sha;
}

function hubError(id: HubId, e: unknown, path?: string): WeftError {
  const status = (e as { statusCode?: number }).statusCode;
  const what = `${id.repo}@${id.revision}${path ? ` ${path}` : ''}`;
  if (status === 401 || status === 403)
    return new WeftError('WEFT_ERR_MODEL_HUB_AUTH', `${what}: the Hub refused access (HTTP ${status}); a gated or private model needs HF_TOKEN`);
  if (status === 404) return new WeftError('WEFT_ERR_MODEL_NOT_FOUND', `${what}: not found on the Hub`);
  return new WeftError('WEFT_ERR_MODEL_HUB', `${what}: ${(e as Error).message ?? String(e)}`);
}

// The files of a checkpoint weft reads: an HF checkpoint (safetensors) when there is one, else
// one GGUF file (--gguf-file, or the preferred quantization present).
export function chooseFiles(id: HubId, files: readonly string[], ggufFile?: string): string[] {
  const top = files.filter((f) => !f.includes('/'));
  const has = (f: string) => top.includes(f);
  const ggufs = files.filter((f) => f.toLowerCase().endsWith('.gguf'));
  if (ggufFile) {
    if (!files.includes(ggufFile))
      throw new WeftError('WEFT_ERR_MODEL_NOT_FOUND', `${id.repo}@${id.revision} has no ${ggufFile}; its GGUF files: ${ggufs.join(', ') || 'none'}`);
    return [ggufFile];
  }
  const safetensors = top.filter((f) => f.endsWith('.safetensors'));
  if (has('config.json') && safetensors.length > 0) {
    const extras = [
      'model.safetensors.index.json',
      'generation_config.json',
      'tokenizer.json',
      'tokenizer_config.json',
      'special_tokens_map.json',
      'chat_template.jinja',
      'chat_template.json',
    ].filter(has);
    return ['config.json', ...extras, ...safetensors];
  }
  if (ggufs.length === 1) return ggufs;
  for (const q of GGUF_PREFERENCE) {
    const hit = ggufs.find((f) => new RegExp(`[-._]${q}\\.gguf$`, 'i').test(f));
    if (hit) return [hit];
  }
  if (ggufs.length > 1)
    throw new WeftError(
      'WEFT_ERR_MODEL_UNSUPPORTED',
      `${id.repo}@${id.revision} has several GGUF files and none in a type weft loads ` +
        `(${GGUF_PREFERENCE.join(', ')}); pick one with --gguf-file: ${ggufs.join(', ')}`,
    );
  throw new WeftError('WEFT_ERR_MODEL_UNSUPPORTED', `${id.repo}@${id.revision} has neither config.json with safetensors nor a GGUF file`);
}

function modelPathIn(snapshot: string, files: readonly string[]): string {
  return files.length === 1 && files[0].toLowerCase().endsWith('.gguf') ? join(snapshot, files[0]) : snapshot;
}

// HF_HUB_OFFLINE: the snapshot refs/<revision> points at, which must hold the model already.
function fromCache(id: HubId, storage: string, ggufFile?: string): string {
  const ref = join(storage, 'refs', id.revision);
  const commit = COMMIT.test(id.revision) ? id.revision : existsSync(ref) ? readFileSync(ref, 'utf8').trim() : '';
  const snapshot = join(storage, 'snapshots', commit);
  const offline = (m: string) => new WeftError('WEFT_ERR_MODEL_NOT_FOUND', `${id.repo}@${id.revision}: ${m} and HF_HUB_OFFLINE is set`);
  if (!commit || !existsSync(snapshot)) throw offline(`not in the Hub cache (${storage})`);
  if (ggufFile) {
    if (!existsSync(join(snapshot, ggufFile))) throw offline(`${ggufFile} is not in the cached snapshot`);
    return join(snapshot, ggufFile);
  }
  if (existsSync(join(snapshot, 'config.json'))) return snapshot;
  const cached = listGguf(snapshot);
  if (cached.length === 1) return join(snapshot, cached[0]);
  throw offline(cached.length ? `several cached GGUF files (${cached.join(', ')}); pick one with --gguf-file` : 'no model files cached');
}

function listGguf(dir: string): string[] {
  return readdirSync(dir).filter((f) => f.toLowerCase().endsWith('.gguf'));
}
