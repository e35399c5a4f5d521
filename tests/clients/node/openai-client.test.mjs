// The official `openai` npm client against a running QuantServe: completions (plain and streamed), models, chat.
// QUANTSERVE_URL names the server (for example http://127.0.0.1:5123); .ci/run starts one on the embedded model.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';

const baseURL = `${process.env.QUANTSERVE_URL ?? 'http://127.0.0.1:5000'}/v1`;
const client = new OpenAI({ baseURL, apiKey: process.env.QUANTSERVE_API_KEY ?? 'unused' });

async function modelId() {
  const page = await client.models.list();
  assert.ok(page.data.length > 0, 'the server lists at least one model');
  return page.data[0].id;
}

test('models.list and models.retrieve describe the served model', async () => {
  const id = await modelId();
  const model = await client.models.retrieve(id);
  assert.equal(model.id, id);
  assert.equal(model.object, 'model');
});

test('completions.create greedy returns text, finish_reason and usage', async () => {
  const model = await modelId();
  const r = await client.completions.create({ model, prompt: 'Once upon a time', max_tokens: 16, temperature: 0 });
  assert.equal(r.object, 'text_completion');
  assert.equal(r.choices.length, 1);
  assert.ok(r.choices[0].text.length > 0);
  assert.ok(['length', 'stop'].includes(r.choices[0].finish_reason));
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
});

test('streamed completion text equals the non-streamed text', async () => {
  const model = await modelId();
  const request = { model, prompt: 'Lily and Ben', max_tokens: 24, temperature: 0.8, seed: 7 };
  const whole = await client.completions.create(request);
  let streamed = '';
  let chunks = 0;
  for await (const chunk of await client.completions.create({ ...request, stream: true })) {
    streamed += chunk.choices[0]?.text ?? '';
    chunks++;
  }
  assert.ok(chunks > 1, 'the stream arrives in several chunks');
  assert.equal(streamed, whole.choices[0].text);
});

test('chat.completions.create answers as the assistant, plain and streamed', async () => {
  const model = await modelId();
  const messages = [{ role: 'user', content: 'Tell me a story.' }];
  const r = await client.chat.completions.create({ model, messages, max_tokens: 12, temperature: 0 });
  assert.equal(r.object, 'chat.completion');
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.equal(typeof r.choices[0].message.content, 'string');
  let content = '';
  for await (const chunk of await client.chat.completions.create({ model, messages, max_tokens: 12, temperature: 0, stream: true })) {
    content += chunk.choices[0]?.delta?.content ?? '';
  }
  assert.equal(content, r.choices[0].message.content);
});

test('an unknown model is a 404 in OpenAI error shape', async () => {
  await assert.rejects(
    client.completions.create({ model: 'no-such-model', prompt: 'x', max_tokens: 1 }),
    (e) => e.status === 404 && typeof e.error?.message === 'string');
});
