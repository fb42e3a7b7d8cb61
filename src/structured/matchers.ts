// A grammar host's source of token matchers (grammar-host.ts): one per constrained sequence, made
// from its ConstraintSpec. allowed_token_ids and bad_words need no grammar; the grammar kinds go to the grammar
// engine (xgrammar.ts), opened on the first such sequence so that servers without constraints never
// load it.
import { AllowedTokensMatcher } from './allowed-tokens.js';
import { BadWordsMatcher } from './bad-words.js';
import { Lazy } from './lazy.js';
import type { ConstraintCompiler, ConstraintSpec, TokenMatcher } from './types.js';
import { openConstraintCompiler } from './xgrammar.js';

export type MatcherFactory = (spec: ConstraintSpec) => Promise<TokenMatcher>;

export function matcherFactory(modelPath: string, vocabSize: number): MatcherFactory {
  const compiler = new Lazy<ConstraintCompiler>(() => openConstraintCompiler(modelPath, vocabSize)); // retried after a failure
  return async (spec) => {
    if (spec.type === 'token_ids') return new AllowedTokensMatcher(spec.ids, vocabSize);
    if (spec.type === 'bad_words') return new BadWordsMatcher(spec.sequences, vocabSize);
    return (await compiler.get()).matcher(spec);
  };
}
