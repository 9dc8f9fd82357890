// Drives the official OpenAI Node SDK against an OpenAI-compatible base URL (the router in front
// of simulators): chat streamed and not, a completion, an embedding. Prints one JSON line with
// what it saw; exits non-zero on any error. Usage: node sdk_router.js <sdk-dir> <baseURL> <model>
'use strict';
const path = require('path');

const [sdkDir, baseURL, model] = process.argv.slice(2);
const OpenAI = require(path.join(sdkDir, 'node_modules', 'openai'));

async function main() {
  const client = new OpenAI({ baseURL, apiKey: 'sk-test', maxRetries: 0, timeout: 20000 });
  const out = {};

  const chat = await client.chat.completions.create({
    model, messages: [{ role: 'user', content: 'hello' }], max_tokens: 8,
  });
  out.chat = { model: chat.model, content: chat.choices[0].message.content,
               finish: chat.choices[0].finish_reason, usage: chat.usage };

  const stream = await client.chat.completions.create({
    model, messages: [{ role: 'user', content: 'stream please' }], max_tokens: 8, stream: true,
    stream_options: { include_usage: true },
  });
  let text = '', chunks = 0, finish = null, usage = null;
  for await (const chunk of stream) {
    chunks++;
    if (chunk.choices.length) {
      text += chunk.choices[0].delta.content || '';
      finish = chunk.choices[0].finish_reason || finish;
    }
    if (chunk.usage) usage = chunk.usage;
  }
  out.stream = { chunks, text, finish, usage };

  const raw = await client.chat.completions.create({
    model, messages: [{ role: 'user', content: 'headers' }], max_tokens: 2,
  }).withResponse();
  out.headers = { upstream: raw.response.headers.get('x-upstream-server'),
                  request_id: raw.response.headers.get('x-request-id') };

  const cmpl = await client.completions.create({ model, prompt: 'Say this', max_tokens: 8 });
  out.completion = { text: cmpl.choices[0].text, finish: cmpl.choices[0].finish_reason };

  const emb = await client.embeddings.create({ model, input: ['one', 'two'] });
  out.embedding = { n: emb.data.length, dim: emb.data[0].embedding.length };

  try {
    await client.chat.completions.create({
      model: 'no-such-model', messages: [{ role: 'user', content: 'x' }],
    });
    out.unknown_model = 'no error';
  } catch (e) {
    out.unknown_model = { status: e.status, code: e.code, type: e.type };
  }
  console.log(JSON.stringify(out));
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : e);
  process.exit(1);
});
