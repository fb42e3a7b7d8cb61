// The engine worker's source of token matchers: one per constrained sequence, made from its
// ConstraintSpec. allowed_token_ids needs no grammar; the grammar kinds go to the grammar engine
// (xgrammar.ts), opened on the first such sequence so that servers without constraints never load it.
import { AllowedTokensMatcher } from './allowed-tokens.js';
import type { ConstraintCompiler, ConstraintSpec, TokenMatcher } from './types.js';
import { openConstraintCompiler } from './xgrammar.js';

export type MatcherFactory = (spec: ConstraintSpec) => Promise<TokenMatcher>;

export function matcherFactory(modelPath: string, vocabSize: number): MatcherFactory {
  let compiler: Promise<ConstraintCompiler> | null = null;
  return async (spec) => {
    if (spec.type === 'token_ids') return new AllowedTokensMatcher(spec.ids, vocabSize);
    compiler ??= openConstraintCompiler(modelPath, vocabSize);
    let c: ConstraintCompiler;
    try {
      c = await compiler;
    } catch (e) {
      compiler = null;   // the next constrained sequence tries again
      throw e;
    }
    return c.matcher(spec);
  };
}
