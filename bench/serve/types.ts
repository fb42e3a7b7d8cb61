// The records that pass between the load generator's parts: one prompt to send, one request's
// measured outcome, and the options every run shares. Times are milliseconds.

// One request to send: token ids for the random datasets (exact input lengths), text for sharegpt.
export interface BenchRequest {
  prompt: number[] | string;
  promptLen: number;
  maxTokens: number;
}

// One request's outcome, the fields vLLM's RequestFuncOutput keeps.
export interface RequestRecord {
  success: boolean;
  error: string;
  promptLen: number;
  outputTokens: number;
  generatedText: string;
  startMs: number; // when it was sent, relative to the run's start
  ttftMs: number; // send → first content chunk
  itlMs: number[]; // gaps between successive content chunks
  latencyMs: number; // send → end of stream
}

// Service-level objectives for goodput, each optional (vLLM's --goodput ttft:MS tpot:MS e2el:MS).
export interface Slo {
  ttft?: number;
  tpot?: number;
  e2el?: number;
}
