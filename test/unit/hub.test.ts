// Models by Hub id, against a local server on loopback that answers the Hub's file API the way
// huggingface.co does (revision → commit, tree listing, paths-info, resolve with ranges): the
// Python-compatible cache layout, a tag, the GGUF choice, a missing file, a 401 without a token,
// a second start without the network (and HF_HUB_OFFLINE), and the server serving a Hub model.
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { existsSync, lstatSync, mkdtempSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';

import { chooseFiles, parseHubId, resolveHubModel, type DownloadProgress } from '../../src/hub.js';
import { buildApp, type LoadProgress } from '../../src/app.js';
import { Metrics } from '../../src/metrics.js';
import { startEngine } from '../../src/server.js';
import { testConfig } from '../routes/helpers.js';
import { MODEL_DIR } from '../fixtures/paths.js';

const file = (name: string) => readFileSync(join(MODEL_DIR, name));
const HF_FILES = ['config.json', 'generation_config.json', 'model.safetensors', 'special_tokens_map.json', 'tokenizer.json', 'tokenizer_config.json'];
const sha = (c: string) => createHash('sha1').update(c).digest('hex');

// repo → revision → { commit, files }
const REPOS: Record<string, { token?: string; revisions: Record<string, { commit: string; files: Record<string, Buffer> }> }> = {
  'weft-test/stories': {
    revisions: {
      main: { commit: sha('main'), files: { ...Object.fromEntries(HF_FILES.map((f) => [f, file(f)])), 'README.md': Buffer.from('# stories') } },
      v1: { commit: sha('v1'), files: { 'stories260K.gguf': file('stories260K.gguf') } },
    },
  },
  'weft-test/ggufs': {
    revisions: { main: { commit: sha('ggufs'), files: { 'm-Q4_K_M.gguf': file('stories260K.gguf'), 'm-Q8_0.gguf': file('stories260K.gguf') } } },
  },
  'weft-test/private': { token: 'hf_secret', revisions: { main: { commit: sha('private'), files: { 'stories.gguf': file('stories260K.gguf') } } } },
};

let requests = 0;
const server = createServer((req: IncomingMessage, res: ServerResponse) => {
  requests++;
  const url = new URL(req.url ?? '/', 'http://x');
  const send = (status: number, body: unknown, headers: Record<string, string> = {}) => {
    const data = Buffer.isBuffer(body) ? body : Buffer.from(JSON.stringify(body));
    const type = Buffer.isBuffer(body) ? 'application/octet-stream' : 'application/json';
    res.writeHead(status, { 'content-type': type, 'content-length': String(data.length), ...headers });
    res.end(data);
  };
  const api = /^\/api\/models\/([^/]+\/[^/]+)\/(revision|tree|paths-info)\/([^/]+)$/.exec(url.pathname);
  const resolve = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(url.pathname);
  const repoName = api?.[1] ?? resolve?.[1] ?? '';
  const repo = REPOS[repoName];
  if (!repo) return send(404, { error: 'Repository not found' }, { 'x-error-code': 'RepoNotFound' });
  if (repo.token && req.headers.authorization !== `Bearer ${repo.token}`) return send(401, { error: 'Invalid credentials in Authorization header' });
  const revName = decodeURIComponent(api?.[3] ?? resolve?.[2] ?? '');
  const rev = Object.values(repo.revisions).find((r) => r.commit === revName) ?? repo.revisions[revName];
  if (!rev) return send(404, { error: `Invalid rev id: ${revName}` }, { 'x-error-code': 'RevisionNotFound' });
  const entry = (path: string) => ({
    type: 'file',
    path,
    size: rev.files[path].length,
    oid: createHash('sha1').update(rev.files[path]).digest('hex'),
  });
  if (api?.[2] === 'revision') return send(200, { id: repoName, sha: rev.commit });
  if (api?.[2] === 'tree') return send(200, Object.keys(rev.files).map(entry));
  if (api?.[2] === 'paths-info') {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => send(200, (JSON.parse(body).paths as string[]).filter((p) => rev.files[p]).map(entry)));
    return;
  }
  const data = rev.files[resolve?.[3] ?? ''];
  if (!data) return send(404, { error: 'Entry not found' }, { 'x-error-code': 'EntryNotFound' });
  // as huggingface.co: the file's etag and the commit with every resolve
  const headers = { etag: `"${entry(resolve![3]).oid}"`, 'x-repo-commit': rev.commit };
  const range = /^bytes=(\d+)-(\d*)$/.exec(String(req.headers.range ?? ''));
  if (!range) return send(200, data, headers);
  const a = Number(range[1]),
    b = range[2] ? Math.min(Number(range[2]), data.length - 1) : data.length - 1;
  return send(206, data.subarray(a, b + 1), { ...headers, 'content-range': `bytes ${a}-${b}/${data.length}` });
});
await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
const cache = mkdtempSync(join(tmpdir(), 'weft-hub-'));
t.teardown(() => {
  server.close();
  rmSync(cache, { recursive: true, force: true });
});
const env = (extra: Record<string, string> = {}) => ({ HF_ENDPOINT: endpoint, HF_HUB_CACHE: cache, ...extra });

