// The generation service over a scripted engine loop and the real tokenizer: UTF-8 split over
// byte tokens never streams broken characters, stop strings spanning tokens never leak, the
// streamed text equals the final text, and an aborted request aborts its sequence.
import t from 'tap';

import { ChatTemplate, normalizeMessages } from '../../src/chat-template.js';
import { GenerationService, stopCut } from '../../src/generation.js';
import { loadModelSpec } from '../../src/model/load.js';
import type { EngineLoop, TokenEvent } from '../../src/scheduler/engine.js';
import { TextTokenizer } from '../../src/tokenizer.js';
import { MODEL_DIR } from '../fixtures/paths.js';

const spec = await loadModelSpec(MODEL_DIR);
const tok = new TextTokenizer(spec);

// Emits the given ids one event at a time (the last with finishReason 'length'), with a log-prob each if asked.
function scriptedLoop(ids: number[], withLogprobs = false) {
  const calls: string[] = [];
  let finished = false;
  const loop = {
    submit() {
      const events = (async function* (): AsyncGenerator<TokenEvent> {
        for (let i = 0; i < ids.length; i++) {
          await new Promise((r) => setImmediate(r));
          if (finished) return yield { tokenId: null, finishReason: 'stop' };
          yield { tokenId: ids[i], ...(withLogprobs ? { logprob: -0.5 } : {}), ...(i === ids.length - 1 ? { finishReason: 'length' as const } : {}) };
        }
      })();
      return {
        requestId: 'r1',
        instance: 0,
        sequence: {
          numPreemptions: 0,
          get isFinished() {
            return finished;
          },
        },
        events,
      };
    },
    submitN(inits: unknown[]) {
      return inits.map(() => loop.submit());
    },
    finish(_id: string, reason: string) {
      calls.push(reason);
      finished = true;
      return true;
    },
    abort(id: string) {
      return loop.finish(id, 'abort');
    },
    stats: () => [],
  };
  return { loop: loop as unknown as EngineLoop, calls };
}

const service = (ids: number[], withLogprobs = false) => {
  const { loop, calls } = scriptedLoop(ids, withLogprobs);
  const svc = new GenerationService(
    loop,
    tok,
    {
      id: 'x',
      aliases: [],
      path: MODEL_DIR,
      isDemo: false,
      backend: 'cpu',
      dtype: 'f32',
      maxModelLen: 512,
      vocabSize: 512,
      eosTokenIds: [2],
      numInstances: 1,
      chatTemplate: null,
    },
    { maxPromptTokens: 0, requestTimeoutMs: 0 },
  );
  return { svc, calls };
};

t.test('multi-byte characters over byte tokens stream whole', async (t) => {
  const text = 'A snowman ☃ and 日本 café';
  const ids = await tok.encode(text, false);
  t.ok(
    ids.some((id) => id >= 3 && id < 259),
    'the text needs byte-fallback tokens',
  );
  const { svc } = service(ids);
  const deltas: string[] = [];
  const r = await svc.run(
    { promptIds: [1] },
    {
      onDelta: (d) => {
        deltas.push(d.text);
      },
    },
  );
  t.notOk(
    deltas.some((d) => d.includes('\uFFFD')),
    'no delta holds a broken character',
  );
  t.equal(deltas.join(''), r.text);
  t.equal(r.text, await tok.decode(ids));
});

// includeStopStr (vLLM's include_stop_str_in_output): the output ends with the stop string instead.
t.test('a stop string spanning tokens never leaks (and ends the output when it is to be included)', async (t) => {
  const ids = await tok.encode('Once upon a time there was a big dog named Max', false);
  for (const [stop, includeStopStr] of ['there was', 'e w', 'Max', 'not in the text'].flatMap((x) => [[x, false] as const, [x, true] as const])) {
    const { svc, calls } = service(ids);
    const deltas: string[] = [];
    const r = await svc.run(
      { promptIds: [1], stop: [stop, 'zzzz'], includeStopStr },
      {
        onDelta: (d) => {
          deltas.push(d.text);
        },
      },
    );
    const full = await tok.decode(ids);
    const at = full.indexOf(stop);
    t.equal(r.text, at < 0 ? full : full.slice(0, at + (includeStopStr ? stop.length : 0)), `${stop} (included: ${includeStopStr}): text`);
    t.equal(deltas.join(''), r.text, `${stop}: streamed == final`);
    t.equal(r.finishReason, at < 0 ? 'length' : 'stop');
    if (at >= 0 && at + stop.length < full.length) t.same(calls, ['stop'], `${stop}: the sequence is finished with reason stop`);
  }
});

