// Tool-call formats without a model: each format's output read into content and calls, whole and
// streamed in pieces of every size (the same result), the parser chosen from templates, and the
// text written for templates that do not render tools.
import t from 'tap';

import { ChatTemplate, normalizeMessages } from '../../src/chat-template.js';
import { planTools, promptMessages } from '../../src/routes/tools.js';
import { ToolCallStream, callsAsText, detectToolParser, parseToolOutput, type ParsedOutput, type ToolParserName } from '../../src/tool-formats.js';

const BROKEN = 'Broken <tool_call>{"name": "a", "arguments": </tool_call> end';
const CASES: [parser: ToolParserName, text: string, expected: ParsedOutput][] = [
  [
    'hermes',
    'Sure.\n<tool_call>\n{"name": "add", "arguments": {"a": 1, "b": 2}}\n</tool_call>',
    { content: 'Sure.', calls: [{ name: 'add', arguments: '{"a":1,"b":2}' }] },
  ],
  [
    'hermes',
    '<tool_call>{"name": "a", "arguments": {}}</tool_call>\n<tool_call>{"name": "b", "arguments": "{\\"x\\": [1]}"}</tool_call>',
    {
      content: '',
      calls: [
        { name: 'a', arguments: '{}' },
        { name: 'b', arguments: '{"x": [1]}' },
      ],
    },
  ],
  ['hermes', 'No tools needed: 2 < 3 and <tool is not a tag.', { content: 'No tools needed: 2 < 3 and <tool is not a tag.', calls: [] }],
  ['hermes', BROKEN, { content: BROKEN, calls: [] }],
  ['hermes', 'cut off <tool_call>{"name": "a", "arguments": {"q": "}"}}', { content: 'cut off', calls: [{ name: 'a', arguments: '{"q":"}"}' }] }],
  ['llama3_json', '{"name": "add", "parameters": {"a": 1}}', { content: '', calls: [{ name: 'add', arguments: '{"a":1}' }] }],
  [
    'llama3_json',
    '<|python_tag|>{"name": "a", "parameters": {}}; {"name": "b", "parameters": {"s": ";"}}',
    {
      content: '',
      calls: [
        { name: 'a', arguments: '{}' },
        { name: 'b', arguments: '{"s":";"}' },
      ],
    },
  ],
  ['llama3_json', 'The answer is {"name": 1}', { content: 'The answer is {"name": 1}', calls: [] }],
  ['llama3_json', '{"not": "a call"}', { content: '{"not": "a call"}', calls: [] }],
  [
    'mistral',
    '[TOOL_CALLS] [{"name": "add", "arguments": {"a": 1}}, {"name": "sub", "arguments": {"b": 2}}]',
    {
      content: '',
      calls: [
        { name: 'add', arguments: '{"a":1}' },
        { name: 'sub', arguments: '{"b":2}' },
      ],
    },
  ],
  ['mistral', '[{"name": "add", "arguments": {"a": 1}}]', { content: '', calls: [{ name: 'add', arguments: '{"a":1}' }] }],
  ['mistral', 'Hello there', { content: 'Hello there', calls: [] }],
];

t.test('whole outputs', async (t) => {
  for (const [parser, text, expected] of CASES) t.same(parseToolOutput(parser, text), expected, `${parser}: ${JSON.stringify(text).slice(0, 60)}`);
});

t.test('streamed in pieces of any size, the same calls and content', async (t) => {
  for (const [parser, text, expected] of CASES) {
    for (const size of [1, 2, 3, 7, 1000]) {
      const s = new ToolCallStream(parser);
      let content = '';
      const calls = [];
      for (let i = 0; i < text.length; i += size) {
        const out = s.push(text.slice(i, i + size));
        content += out.content;
        calls.push(...out.calls);
      }
      const last = s.end();
      t.same({ content: (content + last.content).trim(), calls: [...calls, ...last.calls] }, expected, `${parser} in pieces of ${size}`);
    }
  }
  const s = new ToolCallStream('hermes');
  t.equal(s.push('Hello <tool').content, 'Hello ', 'a possible tag start is held back');
  t.equal(s.push('box>').content, '<toolbox>', '…and released once it is not one');
});

