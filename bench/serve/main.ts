// npm run bench -- a serving benchmark with the interface of vLLM's `vllm bench serve`: start weft
// (--model) or use a running server (--url), send the dataset on its arrival schedule, print
// vLLM's summary, save vLLM's JSON; optionally sweep, compare with a peer, and chart it all.
import { basename } from 'node:path';
import { pathToFileURL } from 'node:url';

import { parseArgs, usage } from './args.js';
import { comparisonRows, formatComparison, llamaCtx, parallelFrom } from './compare.js';
import { buildDataset } from './datasets.js';
import { writeHtml, writeSvgs } from './html.js';
import { checkFits, localVocabSize, serverModelInfo } from './model-info.js';
import { toConfig, type BenchConfig } from './options.js';
import type { PointResult, PointTarget } from './point.js';
import { formatSummary, saveResult } from './report.js';
import { runSession } from './session.js';
import { buildLlamaServer, freePort, llamaServerSpec, splitArgs, startServer, weftSpec, type ServerProcess } from './spawn.js';
import { tableHeader, tableRow } from './table.js';
import type { BenchRequest } from './types.js';

export interface MainDeps {
  weftCommand?: string[]; // argv before weft's flags (default: node bin/serve.cjs, as npm start)
  peerCommand?: string[]; // argv before llama-server's flags (default: built by build-server.sh)
  out?: (s: string) => void; // the summary and tables
  log?: (s: string) => void; // what happens meanwhile
}

interface Io {
  out: (s: string) => void;
  log: (s: string) => void;
}

function target(label: string, baseUrl: string, cfg: BenchConfig, server: ServerProcess | null): PointTarget {
  return {
    label,
    peakRssMb: server ? () => server.peakRssMb() : null,
    client: {
      baseUrl,
      endpoint: cfg.endpoint,
      model: cfg.modelName,
      temperature: cfg.temperature,
      ignoreEos: cfg.ignoreEos,
      timeoutMs: cfg.requestTimeoutMs,
    },
  };
}

async function benchServer(
  t: PointTarget,
  cfg: BenchConfig,
  requestsFor: (point: number) => BenchRequest[],
  io: Io,
  modelId: string,
  replay?: PointResult[],
): Promise<PointResult[]> {
  const isMulti = cfg.sweep || cfg.concurrencies.length > 1;
  if (isMulti) io.out(tableHeader());
  const points = await runSession(
    t,
    cfg,
    requestsFor,
    (p, note) => {
      if (isMulti) io.out(tableRow(p) + (note ? `  ${note}` : ''));
    },
    replay?.map((p) => ({ requestRate: p.requestRate, maxConcurrency: p.maxConcurrency })),
  );
  for (const [i, p] of points.entries()) {
    io.out(formatSummary(p, cfg));
    if (cfg.saveResult) io.log(`saved ${saveResult(p, cfg, modelId, points.length > 1 ? `-point${i}` : '')}`);
  }
  return points;
}

async function startPeer(cfg: BenchConfig, requests: BenchRequest[], deps: MainDeps, io: Io): Promise<ServerProcess> {
  const peerArgs = splitArgs(cfg.peerArgs);
  const command = deps.peerCommand ?? [await buildLlamaServer()];
  io.log(`starting llama-server (${command.join(' ')}) on ${cfg.model}`);
  return startServer(
    llamaServerSpec(command, { gguf: cfg.model!, port: await freePort(), ctx: llamaCtx(requests, parallelFrom(peerArgs)), peerArgs }),
  );
}

async function session(cfg: BenchConfig, deps: MainDeps, io: Io, servers: ServerProcess[]): Promise<void> {
  let weft: ServerProcess | null = null;
  if (cfg.model) {
    io.log(`starting weft on ${cfg.model}`);
    weft = await startServer(weftSpec(cfg.model, await freePort(), splitArgs(cfg.serverArgs), deps.weftCommand));
    servers.push(weft);
  }
  const baseUrl = weft?.baseUrl ?? cfg.url!;
  const info = await serverModelInfo(baseUrl);
  const vocabSize = cfg.vocabSizeGiven ? cfg.dataset.vocabSize : (cfg.model && localVocabSize(cfg.model)) || info.vocabSize || cfg.dataset.vocabSize;
  // point i draws its prompts with seed + i (the first point's are the --seed ones)
  const datasets = new Map<number, BenchRequest[]>();
  const requestsFor = (i: number) => {
    if (!datasets.has(i)) datasets.set(i, buildDataset({ ...cfg.dataset, seed: cfg.dataset.seed + i, vocabSize }));
    return datasets.get(i)!;
  };
  const requests = requestsFor(0);
  checkFits(requests, info.maxModelLen);
  const modelId = info.id ?? cfg.modelName ?? (cfg.model ? basename(cfg.model) : 'unknown');
  const label = weft ? 'weft' : (info.ownedBy ?? 'openai');
  const points = await benchServer(target(label, baseUrl, cfg, weft), cfg, requestsFor, io, modelId);
  const all = [{ label, points }];

  let comparison: string | undefined;
  if (cfg.peer || cfg.peerUrl) {
    // weft goes first and is stopped before the peer starts, so neither competes for the cores
    if (weft) {
      await weft.stop();
      servers.splice(servers.indexOf(weft), 1);
    }
    const peer = cfg.peerUrl ? null : await startPeer(cfg, requests, deps, io);
    if (peer) servers.push(peer);
    const peerLabel = peer?.label ?? 'peer';
    const peerPoints = await benchServer(target(peerLabel, peer?.baseUrl ?? cfg.peerUrl!, cfg, peer), cfg, requestsFor, io, modelId, points);
    all.push({ label: peerLabel, points: peerPoints });
    comparison = points
      .map((p, i) => {
        const head = `rate ${p.requestRate}, concurrency ${p.maxConcurrency ?? 'none'}`;
        return `${head}\n${formatComparison(peerLabel, comparisonRows(p, peerPoints[i]))}`;
      })
      .join('\n\n');
    io.out(comparison);
  }
  const command = `npm run bench -- ${process.argv.slice(2).join(' ')}`;
  if (cfg.html) {
    writeHtml(cfg.html, { title: `weft serving benchmark: ${modelId}`, command, servers: all, comparison });
    io.log(`wrote ${cfg.html}`);
  }
  if (cfg.svgDir) io.log(`wrote ${writeSvgs(cfg.svgDir, all).join(', ')}`);
}

export async function main(argv: string[], deps: MainDeps = {}): Promise<number> {
  const io: Io = { out: deps.out ?? ((s) => process.stdout.write(s + '\n')), log: deps.log ?? ((s) => process.stderr.write(s + '\n')) };
  const servers: ServerProcess[] = [];
  try {
    const args = parseArgs(argv);
    if (args.help) {
      io.out(usage());
      return 0;
    }
    await session(toConfig(args), deps, io, servers);
    return 0;
  } catch (e) {
    io.log(`bench: ${(e as Error).message}`);
    return 1;
  } finally {
    await Promise.all(servers.map((s) => s.stop()));
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  // exit explicitly: idle keep-alive sockets to a --url server would otherwise hold the process a while
  process.exit(await main(process.argv.slice(2)));
}
