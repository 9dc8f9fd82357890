// Drives a running 'vllm-router sim' with the official OpenAI Node SDK: a chat (streamed and
// not), a text completion and an embedding. Usage: node openai_sdk_sim.mjs <base-url>
// (the SDK is resolved through NODE_PATH). Prints "ok" lines; exits non-zero on any mismatch.
import { createRequire } from "node:module";
import path from "node:path";

const require = createRequire(path.join(process.env.OPENAI_SDK_DIR || ".", "noop.js"));
const OpenAI = require("openai").default ?? require("openai");

function check(cond, msg) {
  if (!cond) {
    console.error("FAIL: " + msg);
    process.exit(1);
  }
}

const client = new OpenAI({ baseURL: process.argv[2], apiKey: "sim", maxRetries: 0, timeout: 20000 });
const model = "sim-model";

const chat = await client.chat.completions.create({
  model, messages: [{ role: "user", content: "hello" }], max_tokens: 5,
});
check(chat.object === "chat.completion", "chat object " + chat.object);
check(chat.choices[0].message.role === "assistant", "role");
check(chat.choices[0].finish_reason === "length", "finish_reason " + chat.choices[0].finish_reason);
check(chat.usage.completion_tokens === 5, "completion_tokens " + chat.usage.completion_tokens);
console.log("ok chat: " + JSON.stringify(chat.choices[0].message.content));

const stream = await client.chat.completions.create({
  model, messages: [{ role: "user", content: "hello" }], max_tokens: 4, stream: true,
  stream_options: { include_usage: true },
});
let text = "", finish = null, usage = null, n = 0;
for await (const chunk of stream) {
  n++;
  if (chunk.usage) usage = chunk.usage;
  for (const c of chunk.choices) {
    if (c.delta?.content) text += c.delta.content;
    if (c.finish_reason) finish = c.finish_reason;
  }
}
check(finish === "length", "stream finish " + finish);
check(usage && usage.completion_tokens === 4, "stream usage " + JSON.stringify(usage));
check(text === chat.choices[0].message.content.slice(0, text.length) && text.length === 16,
      "stream text " + JSON.stringify(text));
console.log("ok chat stream: " + n + " chunks " + JSON.stringify(text));

const cmpl = await client.completions.create({ model, prompt: "Once upon a time", max_tokens: 3 });
check(cmpl.object === "text_completion", "completion object");
check(cmpl.choices[0].text.length === 12, "completion text " + JSON.stringify(cmpl.choices[0].text));
check(cmpl.usage.prompt_tokens === 4, "completion prompt_tokens " + cmpl.usage.prompt_tokens);
console.log("ok completion: " + JSON.stringify(cmpl.choices[0].text));

// The SDK asks for base64 by default and decodes it to floats.
const emb = await client.embeddings.create({ model, input: ["alpha", "beta"] });
check(emb.data.length === 2, "embedding count");
const v = emb.data[0].embedding;
check(Array.isArray(v) && v.length === 32, "embedding length " + v.length);
const norm = Math.sqrt(v.reduce((a, x) => a + x * x, 0));
check(Math.abs(norm - 1) < 1e-3, "embedding norm " + norm);
console.log("ok embedding: dim " + v.length);
