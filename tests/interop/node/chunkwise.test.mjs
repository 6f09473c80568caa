// A Node client of chunkwise, held to the contract against a live server.
//
//   CHUNKWISE_ADDRESS=127.0.0.1:50051 node --test
//
// It loads protos/chunkwise/v1/streaming.proto at run time with @grpc/proto-loader (no
// generated code). Every id has a random suffix, so it can run twice against one server.
// `make interop` and tests/test_interop_node.py start a server and run it.

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import path from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";

import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const PROTOS = path.resolve(HERE, "../../../protos");
const ADDRESS = process.env.CHUNKWISE_ADDRESS;
// Generous: a busy machine can be slow, and a deadline only matters when something hangs.
const DEADLINE_MS = 30_000;
const RUN = randomUUID().slice(0, 8);

// keepCase: the proto's field names (chunk_id, set_json); longs as strings, so a uint64
// sequence loses nothing; enums by name; defaults fill unset scalars; oneofs: true names
// the member that is set (output.kind, delta.op), since defaults fill the others with "".
const definition = protoLoader.loadSync("chunkwise/v1/streaming.proto", {
  includeDirs: [PROTOS],
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
});
const { StreamingParser } = grpc.loadPackageDefinition(definition).chunkwise.v1;

// Final responses and GetCompleteText can be larger than gRPC's default 4 MiB receive limit.
const OPTIONS = { "grpc.max_receive_message_length": 64 << 20 };

let client;
// Streams still open when a test fails; cancelled at the end so node exits at once.
const open = new Set();

before(() => {
  assert.ok(ADDRESS, "set CHUNKWISE_ADDRESS to a running chunkwise server's host:port");
  client = new StreamingParser(ADDRESS, grpc.credentials.createInsecure(), OPTIONS);
});

after(() => {
  for (const call of open) call.cancel();
  client?.close();
});

function deadline() {
  return new Date(Date.now() + DEADLINE_MS);
}

function id(name) {
  return `node-${name}-${RUN}`;
}

/** A unary call as a promise: `await unary(client, "ClearChunk", { chunk_id })`. */
function unary(stub, method, request) {
  return new Promise((resolve, reject) => {
    stub[method](request, { deadline: deadline() }, (error, response) =>
      error ? reject(error) : resolve(response),
    );
  });
}

/** One ProcessChunks stream: `send()` writes a request and waits for its response. */
class Conversation {
  constructor(stub) {
    this.call = stub.ProcessChunks({ deadline: deadline() });
    open.add(this.call);
    this.responses = this.call[Symbol.asyncIterator]();
    this.status = new Promise((resolve) => this.call.on("status", resolve));
  }

  async send(request) {
    this.call.write(request);
    return this.next();
  }

  /** Write every request first, then read their responses: one per request, in order. */
  async sendAll(requests) {
    for (const request of requests) this.call.write(request);
    const responses = [];
    for (let i = 0; i < requests.length; i++) responses.push(await this.next());
    return responses;
  }

  async next() {
    const { value, done } = await this.responses.next();
    assert.ok(!done, "the server ended the stream early");
    return value;
  }

  /** Half-close and check that the server ends the stream cleanly. */
  async close() {
    this.call.end();
    open.delete(this.call);
    assert.ok((await this.responses.next()).done, "a response nobody asked for");
    assert.equal((await this.status).code, grpc.status.OK);
  }
}

/** RFC 6901: "" is the whole value; "/a~1b/0" is ["a/b", "0"]. */
function pointer(path) {
  if (path === "") return [];
  assert.ok(path.startsWith("/"), `not a JSON pointer: ${JSON.stringify(path)}`);
  return path
    .slice(1)
    .split("/")
    .map((token) => token.replaceAll("~1", "/").replaceAll("~0", "~"));
}

/**
 * The JSON value so far of one id, rebuilt from the `json` processor's deltas in order:
 * `set_json` puts a value at a path (an array index equal to the length adds an element),
 * `append` adds text to the string at a path.
 */
class JsonBuilder {
  constructor() {
    this.root = { value: undefined };
  }

