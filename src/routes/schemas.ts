// Every request schema, and the only request validation. Unknown fields are rejected
// (additionalProperties: false, with Ajv's removeAdditional off); every sampling value has a range.
// The same schemas generate the OpenAPI document at /docs.
import { structuredFields } from './structured.js';
import { functionProperties, toolFields } from './tools.js';

const int = (minimum: number, maximum: number, description?: string) => ({
  type: 'integer',
  minimum,
  maximum,
  ...(description ? { description } : {}),
});
const num = (minimum: number, maximum: number, description?: string) => ({
  type: 'number',
  minimum,
  maximum,
  ...(description ? { description } : {}),
});
const nullable = <T extends { type: string }>(s: T) => ({ ...s, type: [s.type, 'null'] });

export const MAX_TOKEN_ID = 2 ** 31 - 1;
const tokenIds = (maxItems: number) => ({ type: 'array', items: int(0, MAX_TOKEN_ID), maxItems });
const stop = {
  description: 'stop strings: generation ends before the first match, which is not returned',
  anyOf: [
    { type: 'string', minLength: 1, maxLength: 256 },
    { type: 'array', items: { type: 'string', minLength: 1, maxLength: 256 }, maxItems: 16 },
  ],
};

// Sampling fields shared by every generating route (vLLM names).
const sampling = {
  temperature: nullable(num(0, 100, '0 = greedy')),
  top_p: nullable({ type: 'number', exclusiveMinimum: 0, maximum: 1 }),
  top_k: nullable(int(-1, 1_000_000, '0 or -1 = off')),
  min_p: nullable(num(0, 1)),
  repetition_penalty: nullable({ type: 'number', minimum: 0.001, maximum: 10 }), // 1e-300 would become 0 in float32
  presence_penalty: nullable(num(-2, 2)),
  frequency_penalty: nullable(num(-2, 2)),
  seed: nullable(int(0, Number.MAX_SAFE_INTEGER)),
  max_tokens: nullable(int(1, 1 << 22)),
  min_tokens: int(0, 1 << 22),
  ignore_eos: { type: 'boolean' },
  stop,
  include_stop_str_in_output: { type: 'boolean', description: "vLLM's: the output ends with the stop string it met (default: cut before it)" },
  skip_special_tokens: { type: 'boolean', description: "vLLM's: false keeps special tokens' text (EOS, chat markers) in the output (default true)" },
  stop_token_ids: tokenIds(64),
  allowed_token_ids: { ...tokenIds(1 << 20), minItems: 1, description: "vLLM's: only these tokens may be generated" },
  logit_bias: nullable({
    type: 'object',
    maxProperties: 1024,
    propertyNames: { pattern: '^[0-9]{1,10}$' },
    additionalProperties: num(-100, 100),
    description: "OpenAI's: token id (a string) → a bias added to its logit before sampling (-100 bans it, 100 all but forces it)",
  }),
} as const;

// example: what Swagger UI's "Try it out" sends (it would otherwise send the schema's maxima);
// test/routes/docs.test.ts posts each one and expects a 2xx.
const body = (properties: Record<string, unknown>, required: string[], description: string, example: Record<string, unknown>) => ({
  description,
  type: 'object',
  additionalProperties: false,
  required,
  properties,
  examples: [example],
});

