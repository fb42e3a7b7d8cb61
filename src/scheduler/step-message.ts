// Between the scheduler's output and the worker: the step message built from a SchedulerOutput,
// and the pieces of a step's reply a request reads (its logits row, a beam's candidates).
import type { BeamCandidate } from './beam-search.js';
import type { StepMessage, StepReply } from './protocol.js';
import type { ScheduledSeq, SchedulerOutput } from './scheduler.js';

// The logits of scheduled sequence i: the engine returns one row per sampling sequence, in order.
export function logitsRow(logits: Float32Array, out: SchedulerOutput, i: number): Float32Array {
  let row = 0;
  for (let j = 0; j < i; j++) if (out.scheduled[j].doSample) row++;
  const numRows = out.scheduled.filter((s) => s.doSample).length;
  const vocab = logits.length / numRows;
  return logits.slice(row * vocab, (row + 1) * vocab);
}

// Row `row` of a reply's likeliest tokens (`width` a row, -1 padded), at most `max` of them.
export function topOf(ids: Int32Array, logprobs: Float32Array, width: number, row: number, max = width): { id: number; logprob: number }[] {
  const out: { id: number; logprob: number }[] = [];
  for (let j = 0; j < Math.min(width, max) && ids[row * width + j] >= 0; j++)
    out.push({ id: ids[row * width + j], logprob: logprobs[row * width + j] });
  return out;
}

// A beam's candidates for the search: the top log-probs the engine returned for row i.
export function candidatesOf(reply: StepReply, i: number): BeamCandidate[] {
  return topOf(reply.topIds, reply.topLogprobs, reply.topN, i).map((x) => ({ tokenId: x.id, logprob: x.logprob }));
}

export function releasedIds(out: SchedulerOutput): number[] {
  return [...out.finished.map((f) => f.seq.seqId), ...out.preempted.map((s) => s.seqId)];
}

export function buildStepMessage(out: SchedulerOutput, earlierReleases: number[] = []): StepMessage {
  const n = out.scheduled.length;
  const seqIds = new Int32Array(n),
    startPos = new Int32Array(n),
    numNewTokens = new Int32Array(n),
    doSample = new Uint8Array(n);
  const tokenIds = new Int32Array(out.numScheduledTokens);
  const updates: number[] = [];
  let off = 0;
  out.scheduled.forEach((s, i) => {
    seqIds[i] = s.seqId;
    startPos[i] = s.startPos;
    numNewTokens[i] = s.numNewTokens;
    doSample[i] = s.doSample ? 1 : 0;
    tokenIds.set(s.tokenIds, off);
    off += s.numNewTokens;
    for (const [idx, b] of s.blockUpdates) updates.push(s.seqId, idx, b);
  });
  return {
    kind: 'step',
    newSeqs: out.scheduled
      .filter((s) => s.isNew)
      .map((s) => ({
        seqId: s.seqId,
        promptLen: s.seq.numPromptTokens,
        sampling: { ...s.seq.sampling },
        ...(s.startPos > 0 ? { prefixTokens: s.seq.tokenIds.slice(0, s.startPos) } : {}),
        ...(s.seq.constraint ? { constraint: s.seq.constraint } : {}),
        ...(s.seq.logitBias ? { logitBias: s.seq.logitBias } : {}),
      })),
    seqIds,
    startPos,
    numNewTokens,
    doSample,
    tokenIds,
    blockUpdates: Int32Array.from(updates),
    blockCopies: Int32Array.from(out.blockCopies.flat()),
    forks: Int32Array.from(out.forks.flat()),
    release: Int32Array.from([...earlierReleases, ...releasedIds(out)]),
    returnLogits: out.scheduled.some((s) => s.doSample && s.seq.returnLogits),
    ...stepLogitRows(out),
    ...stepScoreTargets(out),
    ...stepHiddenRows(out),
  };
}