  apply(response) {
    if (response.reset) this.root.value = undefined;
    if (response.output?.kind !== "json") return;
    for (const delta of response.output.json.deltas) {
      const tokens = ["value", ...pointer(delta.path)];
      const key = tokens.pop();
      let parent = this.root;
      for (const token of tokens) parent = parent[token];
      assert.equal(typeof parent, "object", `no container at ${delta.path}`);
      if (delta.op === "set_json") {
        const index = Array.isArray(parent) ? Number(key) : key;
        // defineProperty, not `=`: a key named "__proto__" is a key like any other.
        Object.defineProperty(parent, index, {
          value: JSON.parse(delta.set_json),
          writable: true,
          enumerable: true,
          configurable: true,
        });
      } else {
        assert.equal(delta.op, "append");
        assert.equal(typeof parent[key], "string", `no string at ${delta.path}`);
        parent[key] += delta.append;
      }
    }
  }

  get value() {
    return this.root.value;
  }
}

// Multi-byte text (é, 😀) raw and as \u escapes (a surrogate pair too), \n and other
// escapes, a key that needs ~ and / escaped in a pointer, a number too big for a double,
// every literal, empty and nested containers, and a repeated key (the last value wins).
// The pieces split it at awkward places: inside escapes, between the halves of an escaped
// surrogate pair, inside keys, literals and numbers. A chunk never splits a code point: a
// proto string is UTF-8.
const PIECES = [
  ' {"gree',
  'ting": "caf\\u00',
  "e9 é ",
  "😀",
  " \\ud83d",
  "\\ude",
  "00 line1\\",
  'nline2 \\"quo',
  'ted\\" back\\',
  "\\slash \\t\\u0",
  '041 \\/", "a/',
  'b~c": [1, -2.',
  "5e3, tr",
  "ue, fal",
  "se, nu",
  'll, "x", ',
  '""], "nested": {"empty_obj": {',
  '}, "empty_arr": [',
  '], "deep": [[{"k": "v😀',
  '"}]]}, "big": 1234567890',
  "1234567890",
  ', "dup": 1, "dup": "sec',
  'ond", "é😀": "\\u00e9"}',
  "\n",
];
const DOCUMENT = PIECES.join("");

async function rebuild(conversation, chunkId, chunks) {
  const requests = chunks.map((chunk, i) => ({
    chunk_id: chunkId,
    chunk,
    // The first request fixes the id's processor and mode; later ones may leave them empty.
    processor_type: i === 0 ? "json" : "",
    mode: i === 0 ? "DELTA_MODE_APPEND" : "DELTA_MODE_UNSPECIFIED",
    sequence: i + 1,
    final: i === chunks.length - 1,
  }));
  const responses = await conversation.sendAll(requests);
  const builder = new JsonBuilder();
  let text = "";
  responses.forEach((response, i) => {
    assert.equal(response.error, null, `chunk ${i}: ${response.error?.message}`);
    assert.equal(response.chunk_id, chunkId);
    assert.equal(response.sequence, String(i + 1));
    assert.equal(response.delta, chunks[i], "APPEND: the delta is the chunk");
    assert.equal(response.reset, false);
    assert.equal(response.duplicate, false);
    text += response.delta;
    builder.apply(response);
  });
  const last = responses.at(-1);
  assert.equal(last.final, true);
  assert.equal(last.complete_text, DOCUMENT);
  assert.equal(text, DOCUMENT);
  assert.deepEqual(builder.value, JSON.parse(DOCUMENT));
  assert.equal(last.output.kind, "json");
  assert.equal(last.output.json.value_json !== "", true);
  assert.deepEqual(JSON.parse(last.output.json.value_json), JSON.parse(DOCUMENT));
  return builder.value;
}

test("json in APPEND mode: every delta applied rebuilds JSON.parse of the text", async () => {
  const conversation = new Conversation(client);
  const value = await rebuild(conversation, id("json-pieces"), PIECES);
  assert.equal(value.greeting, 'café é 😀 😀 line1\nline2 "quoted" back\\slash \tA /');
  assert.equal(value["a/b~c"][1], -2500);
  assert.equal(value.dup, "second");
  await conversation.close();
});