const messageObject = {
  type: 'object',
  additionalProperties: false,
  required: ['role'],
  properties: {
    role: { type: 'string', enum: ['system', 'developer', 'user', 'assistant', 'tool'], description: "developer: OpenAI's newer name for system" },
    content: {
      anyOf: [
        { type: 'null' },
        { type: 'string', maxLength: 1 << 20 },
        {
          type: 'array',
          maxItems: 64,
          items: {
            type: 'object',
            additionalProperties: false,
            required: ['type', 'text'],
            properties: { type: { type: 'string', enum: ['text'] }, text: { type: 'string' } },
          },
        },
      ],
    },
    name: { type: 'string', maxLength: 256 },
    tool_calls: {
      type: 'array',
      maxItems: 128,
      description: "an assistant turn's tool calls (OpenAI shape)",
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['function'],
        properties: {
          id: { type: 'string', maxLength: 256 },
          type: { type: 'string', enum: ['function'] },
          function: {
            type: 'object',
            additionalProperties: false,
            required: ['name', 'arguments'],
            properties: { name: { type: 'string', maxLength: 256 }, arguments: { type: 'string', maxLength: 1 << 20 } },
          },
        },
      },
    },
    tool_call_id: { type: 'string', maxLength: 256, description: 'a tool turn: the call it answers' },
  },
};
const messages = { type: 'array', minItems: 1, maxItems: 1024, items: messageObject };
const seedMessages = {
  description: "OpenAI {role, content} objects, or strings: the user's turns, oldest first",
  type: 'array',
  minItems: 1,
  maxItems: 1024,
  items: { anyOf: [{ type: 'string', maxLength: 1 << 20 }, messageObject] },
};

const prompt = { type: 'string', maxLength: 1 << 22, description: '"" = the BOS token alone' };
const native = { ...sampling, ...structuredFields, logprobs: int(0, 20, 'top log-probabilities per token (0 = the chosen token only)') };

export const generateBody = body({ prompt, ...native }, ['prompt'], 'One completion of a prompt', {
  prompt: 'Once upon a time',
  max_tokens: 32,
  temperature: 0.8,
  seed: 42,
});
export const streamBody = generateBody;
export const generateBatchBody = body(
  { prompts: { type: 'array', minItems: 1, maxItems: 64, items: prompt }, ...native },
  ['prompts'],
  'Several prompts, scheduled together',
  { prompts: ['Once upon a time', 'The little dog'], max_tokens: 16 },
);
export const chatBody = body(
  { messages: seedMessages, stream: { type: 'boolean', default: true }, ...native },
  ['messages'],
  'Multi-turn chat through the model chat template',
  { messages: ['Hello', 'Tell me a story.'] },
);
// Beam search (HF generate(num_beams=…) semantics); greedy over beams, so no sampling fields.
export const beamChatBody = body(
  {
    messages: seedMessages,
    beam_width: { ...int(1, 16, 'beams kept per step (1 = greedy)'), default: 4 },
    max_tokens: nullable(int(1, 1 << 22)),
    min_tokens: int(0, 1 << 22),
    length_penalty: { ...num(-10, 10, 'hypothesis score = sum of log-probs / generated_len ** length_penalty'), default: 1 },
    early_stopping: {
      anyOf: [{ type: 'boolean' }, { type: 'string', enum: ['never'] }],
      default: false,
      description: 'HF\'s: true, false or "never"',
    },
    num_return_sequences: int(1, 16),
    use_rerank: {
      type: 'boolean',
      default: false,
      description: 'rerank the returned hypotheses (without a reranker model: by beam score, "logprob")',
    },
    stream_beams: {
      type: 'boolean',
      default: false,
      description: '/stream_chat_beam: also `event: beams` frames with the live beams and kept hypotheses after each step',
    },
    ignore_eos: { type: 'boolean' },
    stop: sampling.stop,
    stop_token_ids: tokenIds(64),
    repetition_penalty: sampling.repetition_penalty,
  },
  ['messages'],
  'Beam search over a chat, the chosen hypothesis streamed as its tokens become final',
  { messages: ['Hello', 'Tell me a story.'], beam_width: 4, max_tokens: 32, use_rerank: true },
);

// Cohere / Jina / vLLM rerank: documents as strings or {text} objects.
export const rerankBody = body(
  {
    model: { type: 'string', maxLength: 512 },
    query: { type: 'string', minLength: 1, maxLength: 1 << 20 },
    documents: {
      type: 'array',
      minItems: 1,
      maxItems: 1000,
      items: {
        anyOf: [
          { type: 'string', maxLength: 1 << 20 },
          { type: 'object', additionalProperties: true, required: ['text'], properties: { text: { type: 'string', maxLength: 1 << 20 } } },
        ],
      },
    },
    top_n: int(1, 1000),
    return_documents: { type: 'boolean' },
    instruction: { type: 'string', maxLength: 4096, description: 'the <Instruct> of the reranker prompt' },
    max_chunks_per_doc: int(1, 1000, "Cohere's; weft scores each document whole, as one chunk, so any limit holds"),
  },
  ['query', 'documents'],
  'Score documents against a query with the reranker model (Cohere, Jina and vLLM shapes)',
  { query: 'What do cats eat?', documents: ['Cats eat fish and meat.', 'Paris is the capital of France.'], top_n: 1 },
);

