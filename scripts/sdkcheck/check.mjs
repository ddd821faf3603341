// check.mjs: the official OpenAI Node SDK against a running gateway.
//
//   GATEWAY_URL=http://127.0.0.1:4000 GATEWAY_KEY=sk-... \
//     node check.mjs [--tools m1,m2] [--broken b1,b2] MODEL...
//
// For each MODEL: a whole chat answer, a stream read chunk by chunk with
// usage, the same stream's raw bytes, the SDK's ChatCompletionStream helper
// (finalChatCompletion validates the accumulated stream strictly) and, for
// the models in --tools (default: all), a tool call streamed and not. Each
// model in --broken must give a stream that breaks off: the SDK must raise
// an APIError from the gateway's closing error event, after some chunks.
//
// The SDK's SSE decoder follows the same rules as the Python SDK's: every
// data line is JSON, [DONE] ends the stream, and a data object with an
// "error" member raises APIError. Python's accumulator is stricter than
// Node's about indexes (a choice or tool-call delta without an integer
// index is a TypeError there), so that is asserted here too.
//
// Prints one JSON line per model; exits 1 naming the first failed check of
// each failing model.
import OpenAI from 'openai';
import { VERSION } from 'openai/version';

const PROMPT = 'Say hello to the SDK check';
const TOOL_PROMPT = 'What is the weather in Paris?';
const TOOLS = [{
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'The current weather in a city',
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
  },
}];

function parseArgs(argv) {
  const out = { models: [], tools: null, broken: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--tools' || a === '--broken') {
      const list = (argv[++i] ?? '').split(',').filter(Boolean);
      if (a === '--tools') out.tools = list; else out.broken = list;
    } else if (a.startsWith('--')) {
      throw new Error(`unknown flag ${a}`);
    } else {
      out.models.push(a);
    }
  }
  if (out.tools === null) out.tools = out.models;
  return out;
}

class CheckError extends Error {}

function assert(cond, what, detail) {
  if (!cond) {
    throw new CheckError(detail === undefined ? what : `${what}: ${typeof detail === 'string' ? detail : JSON.stringify(detail)}`);
  }
}

// check runs one named check and records its outcome in result.
async function check(result, name, fn) {
  if (result.failed) return;
  try {
    result.checks[name] = (await fn()) ?? 'ok';
  } catch (e) {
    result.failed = `${name}: ${e instanceof CheckError ? '' : `${e?.constructor?.name ?? 'Error'}: `}${e?.message ?? e}`;
  }
}

// assertChunk holds every chunk to the chat.completion.chunk contract.
function assertChunk(chunk, i) {
  assert(chunk && chunk.object === 'chat.completion.chunk', `chunk ${i} object is not chat.completion.chunk`, chunk);
  assert(typeof chunk.id === 'string' && chunk.id !== '', `chunk ${i} has no id`, chunk);
  assert(Array.isArray(chunk.choices), `chunk ${i} has no choices array`, chunk);
  for (const c of chunk.choices) {
    assert(Number.isInteger(c.index), `chunk ${i}: a choice without an integer index`, chunk);
    for (const tc of c.delta?.tool_calls ?? []) {
      assert(Number.isInteger(tc.index), `chunk ${i}: a tool_calls delta without an integer index`, chunk);
    }
  }
}

// readStream iterates an SDK stream and assembles what it carried.
async function readStream(stream) {
  const got = { chunks: 0, text: '', finish: [], toolCalls: [], last: null };
  for await (const chunk of stream) {
    assertChunk(chunk, got.chunks);
    got.chunks++;
    got.last = chunk;
    for (const c of chunk.choices) {
      if (typeof c.delta?.content === 'string') got.text += c.delta.content;
      if (c.finish_reason) got.finish.push(c.finish_reason);
      for (const tc of c.delta?.tool_calls ?? []) {
        let call = got.toolCalls[tc.index];
        if (!call) {
          assert(tc.id && tc.type === 'function' && tc.function?.name,
            `the first delta of tool call ${tc.index} lacks its id, type or function name`, tc);
          call = got.toolCalls[tc.index] = { id: tc.id, name: '', arguments: '' };
        }
        call.name += tc.function?.name ?? '';
        call.arguments += tc.function?.arguments ?? '';
      }
    }
  }
  return got;
}

function assertUsageLast(got) {
  const u = got.last?.usage;
  assert(u && u.total_tokens > 0 && u.prompt_tokens > 0 && u.completion_tokens > 0, 'the last chunk carries no usage', got.last);
  assert(u.total_tokens === u.prompt_tokens + u.completion_tokens, 'usage does not add up', u);
  assert(got.last.choices.length === 0, 'the usage chunk must have an empty choices array', got.last);
}