// Hidden states (embeddings): the prompt positions [from, to) of scheduled sequence s whose
// final-normed hidden states the step returns ('last': the last prompt position, in the chunk
// that holds it; 'all': every prompt position the chunk holds). Empty: from === to.
export function hiddenSpan(s: ScheduledSeq): [number, number] {
  const h = s.seq.hiddenStates,
    P = s.seq.numPromptTokens;
  if (h === null) return [0, 0];
  const from = Math.max(s.startPos, h === 'last' ? P - 1 : 0),
    to = Math.min(s.startPos + s.numNewTokens, P);
  return to > from ? [from, to] : [0, 0];
}

function stepHiddenRows(out: SchedulerOutput): { hiddenRows?: Int32Array } {
  const rows: number[] = [];
  let row = 0;
  for (const s of out.scheduled) {
    const [from, to] = hiddenSpan(s);
    for (let p = from; p < to; p++) rows.push(row + p - s.startPos);
    row += s.numNewTokens;
  }
  return rows.length > 0 ? { hiddenRows: Int32Array.from(rows) } : {};
}

// Prompt scoring: the token at position p of a scoring sequence is scored against the prompt's
// token p + 1, so the last prompt position (which samples the first output) and outputs are not.
function stepScoreTargets(out: SchedulerOutput): { scoreTargets?: Int32Array; scoreTopN?: number } {
  if (!out.scheduled.some((s) => s.seq.promptLogprobs !== null && s.startPos + 1 < s.seq.numPromptTokens)) return {};
  const targets = new Int32Array(out.numScheduledTokens).fill(-1);
  let topN = 0,
    row = 0;
  for (const s of out.scheduled) {
    const n = s.seq.promptLogprobs;
    if (n !== null)
      for (let j = 0; j < s.numNewTokens; j++) {
        const p = s.startPos + j;
        if (p + 1 < s.seq.numPromptTokens) {
          targets[row + j] = s.seq.tokenIds[p + 1];
          topN = Math.max(topN, n);
        }
      }
    row += s.numNewTokens;
  }
  return { scoreTargets: targets, scoreTopN: topN };
}

// The prompt scores of a scheduled sequence in a step's reply: one entry per scored position.
// row: the sequence's first token row in the step.
export function promptScoresOf(reply: StepReply, s: ScheduledSeq, row: number): PromptScore[] {
  const n = s.seq.promptLogprobs;
  if (n === null || !reply.scoredLogprobs || !reply.scoredRanks || !reply.scoredTopIds || !reply.scoredTopLogprobs) return [];
  const topN = reply.scoredTopIds.length / reply.scoredLogprobs.length;
  const scores: PromptScore[] = [];
  for (let j = 0; j < s.numNewTokens; j++) {
    const t = row + j,
      p = s.startPos + j;
    if (p + 1 >= s.seq.numPromptTokens || Number.isNaN(reply.scoredLogprobs[t])) continue;
    const top = topOf(reply.scoredTopIds, reply.scoredTopLogprobs, topN, t, n);
    scores.push({ position: p + 1, id: s.seq.tokenIds[p + 1], logprob: reply.scoredLogprobs[t], rank: reply.scoredRanks[t], top });
  }
  return scores;
}

// A prompt token's score: its log-prob given the tokens before it, and the likeliest tokens'.
export interface PromptScore {
  position: number; // in the prompt (>= 1)
  id: number;
  logprob: number;
  rank: number; // among the whole vocabulary, 1 = likeliest
  top: { id: number; logprob: number }[];
}

// The LM-head rows a step needs, when every sampled sequence asks for the same few (else all).
function stepLogitRows(out: SchedulerOutput): { logitRows?: Int32Array } {
  const sampled = out.scheduled.filter((s) => s.doSample);
  const first = sampled[0]?.seq.logitRows;
  if (!first) return {};
  const same = (rows: readonly number[] | null) => rows !== null && rows.length === first.length && rows.every((r, j) => r === first[j]);
  return sampled.every((s) => same(s.seq.logitRows)) ? { logitRows: Int32Array.from(first) } : {};
}