// OpenAI's embeddings (vLLM's extensions too): texts or token ids, one or a list.
const MAX_EMBEDDING_INPUTS = 2048; // OpenAI's limit per request
export const embeddingsBody = body(
  {
    model: { type: 'string', maxLength: 512 },
    input: {
      description: 'a text, a list of texts, a list of token ids, or a list of such lists',
      anyOf: [
        { type: 'string', minLength: 1, maxLength: 1 << 22 },
        { type: 'array', minItems: 1, maxItems: MAX_EMBEDDING_INPUTS, items: { type: 'string', minLength: 1, maxLength: 1 << 22 } },
        { ...tokenIds(1 << 22), minItems: 1 },
        { type: 'array', minItems: 1, maxItems: MAX_EMBEDDING_INPUTS, items: { ...tokenIds(1 << 22), minItems: 1 } },
      ],
    },
    encoding_format: { type: 'string', enum: ['float', 'base64'], description: 'base64: little-endian float32 values' },
    dimensions: int(1, 1 << 20, 'the first this many values, then normalized again (meaningful for Matryoshka-trained models)'),
    user: { type: 'string', maxLength: 512 },
    add_special_tokens: { type: 'boolean', description: "vLLM's: the tokenizer's special tokens around each text (default true)" },
    normalize: { type: 'boolean', description: "vLLM's: unit length (default: as the model's files say, else true)" },
    truncate_prompt_tokens: nullable(
      int(-1, 1 << 22, "vLLM's: an input longer than this many tokens keeps only its last ones; -1 = the most the model takes"),
    ),
  },
  ['input'],
  'Embed texts or token ids with the embedding model (OpenAI and vLLM shapes)',
  { input: ['The cat sat on the mat.', 'A dog ran in the park.'] },
);

// vLLM's fields that shape a rendered chat (OpenAI chat, and /tokenize with messages)
const chatRenderFields = {
  add_generation_prompt: {
    type: 'boolean',
    description: "the assistant turn's header at the end of the prompt (default: true, false with continue_final_message)",
  },
  continue_final_message: { type: 'boolean', description: 'the last message is left open (no end-of-turn), so the model continues it' },
  chat_template_kwargs: nullable({
    type: 'object',
    maxProperties: 64,
    description: 'further variables for the chat template, e.g. {"enable_thinking": false} for Qwen3\'s',
  }),
};

export const tokenizeBody = {
  ...body(
    {
      text: { type: 'string', maxLength: 1 << 22 },
      messages: seedMessages,
      add_special_tokens: { type: 'boolean', default: true },
      ...chatRenderFields,
    },
    [],
    'Text or chat messages → token ids and token strings',
    { text: 'Once upon a time' },
  ),
  oneOf: [{ required: ['text'] }, { required: ['messages'] }],
};
export const detokenizeBody = body({ ids: tokenIds(1 << 20), skip_special_tokens: { type: 'boolean', default: true } }, ['ids'], 'Token ids → text', {
  ids: [1, 403, 407, 261],
});

