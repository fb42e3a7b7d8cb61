// Structured output, the contract between its two halves. The routes turn a request's
// response_format / guided_* / grammar / tools into one ConstraintSpec (plain data: it travels to
// the engine worker with the sequence's sampling parameters). There, on a grammar host thread
// (grammar-hosts.ts), a ConstraintCompiler compiles the spec before the sequence is scheduled and
// makes it a TokenMatcher; before each sampling step the worker asks the host for its
// allowed next tokens (a bitmask over the vocabulary), and native sampling (CPU and CUDA)
// applies that mask before every sampling rule, greedy included. Sequences without a spec pay
// nothing.
//
// The matcher advances on the tokens that are *fed* to the model, not on the tokens sampled: a
// sampled token is fed (and accepted) in the next step. So recomputation after preemption, prefix
// cache hits and beam forks all replay through the same path: every fed token at a position
// >= the prompt length that the matcher has not consumed yet is accepted, in order.

export type ConstraintSpec =
  | { type: 'json_object' } // any JSON object
  | { type: 'json_schema'; schema: string } // JSON text of a JSON Schema
  | { type: 'regex'; pattern: string }
  | { type: 'choice'; choices: string[] } // exactly one of these strings
  | { type: 'grammar'; grammar: string } // llama.cpp GBNF, root rule `root`
  | { type: 'token_ids'; ids: number[] } // vLLM's allowed_token_ids: only these, at every step
  | { type: 'bad_words'; sequences: number[][] }; // vLLM's bad_words: token sequences never completed

export interface TokenMatcher {
  // Writes the allowed next tokens: bit (t & 31) of word (t >> 5) is set when token t may follow.
  // Every word of `out` (ceil(vocab / 32) of them) is written. When the grammar is complete, only
  // the stop tokens are allowed.
  fillNextTokenMask(out: Uint32Array): void | Promise<void>;
  // Advances by one token; false when the grammar rejects it (then the state is unchanged).
  acceptToken(token: number): boolean;
  // An independent matcher in the same state (beam search forks, n > 1).
  fork(): TokenMatcher | Promise<TokenMatcher>;
  // Frees native (WASM) memory; the matcher is not used afterwards.
  dispose(): void;
}

export interface ConstraintCompiler {
  // A matcher at the start of the constraint. Specs are validated by the routes before any work,
  // so a failure here is an internal error.
  matcher(spec: ConstraintSpec): Promise<TokenMatcher>;
}
