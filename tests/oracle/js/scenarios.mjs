// What a chat UI (agent-chat-ui, `useStream`) asks of a LangGraph server, through LangGraph's
// JavaScript SDK, as one scenario at a time.
//
//     node scenarios.mjs BASE_URL SCENARIO
//
// prints one JSON object on stdout: the scenario's observations, named, as the SDK returned
// them (tests/oracle/test_js_sdk.py compares them between graphfleet and `langgraph dev`).
// An expected HTTP error is observed as {"http_status": N}; anything unexpected exits 1 with
// the error on stderr. The client retries no failed request (maxRetries 0): a server's error
// shows as itself.

import { randomUUID } from "node:crypto";
import { Client } from "@langchain/langgraph-sdk";

const ASK_WEATHER = { messages: [{ role: "user", content: "weather?" }] };
const CHAT_MODES = ["values", "messages-tuple", "updates"];
const ZERO = "00000000-0000-0000-0000-000000000000";
const POLL_INTERVAL_MS = 50;
const POLL_TIMEOUT_MS = 20_000;

/** The HTTP status of a call that must fail, as an observation; other errors are thrown. */
async function httpStatus(call) {
  try {
    await call();
  } catch (error) {
    if (typeof error?.status === "number") return { http_status: error.status };
    throw error;
  }
  throw new Error("the call was expected to fail and succeeded");
}

/** Every part of a stream, as {event, data, id} (id null when the server sent none). */
async function collect(stream) {
  const parts = [];
  for await (const part of stream) {
    parts.push({ event: part.event, data: part.data, id: part.id ?? null });
  }
  return parts;
}