const openaiCommon = {
  model: { type: 'string', maxLength: 512 },
  n: int(1, 16),
  stream: nullable({ type: 'boolean' }),
  stream_options: nullable({
    type: 'object',
    additionalProperties: false,
    properties: {
      include_usage: { type: 'boolean', description: "a last chunk with the whole request's usage" },
      continuous_usage_stats: { type: 'boolean', description: "vLLM's: with include_usage, every chunk carries its choice's usage so far" },
    },
  }),
  user: { type: 'string', maxLength: 256 },
  ...sampling,
  ...structuredFields,
  stop: { anyOf: [...stop.anyOf, { type: 'null' }] },
  truncate_prompt_tokens: nullable(int(1, 1 << 22, "vLLM's: a prompt longer than this many tokens keeps only its last ones")),
  return_tokens_as_token_ids: {
    type: 'boolean',
    description: 'vLLM\'s: log-prob entries (and prompt_logprobs\' decoded_token) name tokens "token_id:N" instead of by their text',
  },
  // vLLM's beam search extension: n is the width, every beam a choice
  use_beam_search: { type: 'boolean', description: 'beam search of width n (HF semantics); the choices are the n hypotheses, best first' },
  length_penalty: num(-10, 10),
  early_stopping: { anyOf: [{ type: 'boolean' }, { type: 'string', enum: ['never'] }] },
};

export const completionsBody = body(
  {
    ...openaiCommon,
    prompt: {
      anyOf: [
        prompt,
        { type: 'array', minItems: 1, maxItems: 64, items: prompt },
        { type: 'array', minItems: 1, items: int(0, MAX_TOKEN_ID), maxItems: 1 << 20 },
      ],
    },
    logprobs: nullable(int(0, 20)),
    max_tokens: nullable(int(0, 1 << 22, '0 only with echo: the prompt alone (scored, with logprobs), nothing generated')),
    prompt_logprobs: nullable(
      int(0, 20, "vLLM's: each choice's prompt_logprobs give every prompt token's log-prob and rank, and this many likeliest tokens'; not streamed"),
    ),
    echo: {
      type: 'boolean',
      description:
        'the prompt is returned before the completion; with logprobs, the prompt tokens come scored too (the first with null; CPU backend)',
    },
  },
  ['prompt'],
  'OpenAI-compatible text completion',
  { prompt: 'Once upon a time', max_tokens: 16, temperature: 0.7 },
);

export const chatCompletionsBody = body(
  {
    ...toolFields,
    ...openaiCommon,
    ...chatRenderFields,
    echo: { type: 'boolean', description: "vLLM's: where the last message is the assistant's, each choice's content starts with it" },
    messages,
    max_completion_tokens: nullable(int(1, 1 << 22)),
    logprobs: nullable({ type: 'boolean' }),
    top_logprobs: nullable(int(0, 20)),
    prompt_logprobs: nullable(
      int(0, 20, "vLLM's: the response's prompt_logprobs give every prompt token's log-prob and rank, and this many likeliest tokens'; not streamed"),
    ),
  },
  ['messages'],
  'OpenAI-compatible chat completion',
  { messages: [{ role: 'user', content: 'Tell me a story.' }], max_tokens: 32 },
);

export const ajvOptions = { removeAdditional: false, coerceTypes: false, useDefaults: true, allErrors: false } as const;