function assertWeatherCall(call, where) {
  assert(call, `${where}: no tool call`);
  assert(call.name === 'get_weather', `${where}: tool call names ${JSON.stringify(call.name)}`);
  let args;
  try {
    args = JSON.parse(call.arguments);
  } catch (e) {
    throw new CheckError(`${where}: tool call arguments are not JSON: ${JSON.stringify(call.arguments)}`);
  }
  assert(args !== null && typeof args === 'object' && !Array.isArray(args), `${where}: tool call arguments are not a JSON object`, call.arguments);
}

async function checkModel(client, model, withTools) {
  const result = { model, checks: {} };
  const messages = [{ role: 'user', content: PROMPT }];
  let whole = '';

  await check(result, 'chat', async () => {
    const c = await client.chat.completions.create({ model, messages });
    assert(c.object === 'chat.completion', 'object is not chat.completion', c);
    assert(c.choices?.length === 1, 'not one choice', c);
    const [choice] = c.choices;
    assert(choice.message?.role === 'assistant', 'message role is not assistant', choice);
    assert(typeof choice.message.content === 'string' && choice.message.content !== '', 'no content', choice);
    assert(choice.finish_reason === 'stop', 'finish_reason', choice.finish_reason);
    assert(c.usage?.total_tokens > 0, 'no usage', c.usage);
    whole = choice.message.content;
    return { chars: whole.length, total_tokens: c.usage.total_tokens };
  });

  await check(result, 'stream', async () => {
    const stream = await client.chat.completions.create({ model, messages, stream: true, stream_options: { include_usage: true } });
    const got = await readStream(stream);
    assert(got.text !== '', 'the stream carried no text');
    assert(got.text === whole, 'streamed text differs from the whole answer', { streamed: got.text, whole });
    assert(got.finish.length === 1 && got.finish[0] === 'stop', 'finish_reason', got.finish);
    assertUsageLast(got);
    return { chunks: got.chunks, chars: got.text.length, total_tokens: got.last.usage.total_tokens };
  });

  await check(result, 'stream_bytes', async () => {
    // What the SDK parsed above, as bytes: only data lines (or comments)
    // and blank lines, ending with exactly one [DONE].
    const resp = await client.chat.completions
      .create({ model, messages, stream: true, stream_options: { include_usage: true } })
      .asResponse();
    assert((resp.headers.get('content-type') ?? '').startsWith('text/event-stream'), 'content-type', resp.headers.get('content-type'));
    const body = await resp.text();
    for (const line of body.split('\n')) {
      assert(line === '' || line.startsWith('data: ') || line.startsWith(':'), 'a line that is not data', line);
    }
    assert(body.endsWith('data: [DONE]\n\n'), 'the stream does not end with data: [DONE]', body.slice(-200));
    assert(body.split('data: [DONE]').length === 2, 'more than one [DONE]');
    return { bytes: body.length };
  });

  await check(result, 'stream_helper', async () => {
    const s = client.chat.completions.stream({ model, messages, stream_options: { include_usage: true } });
    const final = await s.finalChatCompletion();
    const [choice] = final.choices;
    assert(final.choices.length === 1 && choice.message.role === 'assistant', 'final completion', final);
    assert(choice.message.content === whole, 'final content differs from the whole answer', { final: choice.message.content, whole });
    assert(choice.finish_reason === 'stop', 'finish_reason', choice.finish_reason);
    assert(final.usage?.total_tokens > 0, 'the final completion has no usage', final.usage);
  });

  if (!withTools) {
    if (!result.failed) result.checks.tools = 'skipped: this provider answers tools with text';
  } else {
    const tools = { model, messages: [{ role: 'user', content: TOOL_PROMPT }], tools: TOOLS };

    await check(result, 'tools_chat', async () => {
      const c = await client.chat.completions.create(tools);
      const [choice] = c.choices;
      assert(choice?.finish_reason === 'tool_calls', 'finish_reason', choice?.finish_reason);
      const calls = choice.message.tool_calls ?? [];
      assert(calls.length === 1 && calls[0].type === 'function' && calls[0].id, 'tool_calls', calls);
      assertWeatherCall(calls[0].function, 'whole answer');
    });

    await check(result, 'tools_stream', async () => {
      const stream = await client.chat.completions.create({ ...tools, stream: true, stream_options: { include_usage: true } });
      const got = await readStream(stream);
      assert(got.toolCalls.length === 1, 'not one tool call', got.toolCalls);
      assertWeatherCall(got.toolCalls[0], 'stream');
      assert(got.finish.length === 1 && got.finish[0] === 'tool_calls', 'finish_reason', got.finish);
      assertUsageLast(got);
      return { chunks: got.chunks, arguments: got.toolCalls[0].arguments };
    });

    await check(result, 'tools_stream_helper', async () => {
      const s = client.chat.completions.stream(tools);
      const final = await s.finalChatCompletion();
      const [choice] = final.choices;
      assert(choice.finish_reason === 'tool_calls', 'finish_reason', choice.finish_reason);
      assert(choice.message.tool_calls?.length === 1 && choice.message.tool_calls[0].type === 'function', 'tool_calls', choice.message);
      assertWeatherCall(choice.message.tool_calls[0].function, 'final completion');
    });
  }

  result.ok = !result.failed;
  return result;
}