t.test('Hub ids: org/name[@rev] and hf://; local paths stay paths', async (t) => {
  t.same(parseHubId('org/name'), { repo: 'org/name', revision: 'main' });
  t.same(parseHubId('hf://org/name@v1.2'), { repo: 'org/name', revision: 'v1.2' });
  t.same(parseHubId('meta-llama/Llama-3.2-1B@0123456789abcdef0123456789abcdef01234567').revision, '0123456789abcdef0123456789abcdef01234567');
  t.equal(parseHubId(MODEL_DIR), null, 'an existing directory');
  t.equal(parseHubId('./rel/dir'), null);
  t.equal(parseHubId('/abs/file.gguf'), null);
  t.equal(parseHubId('model.gguf'), null, 'no org/');
  t.equal(parseHubId(''), null);
});

t.test('the GGUF rule: safetensors first, else the only GGUF, else Q4_K_M, then Q8_0, …, never a type weft cannot load', async (t) => {
  const id = { repo: 'o/n', revision: 'main' };
  t.same(chooseFiles(id, ['config.json', 'model.safetensors', 'x.gguf', 'tokenizer.json']), ['config.json', 'tokenizer.json', 'model.safetensors']);
  t.same(chooseFiles(id, ['a-Q4_K_M.gguf', 'a-Q8_0.gguf', 'a-F16.gguf']), ['a-Q4_K_M.gguf']);
  t.same(chooseFiles(id, ['a-Q5_K_M.gguf', 'a-Q8_0.gguf', 'a-F16.gguf']), ['a-Q8_0.gguf']);
  t.same(chooseFiles(id, ['a-Q2_K.gguf', 'a-Q5_K_M.gguf']), ['a-Q5_K_M.gguf']);
  t.same(chooseFiles(id, ['a-Q2_K.gguf', 'a-IQ4_XS.gguf', 'a-Q3_K_M.gguf']), ['a-Q3_K_M.gguf'], 'the 3- and 2-bit mixes last among block types');
  t.same(chooseFiles(id, ['a-Q2_K.gguf', 'a-IQ4_XS.gguf', 'a-F16.gguf']), ['a-Q2_K.gguf']);
  t.throws(() => chooseFiles(id, ['a-IQ2_XS.gguf', 'a-IQ4_XS.gguf']), { code: 'WEFT_ERR_MODEL_UNSUPPORTED', message: /--gguf-file/ });
  t.throws(() => chooseFiles(id, ['README.md']), { code: 'WEFT_ERR_MODEL_UNSUPPORTED' });
});

t.test('an HF checkpoint lands in the Python layout; a second start needs no network', async (t) => {
  const seen: DownloadProgress[] = [];
  const path = await resolveHubModel({ repo: 'weft-test/stories', revision: 'main' }, { env: env(), onProgress: (p) => seen.push(p) });
  const storage = join(cache, 'models--weft-test--stories');
  t.equal(path, join(storage, 'snapshots', sha('main')));
  t.equal(readFileSync(join(storage, 'refs', 'main'), 'utf8'), sha('main'), 'refs/main holds the commit');
  for (const f of HF_FILES) {
    t.ok(lstatSync(join(path, f)).isSymbolicLink(), `${f}: a link into blobs/`);
    t.match(readlinkSync(join(path, f)), /blobs/);
    t.same(readFileSync(join(path, f)), file(f), `${f}: the bytes served`);
  }
  t.notOk(existsSync(join(path, 'README.md')), 'files weft does not read are not fetched');
  const st = seen.filter((p) => p.file === 'model.safetensors');
  t.ok(st.length > 0 && st.at(-1)!.bytes === file('model.safetensors').length, 'progress reaches the file size');
  t.equal(st.at(-1)!.numFiles, HF_FILES.length);

  const before = requests;
  t.equal(await resolveHubModel({ repo: 'weft-test/stories', revision: sha('main') }, { env: env() }), path, 'by commit: from the cache');
  t.equal(requests, before, 'a commit already cached asks the server nothing');
  t.equal(await resolveHubModel({ repo: 'weft-test/stories', revision: 'main' }, { env: env({ HF_HUB_OFFLINE: '1' }) }), path, 'HF_HUB_OFFLINE');
  t.equal(requests, before, 'offline asks the server nothing');
  const down = await resolveHubModel({ repo: 'weft-test/stories', revision: 'main' }, { env: env({ HF_ENDPOINT: 'http://127.0.0.1:9' }) });
  t.equal(down, path, 'the Hub unreachable: the cached snapshot of refs/main');
});