test("json in APPEND mode, one code point per chunk", async () => {
  const conversation = new Conversation(client);
  await rebuild(conversation, id("json-codepoints"), Array.from(DOCUMENT));
  await conversation.close();
});

test("json: a string grows in place and is never taken back", async () => {
  const conversation = new Conversation(client);
  const chunkId = id("json-grow");
  const builder = new JsonBuilder();
  const seen = [];
  for (const chunk of ['{"s": "ab', "c\\u00", "e9", 'd", "n": 4', "2}"]) {
    const response = await conversation.send({
      chunk_id: chunkId,
      chunk,
      processor_type: "json",
      mode: "DELTA_MODE_APPEND",
    });
    builder.apply(response);
    seen.push(structuredClone(builder.value));
  }
  // The number shows once complete: a top-level object's number at the "}" that ends it.
  assert.deepEqual(seen, [
    { s: "ab" },
    { s: "abc" },
    { s: "abcé" },
    { s: "abcéd" },
    { s: "abcéd", n: 42 },
  ]);
  const final = await conversation.send({ chunk_id: chunkId, final: true });
  assert.equal(final.final, true);
  assert.equal(final.complete_text, '{"s": "abc\\u00e9d", "n": 42}');
  await conversation.close();
});

/**
 * Sends each chunk on one id, the last one final (a SNAPSHOT final carries the whole text,
 * like any snapshot), and returns the deltas and the final's complete_text.
 */
async function deltas(conversation, chunkId, mode, chunks) {
  const seen = [];
  let complete;
  for (const [i, chunk] of chunks.entries()) {
    const final = i === chunks.length - 1;
    const response = await conversation.send({
      chunk_id: chunkId,
      chunk,
      mode,
      sequence: i + 1,
      final,
    });
    assert.equal(response.error, null, response.error?.message);
    assert.equal(response.output, null, "text has no output");
    assert.equal(response.final, final);
    if (!final) assert.equal(response.complete_text, "", "complete_text comes only on a final");
    seen.push(response.reset ? { reset: response.delta } : response.delta);
    complete = response.complete_text;
  }
  return { deltas: seen, complete };
}

test("text in AUTO mode: the original heuristic", async () => {
  const conversation = new Conversation(client);
  assert.deepEqual(
    await deltas(conversation, id("auto"), "DELTA_MODE_AUTO", [
      "Hel", // nothing seen yet: the whole chunk
      "Hello", // starts with the previous chunk: the rest
      "Hello wor",
      "ld!", // unrelated to the previous chunk: the whole chunk
      ">> ld! and more", // the previous chunk inside it: what follows
    ]),
    { deltas: ["Hel", "lo", " wor", "ld!", " and more"], complete: "Hello world! and more" },
  );
  // It guesses: a fragment that repeats the previous chunk is taken for a snapshot, and lost.
  assert.deepEqual(await deltas(conversation, id("auto-lossy"), "DELTA_MODE_AUTO", ["ha", "ha"]), {
    deltas: ["ha", ""],
    complete: "ha",
  });
  // UNSPECIFIED on a new id is AUTO, and an empty processor_type is text.
  assert.deepEqual(
    await deltas(conversation, id("auto-default"), "DELTA_MODE_UNSPECIFIED", ["ab", "abc"]),
    { deltas: ["ab", "c"], complete: "abc" },
  );
  await conversation.close();
});

test("text in APPEND mode: every chunk is a fragment", async () => {
  const conversation = new Conversation(client);
  assert.deepEqual(
    await deltas(conversation, id("append"), "DELTA_MODE_APPEND", ["ha", "ha", "", " é😀", "\n"]),
    { deltas: ["ha", "ha", "", " é😀", "\n"], complete: "haha é😀\n" },
  );
  await conversation.close();
});

test("text in SNAPSHOT mode: every chunk is the whole text so far", async () => {
  const conversation = new Conversation(client);
  assert.deepEqual(
    await deltas(conversation, id("snapshot"), "DELTA_MODE_SNAPSHOT", [
      "Hello",
      "Hello", // equal: empty delta, no reset
      "Hello, wor",
      "Help", // a rewrite: reset, and the whole new text
      "Help!",
      "Hel", // shorter is a rewrite too
      "Hel😀",
    ]),
    {
      deltas: ["Hello", "", ", wor", { reset: "Help" }, "!", { reset: "Hel" }, "😀"],
      complete: "Hel😀",
    },
  );
  await conversation.close();
});