// OpenAI's Responses API. Input items are read (and refused with a message naming the item) by
// routes/response-items.ts: an anyOf over their shapes would answer a bad item with an unclear error.
const INCLUDABLE = [
  'message.output_text.logprobs',
  'code_interpreter_call.outputs',
  'computer_call_output.output.image_url',
  'file_search_call.results',
  'message.input_image.image_url',
  'reasoning.encrypted_content',
  'web_search_call.action.sources',
];
export const responsesBody = body(
  {
    model: { type: 'string', maxLength: 512 },
    input: {
      description: 'a user message, or a list of items: messages {role, content}, function_call, function_call_output, reasoning',
      anyOf: [
        { type: 'string', maxLength: 1 << 22 },
        { type: 'array', minItems: 1, maxItems: 4096, items: { type: 'object' } },
      ],
    },
    instructions: nullable({ type: 'string', maxLength: 1 << 20, description: 'a system message first; not carried over by previous_response_id' }),
    previous_response_id: nullable({ type: 'string', maxLength: 256, description: 'continue a stored response: its conversation, then this input' }),
    max_output_tokens: nullable(int(1, 1 << 22)),
    top_logprobs: nullable(int(0, 20, 'alternatives per output token (with include message.output_text.logprobs, or alone when above 0)')),
    include: nullable({ type: 'array', maxItems: 16, items: { type: 'string', enum: INCLUDABLE } }),
    stream: nullable({ type: 'boolean' }),
    store: nullable({ type: 'boolean', description: 'keep the response for GET and previous_response_id (default true; in memory)' }),
    background: nullable({ type: 'boolean', description: 'answer at once (status queued); poll GET /v1/responses/{id}; needs store' }),
    tools: {
      type: 'array',
      maxItems: 128,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['type', 'name'],
        properties: { type: { type: 'string', enum: ['function'] }, ...functionProperties },
      },
    },
    tool_choice: {
      anyOf: [
        { type: 'string', enum: ['none', 'auto', 'required'] },
        {
          type: 'object',
          additionalProperties: false,
          required: ['type', 'name'],
          properties: { type: { type: 'string', enum: ['function'] }, name: { type: 'string', maxLength: 64 } },
        },
      ],
    },
    parallel_tool_calls: nullable({ type: 'boolean' }),
    max_tool_calls: nullable(int(1, 128)),
    text: nullable({
      type: 'object',
      additionalProperties: false,
      properties: {
        format: {
          type: 'object',
          additionalProperties: false,
          required: ['type'],
          properties: {
            type: { type: 'string', enum: ['text', 'json_object', 'json_schema'] },
            name: { type: 'string', maxLength: 256 },
            description: { type: 'string' },
            schema: { anyOf: [{ type: 'object' }, { type: 'boolean' }] },
            strict: nullable({ type: 'boolean' }),
          },
        },
        verbosity: nullable({ type: 'string', enum: ['low', 'medium', 'high'] }),
      },
    }),
    truncation: nullable({ type: 'string', enum: ['auto', 'disabled'], description: 'auto: drop the oldest turns until the prompt fits' }),
    metadata: nullable({ type: 'object', maxProperties: 16, additionalProperties: { type: 'string', maxLength: 512 } }),
    user: { type: 'string', maxLength: 256 },
    safety_identifier: { type: 'string', maxLength: 256 },
    prompt_cache_key: { type: 'string', maxLength: 256 },
    service_tier: nullable({ type: 'string', enum: ['auto', 'default', 'flex', 'scale', 'priority'] }),
    reasoning: nullable({
      type: 'object',
      description: 'accepted and echoed; the model decides (for Qwen3, chat_template_kwargs enable_thinking)',
      properties: { effort: nullable({ type: 'string' }), summary: nullable({ type: 'string' }), generate_summary: nullable({ type: 'string' }) },
    }),
    // vLLM's sampling extras
    temperature: sampling.temperature,
    top_p: sampling.top_p,
    top_k: sampling.top_k,
    min_p: sampling.min_p,
    repetition_penalty: sampling.repetition_penalty,
    presence_penalty: sampling.presence_penalty,
    frequency_penalty: sampling.frequency_penalty,
    seed: sampling.seed,
    stop: { anyOf: [...stop.anyOf, { type: 'null' }] },
    ignore_eos: sampling.ignore_eos,
    chat_template_kwargs: chatRenderFields.chat_template_kwargs,
  },
  ['input'],
  "OpenAI's Responses API: a turn of a conversation, stored for previous_response_id unless store is false",
  { input: 'Tell me a story.', max_output_tokens: 32 },
);
export const responseIdParams = {
  type: 'object',
  required: ['id'],
  properties: { id: { type: 'string', maxLength: 256 } },
};
// Query strings arrive as text (the validator coerces nothing): numbers and booleans as patterns.
export const getResponseQuery = {
  type: 'object',
  additionalProperties: false,
  properties: {
    stream: { type: 'string', enum: ['true', 'false'], description: 'resuming a stream is not supported: false only' },
    include: { anyOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' } }] },
  },
};
export const inputItemsQuery = {
  type: 'object',
  additionalProperties: false,
  properties: {
    limit: { type: 'string', pattern: '^(100|[1-9][0-9]?)$', description: '1 to 100 (default 20)' },
    order: { type: 'string', enum: ['asc', 'desc'], description: 'default desc: the last item first' },
    after: { type: 'string', maxLength: 256, description: 'an item id: the page starts after it' },
    include: { anyOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' } }] },
  },
};