t.test('stopCut: the earliest stop string, the longest where two start together', async (t) => {
  t.equal(stopCut('abcdef', ['de', 'bc'], false), 1);
  t.equal(stopCut('abcdef', ['de', 'bc'], true), 3);
  t.equal(stopCut('abcdef', ['b', 'bcd'], true), 4, 'the longer of two matches at one place');
  t.equal(stopCut('abcdef', ['b', 'bcd'], false), 1);
  t.equal(stopCut('abcabc', ['ab'], false, 1), 3, 'from a position on');
  t.equal(stopCut('abc', ['', 'x'], true), -1, 'none (an empty stop string never matches)');
});

t.test('a streamed request keeps no log-probs in its result (each went out with its delta)', async (t) => {
  const ids = await tok.encode('Once upon a time', false);
  const deltas: number[] = [];
  const streamed = await service(ids, true).svc.run(
    { promptIds: [1] },
    {
      onDelta: (d) => {
        deltas.push(d.logprob!.logprob);
      },
    },
  );
  t.same(
    deltas,
    ids.map(() => -0.5),
    'each delta carries its log-prob',
  );
  t.same(streamed.logprobs, [], 'the result keeps none');
  const plain = await service(ids, true).svc.run({ promptIds: [1] });
  t.equal(plain.logprobs.length, ids.length, 'a plain request keeps them all for its answer');
});

t.test('an aborted request aborts its sequence', async (t) => {
  const ids = await tok.encode('Once upon a time there was a big dog named Max', false);
  const { svc, calls } = service(ids);
  const ac = new AbortController();
  const r = await svc.run({ promptIds: [1] }, { signal: ac.signal, onDelta: () => ac.abort() });
  t.same(calls, ['abort']);
  t.ok(r.numOutputTokens < ids.length);
});

t.test('chat templates: the model template through jinja, or the plain fallback', async (t) => {
  const msgs = normalizeMessages(['hi', 'hello', 'how are you?']);
  t.same(
    msgs.map((m) => m.role),
    ['user', 'user', 'user'],
    "a list of strings is the user's turns",
  );
  const chatml =
    '{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}';
  t.equal(
    new ChatTemplate(chatml, { bosToken: '<s>', eosToken: '</s>' }).render(msgs.slice(0, 1)),
    '<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n',
  );
  const llama = '{{ bos_token }}{% for m in messages %}[{{ m.role }}] {{ m.content }} {% endfor %}';
  const tpl = new ChatTemplate(llama, { bosToken: '<s>', eosToken: '</s>' });
  t.equal(tpl.render(msgs.slice(0, 1)), '<s>[user] hi ');
  t.notOk(tpl.addSpecialTokensFor('<s>[user] hi '), 'a template that writes BOS gets no second one');
  const plain = new ChatTemplate(null, { bosToken: '<s>', eosToken: '</s>' });
  t.equal(plain.source, 'plain');
  t.equal(
    plain.render([
      { role: 'system', content: 'be brief' },
      { role: 'user', content: 'hi' },
    ]),
    'system: be brief\nuser: hi\nassistant:',
  );
  t.same(normalizeMessages(['Hello', 'Tell me a story.']), [
    { role: 'user', content: 'Hello' },
    { role: 'user', content: 'Tell me a story.' },
  ]);
  // a template that demands alternation gets consecutive user turns joined
  const strict =
    "{% for m in messages %}{% if (m.role == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('roles must alternate') }}{% endif %}" +
    '[{{ m.role }}] {{ m.content }}\n{% endfor %}';
  const st = new ChatTemplate(strict, { bosToken: '', eosToken: '' });
  t.throws(() => st.render(normalizeMessages(['Hello', 'Tell me a story.'])), { code: 'WEFT_ERR_REQ_CHAT_TEMPLATE' });
  t.equal(st.renderJoiningUserTurns(normalizeMessages(['Hello', 'Tell me a story.'])), '[user] Hello\nTell me a story.\n');
  t.equal(
    new ChatTemplate(chatml, { bosToken: '', eosToken: '' }).renderJoiningUserTurns(normalizeMessages(['Hello', 'Tell me a story.'])),
    '<|im_start|>user\nHello<|im_end|>\n<|im_start|>user\nTell me a story.<|im_end|>\n<|im_start|>assistant\n',
    'templates that allow it keep the turns',
  );
  t.throws(() => new ChatTemplate('{{ raise_exception("no") }}', { bosToken: '', eosToken: '' }).render(msgs), {
    code: 'WEFT_ERR_REQ_CHAT_TEMPLATE',
  });
});