test("GetCompleteText from a second connection sees what a stream wrote", async () => {
  // A channel option of its own, so grpc-js does not share the first client's connection.
  const other = new StreamingParser(ADDRESS, grpc.credentials.createInsecure(), {
    ...OPTIONS,
    "grpc.use_local_subchannel_pool": 1,
  });
  try {
    const conversation = new Conversation(client);
    const chunkId = id("shared");
    for (const [i, chunk] of ["caf", "é ", "😀"].entries()) {
      await conversation.send({
        chunk_id: chunkId,
        chunk,
        mode: "DELTA_MODE_APPEND",
        sequence: 10 * (i + 1),
      });
    }
    assert.deepEqual(await unary(other, "GetCompleteText", { chunk_id: chunkId }), {
      text: "café 😀",
      last_sequence: "30",
      processor_type: "text",
    });
    await conversation.close();
    // State outlives the stream.
    const again = await unary(other, "GetCompleteText", { chunk_id: chunkId });
    assert.equal(again.text, "café 😀");
    await unary(client, "ClearChunk", { chunk_id: chunkId });
  } finally {
    other.close();
  }
});

test("ClearChunk twice: cleared, then nothing to clear; then NOT_FOUND", async () => {
  const conversation = new Conversation(client);
  const chunkId = id("clear");
  await conversation.send({ chunk_id: chunkId, chunk: "text", mode: "DELTA_MODE_APPEND" });
  await conversation.close();
  assert.deepEqual(await unary(client, "ClearChunk", { chunk_id: chunkId }), { cleared: true });
  assert.deepEqual(await unary(client, "ClearChunk", { chunk_id: chunkId }), { cleared: false });
  await assert.rejects(unary(client, "GetCompleteText", { chunk_id: chunkId }), {
    code: grpc.status.NOT_FOUND,
  });
});

test("GetCompleteText of an unknown id is NOT_FOUND", async () => {
  await assert.rejects(unary(client, "GetCompleteText", { chunk_id: id("never-sent") }), {
    code: grpc.status.NOT_FOUND,
  });
});

test("a bad request gets INVALID_ARGUMENT in its response and the stream goes on", async () => {
  const conversation = new Conversation(client);
  const chunkId = id("unknown-processor");
  const refused = await conversation.send({
    chunk_id: chunkId,
    chunk: "{}",
    processor_type: "no-such-processor",
    sequence: 7,
  });
  assert.equal(refused.error?.code, grpc.status.INVALID_ARGUMENT);
  assert.match(refused.error.message, /no-such-processor/);
  assert.equal(refused.chunk_id, chunkId);
  assert.equal(refused.sequence, "7");
  assert.equal(refused.final, false);
  const noId = await conversation.send({ chunk_id: "", chunk: "x" });
  assert.equal(noId.error?.code, grpc.status.INVALID_ARGUMENT);
  // Nothing was tracked for the refused id ...
  await assert.rejects(unary(client, "GetCompleteText", { chunk_id: chunkId }), {
    code: grpc.status.NOT_FOUND,
  });
  // ... and the same stream goes on.
  const ok = await conversation.send({
    chunk_id: chunkId,
    chunk: '["ok"]',
    processor_type: "json",
    mode: "DELTA_MODE_APPEND",
    final: true,
  });
  assert.equal(ok.error, null);
  assert.equal(ok.complete_text, '["ok"]');
  const builder = new JsonBuilder();
  builder.apply(ok);
  assert.deepEqual(builder.value, ["ok"]);
  await conversation.close();
});

test("ListProcessors names the built-in processors", async () => {
  const { processors } = await unary(client, "ListProcessors", {});
  const names = processors.map((processor) => processor.name);
  for (const name of ["dashboard", "json", "metric", "plan", "search_data_catalog", "text"]) {
    assert.ok(names.includes(name), `${name} missing from ${names}`);
  }
});