/** Poll `read` until `done(value)`, failing after POLL_TIMEOUT_MS; the last value. */
async function eventually(read, done) {
  const deadline = Date.now() + POLL_TIMEOUT_MS;
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    if (Date.now() > deadline) {
      throw new Error(`condition not met within ${POLL_TIMEOUT_MS} ms: ${JSON.stringify(value)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_INTERVAL_MS));
  }
}

const scenarios = {
  // The assistant picker and an app that makes its own assistants.
  async assistants(client) {
    const tag = { js_test: randomUUID() };
    const found = await client.assistants.search({ graphId: "chat", metadata: { created_by: "system" } });
    const assistantId = randomUUID();
    const payload = {
      graphId: "interrupting",
      assistantId,
      name: "js",
      metadata: tag,
      config: { configurable: { mode: "a" } },
    };
    const created = await client.assistants.create({ ...payload, ifExists: "raise" });
    return {
      found,
      got: await client.assistants.get(found[0].assistant_id),
      created,
      again: await client.assistants.create({ ...payload, name: "other", ifExists: "do_nothing" }),
      conflict: await httpStatus(() => client.assistants.create({ ...payload, ifExists: "raise" })),
      updated: await client.assistants.update(assistantId, {
        name: "js2",
        metadata: { ...tag, step: "updated" },
      }),
      got_updated: await client.assistants.get(assistantId),
      tagged: await client.assistants.search({ metadata: tag }),
      deleted: (await client.assistants.delete(assistantId)) ?? null,
      after_delete: await httpStatus(() => client.assistants.get(assistantId)),
      missing: await httpStatus(() => client.assistants.get(ZERO)),
    };
  },

  // A thread list, a conversation's history, and an edit of the last message.
  async threads(client) {
    const tag = { js_test: randomUUID() };
    const created = await client.threads.create({ metadata: tag });
    const threadId = created.thread_id;
    const got = await client.threads.get(threadId);
    const found = await client.threads.search({ metadata: tag });
    const answer = await client.runs.wait(threadId, "chat", { input: ASK_WEATHER });
    const state = await client.threads.getState(threadId);
    const history = await client.threads.getHistory(threadId, { limit: 10 }); // useStream's default
    const edited = { type: "ai", content: "Edited.", id: "ai-answer" };
    const updated = await client.threads.updateState(threadId, {
      values: { messages: [edited] },
      asNode: "agent",
    });
    return {
      created,
      got,
      found,
      answer,
      state,
      history,
      at_checkpoint: await client.threads.getState(threadId, history[1].checkpoint.checkpoint_id),
      updated,
      state_after: await client.threads.getState(threadId),
      history_after: await client.threads.getHistory(threadId, { limit: 1 }),
      missing: await httpStatus(() => client.threads.get(ZERO)),
    };
  },

  // useStream's submit: tokens as they come, the state after each step, each node's update.
  async stream(client) {
    const threadId = (await client.threads.create()).thread_id;
    let runCreated = null;
    const events = await collect(
      client.runs.stream(threadId, "chat", {
        input: ASK_WEATHER,
        streamMode: CHAT_MODES,
        onDisconnect: "cancel",
        onRunCreated: (meta) => {
          runCreated = meta;
        },
      }),
    );
    const thread = await client.threads.get(threadId);
    return { thread_id: threadId, run_created: runCreated, events, thread };
  },

  // A page reload during a run: useStream rejoins it from the start ("Last-Event-ID: -1").
  // The run starts a second late, so the join always finds it going: the oracle's join of a
  // run already over is empty (graphfleet's replays the events it still retains).
  async join_stream(client) {
    const threadId = (await client.threads.create()).thread_id;
    const run = await client.runs.create(threadId, "chat", {
      input: ASK_WEATHER,
      streamMode: CHAT_MODES,
      afterSeconds: 1,
    });
    const events = await collect(client.runs.joinStream(threadId, run.run_id, { lastEventId: "-1" }));
    return { run, events, final: await client.runs.get(threadId, run.run_id) };
  },

  // A background run, waited for.
  async create_join(client) {
    const threadId = (await client.threads.create()).thread_id;
    let runCreated = null;
    const run = await client.runs.create(threadId, "chat", {
      input: ASK_WEATHER,
      onRunCreated: (meta) => {
        runCreated = meta;
      },
    });
    return {
      run,
      run_created: runCreated,
      joined: await client.runs.join(threadId, run.run_id),
      got: await client.runs.get(threadId, run.run_id),
      listed: await client.runs.list(threadId),
      thread: await client.threads.get(threadId),
    };
  },

  // Human in the loop: the run stops at interrupt(), the UI shows it, the answer resumes it.
  async interrupt(client) {
    const threadId = (await client.threads.create()).thread_id;
    const paused = await collect(
      client.runs.stream(threadId, "interrupting", {
        input: { question: "ok?" },
        streamMode: ["values", "updates"],
      }),
    );
    const state = await client.threads.getState(threadId);
    const thread = await client.threads.get(threadId);
    const resumed = await collect(
      client.runs.stream(threadId, "interrupting", { command: { resume: "yes" }, streamMode: ["values"] }),
    );
    return {
      paused,
      state,
      thread,
      resumed,
      state_after: await client.threads.getState(threadId),
      thread_after: await client.threads.get(threadId),
    };
  },

  // Long-term memory: items under a namespace of this run's own.
  async store(client) {
    const root = ["js", randomUUID().replaceAll("-", "")];
    await client.store.putItem([...root, "a"], "k1", { text: "apple pie" });
    await client.store.putItem([...root, "b"], "k2", { text: "zzz", n: 2 });
    const got = await client.store.getItem([...root, "a"], "k1");
    const observed = {
      got,
      absent: await client.store.getItem([...root, "a"], "nope"),
      searched: await client.store.searchItems(root),
      filtered: await client.store.searchItems(root, { filter: { n: 2 } }),
      queried: await client.store.searchItems(root, { query: "apple pies", limit: 1 }),
      namespaces: await client.store.listNamespaces({ prefix: root }),
      deleted: (await client.store.deleteItem([...root, "a"], "k1")) ?? null,
      after_delete: await client.store.getItem([...root, "a"], "k1"),
      namespaces_after: await client.store.listNamespaces({ prefix: root }),
    };
    await client.store.deleteItem([...root, "b"], "k2");
    return observed;
  },

  // The stop button: the stream is aborted; with onDisconnect "cancel" the run must end.
  async abort(client) {
    const threadId = (await client.threads.create()).thread_id;
    const controller = new AbortController();
    let first = null;
    try {
      for await (const part of client.runs.stream(threadId, "slow", {
        input: { delay_s: 30 },
        onDisconnect: "cancel",
        signal: controller.signal,
      })) {
        first = { event: part.event, data: part.data };
        controller.abort();
      }
    } catch (error) {
      if (error?.name !== "AbortError") throw error;
    }
    if (first === null) throw new Error("the stream ended before its first event");
    const runId = first.data.run_id;
    const ended = (run) => !["pending", "running"].includes(run.status);
    const run = await eventually(() => client.runs.get(threadId, runId), ended);
    const thread = await eventually(() => client.threads.get(threadId), (t) => t.status !== "busy");
    return { first, run, thread };
  },
};

async function main() {
  const [apiUrl, name] = process.argv.slice(2);
  const scenario = scenarios[name];
  if (!apiUrl || !scenario) {
    process.stderr.write(`usage: node scenarios.mjs BASE_URL {${Object.keys(scenarios).join("|")}}\n`);
    process.exit(2);
  }
  // No API key from the environment; a failed request is not sent again.
  const client = new Client({ apiUrl, apiKey: null, callerOptions: { maxRetries: 0 } });
  const observed = await scenario(client);
  process.stdout.write(`${JSON.stringify(observed)}\n`);
}

main().catch((error) => {
  process.stderr.write(`${error?.stack ?? error}\n`);
  if (error?.cause) process.stderr.write(`cause: ${error.cause?.stack ?? error.cause}\n`);
  process.exit(1);
});