// vLLM's (and transformers') add_generation_prompt, continue_final_message and chat_template_kwargs.
t.test('chat templates: the generation prompt, a final message left open, template variables', async (t) => {
  const chatml =
    '{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}' +
    '{% if add_generation_prompt %}<|im_start|>assistant\n' +
    '{% if enable_thinking is defined and enable_thinking is false %}<think></think>{% endif %}{% endif %}';
  const tpl = new ChatTemplate(chatml, { bosToken: '', eosToken: '' });
  const turns = normalizeMessages([
    { role: 'user', content: 'Tell me a story.' },
    { role: 'assistant', content: 'Once upon a time ' },
  ]);
  t.equal(tpl.render(turns.slice(0, 1), { addGenerationPrompt: false }), '<|im_start|>user\nTell me a story.<|im_end|>\n');
  t.equal(
    tpl.render(turns, { addGenerationPrompt: false, continueFinalMessage: true }),
    '<|im_start|>user\nTell me a story.<|im_end|>\n<|im_start|>assistant\nOnce upon a time ',
    'the last message open: its trailing space kept, its end-of-turn dropped',
  );
  const trims = new ChatTemplate('{% for m in messages %}[{{ m.role }}] {{ m.content | trim }}</s>{% endfor %}', { bosToken: '', eosToken: '' });
  t.equal(
    trims.render(turns, { addGenerationPrompt: false, continueFinalMessage: true }),
    '[user] Tell me a story.</s>[assistant] Once upon a time',
    'a template that trims it',
  );
  t.equal(
    new ChatTemplate(null, { bosToken: '', eosToken: '' }).render(turns, { addGenerationPrompt: false, continueFinalMessage: true }),
    'user: Tell me a story.\nassistant: Once upon a time ',
    'the plain fallback too',
  );
  t.throws(() => tpl.render(turns, { continueFinalMessage: true }), { code: 'WEFT_ERR_REQ_INVALID', message: /add_generation_prompt/ });
  t.throws(
    () => tpl.render([...turns.slice(0, 1), { role: 'assistant', content: ' ' }], { addGenerationPrompt: false, continueFinalMessage: true }),
    {
      code: 'WEFT_ERR_REQ_INVALID',
    },
  );
  const upper = new ChatTemplate('{% for m in messages %}{{ m.content | upper }}{% endfor %}', { bosToken: '', eosToken: '' });
  t.throws(() => upper.render(turns, { addGenerationPrompt: false, continueFinalMessage: true }), {
    code: 'WEFT_ERR_REQ_CHAT_TEMPLATE',
    message: /cannot be left open/,
  });
  t.match(tpl.render(turns.slice(0, 1), { kwargs: { enable_thinking: false } }), /<think><\/think>$/, 'a template variable from the request');
  t.notMatch(tpl.render(turns.slice(0, 1)), /<think>/);
  t.equal(
    tpl.render(turns.slice(0, 1), { kwargs: { messages: [], add_generation_prompt: false } }),
    tpl.render(turns.slice(0, 1)),
    "the request's variables cannot replace the messages or the generation prompt",
  );
});
