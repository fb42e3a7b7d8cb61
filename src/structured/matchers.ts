// The engine worker's source of token matchers: one per constrained sequence, made from its
// ConstraintSpec. allowed_token_ids needs no grammar; the grammar kinds go to the grammar engine,
// opened on the first such sequence so that servers without constraints never load it.
import { WeftError } from '../errors.js';
import { AllowedTokensMatcher } from './allowed-tokens.js';
import type { ConstraintSpec, TokenMatcher } from './types.js';

export type MatcherFactory = (spec: ConstraintSpec) => Promise<TokenMatcher>;

export function matcherFactory(modelPath: string, vocabSize: number): MatcherFactory {
  return async (spec) => {
    if (spec.type === 'token_ids') return new AllowedTokensMatcher(spec.ids, vocabSize);
    throw new WeftError('WEFT_ERR_ENGINE_INTERNAL', `constraint ${spec.type} needs the grammar engine, which this build lacks (${modelPath})`);
  };
}