t.test('a tag, a GGUF repository, --gguf-file, a missing file, 401 without a token, offline without a cache', async (t) => {
  const v1 = await resolveHubModel({ repo: 'weft-test/stories', revision: 'v1' }, { env: env() });
  t.equal(v1, join(cache, 'models--weft-test--stories', 'snapshots', sha('v1'), 'stories260K.gguf'), 'the tag’s commit, its one GGUF');
  const q4 = await resolveHubModel({ repo: 'weft-test/ggufs', revision: 'main' }, { env: env() });
  t.match(q4, /m-Q4_K_M\.gguf$/, 'the rule picks Q4_K_M first');
  const picked = await resolveHubModel({ repo: 'weft-test/ggufs', revision: 'main' }, { env: env(), ggufFile: 'm-Q8_0.gguf' });
  t.match(picked, /m-Q8_0\.gguf$/, '--gguf-file');
  await t.rejects(resolveHubModel({ repo: 'weft-test/ggufs', revision: 'main' }, { env: env(), ggufFile: 'nope.gguf' }), {
    code: 'WEFT_ERR_MODEL_NOT_FOUND',
    message: /has no nope\.gguf; its GGUF files: m-Q4_K_M\.gguf, m-Q8_0\.gguf/,
  });
  await t.rejects(resolveHubModel({ repo: 'weft-test/stories', revision: 'v9' }, { env: env() }), {
    code: 'WEFT_ERR_MODEL_NOT_FOUND',
    message: /v9/,
  });
  await t.rejects(resolveHubModel({ repo: 'weft-test/absent', revision: 'main' }, { env: env() }), { code: 'WEFT_ERR_MODEL_NOT_FOUND' });
  await t.rejects(resolveHubModel({ repo: 'weft-test/private', revision: 'main' }, { env: env() }), {
    code: 'WEFT_ERR_MODEL_HUB_AUTH',
    message: /HF_TOKEN/,
  });
  const priv = await resolveHubModel({ repo: 'weft-test/private', revision: 'main' }, { env: env({ HF_TOKEN: 'hf_secret' }) });
  t.match(priv, /stories\.gguf$/, 'with HF_TOKEN');
  await t.rejects(resolveHubModel({ repo: 'weft-test/ggufs', revision: 'dev' }, { env: env({ HF_HUB_OFFLINE: '1' }) }), {
    code: 'WEFT_ERR_MODEL_NOT_FOUND',
    message: /HF_HUB_OFFLINE/,
  });
});

t.test('the server serves a Hub id; startup reports the download, and /ready shows it while loading', async (t) => {
  const fresh = mkdtempSync(join(tmpdir(), 'weft-hub-'));
  t.teardown(() => rmSync(fresh, { recursive: true, force: true }));
  Object.assign(process.env, env({ HF_HUB_CACHE: fresh }));
  const metrics = new Metrics({ defaultMetrics: false });
  const seen: LoadProgress[] = [];
  const engine = await startEngine(testConfig({ model: 'hf://weft-test/stories', backend: 'cpu' }), metrics, undefined, (p) => seen.push(p));
  t.teardown(() => engine.close());
  t.ok(
    seen.some((p) => p.phase === 'download' && p.file === 'model.safetensors' && p.bytes === p.total && p.total! > 0),
    'download progress',
  );
  t.equal(seen.at(-1)!.phase, 'load', 'then loading');
  t.match(seen.at(-1), { phase: 'load', instancesReady: 1, instances: 1 }, 'then its engine instances, one by one');
  t.ok(seen.at(-1)!.total! > 0 && seen.at(-1)!.bytes === seen.at(-1)!.total, 'in bytes of the model, all read at the end');
  const app = await buildApp(testConfig(), { service: engine.service, metrics });
  t.teardown(() => app.close());
  const r = await app.inject({ method: 'POST', url: '/generate', payload: { prompt: 'Once upon a time', max_tokens: 8, temperature: 0 } });
  t.equal(r.statusCode, 200, r.body);
  t.equal(r.json().output_ids.length, 8);

  const loading = await buildApp(testConfig());
  t.teardown(() => loading.close());
  loading.weft.loadProgress = { phase: 'download', file: 'model.safetensors', bytes: 10, total: 40 };
  const ready = await loading.inject({ method: 'GET', url: '/ready' });
  t.equal(ready.statusCode, 503);
  t.same(ready.json().progress, { phase: 'download', file: 'model.safetensors', bytes: 10, total: 40 });
});
