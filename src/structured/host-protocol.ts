// The messages between a step worker and one of its grammar hosts (grammar-host.ts): compile a
// constraint ahead of its sequence, and each step's matcher work for the sequences the host
// serves, in one message and one reply.
import type { ErrorData } from '../errors.js';
import type { ConstraintSpec } from './types.js';

export interface HostInit {
  modelPath: string;
  vocabSize: number; // the model's logits width
}

export interface CompileRequest {
  kind: 'compile';
  id: number;
  spec: ConstraintSpec;
}

// Applied in this order: forks (a parent may be released in the step that forks it), releases,
// new matchers (each replays the output tokens its sequence already has), accepted tokens, masks.
export interface StepRequest {
  kind: 'step';
  id: number;
  forks: number[]; // (parent seqId, child seqId) pairs
  release: number[];
  creates: { seqId: number; spec: ConstraintSpec; tokens: number[] }[];
  accepts: { seqId: number; tokens: number[] }[];
  maskSeqIds: number[];
  maskWords: number; // ceil(vocab / 32)
}

export type HostRequest = CompileRequest | StepRequest;

export type HostReply =
  | { id: number; ok: true; masks: Uint32Array | null } // step: maskSeqIds.length rows of maskWords, in order
  | { id: number; ok: false; error: ErrorData };