async function checkBroken(client, model) {
  const result = { model, checks: {} };
  const messages = [{ role: 'user', content: PROMPT }];

  await check(result, 'broken_stream', async () => {
    const stream = await client.chat.completions.create({ model, messages, stream: true });
    let chunks = 0;
    try {
      for await (const chunk of stream) {
        assertChunk(chunk, chunks);
        chunks++;
      }
    } catch (e) {
      if (e instanceof CheckError) throw e;
      assert(e instanceof OpenAI.APIError, 'the break raised something other than APIError', `${e?.constructor?.name}: ${e?.message}`);
      assert(chunks > 0, 'the stream broke before any chunk');
      assert(e.status === undefined && typeof e.error?.message === 'string' && e.error.message !== '', 'the error event', e.error);
      return { chunks, error: e.error.message };
    }
    throw new CheckError(`the stream ended without an error after ${chunks} chunks`);
  });

  await check(result, 'broken_stream_helper', async () => {
    const s = client.chat.completions.stream({ model, messages });
    try {
      await s.finalChatCompletion();
    } catch (e) {
      assert(e instanceof OpenAI.APIError, 'the break raised something other than APIError', `${e?.constructor?.name}: ${e?.message}`);
      assert(e.status === undefined, 'an HTTP error instead of the stream\'s error event', `${e.status} ${e.message}`);
      return;
    }
    throw new CheckError('finalChatCompletion resolved on a broken stream');
  });

  result.ok = !result.failed;
  return result;
}

// waitForModels polls the model list until every model is routable.
async function waitForModels(client, want) {
  const deadline = Date.now() + 15_000;
  let missing = want;
  while (Date.now() < deadline) {
    try {
      const ids = new Set();
      for await (const m of client.models.list()) ids.add(m.id);
      missing = want.filter((m) => !ids.has(m));
      if (missing.length === 0) return;
    } catch (e) {
      missing = [`(models.list: ${e.message})`];
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`models not listed by the gateway after 15 s: ${missing.join(', ')}`);
}

async function main() {
  const { GATEWAY_URL, GATEWAY_KEY } = process.env;
  const args = parseArgs(process.argv.slice(2));
  if (!GATEWAY_URL || !GATEWAY_KEY || (args.models.length === 0 && args.broken.length === 0)) {
    console.error('usage: GATEWAY_URL=… GATEWAY_KEY=… node check.mjs [--tools m1,m2] [--broken b1,b2] MODEL...');
    process.exit(2);
  }
  const client = new OpenAI({
    baseURL: GATEWAY_URL.replace(/\/+$/, '') + '/v1',
    apiKey: GATEWAY_KEY,
    maxRetries: 0,
    timeout: 20_000,
  });
  await waitForModels(client, [...args.models, ...args.broken]);

  const results = await Promise.all([
    ...args.models.map((m) => checkModel(client, m, args.tools.includes(m))),
    ...args.broken.map((m) => checkBroken(client, m)),
  ]);
  const failures = [];
  for (const r of results) {
    console.log(JSON.stringify(r));
    if (!r.ok) failures.push(`${r.model}: ${r.failed}`);
  }
  if (failures.length > 0) {
    console.error(`FAIL: the OpenAI Node SDK (openai ${VERSION}) rejected ${failures.length} of ${results.length} models:\n  ${failures.join('\n  ')}`);
    process.exit(1);
  }
  console.error(`ok: the OpenAI Node SDK (openai ${VERSION}) accepted every answer and stream of ${results.length} models`);
}

const watchdog = setTimeout(() => {
  console.error('FAIL: check.mjs did not finish within 60 s');
  process.exit(1);
}, 60_000);
watchdog.unref();

main().catch((e) => {
  console.error(`FAIL: ${e?.stack ?? e}`);
  process.exit(1);
});
