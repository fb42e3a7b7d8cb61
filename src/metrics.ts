// Every metric once, on a registry of its own (one per app, so tests can build several).
// Names follow vLLM's set (anchors §2) with a weft_ prefix. Request timings come from the
// engine's monotonic timestamps at finish; gauges and cumulative engine counters are read
// from the loop's stats() at scrape time, summed over the engine instances.
// The load gauges an endpoint picker scores pods by (queued, running, KV use, cache config)
// can also be exported under vLLM's names (compat 'vllm'), so a picker with its default
// metric names reads a weft pod as it reads a vLLM one.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

import type { StepTiming } from './scheduler/engine.js';
import type { SchedulerStats } from './scheduler/scheduler.js';
import type { FinishReason } from './scheduler/sequence.js';

// The sequence timestamps a finished request reports (ms, one monotonic clock).
export interface FinishedTimings {
  arrivalTime: number;
  firstScheduledTime: number | null;
  firstTokenTime: number | null;
  finishedTime: number | null;
  numPromptTokens: number;
  numOutputTokens: number;
}

const LATENCY_S = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80, 160, 640, 2560];
const REQUEST_S = [0.01, 0.05, 0.1, 0.3, 0.5, 0.8, 1, 1.5, 2, 2.5, 5, 10, 15, 20, 30, 40, 50, 60, 120, 240, 480, 960, 1920, 7680];
const STEP_S = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];
const COUNT_1_2_5 = (max: number) => {
  const out: number[] = [];
  for (let m = 1; m <= max; m *= 10) for (const f of [1, 2, 5]) if (m * f <= max) out.push(m * f);
  return out;
};

export class Metrics {
  readonly registry = new Registry();
  readonly #statsSources: (() => SchedulerStats[])[] = [];
  #numPreemptedActive: () => number = () => 0;
  // cumulative engine counters seen at the last scrape, to turn totals into increments
  #seen = { preemptions: 0, queries: 0, hits: 0 };

  readonly ttft;
  readonly itl;
  readonly e2e;
  readonly queueTime;
  readonly prefillTime;
  readonly decodeTime;
  readonly inferenceTime;
  readonly requestPromptTokens;
  readonly requestGenerationTokens;
  readonly stepBatchSize;
  readonly stepTokens;
  readonly stepTime;
  readonly running;
  readonly waiting;
  readonly preempted;
  readonly kvUsage;
  readonly cacheConfig;
  readonly promptTokens;
  readonly generationTokens;
  readonly requestSuccess;
  readonly preemptions;
  readonly prefixQueries;
  readonly prefixHits;
  readonly errors;
  readonly beamSearches;
  readonly beamHypotheses;
  readonly rerankTime;
  readonly embeddingInputs;
  readonly embeddingTokens;
  readonly embeddingTime;
  #responseStore: () => { count: number; bytes: number } = () => ({ count: 0, bytes: 0 });