t.test('the parser follows the template', async (t) => {
  t.equal(detectToolParser(null), 'hermes');
  t.equal(detectToolParser('{% for tool in tools %}<tool_call>{% endfor %}'), 'hermes');
  t.equal(detectToolParser('{{ "[TOOL_CALLS]" }}'), 'mistral');
  t.equal(detectToolParser('{{- "<|python_tag|>" }}'), 'llama3_json');
  t.equal(callsAsText('mistral', [{ name: 'a', arguments: '{"x":1}' }]), '[TOOL_CALLS] [{"name":"a","arguments":{"x":1}}]');
});

// A Qwen-style template that renders tools, tool calls and tool results itself (written for this test).
const TOOL_TEMPLATE = [
  '{%- if tools %}<|system|>Tools:{% for tool in tools %} {{ tool.function.name }}{% endfor %}\n{% endif %}',
  '{%- for m in messages %}<|{{ m.role }}|>{{ m.content }}',
  '{% if m.tool_calls %}{% for c in m.tool_calls %}<tool_call>{{ c.function.name }} {{ c.function.arguments | tojson }}</tool_call>{% endfor %}{% endif %}',
  '\n{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}',
].join('');

const history = normalizeMessages([
  { role: 'user', content: 'Add 1 and 2' },
  { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'add', arguments: '{"a": 1, "b": 2}' } }] },
  { role: 'tool', content: '3', tool_call_id: 'call_1' },
]);
const plan = planTools({ tools: [{ type: 'function', function: { name: 'add', parameters: { type: 'object' } } }] }, TOOL_TEMPLATE);

t.test('a template with tool support renders tools, calls and results', async (t) => {
  const tpl = new ChatTemplate(TOOL_TEMPLATE, { bosToken: '', eosToken: '' });
  t.ok(tpl.supportsTools);
  const p = promptMessages(history, plan, tpl.supportsTools);
  const text = tpl.render(p.messages, { tools: p.tools });
  t.match(text, /^<\|system\|>Tools: add<\|user\|>/, 'the tools variable');
  t.match(text, /<tool_call>add \{"a": 1, "b": 2\}<\/tool_call>/, 'the call, its arguments as an object');
  t.match(text, /<\|tool\|>3<\|assistant\|>$/, 'the tool result, in the tool role');
});

t.test('a template without tool support gets the format written into the messages', async (t) => {
  const tpl = new ChatTemplate(null, { bosToken: '', eosToken: '' });
  t.notOk(tpl.supportsTools);
  const p = promptMessages(history, plan, tpl.supportsTools);
  const text = tpl.render(p.messages, { tools: p.tools });
  t.match(text, /^system: You may call these functions:\n<tools>\n\{"type":"function","function":\{"name":"add"/, 'instructions first');
  t.match(text, /assistant: <tool_call>\n\{"name":"add","arguments":\{"a":1,"b":2\}\}\n<\/tool_call>\n/, 'the past call in the hermes format');
  t.match(text, /user: <tool_response>\n3\n<\/tool_response>\nassistant:$/, 'the result as a user turn');
});

t.test('tool_choice and tools are checked', async (t) => {
  const tools = [{ type: 'function' as const, function: { name: 'f', parameters: { type: 'object' } } }];
  t.throws(() => planTools({ tools, tool_choice: { type: 'function', function: { name: 'g' } } }, null), { code: 'WEFT_ERR_REQ_BAD_TOOL_CHOICE' });
  t.throws(() => planTools({ tool_choice: 'required' }, null), { code: 'WEFT_ERR_REQ_BAD_TOOL_CHOICE' });
  t.throws(() => planTools({ tools: [...tools, ...tools] }, null), { code: 'WEFT_ERR_REQ_BAD_TOOLS' });
  const notSchema = [{ type: 'function' as const, function: { name: 'f', parameters: { type: 'nope' } } }];
  t.throws(() => planTools({ tools: notSchema }, null), { code: 'WEFT_ERR_REQ_BAD_TOOLS' });
  t.equal(planTools({ tools, tool_choice: 'none' }, null).mode, 'none');
  t.equal(planTools({ tools }, null).mode, 'auto', 'tools alone: auto');
  const req = planTools({ tools, tool_choice: 'required', parallel_tool_calls: false }, null);
  t.match(JSON.parse((req.constraint![1] as { schema: string }).schema), { type: 'array', minItems: 1, maxItems: 1 });
});
