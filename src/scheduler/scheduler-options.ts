// The scheduler's options: defaults, validation, freezing. config.ts supplies the values.
import { WeftError } from '../errors.js';

export interface SchedulerOptions {
  maxNumBatchedTokens: number; // tokens computed per step, prefill and decode together
  maxNumSeqs: number; // running sequences
  maxNumWaiting: number; // queued sequences (preempted ones included); more → 429
  blockSize: number; // tokens per KV block
  numBlocks: number; // KV blocks of the engine instance
  enablePrefixCaching: boolean;
  maxModelLen: number; // prompt + output tokens
}

export const SCHEDULER_DEFAULTS: Readonly<SchedulerOptions> = Object.freeze({
  maxNumBatchedTokens: 2048,
  maxNumSeqs: 256,
  maxNumWaiting: 1024,
  blockSize: 16,
  numBlocks: 1024,
  enablePrefixCaching: true,
  maxModelLen: 4096,
});

// The scheduler of a side model's loop (reranker, embedding model): the step limits its engine
// instance was sized for (a GPU's workspaces hold maxNumTokens tokens of maxNumSeqs sequences;
// the defaults would overrun them under a smaller --max-num-batched-tokens), and its context.
export function sideLoopOptions(o: { maxNumTokens?: number; maxNumSeqs?: number }, maxModelLen: number): Partial<SchedulerOptions> {
  return { maxModelLen, maxNumBatchedTokens: o.maxNumTokens, maxNumSeqs: o.maxNumSeqs };
}

// Merges options over the defaults (an undefined value keeps the default), validates, freezes.
export function resolveOptions(options: Partial<SchedulerOptions>): Readonly<SchedulerOptions> {
  const o: SchedulerOptions = { ...SCHEDULER_DEFAULTS };
  for (const [key, value] of Object.entries(options)) {
    if (!(key in SCHEDULER_DEFAULTS)) throw new WeftError('WEFT_ERR_CONFIG_INVALID', `unknown scheduler option ${key}`);
    if (value !== undefined) Object.assign(o, { [key]: value });
  }
  const counts = ['maxNumBatchedTokens', 'maxNumSeqs', 'maxNumWaiting', 'blockSize', 'numBlocks', 'maxModelLen'] as const;
  for (const key of counts) {
    if (!Number.isSafeInteger(o[key]) || o[key] < 1) {
      throw new WeftError('WEFT_ERR_CONFIG_INVALID', `scheduler option ${key} must be a positive integer, got ${o[key]}`);
    }
  }
  if (typeof o.enablePrefixCaching !== 'boolean') {
    throw new WeftError('WEFT_ERR_CONFIG_INVALID', `scheduler option enablePrefixCaching must be a boolean, got ${o.enablePrefixCaching}`);
  }
  // otherwise the running sequences late in the queue could wait for a decode token forever
  if (o.maxNumBatchedTokens < o.maxNumSeqs) {
    throw new WeftError('WEFT_ERR_CONFIG_INVALID', `maxNumBatchedTokens (${o.maxNumBatchedTokens}) must be at least maxNumSeqs (${o.maxNumSeqs})`);
  }
  return Object.freeze({ ...o });
}