  constructor(opts: { maxModelLen?: number; defaultMetrics?: boolean; compat?: 'none' | 'vllm' } = {}) {
    const registers = [this.registry];
    const hist = (name: string, help: string, buckets: number[], labelNames: string[] = []) =>
      new Histogram({ name, help, buckets, labelNames, registers });
    const counter = (name: string, help: string, labelNames: string[] = [], collect?: () => void) =>
      new Counter({ name, help, labelNames, registers, ...(collect ? { collect } : {}) });
    const gauge = (name: string, help: string, collect: (g: Gauge) => void, labelNames: string[] = []) =>
      new Gauge({
        name,
        help,
        labelNames,
        registers,
        collect() {
          collect(this);
        },
      });
    // weft_<name>, and vllm:<name> with the same value when compat is 'vllm'
    const loadGauge = (name: string, help: string, collect: (g: Gauge) => void, labelNames: string[] = []) => {
      if (opts.compat === 'vllm') gauge(`vllm:${name}`, help, collect, labelNames);
      return gauge(`weft_${name}`, help, collect, labelNames);
    };
    const tokens = COUNT_1_2_5(opts.maxModelLen ?? 4096);

    this.ttft = hist('weft_time_to_first_token_seconds', 'Time from arrival to the first output token', LATENCY_S);
    this.itl = hist('weft_inter_token_latency_seconds', 'Time between consecutive output tokens of a request', LATENCY_S);
    this.e2e = hist('weft_e2e_request_latency_seconds', 'Time from arrival to finish', REQUEST_S);
    this.queueTime = hist('weft_request_queue_time_seconds', 'Time from arrival to first scheduled', REQUEST_S);
    this.prefillTime = hist('weft_request_prefill_time_seconds', 'Time from first scheduled to the first token', REQUEST_S);
    this.decodeTime = hist('weft_request_decode_time_seconds', 'Time from the first token to finish', REQUEST_S);
    this.inferenceTime = hist('weft_request_inference_time_seconds', 'Time from first scheduled to finish', REQUEST_S);
    this.requestPromptTokens = hist('weft_request_prompt_tokens', 'Prompt tokens per request', tokens);
    this.requestGenerationTokens = hist('weft_request_generation_tokens', 'Output tokens per request', tokens);
    this.stepBatchSize = hist('weft_step_batch_size', 'Sequences per engine step', COUNT_1_2_5(4096));
    this.stepTokens = hist('weft_iteration_tokens_total', 'Tokens computed per engine step', COUNT_1_2_5(1 << 16));
    this.stepTime = hist('weft_step_time_seconds', 'Wall time of one engine step (schedule, run, postprocess)', STEP_S);
    this.beamSearches = counter('weft_beam_search_requests_total', 'Beam searches finished (/stream_chat_beam, /rerank_scores), by reranker', [
      'reranker',
    ]);
    this.beamHypotheses = hist('weft_beam_search_hypotheses', 'Hypotheses returned per beam search', [1, 2, 4, 8, 16]);
    this.rerankTime = hist('weft_rerank_time_seconds', 'Time to rank the hypotheses of one beam search', LATENCY_S);
    this.embeddingInputs = counter('weft_embedding_inputs_total', 'Inputs embedded (/v1/embeddings)');
    this.embeddingTokens = counter('weft_embedding_prompt_tokens_total', 'Tokens of the inputs embedded');
    this.embeddingTime = hist('weft_embedding_request_seconds', 'Time to answer one embeddings request', REQUEST_S);
    gauge('weft_responses_stored', 'Responses kept for GET /v1/responses/{id} and previous_response_id', (g) => g.set(this.#responseStore().count));
    gauge('weft_responses_store_bytes', 'Bytes (as JSON) of the stored responses, at most --responses-store-bytes', (g) =>
      g.set(this.#responseStore().bytes),
    );

    const sum = (f: (s: SchedulerStats) => number) => this.#stats().reduce((a, s) => a + f(s), 0);
    this.running = loadGauge('num_requests_running', 'Requests in the running batch', (g) => g.set(sum((s) => s.numRunning)));
    this.waiting = loadGauge('num_requests_waiting', 'Requests waiting (queued or preempted)', (g) => g.set(sum((s) => s.numWaiting)));
    this.preempted = gauge('weft_num_requests_preempted', 'Unfinished requests that were preempted at least once', (g) =>
      g.set(this.#numPreemptedActive()),
    );
    // blocks held by running requests over all blocks; evictable prefix-cache blocks count as free
    this.kvUsage = loadGauge('kv_cache_usage_perc', 'Fraction of KV cache blocks in use (0-1) over all instances', (g) => {
      const total = sum((s) => s.numBlocks);
      g.set(total ? sum((s) => s.numUsedBlocks) / total : 0);
    });
    // an info gauge (value 1): the labels carry the KV cache's shape; no series before an engine is attached
    this.cacheConfig = loadGauge(
      'cache_config_info',
      'KV cache configuration: block_size tokens per block, num_gpu_blocks blocks over all instances ' + '(on the CPU backend too)',
      (g) => {
        g.reset();
        const s = this.#stats();
        if (s.length > 0) g.set({ block_size: String(s[0].blockSize), num_gpu_blocks: String(sum((x) => x.numBlocks)) }, 1);
      },
      ['block_size', 'num_gpu_blocks'],
    );
    // vLLM's LoRA state, which a picker's LoRA-affinity scorer reads by default: weft serves no
    // adapters (max_lora 0); the value is the time of the reading, as vLLM's is
    if (opts.compat === 'vllm') {
      gauge(
        'vllm:lora_requests_info',
        'LoRA adapters: none (weft serves no adapters)',
        (g) => {
          g.set({ max_lora: '0', running_lora_adapters: '', waiting_lora_adapters: '' }, Date.now() / 1000);
        },
        ['max_lora', 'running_lora_adapters', 'waiting_lora_adapters'],
      );
    }
    this.promptTokens = counter('weft_prompt_tokens_total', 'Prompt tokens processed (finished requests)');
    this.generationTokens = counter('weft_generation_tokens_total', 'Output tokens generated (finished requests)');
    this.requestSuccess = counter('weft_request_success_total', 'Requests finished, by reason', ['finished_reason']);
    this.preemptions = counter('weft_num_preemptions_total', 'Preemptions by the scheduler', [], () => this.#syncTotals());
    this.prefixQueries = counter('weft_prefix_cache_queries_total', 'Prompt tokens looked up in the prefix cache', [], () => this.#syncTotals());
    this.prefixHits = counter('weft_prefix_cache_hits_total', 'Prompt tokens found in the prefix cache', [], () => this.#syncTotals());
    this.errors = counter('weft_errors_total', 'Error responses, by code', ['code']);
    if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry, prefix: 'weft_' });
  }

  // Where gauges read engine state (one source per engine loop).
  addStatsSource(f: () => SchedulerStats[]): void {
    this.#statsSources.push(f);
  }

  setResponseStoreSource(f: () => { count: number; bytes: number }): void {
    this.#responseStore = f;
  }

  setPreemptedSource(f: () => number): void {
    this.#numPreemptedActive = f;
  }

  #stats(): SchedulerStats[] {
    return this.#statsSources.flatMap((f) => f());
  }

  // Engine totals only grow, except when an instance restarts with a fresh scheduler: then the
  // new total counts from zero and is added whole.
  #syncTotals(): void {
    const s = this.#stats();
    const now = {
      preemptions: s.reduce((a, x) => a + x.numPreemptions, 0),
      queries: s.reduce((a, x) => a + x.numPrefixCacheQueries, 0),
      hits: s.reduce((a, x) => a + x.numPrefixCacheHits, 0),
    };
    const inc = (c: Counter, k: keyof typeof now) => {
      const d = now[k] >= this.#seen[k] ? now[k] - this.#seen[k] : now[k];
      if (d > 0) c.inc(d);
    };
    inc(this.preemptions, 'preemptions');
    inc(this.prefixQueries, 'queries');
    inc(this.prefixHits, 'hits');
    this.#seen = now;
  }

  // EngineLoop onStep.
  readonly onStep = (t: StepTiming): void => {
    this.stepBatchSize.observe(t.numSeqs);
    this.stepTokens.observe(t.numTokens);
    this.stepTime.observe(t.totalUs / 1e6);
  };

  // EngineLoop onFinish: the request's intervals from its engine timestamps.
  readonly onFinish = (t: FinishedTimings, reason: FinishReason): void => {
    const s = (a: number | null, b: number | null) => (a === null || b === null ? null : Math.max(0, b - a) / 1000);
    const obs = (h: Histogram, v: number | null) => {
      if (v !== null) h.observe(v);
    };
    obs(this.ttft, s(t.arrivalTime, t.firstTokenTime));
    obs(this.e2e, s(t.arrivalTime, t.finishedTime));
    obs(this.queueTime, s(t.arrivalTime, t.firstScheduledTime));
    obs(this.prefillTime, s(t.firstScheduledTime, t.firstTokenTime));
    obs(this.decodeTime, s(t.firstTokenTime, t.finishedTime));
    obs(this.inferenceTime, s(t.firstScheduledTime, t.finishedTime));
    this.requestPromptTokens.observe(t.numPromptTokens);
    this.requestGenerationTokens.observe(t.numOutputTokens);
    this.promptTokens.inc(t.numPromptTokens);
    this.generationTokens.inc(t.numOutputTokens);
    this.requestSuccess.inc({ finished_reason: reason });
  };

  observeBeamSearch(reranker: string, numHypotheses: number, rerankSeconds: number): void {
    this.beamSearches.inc({ reranker });
    this.beamHypotheses.observe(numHypotheses);
    this.rerankTime.observe(rerankSeconds);
  }

  observeEmbeddings(numInputs: number, numTokens: number, seconds: number): void {
    this.embeddingInputs.inc(numInputs);
    this.embeddingTokens.inc(numTokens);
    this.embeddingTime.observe(seconds);
  }

  observeInterTokenLatency(seconds: number): void {
    this.itl.observe(seconds);
  }

  countError(code: string): void {
    this.errors.inc({ code });
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }
}
