// One streaming completion request, timed as vLLM's async_request_openai_completions: TTFT at the
// first chunk that carries text, ITL between successive text chunks, the output token count from
// the final usage chunk when the server sends one, else the number of text chunks.
import http from 'node:http';
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

// Splits a byte stream into SSE `data:` payloads, across chunk boundaries. Fed from the socket's
// 'data' events, so a streamed token costs the client one callback, not an async-iterator and
// web-stream promise chain: the client shares the machine with the server it measures.
// The response is read as UTF-8 text (Node's decoder keeps a character split across reads whole).
export class SseLines {
  #buf = '';

  push(text: string, onData: (data: string) => void): void {
    this.#buf += text;
    let nl: number;
    while ((nl = this.#buf.indexOf('\n')) >= 0) {
      const line = this.#buf.slice(0, nl).trim();
      this.#buf = this.#buf.slice(nl + 1);
      if (line.startsWith('data:')) onData(line.slice(5).trim());
    }
  }

  end(onData: (data: string) => void): void {
    const last = this.#buf.trim();
    this.#buf = '';
    if (last.startsWith('data:')) onData(last.slice(5).trim());
  }
}

// One keep-alive agent for the run, as an HTTP client library would use.
const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity });

// A kept-alive socket that the server closed after its last response (llama-server does after
// each stream) fails the next request sent on it with ECONNRESET before any response byte, the
// request unseen by the server. That one request is sent again on a new connection, as undici
// and browsers do; `onRetry` lets the caller restart its clock. Before this, about half of the
// requests to llama-server failed ("socket hang up") at 1 and 16 streams.
function post(url: string, body: string, timeoutMs: number, onData: (data: string) => boolean, onRetry: () => void): Promise<void> {
  return postOnce(url, body, timeoutMs, onData, agent).catch((e: Error & { staleSocket?: boolean }) => {
    if (!e.staleSocket) throw e;
    onRetry();
    return postOnce(url, body, timeoutMs, onData, false);
  });
}

function postOnce(url: string, body: string, timeoutMs: number, onData: (data: string) => boolean, via: http.Agent | false): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, {
      method: 'POST',
      agent: via,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      signal: AbortSignal.timeout(timeoutMs),
    });
    let answered = false;
    req.on('error', (e: Error & { code?: string }) => {
      if (e.name === 'AbortError') return reject(new Error(`timed out after ${timeoutMs} ms`));
      reject(Object.assign(e, { staleSocket: req.reusedSocket && !answered && e.code === 'ECONNRESET' }));
    });
    req.on('response', (res) => {
      answered = true;
      if (res.statusCode !== 200) {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (s: string) => (text += s));
        res.on('end', () => reject(new Error(`HTTP ${res.statusCode}: ${text.slice(0, 300)}`)));
        return;
      }
      const lines = new SseLines();
      let stopped = false;
      const feed = (data: string) => {
        if (stopped) return;
        try {
          stopped = !onData(data);
        } catch (e) {
          stopped = true;
          res.destroy();
          reject(e);
        }
      };
      res.setEncoding('utf8');
      res.on('data', (text: string) => lines.push(text, feed));
      res.on('end', () => {
        lines.end(feed);
        resolve();
      });
      res.on('error', reject);
    });
    req.end(body);
  });
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
  let st = performance.now();
  rec.startMs = st - runStart;
  let last = st,
    numChunks = 0,
    usageTokens: number | undefined;
  const texts: string[] = [];
  // One SSE payload; false once [DONE] has come.
  const onData = (data: string): boolean => {
    if (data === '[DONE]') return false;
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
    return true;
  };
  try {
    await post(t.baseUrl + t.endpoint, JSON.stringify(requestBody(t, req)), t.timeoutMs, onData, () => {
      st = last = performance.now();
      rec.startMs = st - runStart;
    });
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
