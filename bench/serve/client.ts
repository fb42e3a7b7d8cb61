// One streaming completion request, timed as vLLM's async_request_openai_completions: TTFT at the
// first chunk that carries text, ITL between successive text chunks, the output token count from
// the final usage chunk when the server sends one, else the number of text chunks.
import { performance } from 'node:perf_hooks';

import type { BenchRequest, RequestRecord } from './types.js';

export interface ClientTarget {
  baseUrl: string;
  endpoint: string; // /v1/completions or /v1/chat/completions
  model?: string;
  temperature: number;
  ignoreEos: boolean;
  timeoutMs: number;
}

export function requestBody(t: ClientTarget, req: BenchRequest): Record<string, unknown> {
  const isChat = t.endpoint.includes('chat');
  if (isChat && typeof req.prompt !== 'string') throw new Error(`${t.endpoint} takes text prompts: use /v1/completions with the random datasets`);
  return {
    ...(t.model ? { model: t.model } : {}),
    ...(isChat ? { messages: [{ role: 'user', content: req.prompt }], max_completion_tokens: req.maxTokens } : { prompt: req.prompt }),
    max_tokens: req.maxTokens,
    temperature: t.temperature,
    ignore_eos: t.ignoreEos,
    stream: true,
    stream_options: { include_usage: true },
  };
}

interface Chunk {
  choices?: { text?: string; delta?: { content?: string } }[];
  usage?: { prompt_tokens?: number; completion_tokens?: number } | null;
  error?: { message?: string } | string;
}

// Splits a byte stream into SSE `data:` payloads, across chunk boundaries.
export async function* sseData(body: AsyncIterable<Uint8Array>): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let buf = '';
  for await (const bytes of body) {
    buf += decoder.decode(bytes, { stream: true });
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (line.startsWith('data:')) yield line.slice(5).trim();
    }
  }
  const last = buf.trim();
  if (last.startsWith('data:')) yield last.slice(5).trim();
}

export async function sendRequest(t: ClientTarget, req: BenchRequest, runStart: number): Promise<RequestRecord> {
  const rec: RequestRecord = {
    success: false,
    error: '',
    promptLen: req.promptLen,
    outputTokens: 0,
    generatedText: '',
    startMs: 0,
    ttftMs: 0,
    itlMs: [],
    latencyMs: 0,
  };
  const st = performance.now();
  rec.startMs = st - runStart;
  let last = st,
    numChunks = 0,
    usageTokens: number | undefined;
  const texts: string[] = [];
  try {
    const res = await fetch(t.baseUrl + t.endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(requestBody(t, req)),
      signal: AbortSignal.timeout(t.timeoutMs),
    });
    if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}: ${(await res.text()).slice(0, 300)}`);
    for await (const data of sseData(res.body as unknown as AsyncIterable<Uint8Array>)) {
      if (data === '[DONE]') break;
      const c = JSON.parse(data) as Chunk;
      if (c.error) throw new Error(typeof c.error === 'string' ? c.error : (c.error.message ?? JSON.stringify(c.error)));
      const text = c.choices?.[0]?.text ?? c.choices?.[0]?.delta?.content;
      const now = performance.now();
      if (text) {
        if (numChunks === 0) rec.ttftMs = now - st;
        else rec.itlMs.push(now - last);
        last = now;
        numChunks++;
        texts.push(text);
      }
      if (c.usage?.completion_tokens !== undefined) usageTokens = c.usage.completion_tokens;
      if (c.usage?.prompt_tokens !== undefined) rec.promptLen = c.usage.prompt_tokens;
    }
    rec.latencyMs = performance.now() - st;
    rec.generatedText = texts.join('');
    rec.outputTokens = usageTokens ?? numChunks;
    rec.success = numChunks > 0;
    if (!rec.success) rec.error = 'the stream carried no text';
  } catch (e) {
    rec.error = (e as Error).message;
    rec.latencyMs = performance.now() - st;
  }
  return rec;
}
