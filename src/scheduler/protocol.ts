// The messages between the engine loop (main thread) and a step worker (one engine instance).
// A sequence's full data (prompt length, sampling parameters) is sent once, when it is first
// scheduled on the instance; after that only what changed: new tokens, new block-table entries.
import type { MessagePort } from 'node:worker_threads';

import type { ErrorData } from '../errors.js';
import type { KvElement, NativeStepOutput } from '../workers/binding.js';
import type { EngineInstanceOptions } from '../workers/engine-instance.js';
import type { LogitBias, SamplingParams } from '../sampling.js';
import type { ConstraintSpec } from '../structured/types.js';
import type { ModelSpec } from '../model/types.js';

// spec: the model's spec as the main thread read it, so that a worker does not parse the file's
// metadata and build its tokenizer again (~0.6 s of a 110M GGUF's start, more with a larger
// vocabulary); without it the worker reads modelPath itself.
export type EngineInitOptions = EngineInstanceOptions & { spec?: ModelSpec };

export interface InitMessage {
  kind: 'init';
  options: EngineInitOptions;
  // The worker's end of the step channel: steps and their replies travel on it, not as Piscina
  // tasks (see workers/pool.ts).
  steps: MessagePort;
}

// A step on the step channel, and its reply (tagged with the step's number).
export interface StepEnvelope {
  id: number;
  msg: StepMessage;
}
export interface StepReplyEnvelope {
  id: number;
  reply: StepReply | ErrorReply;
}

export interface InitReply {
  numKvBlocks: number;
  blockSize: number;
  isa: string;
  kvDtype: KvElement; // what the instance's KV cache holds
  weightBytes: number;
}

export interface NewSeqData {
  seqId: number;
  promptLen: number;
  sampling: SamplingParams;
  prefixTokens?: number[]; // tokens before the first one fed (a prefix-cache hit): penalty history
  constraint?: ConstraintSpec; // structured output (src/structured/types.ts)
  logitBias?: LogitBias; // OpenAI's logit_bias
}

export interface StepMessage {
  kind: 'step';
  newSeqs: NewSeqData[];
  // per scheduled sequence, in batch order
  seqIds: Int32Array;
  startPos: Int32Array;
  numNewTokens: Int32Array;
  doSample: Uint8Array;
  tokenIds: Int32Array; // the new tokens of every sequence, concatenated
  // block-table changes since the sequence was last sent: (seqId, blockIndex, blockId) triples
  blockUpdates: Int32Array;
  blockCopies: Int32Array; // (src, dst) pairs, executed before the forward pass
  forks: Int32Array; // (parent seqId, child seqId) pairs
  release: Int32Array; // finished or preempted seqIds: drop their state
  returnLogits: boolean;
  // the only LM-head rows the step needs (every sampled sequence asked for these: a reranker's)
  logitRows?: Int32Array;
  // prompt scoring: per token row (tokenIds' order) the next prompt token to score, -1 none; and
  // how many likeliest tokens each scored row returns
  scoreTargets?: Int32Array;
  scoreTopN?: number;
  // hidden states (embeddings): the token rows whose final-normed hidden state the reply carries
  hiddenRows?: Int32Array;
}

// Compile a constraint before its sequence is first scheduled: the reply comes when it is ready.
export interface PrepareMessage {
  kind: 'prepare';
  constraint: ConstraintSpec;
}

export interface PrepareReply {
  ok: true;
}

export interface StepReply extends NativeStepOutput {
  ok: true;
  packUs: number; // worker-side unpacking and packing
}

export interface ErrorReply {
  ok: false;
  error: ErrorData;
}

export type WorkerMessage = InitMessage | PrepareMessage;
export type WorkerReply = InitReply | PrepareReply | StepReply | ErrorReply;
