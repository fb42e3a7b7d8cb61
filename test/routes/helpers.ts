// Shared by the route tests: an app over a real engine on stories260K (or an app with no
// engine), built the way server.ts builds it, and small SSE helpers.
import type { FastifyInstance } from 'fastify';

import { buildApp } from '../../src/app.js';
import { loadConfig, type Config } from '../../src/config.js';
import { Metrics } from '../../src/metrics.js';
import { startEngine, type Engine } from '../../src/server.js';
import { MODEL_DIR } from '../fixtures/paths.js';

export const MODEL_ID = 'stories260K';

export function testConfig(overrides: Partial<Config> = {}): Readonly<Config> {
  return loadConfig({
    env: {},
    overrides: {
      model: MODEL_DIR,
      logLevel: 'silent',
      kvCacheBlocks: 256,
      gpuMemoryUtilization: 0,
      numThreads: 1,
      maxNumSeqs: 64,
      maxNumBatchedTokens: 256,
      ...overrides,
    },
  });
}

export interface TestServer {
  app: FastifyInstance;
  engine: Engine;
  close(): Promise<void>;
}

export async function startTestApp(overrides: Partial<Config> = {}): Promise<TestServer> {
  const config = testConfig(overrides);
  const metrics = new Metrics({ defaultMetrics: false, compat: config.metricsCompat });
  const engine = await startEngine(config, metrics);
  const app = await buildApp(config, {
    service: engine.service,
    metrics,
    ...(engine.reranker ? { reranker: engine.reranker } : {}),
    ...(engine.embedder ? { embedder: engine.embedder } : {}),
  });
  return {
    app,
    engine,
    async close() {
      await app.close();
      await engine.close();
    },
  };
}

// `data: …` payloads of an SSE body, in order ([DONE] kept as the string).
export function sseData(body: string): unknown[] {
  return body
    .split('\n\n')
    .filter((f) => f.startsWith('data: '))
    .map((f) => {
      const d = f.slice(6);
      return d === '[DONE]' ? d : JSON.parse(d);
    });
}

// One metric's value from Prometheus text (the sum over label sets matching `labels`).
export function metricValue(text: string, name: string, labels = ''): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([^\s{]+)(\{[^}]*\})?\s+(\S+)$/.exec(line);
    if (m && m[1] === name && (m[2] ?? '').includes(labels)) sum += Number(m[3]);
  }
  return sum;
}

// A log that tests can wait on (AppDeps.logStream): every line kept; waitFor resolves with the
// first line matching `re`, already written or the next one.
export function logSink() {
  const lines: string[] = [];
  const waiters: { re: RegExp; resolve: (line: string) => void }[] = [];
  return {
    lines,
    write(line: string) {
      lines.push(line);
      for (const w of [...waiters])
        if (w.re.test(line)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(line);
        }
    },
    waitFor(re: RegExp): Promise<string> {
      const seen = lines.find((l) => re.test(l));
      return seen ? Promise.resolve(seen) : new Promise((resolve) => waiters.push({ re, resolve }));
    },
  };
}
